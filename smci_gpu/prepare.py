"""`smci prepare`: stations → QC → refill → daily → cell averages → matching → table.

Writes ``work/station_days.parquet`` (one row per 1 km cell, layer and day, with the raw
and matched soil moisture, the ERA5-Land reference and every predictor in the config's
order), ``work/qc_report.json`` (flag counts in all, per station and depth, drops, stations
dropped and why), ``work/qc_per_series.csv`` (the per station-depth counts) and
``work/qc_flags.parquet`` (every flagged hour that held a value, with its ISMN flags as
bits: :func:`smci_gpu.insitu.qc.from_bitmask` decodes them).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from smci_gpu import progress
from smci_gpu.backend import frame_module, resolve_device
from smci_gpu.config import Config
from smci_gpu.errors import DeviceError, GridError, InputDataError
from smci_gpu.features import Predictors
from smci_gpu.insitu import daily as D
from smci_gpu.insitu import qc_score
from smci_gpu.insitu.matching import match_frame
from smci_gpu.insitu.qc import FLAGS, flag, to_bitmask
from smci_gpu.io.atomic import atomic_path
from smci_gpu.io.stations import IN_SITU_COVARIATES, read_stations
from smci_gpu.pipeline import stage

log = logging.getLogger(__name__)
TABLE_NAME = "station_days.parquet"
QC_FLAGS_NAME = "qc_flags.parquet"  # flagged hours: station, depth, time, ISMN flag bits


def soil_temperature_layer(depth_cm: int) -> str:
    """ERA5-Land soil temperature layer that holds a depth (stl1 0–7, stl2 7–28, stl3 28–100)."""
    return "stl1" if depth_cm <= 7 else "stl2" if depth_cm <= 28 else "stl3"


def qc_series(
    hourly: pd.Series,
    soil_t_daily: pd.Series,
    cfg: Config,
    where: str,
    precipitation_daily: pd.Series | None = None,
    depth_cm: float | None = None,
    in_situ: pd.DataFrame | None = None,
    saturation: float | None = None,
):
    """QC, null-window removal and refill of one station-depth series → daily means.

    ``soil_t_daily`` (K) and ``precipitation_daily`` (m per day) are ERA5-Land at the
    station: the modelled soil temperature (D03) and precipitation (D05) of the QC; a
    day's precipitation is spread evenly over its hours. ``in_situ``: the station's own
    hourly ``soil_temperature`` / ``air_temperature`` (°C) / ``precipitation`` (mm/h),
    any of them, on ``hourly``'s times (D01/D02/D04). ``saturation``: the soil's
    saturation point at the station, m³/m³ (C03; None: not tested).
    """
    full = hourly.reindex(pd.date_range(hourly.index[0], hourly.index[-1], freq="h"))
    days = full.index.normalize()
    columns = {
        "sm": full,
        "model_soil_temperature": soil_t_daily.reindex(days).to_numpy() - 273.15,
    }
    if precipitation_daily is not None:
        columns["model_precipitation"] = precipitation_daily.reindex(days).to_numpy() * 1000 / 24
    for name in IN_SITU_COVARIATES:
        if in_situ is not None and name in in_situ and in_situ[name].notna().any():
            columns[name] = in_situ[name].reindex(full.index).to_numpy(dtype=np.float64)
    frame = pd.DataFrame(columns, index=full.index)
    flags = flag(frame, cfg.qc, where=where, depth_cm=depth_cm, saturation=saturation)
    clean = full.mask(flags["any"].to_numpy())
    nulls = D.null_windows(clean, cfg.qc.null_window_days, cfg.qc.min_valid_fraction_null_window)
    clean = clean.mask(nulls)
    daily = D.daily_mean(D.refill(clean, cfg.qc.gap_fill_days), cfg.qc.daily_min_hours)
    counts = {k: int(flags[k].sum()) for k in FLAGS}
    counts["null_window"] = int((nulls & full.notna().to_numpy()).sum())
    return daily, counts, flags


def match_cells(cells: pd.DataFrame, device: str, method: str = "mean_std") -> np.ndarray:
    """In-situ ``sm`` of each (cell, layer) matched to its ``reference`` by ``method``
    (``matching.method``; mean and std: pandas on the CPU, cuDF on the GPU)."""
    frame = cells[["row", "col", "depth_cm", "sm", "reference"]]
    if device == "gpu":
        try:
            frame = frame_module("gpu").from_pandas(frame)
        except DeviceError as exc:  # a GPU without RAPIDS: the table is small, use pandas
            log.info("matching on the CPU: %s", exc)
    matched = match_frame(frame, ["row", "col", "depth_cm"], method)
    if hasattr(matched, "to_pandas"):  # cuDF
        matched = matched.to_pandas()
    return np.asarray(matched, dtype=np.float64)


def _fault_manifest(cfg: Config) -> pd.DataFrame | None:
    """The twin world's injected-fault manifest, when the working folder has one."""
    path = cfg.path("truth", "faults.csv")
    return qc_score.read_manifest(path) if path.exists() else None


