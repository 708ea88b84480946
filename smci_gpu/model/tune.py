"""`smci tune`: k-fold cross-validated grid search over max_features × min_samples_leaf.

The paper tuned with 10 random folds over station-days (max_features 1..25,
min_samples_leaf 5..30 by 5). Random folds put neighbouring days of one station in both
the training and the test fold, so the scores they give are optimistic and favour
settings that memorise stations; folds grouped by station (every row of a 1 km point in
one fold) measure what a map needs: skill where no station was seen. Both are offered and
the demo reports both.

Results per layer and fold mode: ``work/tune/tune_<mode>.csv`` (one row per grid cell:
mean and spread of the fold RMSEs), ``tune_<mode>_<layer>cm.png`` (heat-map) and
``tune.json`` (best cell per layer and mode).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from smci_gpu import backend, progress
from smci_gpu.config import Config
from smci_gpu.errors import ConfigError, InputDataError
from smci_gpu.io.atomic import atomic_path
from smci_gpu.model.forest import check_features
from smci_gpu.model.train import TARGET, load_table, make_estimator, resolve_backend
from smci_gpu.pipeline import stage

FOLD_MODES = ("random", "station")


def fold_ids(groups: np.ndarray, n_folds: int, mode: str, seed: int) -> np.ndarray:
    """Fold number of every row: shuffled rows (``random``) or whole groups (``station``).

    Station folds deal the groups, shuffled, to the fold that has the fewest rows so far,
    largest groups first, so folds are balanced in rows and no group is split.
    """
    rng = np.random.default_rng(seed)
    n = groups.size
    if mode == "random":
        folds = np.empty(n, dtype=np.int64)
        folds[rng.permutation(n)] = np.arange(n) % n_folds
        return folds
    if mode != "station":
        raise ConfigError(f"tune.groups must be one of {FOLD_MODES}, got {mode!r}")
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if names.size < n_folds:
        raise InputDataError(
            f"{names.size} station groups cannot fill {n_folds} station-grouped folds; "
            "lower tune.folds or use random folds"
        )
    order = rng.permutation(names.size)
    order = order[np.argsort(-counts[order], kind="stable")]
    load = np.zeros(n_folds, dtype=np.int64)
    fold_of_group = np.empty(names.size, dtype=np.int64)
    for g in order:
        k = int(np.argmin(load))
        fold_of_group[g] = k
        load[k] += counts[g]
    return fold_of_group[inverse]


def cv_grid(
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    cfg: Config,
    device: str = "cpu",
    progress=None,
) -> pd.DataFrame:
    """RMSE of every grid cell in every fold, fitted with ``cfg.forest.backend``.

    Returns
    -------
    DataFrame
        One row per (max_features, min_samples_leaf, fold) with ``rmse`` and ``seconds``.
    """
    n_features = x.shape[1]
    bad = [m for m in cfg.tune.max_features if m > n_features]
    if bad:
        raise ConfigError(
            f"tune.max_features {bad} exceed the {n_features} configured features; "
            f"use values from 1 to {n_features}"
        )
    rows = []
    for mf in cfg.tune.max_features:
        for leaf in cfg.tune.min_samples_leaf:
            for k in np.unique(folds):
                train, test = folds != k, folds == k
                t0 = time.perf_counter()
                est = make_estimator(
                    cfg,
                    device,
                    n_estimators=cfg.tune.n_estimators,
                    max_features=mf,
                    min_samples_leaf=leaf,
                )
                est.fit(x[train], y[train])
                pred = backend.to_host(est.predict(x[test]))
                rmse = float(np.sqrt(np.mean((pred - y[test]) ** 2)))
                rows.append(
                    {
                        "max_features": mf,
                        "min_samples_leaf": leaf,
                        "fold": int(k),
                        "rmse": rmse,
                        "seconds": time.perf_counter() - t0,
                    }
                )
                if progress is not None:
                    progress()
    return pd.DataFrame(rows)


def summarise(folds: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of the fold RMSEs per grid cell, best first."""
    g = folds.groupby(["max_features", "min_samples_leaf"]).rmse
    out = pd.DataFrame({"rmse": g.mean(), "rmse_std": g.std(ddof=0), "folds": g.size()})
    return out.reset_index().sort_values("rmse", kind="stable").reset_index(drop=True)


