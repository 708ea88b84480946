"""`smci train`: one forest per layer from the station-day table → ``models/layer_XXcm/``.

Each layer folder holds ``forest.npz`` (:class:`PackedForest`) and ``card.json``: feature
names and order, parameters, rows, stations, period, library versions, data hash and
training time.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from smci_gpu import __version__, backend, progress
from smci_gpu.config import Config
from smci_gpu.errors import ConfigError, DeviceError, InputDataError, ModelError
from smci_gpu.io.atomic import atomic_path
from smci_gpu.model.forest import PackedForest, check_features
from smci_gpu.pipeline import stage

TARGET = "sm_matched"
#: What tables and cards written before the method options existed were made with.
PAPER_OPTIONS = {"era5_upsampling": "nearest", "matching_method": "mean_std"}


def options_mismatch(made_with: dict[str, str] | None, cfg: Config) -> str | None:
    """``"key 'a' (made) vs 'b' (config), ..."`` where ``made_with`` differs from the
    config's :meth:`Config.method_options`, else None (absent: the paper's options)."""
    made = {**PAPER_OPTIONS, **(made_with or {})}
    now = cfg.method_options()
    bad = [f"{k} {made[k]!r} (config: {now[k]!r})" for k in now if made.get(k) != now[k]]
    return ", ".join(bad) or None


def layer_dir(cfg: Config, depth: int) -> Path:
    return Path(cfg.path("models", f"layer_{depth:03d}cm"))


def load_table(cfg: Config) -> pd.DataFrame:
    path = cfg.path("work", "station_days.parquet")
    if not path.exists():
        raise InputDataError(f"station-day table {path} does not exist (run `smci prepare`)")
    table = pd.read_parquet(path)
    missing = [f for f in cfg.features if f not in table.columns]
    if missing:
        raise InputDataError(f"{path} lacks predictor column(s) {missing}; re-run `smci prepare`")
    stale = options_mismatch(table.attrs.get("method_options"), cfg)
    if stale:
        raise InputDataError(f"{path} was prepared with {stale}: re-run `smci prepare`")
    return table


BACKENDS = ("sklearn", "sklearnex", "cuml")


def resolve_backend(request: str, device: str) -> str:
    """Turn ``forest.backend`` into the trainer to use on ``device``.

    Parameters
    ----------
    request
        ``"auto"`` (cuML on the GPU, scikit-learn on the CPU), ``"sklearn"``,
        ``"sklearnex"`` (scikit-learn-intelex, CPU) or ``"cuml"`` (GPU).
    device
        The resolved device, ``"cpu"`` or ``"gpu"``. A CPU trainer on a GPU device is
        allowed: the forest is fitted on the CPU and packed like any other.

    Raises
    ------
    ConfigError
        Unknown backend.
    DeviceError
        ``"cuml"`` without a GPU, or ``"sklearnex"`` without scikit-learn-intelex
        installed (the message names what to install).
    """
    if request == "auto":
        return "cuml" if device == "gpu" else "sklearn"
    if request not in BACKENDS:
        raise ConfigError(f"forest.backend must be auto or one of {BACKENDS}, got {request!r}")
    if request == "cuml" and device != "gpu":
        raise DeviceError(
            "forest.backend 'cuml' trains on the GPU, but the device is the CPU; "
            "use --device gpu or forest.backend = 'sklearn' / 'sklearnex'"
        )
    if request == "sklearnex":
        _sklearnex_regressor()  # fail here, before any data is read
    return request


def _sklearnex_regressor() -> type:
    """scikit-learn-intelex's forest regressor, or a DeviceError naming the package."""
    try:
        from sklearnex.ensemble import RandomForestRegressor
    except ImportError as exc:
        raise DeviceError(
            "forest.backend 'sklearnex' needs scikit-learn-intelex: pip install "
            "'scikit-learn-intelex>=2026.2' (the [sklearnex] extra), "
            "or use forest.backend = 'sklearn'"
        ) from exc
    return RandomForestRegressor