def _saturation_at(cfg: Config, pred, rows, cols, ids) -> dict[str, float]:
    """C03's saturation point per station: the porosity map ``POR`` at its pixel (m³/m³),
    when ``qc.saturation_from_por`` is on and the pixel has a value."""
    if not cfg.qc.saturation_from_por or "por" not in pred.static_vars:
        return {}
    por = np.asarray(pred.static[pred.static_vars.index("por")])[rows, cols]
    return {sid: float(v) for sid, v in zip(ids, por, strict=True) if np.isfinite(v)}


def build_table(
    cfg: Config, console: Console | None = None, flag_sink: list | None = None
) -> tuple[pd.DataFrame, dict]:
    """The station-day table and the QC report (no files written).

    ``flag_sink``: when given, receives per series a frame of the flagged hours that
    held a value (``station_id, depth_cm, time, qc_flags`` with the bits of
    :data:`smci_gpu.insitu.qc.BITS`).
    """
    grid = cfg.product_grid()
    obs, drops = read_stations(
        cfg.path("inputs", "stations"),
        cfg.layers,
        cfg.qc.depth_tolerance_cm,
        timezone=cfg.stations.timezone,
    )
    sites = obs.groupby("station_id")[["lat", "lon"]].first()
    inside = grid.contains(sites.lat.values, sites.lon.values)
    if not inside.any():
        raise GridError(f"no station lies inside the region {cfg.region.model_dump()}")
    outside = sites.index[~inside].tolist()
    if outside:
        log.warning("dropping %d station(s) outside the grid: %s", len(outside), outside[:10])
    drops["stations_outside_grid"] = len(outside)
    dropped = [{"station_id": sid, "reason": "outside the region's grid"} for sid in outside]
    sites = sites[inside]
    sites["row"], sites["col"] = grid.row_col(
        sites.lat.values, sites.lon.values, names=list(sites.index)
    )
    obs = obs[obs.station_id.isin(sites.index)]
    start, end = obs.time.min().normalize(), obs.time.max().normalize()
    pred = Predictors.load(cfg, start, end, device="cpu")
    rows, cols = sites.row.to_numpy(), sites.col.to_numpy()
    at_sites = {
        v: pd.DataFrame(pred.reference(v, rows, cols), index=pred.days, columns=sites.index)
        for v in ("stl1", "stl2", "stl3", "tp")
        if v in pred.era_vars
    }
    saturation = _saturation_at(cfg, pred, rows, cols, sites.index)
    daily_parts, qc_counts = [], {k: 0 for k in (*FLAGS, "null_window")}
    manifest = _fault_manifest(cfg)
    scores, per_series = [], []
    series = obs.groupby(["station_id", "depth_cm"], sort=True)
    report_to = console or Console(quiet=True)
    steps = progress.iterate(report_to, series, "prepare: QC", series.ngroups, "series")
    for (sid, depth), g in steps:
        where = f"station {sid}, {depth} cm"
        layer = soil_temperature_layer(int(depth))
        if layer not in at_sites:
            raise InputDataError(f"{where}: ERA5-Land {layer} is needed for the frozen-soil test")
        g = g.set_index("time")
        rain = at_sites["tp"][sid] if "tp" in at_sites else None
        day_sm, counts, flags = qc_series(
            g["sm"], at_sites[layer][sid], cfg, where, rain, float(depth), g, saturation.get(sid)
        )
        delivered = g["sm"].reindex(flags.index).notna().to_numpy()
        if manifest is not None:
            mine = manifest[(manifest.station_id == sid) & (manifest.depth_cm == depth)]
            scores.append(qc_score.score_series(flags, delivered, mine))
        if flag_sink is not None:
            bits = to_bitmask(flags)
            hit = (bits != 0) & delivered
            flag_sink.append(
                pd.DataFrame(
                    {
                        "station_id": sid,
                        "depth_cm": np.int16(depth),
                        "time": flags.index[hit],
                        "qc_flags": bits[hit],
                    }
                )
            )
        for k, v in counts.items():
            qc_counts[k] += v
        per_series.append(
            {
                "station_id": sid,
                "depth_cm": int(depth),
                "hours": int(len(g)),
                **counts,
                "days_kept": int(day_sm.notna().sum()),
            }
        )
        daily_parts.append(
            pd.DataFrame(
                {
                    "station_id": sid,
                    "depth_cm": int(depth),
                    "time": day_sm.index,
                    "sm": day_sm.to_numpy(),
                }
            )
        )
    daily = pd.concat(daily_parts, ignore_index=True).dropna(subset=["sm"])
    daily = daily.join(sites[["row", "col"]], on="station_id")
    cells = D.cell_average(daily)
    # Matching per cell and layer against the configured ERA5-Land layer.
    cell_keys = cells[["row", "col"]].drop_duplicates().reset_index(drop=True)
    ref_cache = {
        v: pred.reference(v, cell_keys.row, cell_keys.col)
        for v in set(cfg.matching.reference.values())
    }
    cell_pos = {
        (r, c): i for i, (r, c) in enumerate(zip(cell_keys.row, cell_keys.col, strict=True))
    }
    day_of = pred.days.get_indexer(pd.DatetimeIndex(cells.time))
    cell_of = np.array([cell_pos[(r, c)] for r, c in zip(cells.row, cells.col, strict=True)])
    names = cells.depth_cm.map(lambda d: cfg.matching.reference[int(d)]).to_numpy()
    reference = np.full(len(cells), np.nan)
    for name in np.unique(names):
        sel = names == name
        reference[sel] = ref_cache[name][day_of[sel], cell_of[sel]]
    cells = cells.assign(reference=reference)
    matched = match_cells(cells, resolve_device(cfg.device), cfg.matching.method)
    table = cells.assign(sm_matched=matched, reference_name=names)
    unmatched = table.sm_matched.isna()
    drops["unmatched_cell_days"] = int(unmatched.sum())
    table = table[~unmatched].reset_index(drop=True)
    # Predictors: the production builder sampled at the station cells, day by day.
    feats = np.empty((len(pred.days), len(cell_keys), len(cfg.features)), np.float32)
    for i, day in enumerate(pred.days):
        feats[i] = pred.features(day, cell_keys.row.to_numpy(), cell_keys.col.to_numpy())
    di = pred.days.get_indexer(pd.DatetimeIndex(table.time))
    ci = np.array([cell_pos[(r, c)] for r, c in zip(table.row, table.col, strict=True)])
    table[list(cfg.features)] = feats[di, ci]
    table["lat"], table["lon"] = grid.lat[table.row], grid.lon[table.col]
    table.attrs["method_options"] = cfg.method_options()  # kept in the Parquet file
    series = pd.DataFrame(per_series)
    kept = series.groupby("station_id").days_kept.sum()
    for sid in kept.index[kept == 0]:
        dropped.append({"station_id": sid, "reason": "no valid day left after QC"})
    report = {
        "qc_flag_hours": qc_counts,
        "per_series": per_series,
        "stations_dropped": dropped,
        "qc_vs_injected_faults": qc_score.summarise(scores) if manifest is not None else None,
        "drops": drops,
        "hours_read": int(len(obs)),
        "stations": int(len(sites)),
        "cells": int(len(cell_keys)),
        "rows_per_layer": {int(k): int(v) for k, v in table.groupby("depth_cm").size().items()},
        "period": [str(start.date()), str(end.date())],
        "qc_inputs": {
            "frozen_soil": "ERA5-Land soil temperature of the sensor's layer (D03)",
            "precipitation": "ERA5-Land tp (D05)"
            if "tp" in at_sites
            else "none: tp is not among the features, so no D05",
            "saturation_point": "porosity map POR at the station (C03)"
            if saturation
            else "none (C03 off; qc.saturation_from_por)",
        },
    }
    return table, report