def plot_heatmap(cells: pd.DataFrame, title: str, path: Path) -> Path:
    """Heat-map of mean CV RMSE (rows min_samples_leaf, columns max_features), best boxed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = cells.pivot(index="min_samples_leaf", columns="max_features", values="rmse")
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * grid.shape[1], 1.4 + 0.45 * grid.shape[0]))
    im = ax.imshow(grid.values, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_xlabel("max_features")
    ax.set_ylabel("min_samples_leaf")
    best = np.unravel_index(np.nanargmin(grid.values), grid.shape)
    ax.add_patch(plt.Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, ec="red", lw=2))
    if grid.size <= 60:
        for (i, j), v in np.ndenumerate(grid.values):
            ax.text(j, i, f"{v:.4f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=ax, label="CV RMSE (m³/m³)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def tune_layer(
    table: pd.DataFrame, cfg: Config, depth: int, mode: str, device: str, progress=None
) -> pd.DataFrame:
    """Fold RMSEs of the grid for one layer and fold mode."""
    rows = table[table.depth_cm == depth]
    if cfg.tune.max_rows and len(rows) > cfg.tune.max_rows:
        rows = rows.sample(cfg.tune.max_rows, random_state=cfg.tune.seed)
    x = check_features(rows[cfg.features].to_numpy(np.float32), len(cfg.features), cfg.features)
    y = rows[TARGET].to_numpy(np.float64)
    folds = fold_ids(rows.stations.to_numpy(), cfg.tune.folds, mode, cfg.tune.seed)
    result = cv_grid(x, y, folds, cfg, device, progress)
    result.insert(0, "layer_cm", depth)
    result.insert(1, "groups", mode)
    return result


@stage("tune")
def tune(
    cfg: Config,
    console: Console,
    modes: tuple[str, ...] | None = None,
    layers: list[int] | None = None,
) -> dict[str, Any]:
    """Grid-search each tuned layer in each fold mode; write CSV, heat-maps and the best cells."""
    device = backend.resolve_device(cfg.device)
    trainer = resolve_backend(cfg.forest.backend, device)  # an absent trainer fails here
    table = load_table(cfg)
    modes = modes or cfg.tune.modes
    layers = layers or cfg.tune.layers or cfg.layers
    out = Path(cfg.path("work", "tune"))
    n_cells = len(cfg.tune.max_features) * len(cfg.tune.min_samples_leaf)
    per_layer = n_cells * cfg.tune.folds
    results, best = [], []
    total = per_layer * len(layers) * len(modes)
    with progress.track(console, "tune", total, "fits") as bar:
        for mode in modes:
            for depth in layers:
                if not (table.depth_cm == depth).any():
                    console.print(f"[yellow]warning:[/] no rows for layer {depth} cm: not tuned")
                    continue
                folds = tune_layer(table, cfg, depth, mode, device, bar.advance)
                results.append(folds)
                cells = summarise(folds)
                title = f"{depth} cm, {cfg.tune.folds} {mode} folds, {cfg.tune.n_estimators} trees"
                plot_heatmap(cells, title, out / f"tune_{mode}_{depth:03d}cm.png")
                best.append({"layer_cm": depth, "groups": mode, **cells.iloc[0].to_dict()})
    every = pd.concat(results, ignore_index=True) if results else pd.DataFrame()
    for mode, frame in every.groupby("groups") if not every.empty else ():
        cells = frame.groupby("layer_cm").apply(summarise, include_groups=False)
        with atomic_path(out / f"tune_{mode}.csv") as tmp:
            cells.reset_index(level=0).to_csv(tmp, index=False)
    summary = {
        "grid": {
            "max_features": cfg.tune.max_features,
            "min_samples_leaf": cfg.tune.min_samples_leaf,
        },
        "folds": cfg.tune.folds,
        "n_estimators": cfg.tune.n_estimators,
        "device": device,
        "backend": trainer,
        "best": best,
    }
    with atomic_path(out / "tune.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=float))
    _print(console, best, cfg)
    return {"path": str(out), "best": best}


def _print(console: Console, best: list[dict], cfg: Config) -> None:
    t = Table(title=f"tune: best cell per layer ({cfg.tune.folds}-fold CV RMSE)")
    for col in ("layer", "folds", "max_features", "min_samples_leaf", "RMSE", "± (folds)"):
        t.add_column(col, justify="right")
    for b in best:
        t.add_row(
            f"{b['layer_cm']} cm",
            b["groups"],
            str(int(b["max_features"])),
            str(int(b["min_samples_leaf"])),
            f"{b['rmse']:.4f}",
            f"{b['rmse_std']:.4f}",
        )
    console.print(t)
