"""Production benchmark: seconds per day per stage on a trained world, and the full product.

Stages per day, as `smci produce` runs them: ``read`` (ERA5-Land, LAI composites and static
maps for the day), ``lai`` (daily LAI on the grid), ``assemble`` (upsampling fused with
feature assembly, all tiles), ``infer`` (all layers), ``write`` (int16 CF NetCDF, zlib).
Each stage's seconds per land pixel are scaled to China's 13.6 M land pixels at 30″ ×
7,670 days (2000–2020) for the extrapolation; inference at 1000 trees is scaled from the
measured 100-tree rate by the tree count (traversal cost is linear in trees).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smci_gpu.bench.harness import Record, Timing

CHINA_LAND_PIXELS = 13.6e6
PRODUCT_DAYS = 7670
STAGES = ("read", "lai", "assemble", "infer", "write")


_TINY_WORLD: list[Path] = []  # built once per process, shared by the suites that need one


def trained_world(workdir: Path | None) -> Path:
    """``workdir`` when it holds a trained world, else the tiny world built in a temp folder."""
    if workdir is not None and (Path(workdir) / "models" / "layer_010cm" / "card.json").exists():
        return Path(workdir)
    if _TINY_WORLD and _TINY_WORLD[0].exists():
        return _TINY_WORLD[0]
    from rich.console import Console

    from smci_gpu import demo, pipeline
    from smci_gpu.config import load_config

    wd = Path(tempfile.mkdtemp(prefix="smci-bench-")) / "world"
    demo.generate(wd, demo.TINY)
    (wd / "smci.toml").write_text(demo.demo_config_toml(demo.TINY))
    pipeline._load_stages()
    cfg = load_config(workdir=wd, overrides={"device": "cpu"})
    for name in ("prepare", "train"):
        pipeline.STAGES[name](cfg, Console(quiet=True))
    _TINY_WORLD[:] = [wd]
    return wd


def time_days(workdir: Path, device: str, repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Per-stage seconds for every production day of the world, ``repeats`` times.

    As ``smci produce`` does, the inputs of the whole period are read once (``read`` is
    that time divided by the days) and each day is then predicted and written.
    """
    from smci_gpu import backend
    from smci_gpu.config import load_config
    from smci_gpu.features import Predictors
    from smci_gpu.io.writer import product_dataset, write_day
    from smci_gpu.produce import load_forests, predict_day

    cfg = load_config(workdir=workdir, overrides={"device": device})
    forests, _ = load_forests(cfg)
    days = pd.date_range(cfg.produce.start, cfg.produce.end, freq="D")
    seconds: dict[str, list[float]] = {s: [] for s in STAGES}
    shape: dict[str, Any] = {}
    out = Path(tempfile.mkdtemp(prefix="smci-bench-out-"))
    predict_day(Predictors.load(cfg, days[0], days[0], device=device), forests, days[0], 512)
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        pred = Predictors.load(cfg, days[0], days[-1], device=device)
        per_day = (time.perf_counter() - t0) / len(days)
        for day in days:
            seconds["read"].append(per_day)
            sm, t, _, _ = predict_day(pred, forests, day, cfg.produce.tile_size)
            if device == "gpu":
                backend.cupy_module().cuda.Device().synchronize()
            for k in ("lai", "assemble", "infer"):
                seconds[k].append(t[k])
            t0 = time.perf_counter()
            ds = product_dataset(backend.to_host(sm), day, cfg.layers, pred.grid, {})
            write_day(out / f"{day:%Y%m%d}.nc", ds)
            seconds["write"].append(time.perf_counter() - t0)
            shape = {
                "grid": f"{pred.grid.ny}x{pred.grid.nx}",
                "land_pixels": int(backend.to_host(pred.land_mask()).sum()),
                "layers": len(cfg.layers),
                "trees": cfg.forest.n_estimators,
            }
    return seconds, shape


