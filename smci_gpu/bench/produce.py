"""Production benchmark: seconds per day per stage on a trained world, and the full product.

Stages per day, as `smci produce` runs them: ``read`` (ERA5-Land, LAI composites and static
maps for the day), ``lai`` (daily LAI on the grid), ``assemble`` (upsampling fused with
feature assembly, all tiles), ``infer`` (all layers), ``write`` (int16 CF NetCDF, zlib).
Each stage's seconds per land pixel are scaled to China's 13.6 M land pixels at 30″ ×
7,670 days (2000–2020) for the extrapolation; inference at 1000 trees is scaled from the
measured 100-tree rate by the tree count (traversal cost is linear in trees).
"""

from __future__ import annotations

import os
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


# --------------------------------------------------------------------------- China size

#: Stages of a China day as `smci produce` times them, in pipeline order, by thread.
CHINA_STAGES = {
    "reader": ("read", "lai_read", "static"),
    "predictor": ("lai", "assemble", "infer", "encode", "to_host"),
    "writer": ("write",),
}
#: Time a thread waits, not works: the reader waiting for the NetCDF lock the writer holds.
#: Shown, but not counted in the host side or the projection.
IDLE_STAGES = ("read_wait",)
#: The paper's forests: 100 trees per layer (config default ``forest.n_estimators``).
PAPER_TREES = 100
#: Recorded PackedForest rates on one NVIDIA H200 (benchmarks/RESULTS.md, 2026-11-26,
#: 100 trees, one layer per row): 1 M random rows 20.8 M rows/s, tile order 45.5 M rows/s.
H200_ROWS_PER_S_100_TREES = (20.8e6, 45.5e6)
#: Recorded CPU production rate on the idle 2-core VM (benchmarks/RESULTS.md, produce
#: suite, size small: 1.31e5 land pixels/s for all 10 layers, 100 trees of depth ≤ 64,
#: the demo's forests). The China world's trees are shallower (depth ≤ 10), so scaling its
#: own per-tree rate to 100 trees is a lower bound; this rate is the realistic one.
CPU_PIXELS_PER_S_100_TREES_10_LAYERS = 1.31e5


def peak_rss_gib() -> float:
    """This process's peak resident set so far, GiB (``ru_maxrss``, KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _process_cpu_s() -> float:
    """User + system CPU seconds of this process so far, all threads."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _run_days(cfg, days: list, log=print) -> dict[str, Any]:
    """`smci produce`'s chunk runner on ``days``: wall seconds, per-day stage seconds."""
    from smci_gpu.produce import produce_chunk

    per_day: list[dict[str, float]] = []
    t0 = time.perf_counter()
    cpu0 = _process_cpu_s()

    def on_day(s: dict[str, Any]) -> None:
        # Called when a day's file is written: pipelined, after the next day is predicted.
        per_day.append(dict(s["seconds"]))
        done = ", ".join(f"{k} {v:.2f}" for k, v in s["seconds"].items() if v >= 0.005)
        log(f"day {len(per_day)}/{len(days)} written at {time.perf_counter() - t0:.0f} s ({done})")

    stats = produce_chunk(cfg, "cpu", days, on_day=on_day)
    wall = time.perf_counter() - t0
    if stats["failed"]:
        raise RuntimeError(f"China days failed: {stats['failed']}")
    return {
        "wall_s": wall,
        "cpu_s": _process_cpu_s() - cpu0,  # all threads, the whole run (as wall_s)
        "per_day": per_day,
        "peak_rss_gib": peak_rss_gib(),
    }


def stage_table(per_day: list[dict[str, float]]) -> dict[str, float]:
    """Median seconds per day of each stage (a stage a day did not run counts 0)."""
    names = [s for group in CHINA_STAGES.values() for s in group] + list(IDLE_STAGES)
    return {s: float(np.median([d.get(s, 0.0) for d in per_day])) for s in names}