@stage("prepare")
def prepare(cfg: Config, console: Console) -> dict[str, Any]:
    """Build and write the station-day table and QC report; print a summary."""
    out = Path(cfg.path("work"))
    path = out / TABLE_NAME
    flagged: list[pd.DataFrame] = []
    table, report = build_table(cfg, console, flag_sink=flagged)
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(out / QC_FLAGS_NAME) as tmp:
        pd.concat(flagged, ignore_index=True).to_parquet(tmp, index=False)
    with atomic_path(out / "qc_report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    with atomic_path(out / "qc_per_series.csv") as tmp:
        pd.DataFrame(report["per_series"]).to_csv(tmp, index=False)
    t = Table(title="prepare: station-day table")
    t.add_column("item")
    t.add_column("value", justify="right")
    t.add_row("stations / cells", f"{report['stations']} / {report['cells']}")
    t.add_row("hourly records read", f"{report['hours_read']:,}")
    for k, v in report["qc_inputs"].items():
        t.add_row(f"QC input: {k}", v)
    for k, v in report["qc_flag_hours"].items():
        if v:
            t.add_row(f"QC flagged hours {k}", f"{v:,}")
    for k, v in report["drops"].items():
        t.add_row(f"dropped: {k}", f"{v:,}")
    t.add_row("rows (cell × layer × day)", f"{len(table):,}")
    t.add_row("series (station × depth)", f"{len(report['per_series']):,} (work/qc_per_series.csv)")
    t.add_row("flagged hours, with flags", f"work/{QC_FLAGS_NAME}")
    for d in report["stations_dropped"]:
        t.add_row(f"station dropped: {d['station_id']}", d["reason"])
    console.print(t)
    if report["qc_vs_injected_faults"]:
        console.print(qc_score_table(report["qc_vs_injected_faults"]))
    return {"path": str(path), **report}


def qc_score_table(scores: dict[str, dict[str, float]]) -> Table:
    """Recall and precision of the QC per injected fault type (twin world only)."""
    t = Table(title="QC vs injected faults (hours)")
    for col in ("fault", "fault hours", "removed", "recall", "flagged", "precision"):
        t.add_column(col, justify="left" if col == "fault" else "right")
    for name, s in scores.items():
        t.add_row(
            name,
            f"{s['fault_hours']:,}",
            f"{s['removed']:,}",
            f"{s['recall']:.3f}",
            f"{s['flagged']:,}",
            f"{s['precision']:.3f}",
        )
    return t
