"""Tuning folds and grid, permutation importance, experiments with gaps, the HTML report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import PredefinedSplit, cross_val_score

from smci_gpu.config import load_config
from smci_gpu.errors import ConfigError, InputDataError
from smci_gpu.evaluate.experiments import run_experiment, validate
from smci_gpu.evaluate.importance import permutation_importance
from smci_gpu.evaluate.report import report
from smci_gpu.model.train import TARGET
from smci_gpu.model.tune import cv_grid, fold_ids, summarise, tune
from smci_gpu.variables import FEATURES

QUIET = Console(quiet=True)


# --------------------------------------------------------------------------- folds


@settings(max_examples=40, deadline=None)
@given(
    n_groups=st.integers(3, 30),
    n_folds=st.integers(2, 5),
    seed=st.integers(0, 1000),
)
def test_station_folds_never_split_a_station(n_groups, n_folds, seed):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"S{i:02d}" for i in range(n_groups)], rng.integers(1, 40, n_groups))
    if n_groups < n_folds:
        with pytest.raises(InputDataError, match="station groups"):
            fold_ids(groups, n_folds, "station", seed)
        return
    folds = fold_ids(groups, n_folds, "station", seed)
    per_group = pd.Series(folds).groupby(groups).nunique()
    assert (per_group == 1).all()
    assert set(folds) == set(range(n_folds))


def test_random_folds_are_balanced_and_seeded():
    groups = np.array(["a"] * 50 + ["b"] * 53)
    folds = fold_ids(groups, 10, "random", seed=3)
    counts = np.bincount(folds)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 103
    np.testing.assert_array_equal(folds, fold_ids(groups, 10, "random", seed=3))
    assert (pd.Series(folds).groupby(groups).nunique() > 1).all()  # stations are split


def _synthetic_table(n_points: int = 12) -> pd.DataFrame:
    """A station-day table with every feature; the target depends on three of them."""
    days = pd.date_range("2017-01-01", "2018-12-31", freq="4D")
    rng = np.random.default_rng(0)
    rows = []
    for p in range(n_points):
        for depth in (10, 20):
            x = rng.random((days.size, len(FEATURES))).astype(np.float32)
            frame = pd.DataFrame(x, columns=list(FEATURES))
            frame["time"] = days
            frame["depth_cm"] = depth
            frame["stations"] = f"P{p:02d}"
            frame["lat"], frame["lon"] = 40 + p * 0.1, 114 + p * 0.1
            signal = 0.2 + 0.2 * frame.swvl2 + 0.05 * frame.lai - 0.03 * frame.t2m
            frame[TARGET] = signal + rng.normal(0, 0.01, days.size)
            # The in-situ series before matching: the target with another mean and spread.
            frame["sm"] = 0.05 + 0.8 * frame[TARGET] + 0.01 * p
            frame["reference"] = 0.2 + 0.2 * frame.swvl2 + rng.normal(0, 0.05, days.size)
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def _config(tmp_path, **sections):
    base = {
        "device": "cpu",
        "layers": [10, 20],
        "forest": {"n_estimators": 8, "max_features": 5, "n_jobs": 1},
        "tune": {
            "max_features": [1, 5],
            "min_samples_leaf": [5, 20],
            "folds": 3,
            "n_estimators": 6,
        },
        "experiments": {"train_years": [2017], "test_years": [2018], "importance_repeats": 2},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return load_config(workdir=tmp_path, overrides=base, environ={})


def test_cv_grid_equals_scikit_learn_cross_val_score(tmp_path):
    cfg = _config(tmp_path)
    table = _synthetic_table(n_points=6)
    rows = table[table.depth_cm == 10]
    x, y = rows[list(FEATURES)].to_numpy(np.float32), rows[TARGET].to_numpy()
    folds = fold_ids(rows.stations.to_numpy(), 3, "station", seed=1)
    got = cv_grid(x, y, folds, cfg)
    for (mf, leaf), cell in got.groupby(["max_features", "min_samples_leaf"]):
        est = RandomForestRegressor(
            n_estimators=6,
            max_features=int(mf),
            min_samples_leaf=int(leaf),
            max_depth=64,
            random_state=cfg.forest.random_state,
            n_jobs=1,
        )
        ref = -cross_val_score(
            est, x, y, cv=PredefinedSplit(folds), scoring="neg_root_mean_squared_error"
        )
        np.testing.assert_allclose(cell.sort_values("fold").rmse, ref, rtol=1e-12)
    best = summarise(got).iloc[0]
    assert best.rmse == got.groupby(["max_features", "min_samples_leaf"]).rmse.mean().min()


def test_grid_wider_than_the_features_is_a_config_error(tmp_path):
    cfg = _config(tmp_path, tune={"max_features": [1, 99]})
    x = np.zeros((30, len(FEATURES)), np.float32)
    with pytest.raises(ConfigError, match=r"tune.max_features \[99\]"):
        cv_grid(x, np.zeros(30), np.arange(30) % 3, cfg)


def test_tune_stage_writes_tables_and_heatmaps(tmp_path):
    cfg = _config(tmp_path, tune={"groups": "both", "layers": [10]})
    (tmp_path / "work").mkdir()
    _synthetic_table().to_parquet(tmp_path / "work" / "station_days.parquet")
    out = tune(cfg, QUIET)
    assert {b["groups"] for b in out["best"]} == {"random", "station"}
    for mode in ("random", "station"):
        csv = pd.read_csv(tmp_path / "work" / "tune" / f"tune_{mode}.csv")
        assert len(csv) == 4 and set(csv.layer_cm) == {10}
        png = tmp_path / "work" / "tune" / f"tune_{mode}_010cm.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- importance


class _Linear:
    """A model that predicts 2·x0 + x2, to check the importance bookkeeping by hand."""

    def predict(self, x):
        return 2.0 * x[:, 0] + x[:, 2]


def test_permutation_importance_hand_worked():
    rng = np.random.default_rng(5)
    x = rng.random((200, 3))
    y = 2.0 * x[:, 0] + x[:, 2]
    got = {r["feature"]: r for r in permutation_importance(_Linear(), x, y, ["a", "b", "c"], 3, 9)}
    assert got["b"]["importance"] == 0.0 and got["b"]["baseline_rmse"] == 0.0
    # The same permutations, drawn independently: feature a is permuted first (3 draws).
    perm_rng = np.random.default_rng(9)
    expect_a = np.mean(
        [
            np.sqrt(np.mean((2 * (x[p, 0] - x[:, 0])) ** 2))
            for p in (perm_rng.permutation(200) for _ in range(3))
        ]
    )
    assert got["a"]["importance"] == pytest.approx(expect_a, rel=1e-12)
    assert got["a"]["importance"] > got["c"]["importance"] > 0


def test_permutation_importance_checks_names():
    with pytest.raises(ValueError, match="2 names"):
        permutation_importance(_Linear(), np.zeros((5, 3)), np.zeros(5), ["a", "b"])


# --------------------------------------------------------------------------- experiments


def test_experiment_without_test_rows_for_a_layer_says_so(tmp_path):
    cfg = _config(tmp_path)
    table = _synthetic_table()
    table = table[~((table.depth_cm == 20) & (table.time.dt.year == 2018))]
    result = run_experiment(table, cfg, "year")
    skipped = [r for r in result.metrics if "skipped" in r]
    assert skipped == [
        {
            "experiment": "year",
            "repeat": 0,
            "layer_cm": 20,
            "skipped": "no test rows for this split",
        }
    ]
    scored = [r for r in result.metrics if r.get("layer_cm") == 10]
    assert {r["source"] for r in scored} == {"model", "era5land"}
    # The target is a function of the predictors, ERA5-Land a noisy proxy: the model wins.
    model, era = (next(r for r in scored if r["source"] == s) for s in ("model", "era5land"))
    assert model["ubrmse"] < era["ubrmse"]


def test_validate_and_report_show_a_skipped_layer(tmp_path):
    cfg = _config(tmp_path)
    table = _synthetic_table()
    table = table[~((table.depth_cm == 20) & (table.time.dt.year == 2017))]
    (tmp_path / "work").mkdir()
    table.to_parquet(tmp_path / "work" / "station_days.parquet")
    validate(cfg, QUIET)
    val = tmp_path / "work" / "validation"
    imp = pd.read_csv(val / "importance.csv")
    top = imp[imp.layer_cm == 10].sort_values("importance").feature.iloc[-1]
    assert top == "swvl2"  # the strongest term of the synthetic target
    stations = pd.read_csv(val / "stations.csv")
    assert set(stations.source) == {"model", "era5land"}
    assert {"raw_bias", "raw_r2", "raw_ubrmse"} <= set(stations.columns)
    tc = pd.read_csv(val / "tc.csv")  # 12 points × 2 layers × 3 series; too few days
    assert len(tc) > 0 and set(tc.series) == {"model", "era5land", "obs_raw"}
    out = report(cfg, QUIET)
    page = (tmp_path / "report" / "index.html").read_text()
    assert "skipped: no training rows for this split" in page
    assert "Raw vs matched in-situ: what matching hides" in page
    assert "climatology at the test points" in page and "Triple collocation" in page
    assert "tc_map_year.png" in page
    assert "no product files yet" in page
    images = [s.split("'")[0] for s in page.split("<img src='")[1:]]
    assert images and out["path"].endswith("index.html")
    for name in images:
        assert (tmp_path / "report" / name).read_bytes()[:4] == b"\x89PNG"


def test_report_without_validation_is_a_clear_error(tmp_path):
    with pytest.raises(InputDataError, match="run `smci validate`"):
        report(_config(tmp_path), QUIET)


def test_raw_metrics_follow_from_the_raw_series_by_hand(tmp_path):
    cfg = _config(tmp_path, layers=[10])
    table = _synthetic_table()
    table["sm"] = table[TARGET] - 0.05  # raw = matched − 0.05 at every station
    result = run_experiment(table, cfg, "year")
    for row in result.metrics:
        # A constant offset adds exactly 0.05 to the bias and leaves ubRMSE, R alone.
        assert row["raw_bias"] == pytest.approx(row["bias"] + 0.05)
        assert row["raw_ubrmse"] == pytest.approx(row["ubrmse"])
        assert row["raw_r"] == pytest.approx(row["r"])
        assert row["raw_rmse"] == pytest.approx(np.hypot(row["raw_bias"], row["raw_ubrmse"]))
        assert row["raw_n"] == row["n"]
    pred = result.predictions[0]
    np.testing.assert_allclose(pred.obs - pred.obs_raw, 0.05)


def test_climatology_shows_the_model_inherits_era5_land(tmp_path):
    from smci_gpu.evaluate.experiments import climatology

    pred = pd.DataFrame(
        {
            "experiment": "year",
            "layer_cm": 10,
            "stations": ["A"] * 4 + ["B"] * 4,
            "obs_raw": [0.1, 0.2, 0.1, 0.2, 0.3, 0.3, 0.3, 0.3],
            "obs": 0.0,
            "era5land": [0.2, 0.4, 0.2, 0.4, 0.1, 0.1, 0.1, 0.1],
            "model": [0.25, 0.35, 0.25, 0.35, 0.1, 0.1, 0.1, 0.1],
        }
    )
    got = climatology(pred).iloc[0]
    # A: model mean 0.30, ERA5-Land 0.30, raw 0.15; B: 0.10, 0.10, 0.30 (std 0 all but A).
    assert got.points == 2
    assert got["mean model − ERA5-Land"] == pytest.approx(0.0)
    assert got["mean model − in-situ raw"] == pytest.approx(((0.30 - 0.15) + (0.10 - 0.30)) / 2)
    # std: A model 0.05, ERA5-Land 0.10, raw 0.05; B all 0.
    assert got["std model − ERA5-Land"] == pytest.approx(-0.025)
    assert got["std model − in-situ raw"] == pytest.approx(0.0)


def test_station_experiment_repeats_use_different_splits(tmp_path):
    cfg = _config(tmp_path, layers=[10])
    table = _synthetic_table()
    runs = [run_experiment(table, cfg, "station", repeat=k) for k in range(2)]
    tested = [set(r.predictions[0].stations) for r in runs]
    assert tested[0] != tested[1]
    for run, points in zip(runs, tested, strict=True):
        assert len(points) == 4  # a third of 12 points
        assert {m["repeat"] for m in run.metrics} == {run.predictions[0].repeat.iloc[0]}
