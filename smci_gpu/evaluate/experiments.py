"""`smci validate`: year-to-year and station-to-station experiments, and the twin-world check.

Per layer, the model and ERA5-Land's matched layer (the baseline: does the product beat
its own predictor?) are scored on the same test rows, twice: against the matched target
the model was trained on (the paper's numbers: the in-situ series rescaled to ERA5-Land's
mean and std at each station) and against the QC'd daily in-situ values before matching
(columns ``raw_*``). Matching hands ERA5-Land's mean and std at each station to the
target and so to the product; only the raw scores show the bias and variance error that
brings. A split that leaves a layer without training or test rows is reported and that
layer skipped. On the demo, the product is also compared with the hidden truth at every
land pixel of the produced days. Triple collocation (:mod:`smci_gpu.evaluate.tc`) of
model, ERA5-Land and raw in-situ runs on every test point.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from smci_gpu import backend, progress
from smci_gpu.config import Config
from smci_gpu.evaluate.importance import permutation_importance
from smci_gpu.evaluate.metrics import all_metrics
from smci_gpu.evaluate.tc import station_tc
from smci_gpu.io.atomic import atomic_path
from smci_gpu.model.train import TARGET, fit_forest, load_table
from smci_gpu.pipeline import stage

#: The station-day table's QC'd daily in-situ value before matching (m³/m³).
RAW = "sm"


def split_rows(table: pd.DataFrame, cfg: Config, experiment: str, repeat: int = 0):
    """Boolean train/test masks for an experiment."""
    if experiment == "year":
        years = table.time.dt.year
        return years.isin(cfg.experiments.train_years), years.isin(cfg.experiments.test_years)
    cells = np.sort(table.stations.unique())
    rng = np.random.default_rng(cfg.experiments.seed + repeat)
    n_train = int(round(cfg.experiments.station_train_fraction * cells.size))
    train_cells = set(rng.permutation(cells)[:n_train])
    train = table.stations.isin(train_cells)
    return train, ~train


@dataclass
class ExperimentResult:
    """What one experiment produced: metrics rows, test predictions, importance rows."""

    metrics: list[dict[str, Any]] = field(default_factory=list)
    predictions: list[pd.DataFrame] = field(default_factory=list)
    importance: list[dict[str, Any]] = field(default_factory=list)


def run_experiment(
    table: pd.DataFrame,
    cfg: Config,
    experiment: str,
    importance: bool = False,
    repeat: int = 0,
    on_layer: Callable[[], Any] | None = None,
) -> ExperimentResult:
    """Metrics per layer for the model and the ERA5-Land baseline on the test rows.

    ``repeat`` seeds a different station split (station experiment only); ``on_layer()``
    is called as each layer is done (progress).
    """
    device = backend.resolve_device(cfg.device)
    train, test = split_rows(table, cfg, experiment, repeat)
    result = ExperimentResult()
    for depth in progress.counted(cfg.layers, on_layer):
        layer = table.depth_cm == depth
        tr, te = table[layer & train], table[layer & test]
        if tr.empty or te.empty:
            result.metrics.append(
                {
                    "experiment": experiment,
                    "repeat": repeat,
                    "layer_cm": depth,
                    "skipped": f"no {'training' if tr.empty else 'test'} rows for this split",
                }
            )
            continue
        names = list(cfg.features)
        forest = fit_forest(
            tr[names].to_numpy(np.float32), tr[TARGET].to_numpy(), cfg, device, names=names
        )
        x_test = te[names].to_numpy(np.float32)
        pred = backend.to_host(forest.predict(x_test, device=device))
        obs, raw = te[TARGET].to_numpy(), te[RAW].to_numpy()
        for source, values in (("model", pred), ("era5land", te.reference.to_numpy())):
            result.metrics.append(
                {
                    "experiment": experiment,
                    "repeat": repeat,
                    "layer_cm": depth,
                    "source": source,
                    "train_rows": len(tr),
                    "test_rows": len(te),
                    **all_metrics(obs, values),
                    **_prefixed(all_metrics(raw, values), "raw_"),
                }
            )
        result.predictions.append(
            pd.DataFrame(
                {
                    "experiment": experiment,
                    "repeat": repeat,
                    "layer_cm": depth,
                    "stations": te.stations.to_numpy(),
                    "lat": te.lat.to_numpy(),
                    "lon": te.lon.to_numpy(),
                    "time": te.time.to_numpy(),
                    "obs": obs,
                    "obs_raw": raw,
                    "model": pred,
                    "era5land": te.reference.to_numpy(),
                }
            )
        )
        if importance:
            keep = _sample(len(te), cfg.experiments.importance_max_rows, cfg.experiments.seed)
            xd, yd = (backend.to_device(a[keep], device) for a in (x_test, obs))
            for row in permutation_importance(
                forest, xd, yd, names, cfg.experiments.importance_repeats, cfg.experiments.seed
            ):
                result.importance.append({"experiment": experiment, "layer_cm": depth, **row})
    return result


def _prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in metrics.items()}


def _sample(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of at most ``limit`` of ``n`` rows."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def station_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """Metrics of the model and ERA5-Land per experiment, layer and test point, against
    the matched target and (``raw_*``) the in-situ values before matching."""
    rows = []
    keys = ["experiment", "layer_cm", "stations"]
    for key, g in predictions.groupby(keys, sort=True):
        for source in ("model", "era5land"):
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "lat": g.lat.iloc[0],
                    "lon": g.lon.iloc[0],
                    "source": source,
                    **all_metrics(g.obs.to_numpy(), g[source].to_numpy()),
                    **_raw_metrics(g, source),
                }
            )
    return pd.DataFrame(rows)


def _raw_metrics(g: pd.DataFrame, source: str) -> dict[str, float]:
    """``raw_*`` metrics of a predictions group (empty for tables from before ``obs_raw``)."""
    if "obs_raw" not in g:
        return {}
    return _prefixed(all_metrics(g.obs_raw.to_numpy(), g[source].to_numpy()), "raw_")


def climatology(predictions: pd.DataFrame) -> pd.DataFrame:
    """What matching does to the climatology: per experiment and layer, the mean over
    test points of each series' mean and std (m³/m³) and of the model's mean and std
    minus ERA5-Land's and minus the raw in-situ series' (same test rows)."""
    cols = [c for c in ("obs_raw", "obs", "era5land", "model") if c in predictions]
    keys = ["experiment", "layer_cm", "stations"]
    g = predictions.groupby(keys, sort=True)[cols]
    mean, std = g.mean(), g.std(ddof=0)
    per = pd.concat([mean.add_prefix("mean "), std.add_prefix("std ")], axis=1)
    for stat, frame in (("mean", mean), ("std", std)):
        per[f"{stat} model − ERA5-Land"] = frame.model - frame.era5land
        if "obs_raw" in frame:
            per[f"{stat} model − in-situ raw"] = frame.model - frame.obs_raw
    out = per.groupby(["experiment", "layer_cm"]).mean()
    out.insert(0, "points", per.groupby(["experiment", "layer_cm"]).size())
    return out.reset_index()


def twin_world_check(cfg: Config) -> list[dict[str, Any]]:
    """Product and ERA5-Land (nearest cell, matched layer) against the demo's truth.

    One row per produced day, layer and source (``model``, ``era5land``): bias, MAE, RMSE,
    ubRMSE, R, R² against the truth at every pixel the product covers, and the detail
    measures of :mod:`smci_gpu.evaluate.detail` (``cell_std``, ``jump_border``,
    ``jump_inside``, ``jump_ratio``); a ``truth`` row per day and layer holds the truth's
    own detail measures.
    """
    import xarray as xr

    from smci_gpu.evaluate.detail import detail_measures
    from smci_gpu.features import Predictors

    truth_dir = Path(cfg.path("truth"))
    product = Path(cfg.path("product", "1km"))
    rows = []
    for path in sorted(product.glob("SMCI_1km_*.nc")):
        stamp = path.stem.split("_")[-1]
        truth_path = truth_dir / f"truth_{stamp}.nc"
        if not truth_path.exists():
            continue
        day = pd.Timestamp(stamp)
        with xr.open_dataset(path, engine="netcdf4") as ds:
            sm = ds.sm.values[0]
        with xr.open_dataset(truth_path, engine="netcdf4") as ds:
            truth = ds.sm.values[0]
        pred = Predictors.load(cfg, day, day)
        iy, ix = backend.to_host(pred.iy), backend.to_host(pred.ix)
        rr, cc = np.nonzero(np.ones(pred.grid.shape, bool))
        for k, depth in enumerate(cfg.layers):
            ref = pred.reference(cfg.matching.reference[depth], rr, cc)[0].reshape(pred.grid.shape)
            t = truth[depth // 10 - 1]
            ok = np.isfinite(sm[k])
            base = {"day": stamp, "layer_cm": depth}
            for source, values in (("model", sm[k]), ("era5land", ref)):
                rows.append(
                    {
                        **base,
                        "source": source,
                        **all_metrics(t[ok], values[ok]),
                        **detail_measures(np.where(ok, values, np.nan), iy, ix),
                    }
                )
            rows.append(
                {**base, "source": "truth", **detail_measures(np.where(ok, t, np.nan), iy, ix)}
            )
    return rows


@stage("validate")
def validate(cfg: Config, console: Console, experiments=("year", "station")) -> dict[str, Any]:
    """Run the experiments (and the twin-world check when truth exists).

    Writes to ``work/validation/``: ``experiments.csv`` (metrics per experiment, layer and
    source; skipped layers with the reason), ``stations.csv`` (per test point),
    ``predictions.parquet`` (every test row), ``importance.csv`` (permutation importance
    on the first experiment's test rows), ``climatology.csv`` (:func:`climatology`),
    ``tc.csv`` (triple collocation per test point, layer and series),
    ``twin_world.csv`` and ``validation.json``.
    """
    table = load_table(cfg)
    out = Path(cfg.path("work", "validation"))
    plan = [
        (i, e, k)
        for i, e in enumerate(experiments)
        for k in range(cfg.experiments.repeats if e == "station" else 1)
    ]
    steps = len(plan) * len(cfg.layers)
    with progress.track(console, "validate", steps, "layer runs") as bar:
        runs = [
            run_experiment(
                table, cfg, e, importance=(i == 0 and k == 0), repeat=k, on_layer=bar.advance
            )
            for i, e, k in plan
        ]
    results = [r for run in runs for r in run.metrics]
    frame = pd.DataFrame(results)
    predictions = [p for run in runs for p in run.predictions]
    predictions = pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame()
    importance = pd.DataFrame([r for run in runs for r in run.importance])
    per_station = station_metrics(predictions) if not predictions.empty else pd.DataFrame()
    clim = climatology(predictions) if not predictions.empty else pd.DataFrame()
    tc = station_tc(predictions, cfg.compare.tc_min_samples) if not predictions.empty else None
    for name, data in (
        ("experiments.csv", frame),
        ("stations.csv", per_station),
        ("importance.csv", importance),
        ("climatology.csv", clim),
        ("tc.csv", tc if tc is not None else pd.DataFrame()),
    ):
        with atomic_path(out / name) as tmp:
            data.to_csv(tmp, index=False)
    with atomic_path(out / "predictions.parquet") as tmp:
        predictions.to_parquet(tmp, index=False)
    twin = twin_world_check(cfg) if Path(cfg.path("truth")).exists() else []
    if twin:
        with atomic_path(out / "twin_world.csv") as tmp:
            pd.DataFrame(twin).to_csv(tmp, index=False)
    summary = {"experiments": results, "twin_world": twin}
    with atomic_path(out / "validation.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str))
    _print(console, frame, pd.DataFrame(twin))
    return {"path": str(out), "rows": len(results)}


def _print(console: Console, frame: pd.DataFrame, twin: pd.DataFrame) -> None:
    scored = frame.dropna(subset=["source"]) if "source" in frame else frame.iloc[0:0]
    for exp, g in scored.groupby("experiment"):
        t = Table(title=f"validate: {exp} experiment (test rows; model vs ERA5-Land matched layer)")
        cols = ("layer", "rows", "ubRMSE model", "ubRMSE ERA5L", "R model", "R ERA5L")
        # Against the in-situ values before matching: the bias matching hid (model).
        cols += ("raw: bias model", "raw: R² model")
        for col in cols:
            t.add_column(col, justify="right")
        for depth, h in g.groupby("layer_cm"):
            m, e = (h[h.source == s].mean(numeric_only=True) for s in ("model", "era5land"))
            t.add_row(
                f"{depth} cm",
                f"{m.test_rows:,.0f}",
                f"{m.ubrmse:.3f}",
                f"{e.ubrmse:.3f}",
                f"{m.r:.3f}",
                f"{e.r:.3f}",
                f"{m.get('raw_bias', float('nan')):+.3f}",
                f"{m.get('raw_r2', float('nan')):.3f}",
            )
        console.print(t)
    if "skipped" in frame:
        skipped = frame.dropna(subset=["skipped"]).drop_duplicates(["experiment", "layer_cm"])
        for _, r in skipped.iterrows():
            console.print(f"[yellow]skipped[/] {r.experiment} {r.layer_cm} cm: {r.skipped}")
    if not twin.empty:
        t = Table(title="twin world: product vs hidden truth at every land pixel")
        for col in ("layer", "ubRMSE product", "ubRMSE ERA5L", "R product", "R ERA5L"):
            t.add_column(col, justify="right")
        mean = twin.groupby(["layer_cm", "source"])[["ubrmse", "r"]].mean()
        for depth in sorted(twin.layer_cm.unique()):
            m, e = mean.loc[(depth, "model")], mean.loc[(depth, "era5land")]
            t.add_row(
                f"{depth} cm", f"{m.ubrmse:.3f}", f"{e.ubrmse:.3f}", f"{m.r:.3f}", f"{e.r:.3f}"
            )
        console.print(t)