def projection(
    stages: dict[str, float], trees: int, layers: int, land_pixels: int, n: int = 1
) -> dict[str, Any]:
    """Hours for the full product (:data:`PRODUCT_DAYS` days) from a China day's stages.

    Inference is scaled to :data:`PAPER_TREES` by the measured per-tree rate (traversal
    cost is linear in trees). ``cpu``: every stage as measured on this machine;
    ``cpu_recorded_rate``: inference at the recorded 2-core rate of deep forests
    (:data:`CPU_PIXELS_PER_S_100_TREES_10_LAYERS`), the rest as measured; ``gpu``:
    inference at the recorded H200 rates (:data:`H200_ROWS_PER_S_100_TREES`, the slower
    and the faster) instead, host stages as measured here. A pipelined day costs its
    slowest thread (reader, predictor, writer); a serial day the sum. ``n`` machines split
    the days (independent), if the file system keeps up.
    """
    host = {k: v for k, v in stages.items() if k != "infer" and k not in IDLE_STAGES}
    infer_cpu = stages["infer"] * PAPER_TREES / trees
    rows = land_pixels * layers
    out: dict[str, Any] = {"per_tree_pixel_layer_s": stages["infer"] / (trees * rows)}
    for label, infer in (
        ("cpu", infer_cpu),
        ("cpu_recorded_rate", land_pixels * layers / 10 / CPU_PIXELS_PER_S_100_TREES_10_LAYERS),
        ("gpu_h200_random", rows / H200_ROWS_PER_S_100_TREES[0]),
        ("gpu_h200_tile", rows / H200_ROWS_PER_S_100_TREES[1]),
    ):
        s = {**host, "infer": infer}
        threads = {t: sum(s[k] for k in group) for t, group in CHINA_STAGES.items()}
        bound = max(threads, key=threads.get)
        stage_bound = max(s, key=s.get)
        out[label] = {
            "infer_s_per_day": infer,
            "serial_s_per_day": sum(s.values()),
            "pipelined_s_per_day": threads[bound],
            "bounding_thread": bound,
            "bounding_stage": stage_bound,
            "hours_serial": sum(s.values()) * PRODUCT_DAYS / 3600 / n,
            "hours_pipelined": threads[bound] * PRODUCT_DAYS / 3600 / n,
        }
    return out


def run_china(workdir: Path, out_dir: Path, days: int | None = None, log=print) -> dict:
    """A China day, then a China month, through `smci produce`'s runner on this machine.

    Generates the China-size world in ``workdir`` first when it has none
    (:func:`smci_gpu.demo_china.generate_china`). Writes ``china.json`` and
    ``china.md`` into ``out_dir`` and returns the document.
    """
    import json
    import platform
    import shutil

    from smci_gpu.config import load_config
    from smci_gpu.produce import memory_plan

    workdir = Path(workdir)
    if not (workdir / "models" / "layer_010cm" / "card.json").exists():
        from smci_gpu.demo_china import generate_china

        log(f"no China-size world in {workdir}: generating one (minutes)")
        generate_china(workdir)
    cfg = load_config(workdir=workdir, overrides={"device": "cpu"})
    all_days = list(pd.date_range(cfg.produce.start, cfg.produce.end, freq="D"))
    all_days = all_days[: days or len(all_days)]
    card = json.loads((workdir / "models" / "layer_010cm" / "card.json").read_text())
    trees = int(card["forest"]["n_estimators"])
    product = Path(cfg.path("product", cfg.produce.resolution))
    runs = {}
    for label, chosen in (("day", all_days[:1]), ("month", all_days)):
        shutil.rmtree(product, ignore_errors=True)
        product.mkdir(parents=True)
        log(f"China {label}: {len(chosen)} day(s) from {chosen[0]:%Y-%m-%d}")
        runs[label] = _run_days(cfg, chosen, log)
        runs[label]["bytes_written"] = sum(p.stat().st_size for p in product.glob("*.nc"))
        runs[label]["days"] = len(chosen)
        out_dir.mkdir(parents=True, exist_ok=True)  # kept as it comes: a month takes long
        (out_dir / "china_runs.json").write_text(json.dumps(runs, indent=2, default=str))
    from smci_gpu.features import land_mask, static_maps
    from smci_gpu.variables import STATIC_FEATURES

    names = list(STATIC_FEATURES)
    static = static_maps(cfg.path("inputs", "static"), cfg.product_grid(), names, copy=False)
    land_bool = land_mask(static, names)
    land = int(land_bool.sum())
    month = runs["month"]
    stages = stage_table(month["per_day"][1:] or month["per_day"])  # day 1 holds the JIT
    log("a textured day through the same writer (realistic bytes)")
    textured = textured_write(cfg, land_bool, all_days[0], out_dir)
    grid = cfg.product_grid()
    plan = memory_plan(
        grid.shape,
        len(cfg.features),
        len(names),
        len(cfg.layers),
        cfg.produce.memory_gb,
        cfg.produce.tile_size,
    )
    doc = {
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "load": os.getloadavg()},
        "grid": list(grid.shape),
        "land_pixels": land,
        "layers": len(cfg.layers),
        "trees": trees,
        "memory_gb": cfg.produce.memory_gb,
        "memory_plan_gib": {k: v / 2**30 for k, v in plan["fixed_bytes"].items()},
        "tile_size": plan["tile_size"],
        "runs": runs,
        "stages_s_per_day": stages,
        "sum_of_stages_s_per_day": sum(v for k, v in stages.items() if k not in IDLE_STAGES),
        "wall_s_per_day": month["wall_s"] / month["days"],
        "process_cpu_s_per_day": month["cpu_s"] / month["days"],
        "pipeline": cfg.produce.pipeline,
        "host_s_per_day": sum(
            v for k, v in stages.items() if k != "infer" and k not in IDLE_STAGES
        ),
        "write_textured": textured,
        "projection_1": projection(stages, trees, len(cfg.layers), land),
        "projection_8": projection(stages, trees, len(cfg.layers), land, n=8),
        "projection_1_textured": projection(
            {**stages, "write": textured["wall_s"]}, trees, len(cfg.layers), land
        ),
    }
    doc["host_s_per_day_textured"] = doc["host_s_per_day"] - stages["write"] + textured["wall_s"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "china.json").write_text(json.dumps(doc, indent=2, default=str))
    (out_dir / "china.md").write_text(china_markdown(doc))
    return doc