def time_baseline(workdir: Path, repeats: int) -> tuple[list[float], dict[str, float]]:
    """Seconds per day of the plain xarray + scikit-learn day-tile, and how close its values
    are to the engine's for the same days (float32, before clipping, at land pixels)."""
    from smci_gpu import backend
    from smci_gpu.bench.baseline import baseline_day, fit_sklearn_forests
    from smci_gpu.config import load_config
    from smci_gpu.features import Predictors
    from smci_gpu.model.train import stale_layers
    from smci_gpu.produce import load_forests, predict_day

    cfg = load_config(workdir=workdir, overrides={"device": "cpu"})
    forests = fit_sklearn_forests(cfg)
    packed, cards = load_forests(cfg)
    for message in stale_layers(cfg, cards):  # then the two days use different forests
        warnings.warn(f"the value comparison is void: {message}", stacklevel=2)
    days = pd.date_range(cfg.produce.start, cfg.produce.end, freq="D")
    out = Path(tempfile.mkdtemp(prefix="smci-bench-baseline-"))
    seconds, reading, diffs = [], [], []
    for _ in range(max(1, repeats)):
        for day in days:
            t0 = time.perf_counter()
            _, read_s = baseline_day(cfg, day, forests, out / f"{day:%Y%m%d}.nc")
            seconds.append(time.perf_counter() - t0)
            reading.append(read_s)
    for day in days:
        engine, *_ = predict_day(Predictors.load(cfg, day, day), packed, day, 512)
        got, _ = baseline_day(cfg, day, forests, out / "check.nc")
        both = np.isfinite(got) & np.isfinite(backend.to_host(engine))
        diffs.append(np.abs(got[both] - backend.to_host(engine)[both]))
    d = np.concatenate(diffs)
    # The plain approach leaves coast cells (NaN nearest ERA5-Land cell) and LAI gaps
    # unfilled; elsewhere it computes the engine's numbers.
    return seconds, {
        "share_within_0.0005_of_smci": float(np.mean(d <= 5e-4)),
        "median_abs_diff_vs_smci": float(np.median(d)),
        "read_seconds": float(np.median(reading)),
    }


def extrapolate(per_pixel: dict[str, float], trees: int, n_devices: int = 1) -> dict[str, Any]:
    """Hours for the full product from seconds per land pixel per stage."""
    out: dict[str, Any] = {}
    for target in (100, 1000):
        stage_s = dict(per_pixel)
        stage_s["infer"] = per_pixel["infer"] * target / trees
        hours = sum(stage_s.values()) * CHINA_LAND_PIXELS * PRODUCT_DAYS / 3600.0
        out[f"hours_full_product_{target}_trees"] = hours / n_devices
        out[f"bottleneck_{target}_trees"] = max(stage_s, key=stage_s.get)
    return out


def run(
    size: str = "small",
    devices: tuple[str, ...] = ("cpu",),
    repeats: int = 3,
    workdir: Path | None = None,
) -> list[Record]:
    """One record per stage and device, plus the extrapolation in the ``total`` record."""
    world = trained_world(workdir)
    records = []
    for device in devices:
        seconds, shape = time_days(world, device, repeats)
        pixels = shape["land_pixels"]
        per_pixel = {k: float(np.median(v)) / pixels for k, v in seconds.items()}
        total = [sum(vals) for vals in zip(*seconds.values(), strict=True)]
        for stage, vals in [*seconds.items(), ("total", total)]:
            rec = Record("produce", stage, "smci", device, shape, Timing.of(vals), items=pixels)
            rec.item_name = "pixels"
            if stage == "total":
                rec.extra = extrapolate(per_pixel, shape["trees"])
            records.append(rec)
    if "cpu" in devices:
        seconds, agreement = time_baseline(world, repeats)
        base = Record("produce", "total", "xarray+sklearn", "cpu", shape, Timing.of(seconds))
        base.items, base.item_name, base.extra = shape["land_pixels"], "pixels", agreement
        for rec in records:
            if rec.stage == "total":
                rec.extra["speedup_vs_xarray_sklearn"] = base.seconds.median / rec.seconds.median
        records.append(base)
    return records
