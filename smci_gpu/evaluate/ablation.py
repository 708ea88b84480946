"""`smci validate --ablation`: the method options measured against the twin world's truth.

For every combination of ``predictors.era5_upsampling`` (nearest, bilinear) and
``matching.method`` (mean_std, none, cdf) this module

1. derives that option's station-day table from ``work/station_days.parquet`` (the same
   QC'd cell-layer-days for every option): the target re-matched from the raw in-situ
   ``sm`` and its ``reference`` by the option's method, the predictors re-sampled by the
   one feature builder under the option's upsampling;
2. trains the forests, produces the configured produce period and runs the twin-world
   check (product and ERA5-Land against the hidden truth, detail measures);
3. runs the year-to-year experiment and scores the test rows against the matched target
   (the paper's numbers) and against the raw in-situ series;

all inside ``work/ablation/<option>/`` (``inputs`` and ``truth`` are links to the working
folder's, which are only read), so the main table, models and products are untouched.
Writes ``work/validation/ablation.csv`` (per option and layer) and ``ablation.md`` (means
over layers).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from smci_gpu.config import Config
from smci_gpu.errors import InputDataError
from smci_gpu.evaluate.metrics import all_metrics
from smci_gpu.io.atomic import atomic_path

UPSAMPLING = ("nearest", "bilinear")
MATCHING = ("mean_std", "none", "cdf")
KEYS = ["row", "col", "depth_cm"]
#: Columns of the markdown summary: (CSV column, heading).
SUMMARY = (
    ("truth_bias", "bias vs truth"),
    ("truth_rmse", "RMSE vs truth"),
    ("truth_ubrmse", "ubRMSE vs truth"),
    ("truth_r", "R vs truth"),
    ("truth_r2", "R² vs truth"),
    ("cell_std", "std in 0.1° cells"),
    ("jump_border", "|Δ| at cell borders"),
    ("jump_inside", "|Δ| inside cells"),
    ("matched_ubrmse", "stations matched: ubRMSE"),
    ("matched_r", "stations matched: R"),
    ("raw_bias", "stations raw: bias"),
    ("raw_rmse", "stations raw: RMSE"),
    ("raw_r2", "stations raw: R²"),
)


def option_name(upsampling: str, method: str) -> str:
    return f"{upsampling}+{method}"


def option_config(cfg: Config, upsampling: str, method: str, folder: Path) -> Config:
    """``cfg`` with the two options set and ``folder`` as its working folder."""
    data = cfg.model_dump()
    data.update(workdir=folder)
    data["predictors"] = {**data["predictors"], "era5_upsampling": upsampling}
    data["matching"] = {**data["matching"], "method": method}
    return Config.model_validate(data)


def scratch_folder(cfg: Config, name: str) -> Path:
    """``work/ablation/<name>`` with ``inputs`` and ``truth`` linked to the working folder's."""
    folder = Path(cfg.path("work", "ablation", name)).resolve()
    (folder / "work").mkdir(parents=True, exist_ok=True)
    for sub in ("inputs", "truth"):
        link, target = folder / sub, Path(cfg.path(sub)).resolve()
        if not link.is_symlink():
            os.symlink(target, link, target_is_directory=True)
    return folder


def resample_features(cfg: Config, table: pd.DataFrame) -> pd.DataFrame:
    """The predictor columns of ``table`` rebuilt by the feature builder under ``cfg``.

    Samples the builder at the table's cells on every day of its period, as ``smci
    prepare`` does; with the options ``table`` was prepared with, the columns come back
    unchanged.
    """
    from smci_gpu.features import Predictors

    times = pd.DatetimeIndex(table.time)
    pred = Predictors.load(cfg, times.min(), times.max())
    cells = table[["row", "col"]].drop_duplicates().reset_index(drop=True)
    rows, cols = cells.row.to_numpy(), cells.col.to_numpy()
    feats = np.stack([pred.features(day, rows, cols) for day in pred.days])
    cell_of = pd.MultiIndex.from_frame(cells).get_indexer(
        pd.MultiIndex.from_frame(table[["row", "col"]])
    )
    out = table.copy()
    out[list(cfg.features)] = feats[pred.days.get_indexer(times), cell_of]
    return out


def option_table(table: pd.DataFrame, cfg: Config, base: Config) -> pd.DataFrame:
    """``table`` (prepared under ``base``'s options) turned into ``cfg``'s options' table."""
    from smci_gpu.insitu.matching import match_frame
    from smci_gpu.model.train import TARGET

    out = table.copy()
    if cfg.matching.method != base.matching.method:
        out[TARGET] = match_frame(out, KEYS, cfg.matching.method).to_numpy()
    if cfg.predictors.era5_upsampling != base.predictors.era5_upsampling:
        out = resample_features(cfg, out)
    out = out[out[TARGET].notna()].reset_index(drop=True)
    out.attrs["method_options"] = cfg.method_options()
    return out


