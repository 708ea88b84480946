"""forest.backend: which trainer fits the forests of train, tune and validate.

scikit-learn-intelex is optional: its tests skip where it is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import PredefinedSplit, cross_val_score

from smci_gpu.config import load_config
from smci_gpu.errors import ConfigError, DeviceError
from smci_gpu.model.forest import PackedForest
from smci_gpu.model.train import (
    TARGET,
    fit_forest,
    make_estimator,
    resolve_backend,
    train,
)
from smci_gpu.model.tune import cv_grid, fold_ids
from smci_gpu.variables import FEATURES

QUIET = Console(quiet=True)

try:
    from sklearnex.ensemble import RandomForestRegressor as IntelRegressor
except ImportError:
    IntelRegressor = None

needs_sklearnex = pytest.mark.skipif(
    IntelRegressor is None,
    reason="scikit-learn-intelex is not installed (the [sklearnex] extra)",
)


def _config(tmp_path, backend: str = "auto", **forest):
    overrides = {
        "device": "cpu",
        "layers": [10],
        "forest": {
            "n_estimators": 10,
            "max_features": 1,
            "min_samples_leaf": 5,
            "n_jobs": 1,
            "backend": backend,
            **forest,
        },
        "tune": {"max_features": [1, 3], "min_samples_leaf": [5], "folds": 3, "n_estimators": 6},
    }
    return load_config(workdir=tmp_path, overrides=overrides, environ={})


def _data(n: int = 3000, p: int = 6, seed: int = 0):
    """Seeded rows; column 2 takes few distinct values, so test rows sit on thresholds."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)).astype(np.float32)
    x[:, 2] = np.round(x[:, 2] * 3)
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.1 * rng.normal(size=n)
    return x, y


# --------------------------------------------------------------------------- choice


def test_auto_is_cuml_on_the_gpu_and_scikit_learn_on_the_cpu():
    assert resolve_backend("auto", "cpu") == "sklearn"
    assert resolve_backend("auto", "gpu") == "cuml"
    assert resolve_backend("sklearn", "gpu") == "sklearn"  # CPU fit, packed like any other


def test_cuml_without_a_gpu_is_a_one_line_device_error():
    with pytest.raises(DeviceError, match="'cuml' trains on the GPU.*--device gpu"):
        resolve_backend("cuml", "cpu")


def test_absent_sklearnex_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearnex", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "sklearnex.ensemble", None)
    with pytest.raises(DeviceError, match=r"needs scikit-learn-intelex: pip install"):
        resolve_backend("sklearnex", "cpu")


def test_unknown_backend_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="backend"):
        _config(tmp_path, backend="xgboost")
    with pytest.raises(ConfigError, match="must be auto or one of"):
        resolve_backend("xgboost", "cpu")


def test_scikit_learn_estimator_carries_the_config(tmp_path):
    cfg = _config(tmp_path, backend="sklearn", max_depth=7)
    est = make_estimator(cfg, "cpu", n_estimators=3, min_samples_leaf=9)
    assert type(est) is RandomForestRegressor
    got = est.get_params()
    want = dict(n_estimators=3, max_features=1, min_samples_leaf=9, max_depth=7, n_jobs=1)
    assert {k: got[k] for k in want} == want
    assert got["random_state"] == cfg.forest.random_state and got["bootstrap"] is True


def test_cli_refuses_cuml_on_the_cpu_in_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "smci_gpu.cli", "--workdir", str(tmp_path), "--device", "cpu"]
        + ["train", "--backend", "cuml"],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "'cuml' trains on the GPU" in lines[0], r.stderr
    assert not (tmp_path / "models").exists()


# --------------------------------------------------------------------------- scikit-learn-intelex


@needs_sklearnex
def test_sklearnex_forest_packs_exactly(tmp_path):
    cfg = _config(tmp_path, backend="sklearnex", n_estimators=20)
    x, y = _data()
    est = make_estimator(cfg, "cpu").fit(x, y)
    assert type(est) is IntelRegressor
    assert hasattr(est, "_onedal_estimator"), "scikit-learn-intelex fell back to scikit-learn"
    packed = PackedForest.from_sklearn(est)
    xt, _ = _data(4000, seed=1)
    xt[:200] = x[:200]  # training rows too
    got = packed.predict(xt)
    # Reference: the library's own predict (float64 rows: its float32 path sums in float32).
    ref = est.predict(xt.astype(np.float64))
    assert np.abs(got - ref).max() <= 1e-6
    # And the packed forest is what fit_forest returns for this config, naming its trainer.
    fitted = fit_forest(x, y, cfg)
    assert fitted.digest() == packed.digest()
    assert fitted.meta["source"] == "sklearnex RandomForestRegressor"