def make_estimator(
    cfg: Config,
    device: str,
    n_estimators: int | None = None,
    backend_name: str | None = None,
    **overrides: Any,
):
    """An unfitted forest with the config's parameters, from the configured trainer.

    Parameters
    ----------
    cfg
        Config; ``cfg.forest`` gives the parameters and ``cfg.forest.backend`` the trainer.
    device
        Resolved device (``"cpu"`` / ``"gpu"``).
    n_estimators
        Trees (default ``cfg.forest.n_estimators``).
    backend_name
        Trainer to use instead of ``cfg.forest.backend`` (e.g. ``"sklearn"`` for a
        scikit-learn reference whatever the config says).
    **overrides
        Forest parameters that replace the config's (the grid search's cells).

    Notes
    -----
    The same parameter names go to every trainer; how each reads them:

    - scikit-learn: exact greedy splits over every distinct value of the drawn features;
      ``n_jobs`` threads over trees.
    - scikit-learn-intelex (oneDAL ``hist`` method, ``splitter_mode="best"``): features
      are first binned into at most ``max_bins = 256`` bins (``min_bin_size = 1``), and
      split thresholds are bin edges (so they differ from scikit-learn's on features
      with more than 256 distinct values). ``max_features`` (int: that many
      features per node; float: that fraction, at least 1), ``max_depth`` (None:
      unlimited) and ``bootstrap`` (draws of ``n_samples`` rows with replacement) mean
      what they mean in scikit-learn. ``min_samples_leaf`` does not: oneDAL counts a
      leaf's bootstrap draws, a row drawn twice counting twice, where scikit-learn
      counts distinct rows (about 0.63 of the draws), so at the same value its leaves
      hold fewer distinct rows and its trees have more nodes (1.55× on the demo at 20;
      measured in ``benchmarks/RESULTS.md``). ``random_state`` seeds oneDAL's
      own generator (through one draw of NumPy's), so a seed gives the same forest on
      every run but not scikit-learn's forest; ``n_jobs`` is the thread count. Fitted
      trees are handed over as scikit-learn ``Tree`` objects in ``estimators_``, which
      :meth:`PackedForest.from_sklearn` packs (predictions equal to the estimator's
      own float64 ``predict``; tested). Source: scikit-learn-intelex 2026.2
      ``sklearnex/ensemble/_forest.py`` and ``onedal/ensemble/forest.py`` defaults.
    - cuML: quantile histograms of ``forest.n_bins`` bins, float32 target.
    """
    f = cfg.forest
    name = backend_name or resolve_backend(f.backend, device)
    params = dict(
        n_estimators=n_estimators or f.n_estimators,
        max_features=f.max_features,
        min_samples_leaf=f.min_samples_leaf,
        max_depth=f.max_depth,
        bootstrap=f.bootstrap,
        random_state=f.random_state,
    )
    params.update(overrides)
    if name == "cuml":
        params["n_bins"] = f.n_bins
        return backend.forest_regressor_class("gpu")(**params)
    cls = _sklearnex_regressor() if name == "sklearnex" else backend.forest_regressor_class("cpu")
    return cls(n_jobs=f.n_jobs, **params)


def fit_forest(
    x: np.ndarray,
    y: np.ndarray,
    cfg: Config,
    device: str = "cpu",
    names: list[str] | None = None,
    **overrides,
) -> PackedForest:
    """Fit one forest with the configured trainer and return it packed.

    NaN predictors are refused (as cuML does; scikit-learn-intelex would quietly hand
    them to scikit-learn).
    """
    x = check_features(np.asarray(x), x.shape[1], names)
    if not np.isfinite(y).all():
        raise ValueError("the target holds NaN or infinite values")
    name = resolve_backend(cfg.forest.backend, device)
    est = make_estimator(cfg, device, backend_name=name, **overrides)
    est.fit(x, y.astype(np.float32 if name == "cuml" else np.float64))
    if name == "cuml":
        return PackedForest.from_cuml(est, names)
    packed = PackedForest.from_sklearn(est, names)
    # Its trees come as scikit-learn Trees: say in the file which library grew them.
    packed.meta["source"] = f"{name} {type(est).__name__}"
    return packed


def backend_versions(name: str) -> dict[str, str]:
    """Versions of the trainer's libraries, for the model card."""
    from importlib.metadata import PackageNotFoundError, version

    dists = {"sklearnex": "scikit-learn-intelex", "cuml": "cuml"}
    if name not in dists:
        return {}
    for dist in (dists[name], f"{dists[name]}-cu12", f"{dists[name]}-cu13"):
        try:
            return {name: version(dist)}
        except PackageNotFoundError:
            continue
    return {}


def data_hash(frame: pd.DataFrame) -> str:
    return hashlib.sha256(
        pd.util.hash_pandas_object(frame, index=False).values.tobytes()
    ).hexdigest()[:16]


def rows_hash(rows: pd.DataFrame, features: list[str]) -> str:
    """Hash of a layer's training rows as its card records them: predictors and target."""
    return data_hash(rows[[*features, TARGET]])