def textured_counts(
    land: np.ndarray,
    layers: int,
    seed: int = 0,
    cells: tuple[np.ndarray, np.ndarray, tuple[int, int]] | None = None,
) -> np.ndarray:
    """``(layers, ny, nx)`` int16 counts with a realistic day's texture, fill off ``land``.

    A smooth large-scale field (0.12–0.42 m³/m³), a random texture constant over each 0.1°
    cell (ERA5-Land's cells; s.d. 0.03) and per-pixel noise of s.d. 2 counts: ~210 MB per
    10-layer China day at zlib 1 + shuffle, the size the issue measured for a real day,
    where the China world's shallow forests give maps of ~15 MB. ``cells`` = (cell row of
    each pixel row, cell column of each pixel column, cell grid shape); by default 12 × 12
    pixels a cell (0.1° at 30″). ``benchmarks/bench_storage.py`` passes the real land
    mask's nearest cells.
    """
    from smci_gpu.io.writer import FILL

    ny, nx = land.shape
    if cells is None:
        cells = (np.arange(ny) // 12, np.arange(nx) // 12, (-(-ny // 12), -(-nx // 12)))
    iy, ix, shape = cells
    rng = np.random.default_rng(seed)
    texture = rng.normal(0.0, 0.03, shape)
    y = np.linspace(0.0, 1.0, ny)[:, None]
    x = np.linspace(0.0, 1.0, nx)[None, :]
    field = 0.22 + 0.1 * np.sin(3.0 * np.pi * y) * np.cos(4.0 * np.pi * x) + 0.05 * x
    field = field + texture[iy][:, ix]
    out = np.empty((layers, ny, nx), np.int16)
    for k in range(layers):
        noise = rng.normal(0.0, 2.0, (ny, nx))
        counts = np.clip(np.round((field + 0.01 * k) * 1000.0 + noise), 0, 600)
        out[k] = np.where(land, counts, FILL)
    return out


def textured_write(cfg, land: np.ndarray, day, out_dir: Path) -> dict[str, Any]:
    """Write one textured day (:func:`textured_counts`) with produce's writer and settings
    into ``out_dir`` (then delete it): wall and process CPU seconds, bytes on disk."""
    from smci_gpu.io.chunks import default_threads
    from smci_gpu.io.writer import product_dataset, write_day

    counts = textured_counts(np.asarray(land, bool), len(cfg.layers))
    ds = product_dataset(counts, day, cfg.layers, cfg.product_grid(), {}, "int16")
    path = Path(out_dir) / "textured-day.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    w0, c0 = time.perf_counter(), time.process_time()
    write_day(
        path,
        ds,
        "int16",
        compressor=cfg.produce.compressor,
        threads=cfg.produce.write_threads or None,
    )
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    size = path.stat().st_size
    path.unlink()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "bytes": size,
        "compressor": cfg.produce.compressor,
        "threads": cfg.produce.write_threads or default_threads(),
    }