@needs_sklearnex
def test_sklearnex_honours_leaf_size_depth_and_seed(tmp_path):
    x, y = _data()
    cfg = _config(tmp_path, backend="sklearnex", min_samples_leaf=25, max_depth=6)
    est = make_estimator(cfg, "cpu").fit(x, y)
    for tree in est.estimators_:
        t = tree.tree_
        leaf = t.children_left < 0
        # oneDAL counts a leaf's bootstrap draws (a row drawn twice counts twice) ...
        assert t.weighted_n_node_samples[leaf].min() >= 25
        assert t.weighted_n_node_samples[0] == len(x)
        assert t.max_depth <= 6
    # ... where scikit-learn counts distinct rows, so its leaves hold more draws.
    ref = make_estimator(cfg, "cpu", backend_name="sklearn").fit(x, y).estimators_[0].tree_
    leaf = ref.children_left < 0
    assert ref.n_node_samples[leaf].min() >= 25 and ref.n_node_samples[0] < 0.7 * len(x)
    again = make_estimator(cfg, "cpu").fit(x, y)
    other = make_estimator(cfg, "cpu", random_state=cfg.forest.random_state + 1).fit(x, y)
    assert PackedForest.from_sklearn(again).digest() == PackedForest.from_sklearn(est).digest()
    assert PackedForest.from_sklearn(other).digest() != PackedForest.from_sklearn(est).digest()


@needs_sklearnex
def test_sklearnex_forest_is_about_as_good_as_scikit_learns(tmp_path):
    x, y = _data(4000)
    xt, yt = _data(4000, seed=2)
    rmse = {}
    for name in ("sklearn", "sklearnex"):
        forest = fit_forest(x, y, _config(tmp_path, backend=name, n_estimators=30))
        rmse[name] = float(np.sqrt(np.mean((forest.predict(xt) - yt) ** 2)))
    assert rmse["sklearnex"] == pytest.approx(rmse["sklearn"], rel=0.1), rmse


@needs_sklearnex
def test_grid_search_uses_the_configured_backend(tmp_path):
    cfg = _config(tmp_path, backend="sklearnex")
    x, y = _data(900)
    folds = fold_ids(np.arange(900) % 30, 3, "station", seed=1)
    got = cv_grid(x, y, folds, cfg)
    for mf in (1, 3):
        cell = got[got.max_features == mf].sort_values("fold")
        est = IntelRegressor(
            n_estimators=6, max_features=mf, min_samples_leaf=5, max_depth=64,
            random_state=cfg.forest.random_state, n_jobs=1,
        )  # fmt: skip
        ref = -cross_val_score(
            est, x, y, cv=PredefinedSplit(folds), scoring="neg_root_mean_squared_error"
        )
        np.testing.assert_allclose(cell.rmse, ref, rtol=1e-6)


@needs_sklearnex
def test_train_stage_records_the_backend_on_the_card(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    table = pd.DataFrame(rng.random((n, len(FEATURES))).astype(np.float32), columns=FEATURES)
    table["time"] = pd.date_range("2017-01-01", periods=n, freq="D")
    table["depth_cm"] = 10
    table["stations"] = [f"S{i % 7}" for i in range(n)]
    table[TARGET] = 0.2 + 0.2 * table.swvl2 + rng.normal(0, 0.01, n)
    (tmp_path / "work").mkdir()
    table.to_parquet(tmp_path / "work" / "station_days.parquet")
    train(_config(tmp_path, backend="sklearnex"), QUIET)
    card = json.loads((tmp_path / "models" / "layer_010cm" / "card.json").read_text())
    assert card["backend"] == "sklearnex" and card["forest"]["backend"] == "sklearnex"
    assert card["versions"]["sklearnex"].startswith("20")