def train_layer(cfg: Config, table: pd.DataFrame, depth: int, device: str) -> dict[str, Any]:
    """Train, save and describe the forest of one layer."""
    rows = table[table.depth_cm == depth]
    if rows.empty:
        raise InputDataError(f"no training rows for layer {depth} cm")
    x = rows[cfg.features].to_numpy(np.float32)
    y = rows[TARGET].to_numpy(np.float64)
    t0 = time.perf_counter()
    trainer = resolve_backend(cfg.forest.backend, device)
    forest = fit_forest(x, y, cfg, device, names=list(cfg.features))
    seconds = time.perf_counter() - t0
    out = layer_dir(cfg, depth)
    forest.save(out / "forest.npz")
    import sklearn

    card = {
        "layer_cm": depth,
        "features": list(cfg.features),
        "target": TARGET,
        "forest": cfg.forest.model_dump(),
        "device": device,
        "backend": trainer,
        "rows": int(len(rows)),
        "stations": int(rows.stations.str.split(";").explode().nunique()),
        "period": [str(rows.time.min().date()), str(rows.time.max().date())],
        "train_seconds": round(seconds, 3),
        "model_digest": forest.digest(),
        "data_hash": rows_hash(rows, list(cfg.features)),
        "config_hash": cfg.hash(),
        "method_options": cfg.method_options(),
        "grid_resolution_arcsec": cfg.grid.resolution_arcsec,
        "versions": {
            "smci_gpu": __version__,
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            **backend_versions(trainer),
        },
        "n_nodes": forest.n_nodes,
    }
    with atomic_path(out / "card.json") as tmp:
        tmp.write_text(json.dumps(card, indent=2))
    return card


def load_layer(cfg: Config, depth: int) -> tuple[PackedForest, dict]:
    """The saved forest and card of a layer, checked against the config's features."""
    folder = layer_dir(cfg, depth)
    card_path = folder / "card.json"
    if not card_path.exists():
        raise ModelError(f"no model card {card_path} (run `smci train`)")
    card = json.loads(card_path.read_text())
    if card["features"] != list(cfg.features):
        raise ModelError(
            f"model card {card_path} was trained on features {card['features']}, "
            f"but the config lists {list(cfg.features)}"
        )
    trained_res = card.get("grid_resolution_arcsec")
    if trained_res is not None and trained_res != cfg.grid.resolution_arcsec:
        raise ModelError(
            f"model card {card_path} was trained on predictors at {trained_res}″, but the "
            f"config's grid is {cfg.grid.resolution_arcsec}″; retrain or fix grid.resolution_arcsec"
        )
    stale = options_mismatch(card.get("method_options"), cfg)
    if stale:
        raise ModelError(f"model card {card_path} was trained with {stale}: re-run `smci train`")
    forest = PackedForest.load(folder / "forest.npz")
    if forest.digest() != card["model_digest"]:
        raise ModelError(f"{folder / 'forest.npz'} does not match its card (digest differs)")
    return forest, card


def stale_layers(cfg: Config, cards: dict[int, dict]) -> list[str]:
    """Layers whose forest was fitted on other station-day rows than ``work/`` holds now.

    Each card keeps the hash of the rows it was trained on; a later ``smci prepare`` (new
    stations, changed QC) changes them, and the products of the old forests then no longer
    follow from the table beside them. Returns one message per such layer (none when the
    table is absent, as on a production node that only has the models).
    """
    path = Path(cfg.path("work", "station_days.parquet"))
    if not path.exists():
        return []
    table = pd.read_parquet(path)
    messages = []
    for depth, card in cards.items():
        rows = table[table.depth_cm == depth]
        has_columns = {*card["features"], TARGET} <= set(rows.columns)
        now = rows_hash(rows, card["features"]) if has_columns else "none"
        if card.get("data_hash", now) != now:
            messages.append(
                f"layer {depth} cm: its forest was trained on station-day rows with hash "
                f"{card['data_hash']}, but {path} now gives {now}: re-run `smci train`"
            )
    return messages


@stage("train")
def train(cfg: Config, console: Console, layers: list[int] | None = None) -> dict[str, Any]:
    """Train every configured layer (or ``layers``), with progress and a summary table."""
    device = backend.resolve_device(cfg.device)
    trainer = resolve_backend(cfg.forest.backend, device)
    table = load_table(cfg)
    cards, skipped = [], []
    todo = layers or cfg.layers
    with progress.track(console, "train", len(todo), "layers") as bar:
        for depth in todo:
            if not (table.depth_cm == depth).any():
                console.print(f"[yellow]warning:[/] no station rows for layer {depth} cm: skipped")
                skipped.append(depth)
            else:
                cards.append(train_layer(cfg, table, depth, device))
            bar.advance()
    t = Table(title=f"train: {cfg.forest.n_estimators} trees per layer, {trainer} on {device}")
    for col in ("layer", "rows", "stations", "nodes", "seconds"):
        t.add_column(col, justify="right")
    for c in cards:
        t.add_row(
            f"{c['layer_cm']} cm",
            f"{c['rows']:,}",
            str(c["stations"]),
            f"{c['n_nodes']:,}",
            f"{c['train_seconds']:.1f}",
        )
    console.print(t)
    return {
        "path": str(cfg.path("models")),
        "layers": [c["layer_cm"] for c in cards],
        "train_seconds": sum(c["train_seconds"] for c in cards),
        "skipped": skipped,
    }