def station_scores(table: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Year-to-year experiment: per layer, the model against the matched target and
    against the raw in-situ series (``sm``) on the same test rows."""
    from smci_gpu.evaluate.experiments import run_experiment

    result = run_experiment(table, cfg, "year")
    if not result.predictions:
        return pd.DataFrame()
    pred = pd.concat(result.predictions, ignore_index=True)
    raw = table[["depth_cm", "stations", "time", "sm"]].rename(columns={"depth_cm": "layer_cm"})
    pred = pred.merge(raw, on=["layer_cm", "stations", "time"], how="left", validate="1:1")
    rows = []
    for depth, g in pred.groupby("layer_cm"):
        matched = all_metrics(g.obs.to_numpy(), g.model.to_numpy())
        rawm = all_metrics(g.sm.to_numpy(), g.model.to_numpy())
        rows.append(
            {
                "layer_cm": depth,
                "test_rows": len(g),
                **{f"matched_{k}": v for k, v in matched.items() if k != "n"},
                **{f"raw_{k}": v for k, v in rawm.items() if k != "n"},
            }
        )
    return pd.DataFrame(rows)


def truth_scores(cfg: Config) -> pd.DataFrame:
    """Twin-world check of the option's product, per layer (mean over produced days):
    the product's truth metrics and detail measures, and the truth's and ERA5-Land's
    detail measures for reference."""
    from smci_gpu.evaluate.experiments import twin_world_check

    twin = pd.DataFrame(twin_world_check(cfg))
    if twin.empty:
        return twin
    detail = ["cell_std", "jump_border", "jump_inside"]
    mean = twin.groupby(["layer_cm", "source"]).mean(numeric_only=True)
    model = mean.xs("model", level="source")
    out = model[["bias", "rmse", "ubrmse", "r", "r2"]].add_prefix("truth_")
    out[detail] = model[detail]
    for source in ("truth", "era5land"):
        out[[f"{source}_{d}" for d in detail]] = mean.xs(source, level="source")[detail].to_numpy()
    return out.reset_index()


def run_option(cfg: Config, table: pd.DataFrame, upsampling: str, method: str, console: Console):
    """Table, forests, product, truth and station scores of one combination."""
    from smci_gpu.model.train import train
    from smci_gpu.produce import produce

    name = option_name(upsampling, method)
    ocfg = option_config(cfg, upsampling, method, scratch_folder(cfg, name))
    otable = option_table(table, ocfg, cfg)
    with atomic_path(ocfg.path("work", "station_days.parquet")) as tmp:
        otable.to_parquet(tmp, index=False)
    quiet = Console(quiet=True)
    train(ocfg, quiet)
    produce(ocfg, quiet, ocfg.produce.start, ocfg.produce.end)
    scores = truth_scores(ocfg).merge(station_scores(otable, ocfg), on="layer_cm", how="outer")
    scores.insert(0, "matching", method)
    scores.insert(0, "upsampling", upsampling)
    console.print(f"ablation: {name} done ({len(otable):,} station-day rows)")
    return scores


def summary_markdown(frame: pd.DataFrame, cfg: Config) -> str:
    """One row per option (means over layers), then the truth's and ERA5-Land's detail."""
    mean = frame.groupby(["upsampling", "matching"], sort=False).mean(numeric_only=True)
    head = "| upsampling | matching | " + " | ".join(h for _, h in SUMMARY) + " |"
    lines = [head, "|" + "---|" * (len(SUMMARY) + 2)]
    for (u, m), row in mean.iterrows():
        lines.append(f"| {u} | {m} | " + " | ".join(f"{row[c]:.4f}" for c, _ in SUMMARY) + " |")
    first = mean.iloc[0]
    lines.append("")
    lines.append(
        f"Reference detail (means over layers): truth std in 0.1° cells "
        f"{first.truth_cell_std:.4f}, |Δ| at borders {first.truth_jump_border:.4f}, inside "
        f"{first.truth_jump_inside:.4f}; ERA5-Land (nearest cell) "
        f"{first.era5land_cell_std:.4f}, {first.era5land_jump_border:.4f}, "
        f"{first.era5land_jump_inside:.4f} (m³/m³)."
    )
    lines.append(
        f"Units m³/m³ except R and R². {cfg.forest.n_estimators} trees, max_features "
        f"{cfg.forest.max_features}; truth metrics over every land pixel of "
        f"{cfg.produce.start}..{cfg.produce.end}; station metrics on the year experiment's "
        f"test rows (test years {cfg.experiments.test_years})."
    )
    return "\n".join(lines) + "\n"


def ablation(cfg: Config, console: Console) -> dict[str, Any]:
    """Run every combination and write ``work/validation/ablation.{csv,md}``."""
    path = Path(cfg.path("work", "station_days.parquet"))
    if not path.exists():
        raise InputDataError(f"station-day table {path} does not exist (run `smci prepare`)")
    if not Path(cfg.path("truth")).is_dir():
        raise InputDataError(
            f"{cfg.path('truth')} does not exist: the ablation scores options against a twin "
            "world's truth (`smci demo`)"
        )
    table = pd.read_parquet(path)
    parts = [run_option(cfg, table, u, m, console) for u in UPSAMPLING for m in MATCHING]
    frame = pd.concat(parts, ignore_index=True)
    out = Path(cfg.path("work", "validation"))
    with atomic_path(out / "ablation.csv") as tmp:
        frame.to_csv(tmp, index=False)
    text = summary_markdown(frame, cfg)
    with atomic_path(out / "ablation.md") as tmp:
        tmp.write_text(text)
    _print(console, frame)
    return {"path": str(out / "ablation.csv"), "options": len(parts)}


def _print(console: Console, frame: pd.DataFrame) -> None:
    mean = frame.groupby(["upsampling", "matching"], sort=False).mean(numeric_only=True)
    t = Table(title="ablation on the twin world (means over layers, m³/m³ except R²)")
    for col in ("option", "bias", "RMSE", "R²", "cell std", "jump border/inside", "raw RMSE"):
        t.add_column(col, justify="right")
    for (u, m), r in mean.iterrows():
        t.add_row(
            option_name(u, m),
            f"{r.truth_bias:+.4f}",
            f"{r.truth_rmse:.4f}",
            f"{r.truth_r2:.3f}",
            f"{r.cell_std:.4f}",
            f"{r.jump_border:.4f}/{r.jump_inside:.4f}",
            f"{r.raw_rmse:.4f}",
        )
    console.print(t)