def china_markdown(doc: dict) -> str:
    """The China benchmark as markdown: stage table, runs, projection."""
    s = doc["stages_s_per_day"]
    lines = [
        f"China day: {doc['grid'][0]} x {doc['grid'][1]} cells, {doc['land_pixels']:,} land "
        f"pixels, {doc['layers']} layers, {doc['trees']} trees per layer; tile "
        f"{doc['tile_size']}, produce.memory_gb = {doc['memory_gb']:g}; "
        f"{doc['machine']['cpus']} CPUs, load average {doc['machine']['load'][0]:.1f} at the end.",
        "",
        f"| stage | thread | s per day (median of days 2..{doc['runs']['month']['days']}) |",
        "|---|---|---|",
    ]
    for thread, group in CHINA_STAGES.items():
        lines += [f"| {k} | {thread} | {s[k]:.2f} |" for k in group]
    lines += [f"| ({k}: idle, not summed) | reader | {s.get(k, 0.0):.2f} |" for k in IDLE_STAGES]
    lines += [
        f"| **sum of stages** | | **{doc['sum_of_stages_s_per_day']:.2f}** |",
        f"| **wall per day (the run's wall / days)** | | **{doc['wall_s_per_day']:.2f}** |",
        f"| host side (all but infer) | | {doc['host_s_per_day']:.2f} |",
        f"| process CPU s per day (the run's CPU / days, all threads) | | "
        f"{doc.get('process_cpu_s_per_day', float('nan')):.2f} |",
        f"| produce.pipeline | | {doc.get('pipeline', True)} |",
    ]
    if "write_textured" in doc:
        w = doc["write_textured"]
        lines += [
            f"| write of a textured day (realistic bytes: {w['bytes'] / 1e6:.0f} MB; "
            f"{w['compressor']}, {w['threads']} threads; CPU {w['cpu_s']:.2f} s) | writer | "
            f"{w['wall_s']:.2f} |",
            f"| **host side with the textured day's write** | | "
            f"**{doc['host_s_per_day_textured']:.2f}** |",
        ]
    lines += [
        "",
        "| run | days | wall s | peak RSS GiB | bytes written |",
        "|---|---|---|---|---|",
    ]
    for label, r in doc["runs"].items():
        lines.append(
            f"| {label} | {r['days']} | {r['wall_s']:.1f} | {r['peak_rss_gib']:.2f} | "
            f"{r['bytes_written']:,} |"
        )
    lines += [
        "",
        f"Full product ({PRODUCT_DAYS:,} days) at {PAPER_TREES} trees (inference scaled from "
        f"{doc['trees']} trees by the measured per-tree rate; GPU rows use the H200 rates "
        "recorded in RESULTS.md, host stages as measured here):",
        "",
        "| machines | inference on | s per day serial | s per day pipelined | hours "
        "(pipelined) | bounding thread / stage |",
        "|---|---|---|---|---|---|",
    ]
    for n, key in ((1, "projection_1"), (8, "projection_8")):
        for label, p in doc[key].items():
            if not isinstance(p, dict):
                continue
            lines.append(
                f"| {n} | {label} | {p['serial_s_per_day']:.1f} | "
                f"{p['pipelined_s_per_day']:.1f} | {p['hours_pipelined']:.1f} | "
                f"{p['bounding_thread']} / {p['bounding_stage']} |"
            )
    return "\n".join(lines) + "\n"
