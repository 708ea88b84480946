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
from smci_gpu.errors import InputDataError, ModelError
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


def make_estimator(cfg: Config, device: str, n_estimators: int | None = None, **overrides):
    """A scikit-learn (CPU) or cuML (GPU) forest with the config's parameters."""
    f = cfg.forest
    params = dict(
        n_estimators=n_estimators or f.n_estimators,
        max_features=f.max_features,
        min_samples_leaf=f.min_samples_leaf,
        max_depth=f.max_depth,
        bootstrap=f.bootstrap,
        random_state=f.random_state,
    )
    params.update(overrides)
    cls = backend.forest_regressor_class(device)
    if device == "gpu":
        params["n_bins"] = f.n_bins
        return cls(**params)
    return cls(n_jobs=f.n_jobs, **params)


def fit_forest(
    x: np.ndarray,
    y: np.ndarray,
    cfg: Config,
    device: str = "cpu",
    names: list[str] | None = None,
    **overrides,
) -> PackedForest:
    """Fit one forest and return it packed (NaN predictors are refused, as cuML does)."""
    x = check_features(np.asarray(x), x.shape[1], names)
    if not np.isfinite(y).all():
        raise ValueError("the target holds NaN or infinite values")
    est = make_estimator(cfg, device, **overrides)
    est.fit(x, y.astype(np.float32 if device == "gpu" else np.float64))
    pack = PackedForest.from_cuml if device == "gpu" else PackedForest.from_sklearn
    return pack(est, names)


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
    t = Table(title=f"train: {cfg.forest.n_estimators} trees per layer on {device}")
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
