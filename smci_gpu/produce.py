"""`smci produce`: daily tiles → features on the device → forests → CF NetCDF, resumable.

For each day: the day's ERA5-Land fields (already on the device) and daily LAI feed the
feature builder tile by tile over land pixels; each layer's :class:`PackedForest`
predicts; values are clipped to the documented bounds (and counted); the day is written to
a temporary name and renamed. A day whose file exists and verifies (shape and provenance
match this config and these models) is skipped, so a re-run resumes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from smci_gpu import __version__, backend, kernels, progress
from smci_gpu.config import Config
from smci_gpu.encoding import FILL, encode_counts, encode_scatter
from smci_gpu.errors import ConfigError, SmciError
from smci_gpu.features import LAI_SEARCH, FineBuffer, Predictors, land_mask, static_maps
from smci_gpu.io.era5land import NETCDF_LOCK
from smci_gpu.io.lock import output_lock
from smci_gpu.io.writer import (
    day_file_name,
    discovery_attributes,
    encode_int16,
    product_dataset,
    verify_day,
    write_day,
)
from smci_gpu.model.forest import NvForestPredictor
from smci_gpu.model.train import layer_dir, load_layer, stale_layers
from smci_gpu.pipeline import stage
from smci_gpu.variables import STATIC_FEATURES

log = logging.getLogger(__name__)


def provenance(cfg: Config, cards: dict[int, dict]) -> dict[str, Any]:
    """Attributes that identify what made a product file (checked on resume)."""
    return {
        "smci_gpu_version": __version__,
        "config_hash": cfg.hash(),
        "model_digests": ";".join(f"{d}:{cards[d]['model_digest']}" for d in sorted(cards)),
        "source": "random forests on QC'd in-situ soil moisture; ERA5-Land, LAI, land cover, "
        "DEM and soil predictors (SMCI1.0 method)",
        "inputs": "inputs/era5land, inputs/lai, inputs/static",
        **discovery_attributes(cfg.metadata),
    }


def _predict_into(out, where: tuple, forests: dict, x, clip, seconds=None) -> int:
    """Each layer's forest on rows ``x``, clipped into ``out[layer][where]`` (encoded to
    int16 counts when ``out`` is int16, fused with the scatter and the clip count by
    :func:`encode_scatter`, timed into ``seconds["encode"]``); the number of predictions
    that needed clipping."""
    xp = backend.array_module(x)
    clipped = 0
    for k, forest in enumerate(forests.values()):
        p = forest.predict(x)
        if out.dtype == np.int16 and len(where) == 2:  # the clip count is fused in
            t0 = time.perf_counter()
            clipped += encode_scatter(out[k], *where, p, clip[0], clip[1])
            if seconds is not None:
                seconds["encode"] = seconds.get("encode", 0.0) + time.perf_counter() - t0
            continue
        clipped += int(((p < clip[0]) | (p > clip[1])).sum())
        if out.dtype == np.int16:
            t0 = time.perf_counter()
            out[(k, *where)] = encode_counts(p, clip[0], clip[1])
            if seconds is not None:
                seconds["encode"] = seconds.get("encode", 0.0) + time.perf_counter() - t0
        else:
            out[(k, *where)] = xp.clip(p, clip[0], clip[1])
    return clipped


def predict_day(
    pred: Predictors,
    forests: dict,
    day,
    tile_size: int,
    clip=(0.0, 0.6),
    int16: bool = False,
    buffer: FineBuffer | None = None,
):
    """One day: ``(layers, ny, nx)`` soil moisture, stage timings, the number of
    predictions clipped to ``clip`` and of land pixels left empty because a predictor was
    not finite there (they are written as the fill value, never as data).

    The values are float32 m³ m⁻³ with NaN off land, or with ``int16`` the product's
    counts of 0.001 with −999 off land, encoded tile by tile on the device
    (:func:`encode_counts`), so a China day holds 0.65 GB instead of 1.3 GB. ``buffer``
    (one per run of days) keeps the fine stack's memory, static planes and land mask
    across days (:class:`FineBuffer`).
    """
    xp = backend.xp_for(pred.device)
    ny, nx = pred.grid.shape
    t = {"lai": 0.0, "assemble": 0.0, "infer": 0.0}
    buffer = buffer or FineBuffer()
    t0 = time.perf_counter()
    fine = pred.fine_stack(day, buffer)
    land = buffer.land_mask(pred)
    t["lai"] += time.perf_counter() - t0
    shape = (len(forests), ny, nx)
    out = xp.full(shape, FILL, np.int16) if int16 else xp.full(shape, np.nan, np.float32)
    clipped = nan_pixels = 0
    for r0, r1, c0, c1 in pred.grid.tiles(tile_size):
        rr, cc = xp.nonzero(land[r0:r1, c0:c1])
        if rr.size == 0:
            continue
        rows, cols = rr + r0, cc + c0
        t0 = time.perf_counter()
        x = pred.features(day, rows, cols, fine=fine)
        finite = kernels.rows_finite(x)
        if not bool(finite.all()):
            nan_pixels += int((~finite).sum())
            rows, cols, x = rows[finite], cols[finite], x[finite]
        t["assemble"] += time.perf_counter() - t0
        if rows.size == 0:
            continue
        t0 = time.perf_counter()
        encode0 = t.get("encode", 0.0)
        clipped += _predict_into(out, (rows, cols), forests, x, clip, t)
        t["infer"] += time.perf_counter() - t0 - (t.get("encode", 0.0) - encode0)
    return out, t, clipped, nan_pixels


#: Bytes of one process's interpreter, libraries and JIT code (measured: ~0.6 GB RSS).
RUNTIME_BYTES = 0.7 * 2**30


#: Bytes per tile pixel: the feature rows (float32), their indexes and predictions, with
#: room for the temporaries of the assembly and the forests.
def _tile_pixel_bytes(n_features: int, n_layers: int) -> int:
    return 2 * (4 * n_features + 3 * 8 + 4 * n_layers)


def memory_plan(
    shape: tuple[int, int],
    n_features: int,
    n_static: int,
    n_layers: int,
    memory_gb: float,
    tile_size: int,
    int16: bool = True,
) -> dict:
    """What a day of production holds, and the tile side that fits ``memory_gb``.

    Fixed per process, whatever the tile: static maps (float32), the day's fine stack (LAI
    + statics, float32), the LAI window (up to ``2 + 2 × (LAI_SEARCH + 1)`` composites
    held, and a stacked copy of those a day uses), two days' outputs (the one predicted
    and the one being written), one day's compressed chunks (at most its size) and the
    land mask. The rest of the budget sizes the tiles (``produce.tile_size`` at most).

    Returns
    -------
    dict
        ``fixed_bytes`` by item, ``tile_size``, ``budget_bytes``.

    Raises
    ------
    ConfigError
        The fixed needs alone exceed ``produce.memory_gb``.
    """
    px = shape[0] * shape[1]
    out_bytes = n_layers * px * (2 if int16 else 4)
    n_lai = 2 + 2 * (LAI_SEARCH + 1)
    fixed = {
        "runtime": RUNTIME_BYTES,
        "static maps": n_static * px * 4,
        "fine stack": (1 + n_static) * px * 4,
        "LAI window": 2 * n_lai * px * 4,
        "outputs (2 days + compressed chunks)": 3 * out_bytes,
        "land mask": px,
    }
    budget = memory_gb * 2**30
    spare = budget - sum(fixed.values())
    per_px = _tile_pixel_bytes(n_features, n_layers)
    if spare < 64 * 64 * per_px:
        need = (sum(fixed.values()) + 64 * 64 * per_px) / 2**30
        raise ConfigError(
            f"produce.memory_gb = {memory_gb:g} is too small for a {shape[0]} x {shape[1]} "
            f"grid: a day needs about {need:.1f} GiB (static maps, LAI window, outputs)"
        )
    side = int(np.sqrt(spare / per_px)) // 8 * 8
    return {
        "fixed_bytes": fixed,
        "tile_size": int(min(tile_size, max(64, side))),
        "budget_bytes": int(budget),
    }


def predict_day_coarse(
    pred: Predictors, forests: dict, day, factor: int, tile_size: int, clip=(0.0, 0.6)
):
    """The paper's 9 km version: 1 km predictors aggregated to ``factor`` blocks, then predicted.

    Continuous predictors are block means over the block's land pixels, land cover is the
    block's majority class; a block with no land pixel stays NaN. Returns
    ``(layers, ny/factor, nx/factor)``, stage timings and the clipped count.
    """
    xp = backend.xp_for(pred.device)
    ny, nx = pred.grid.shape
    coarse = pred.grid.coarsen(factor)
    t = {"lai": 0.0, "assemble": 0.0, "infer": 0.0}
    t0 = time.perf_counter()
    fine = pred.fine_stack(day)
    t["lai"] += time.perf_counter() - t0
    land = pred.land_mask()
    names = list(pred.config.features)
    lc_feature = names.index("landcover") if "landcover" in names else None
    lc_map = fine[pred.fine_vars.index("landcover")]
    out = xp.full((len(forests), *coarse.shape), np.nan, dtype=np.float32)
    clipped = nan_pixels = 0
    band = max(factor, tile_size // factor * factor)
    for r0 in range(0, ny, band):
        r1 = min(r0 + band, ny)
        t0 = time.perf_counter()
        rr, cc = xp.nonzero(land[r0:r1])
        stack = xp.full((len(names), r1 - r0, nx), np.nan, dtype=np.float32)
        if rr.size:
            stack[:, rr, cc] = pred.features(day, rr + r0, cc, fine=fine).T
        agg = kernels.block_mean(stack, factor, factor, min_valid=1)
        if lc_feature is not None:
            classes = xp.where(land[r0:r1], lc_map[r0:r1], 255).astype(np.uint8)
            majority = kernels.block_majority(classes, factor, factor, nodata=255)
            agg[lc_feature] = xp.where(majority == 255, np.nan, majority).astype(np.float32)
        valid = xp.all(xp.isfinite(agg), axis=0)
        has_land = kernels.block_mean(land[r0:r1].astype(np.float32), factor, factor) > 0
        nan_pixels += int((has_land & ~valid).sum())
        cy, cx = xp.nonzero(valid)
        t["assemble"] += time.perf_counter() - t0
        if cy.size == 0:
            continue
        x = xp.ascontiguousarray(agg[:, cy, cx].T)
        t0 = time.perf_counter()
        clipped += _predict_into(out, (cy + r0 // factor, cx), forests, x, clip)
        t["infer"] += time.perf_counter() - t0
    return out, t, clipped, nan_pixels


def load_forests(cfg: Config) -> tuple[dict, dict]:
    forests, cards = {}, {}
    for depth in cfg.layers:
        forests[depth], cards[depth] = load_layer(cfg, depth)
    return forests, cards


def produce(cfg: Config, console: Console, start=None, end=None) -> dict[str, Any]:
    """Produce every day of ``start..end`` (default: the config's period) that is not done.

    Days already complete and verified are skipped. With ``dask.n_workers`` or
    ``dask.scheduler_address`` set, the remaining days are split into contiguous chunks run
    on a Dask cluster (a local one, ``LocalCUDACluster`` on GPU, or an existing one by
    address): each task loads the models and inputs once for its chunk and writes its
    days' files; this process holds the output folder's lock throughout.
    """
    device = backend.resolve_device(cfg.device)
    start = pd.Timestamp(start or cfg.produce.start)
    end = pd.Timestamp(end or cfg.produce.end)
    # Fail early on missing or mismatched models. A run in this process keeps what it
    # loads here; on Dask the workers load their own, so this process only checks.
    distributed = cfg.dask.n_workers is not None or cfg.dask.scheduler_address is not None
    _, cards = load_forests(cfg) if distributed else _worker_forests(cfg, device)
    for message in stale_layers(cfg, cards):
        console.print(f"[yellow]warning:[/] {message}")
    out_dir = Path(cfg.path("product", cfg.produce.resolution))
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = cfg.product_grid()
    if cfg.produce.resolution == "9km":
        grid = grid.coarsen(cfg.grid.coarse_factor)
    check = {k: provenance(cfg, cards)[k] for k in ("config_hash", "model_digests")}
    shape = (1, len(cfg.layers), *grid.shape)
    days = pd.date_range(start, end, freq="D")
    res = cfg.produce.resolution
    _check_era5_period(cfg, start, end)
    with output_lock(out_dir, cfg.lock.stale_after_s, cfg.lock.heartbeat_s):
        if cfg.produce.format == "zarr":
            from smci_gpu.io.zarr_store import product_store

            store = product_store(cfg, grid, {**provenance(cfg, cards), **grid.to_attrs()})
            done = store.done()
            todo = [d for d in days if not done[store.index(d)]]
        else:
            todo = [
                d for d in days if not verify_day(out_dir / day_file_name(d, res), check, shape)
            ]
        run = _run_on_dask if distributed and todo else _run_here
        stats = run(cfg, console, device, todo)
    stats.update(days=len(days), skipped_complete=len(days) - len(todo), path=str(out_dir))
    stats["pixels"] = int(_land_pixels(cfg))
    return stats


def _check_era5_period(cfg: Config, start, end) -> None:
    """Days are read one at a time, so a day the files lack fails alone; a period that no
    ERA5-Land file touches at all is refused up front instead (the CLI then names the
    files' period)."""
    from smci_gpu.errors import InputDataError
    from smci_gpu.io.era5land import Era5LandArchive

    archive = Era5LandArchive.from_folder(cfg.path("inputs", "era5land"))
    if not archive.holds_any(start, end):
        raise InputDataError(
            f"variable 'swvl1' not found in the ERA5-Land files for {start.date()}.."
            f"{end.date()} ({len(archive.paths)} files searched)"
        )


def _land_pixels(cfg: Config) -> int:
    names = list(STATIC_FEATURES)
    static = static_maps(
        cfg.path("inputs", "static"), cfg.product_grid(), names, cfg.static.units, copy=False
    )
    return int(land_mask(static, names).sum())


def _merge(total: dict[str, Any], part: dict[str, Any]) -> None:
    total["written"] += part["written"]
    total["clipped"] += part["clipped"]
    total["nan_feature_pixels"] += part.get("nan_feature_pixels", 0)
    total["failed"].update(part["failed"])
    for k, v in part["seconds"].items():
        total["seconds"][k] = total["seconds"].get(k, 0.0) + v


def _empty_stats() -> dict[str, Any]:
    return {"written": 0, "failed": {}, "clipped": 0, "nan_feature_pixels": 0, "seconds": {}}


def _run_here(cfg: Config, console: Console, device: str, todo: list) -> dict[str, Any]:
    """All days in this process, with progress (a bar, or log lines in a batch job)."""
    stats = _empty_stats()
    if not todo:
        return stats
    with progress.track(console, f"produce on {device}", len(todo), "days") as bar:

        def advance(day_stats: dict[str, Any]) -> None:
            _merge(stats, day_stats)
            bar.update(stats["written"] + len(stats["failed"]))

        produce_chunk(cfg, device, todo, on_day=advance)
    return stats


#: Fewest days per Dask task where there are enough days: each task reads its inputs
#: (static maps, LAI, ERA5-Land) once, 2-8 s per task on the 2-core VM, so many one-day
#: tasks re-read the same files. On 4 demo days it made no measurable difference
#: (28.2 vs 27.9 s); it is meant for long periods, where it has not been measured.
MIN_DAYS_PER_TASK = 8


def _n_chunks(n_days: int, workers: int) -> int:
    """Tasks for ``n_days``: one per worker at least, up to four per worker (for balance
    and retries) while each keeps :data:`MIN_DAYS_PER_TASK` days."""
    return max(1, min(n_days, max(workers, min(4 * workers, n_days // MIN_DAYS_PER_TASK))))


def _chunks(days: list, n: int) -> list[list]:
    """``days`` in at most ``n`` contiguous, nearly equal runs."""
    n = max(1, min(n, len(days)))
    return [list(c) for c in np.array_split(np.array(days, dtype=object), n) if len(c)]


def _run_on_dask(cfg: Config, console: Console, device: str, todo: list) -> dict[str, Any]:
    """Chunks of days as Dask tasks; a chunk that raises is retried, then its days fail."""
    from dask.distributed import Client, as_completed

    if cfg.dask.scheduler_address:
        client, cluster = Client(cfg.dask.scheduler_address), None
    else:
        cluster = backend.local_cluster(device, cfg.dask.n_workers, cfg.dask.threads_per_worker)
        client = Client(cluster)
    stats = _empty_stats()
    try:
        workers = max(1, len(client.scheduler_info()["workers"]))
        chunks = _chunks(todo, _n_chunks(len(todo), workers))
        futures = {
            client.submit(
                produce_chunk, cfg, device, chunk, retries=cfg.produce.retries, pure=False
            ): chunk
            for chunk in chunks
        }
        with progress.track(console, f"produce on {workers} worker(s)", len(todo), "days") as bar:
            for future in as_completed(futures):
                chunk = futures[future]
                try:
                    _merge(stats, future.result())
                except Exception as exc:  # noqa: BLE001 - a lost worker, after retries
                    for day in chunk:
                        stats["failed"][f"{day:%Y-%m-%d}"] = f"worker task failed: {exc}"
                bar.update(stats["written"] + len(stats["failed"]))
    finally:
        client.close()
        if cluster is not None:
            with _quiet_nanny():
                cluster.close()
    return stats


@contextlib.contextmanager
def _quiet_nanny():
    """Hide the nannies' "still alive after 4 s, killing" at the end of a run (unless INFO
    is logged): the results are in by then, and a worker that imported Numba can take
    longer than that to exit on a busy machine."""
    nanny = logging.getLogger("distributed.nanny")
    level = nanny.level
    if not logging.getLogger().isEnabledFor(logging.INFO):
        nanny.setLevel(logging.ERROR)
    try:
        yield
    finally:
        nanny.setLevel(level)


#: Forests already loaded in this process (a Dask worker keeps them across its tasks).
_FORESTS: dict[tuple, tuple[dict, dict]] = {}


def _model_stamps(cfg: Config) -> tuple:
    """Size and modification time of every layer's card and forest file (None if absent)."""
    stamps = []
    for depth in cfg.layers:
        for name in ("card.json", "forest.npz"):
            path = layer_dir(cfg, depth) / name
            st = path.stat() if path.exists() else None
            stamps.append((depth, name, st and (st.st_size, st.st_mtime_ns)))
    return tuple(stamps)


def _worker_forests(cfg: Config, device: str) -> tuple[dict, dict]:
    """The layers' forests (checked, served as configured), loaded once per process and
    loaded again whenever a model file changes."""
    key = (
        str(Path(cfg.workdir).resolve()),
        cfg.hash(),
        device,
        cfg.produce.inference,
        _model_stamps(cfg),
    )
    if key not in _FORESTS:
        forests, cards = load_forests(cfg)
        for forest in forests.values():
            forest.check_names(cfg.features)
        if cfg.produce.inference == "nvforest":
            forests = {d: NvForestPredictor(f, device) for d, f in forests.items()}
        _FORESTS.clear()  # one configuration per process at a time
        _FORESTS[key] = (forests, cards)
    return _FORESTS[key]


def _share_cores_with_other_workers() -> None:
    """In a Dask worker, run Numba's parallel kernels on the worker's own threads only.

    Numba starts one thread per core in every process, so N local workers on N cores ran
    N x N threads (measured on 2 cores: a worker predicted 2 demo days in 9.5 s, one
    process 4 days in 5.9 s). The worker's ``nthreads`` is its share of the node's cores
    (``threads_per_worker``; dask-jobqueue's cores / processes).
    """
    try:
        from distributed import get_worker

        nthreads = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return  # not in a Dask worker: this process has the node to itself
    import numba

    numba.set_num_threads(max(1, min(nthreads, numba.config.NUMBA_NUM_THREADS)))


def produce_chunk(cfg: Config, device: str, days: list, on_day=None) -> dict[str, Any]:
    """Produce ``days`` (contiguous) with models loaded once; return the stats.

    Runs in this process or in a Dask worker. With ``produce.pipeline`` (default) three
    stages overlap on threads: a reader loads day d+1's inputs (ERA5-Land for that day,
    LAI composites it lacks; static maps once per process) while day d is predicted and
    encoded, and a writer writes day d−1: its chunks are compressed on
    ``produce.write_threads`` threads, then filed under the NetCDF lock (netCDF-C and HDF5
    are not thread-safe). NumPy, Numba's kernels, GDAL and the zlib compressors release the
    GIL for their long calls, so the stages share the cores. At most two days' outputs and one
    read-ahead are held (:func:`memory_plan`). A day that fails with an engine error is
    recorded and the others go on; ``on_day(stats_of_that_day)`` is called as each day
    finishes, in order.
    """
    from concurrent.futures import ThreadPoolExecutor

    _share_cores_with_other_workers()
    forests, cards = _worker_forests(cfg, device)
    out_dir = Path(cfg.path("product", cfg.produce.resolution))
    prov = provenance(cfg, cards)
    days = [pd.Timestamp(d) for d in days]
    stats = _empty_stats()
    if not days:
        return stats
    buffer = FineBuffer()  # this run's fine stack, static planes filled once

    def load(day: pd.Timestamp) -> Predictors:
        return Predictors.load(cfg, day, day, device=device, allow_missing_days=True)

    def finish(key: str, day_stats: dict[str, Any], write) -> None:
        if write is not None:
            try:
                day_stats["seconds"]["write"] = write.result()
            except SmciError as exc:
                day_stats.update(written=0, clipped=0)
                day_stats["failed"][key] = str(exc)
        _merge(stats, day_stats)
        if on_day is not None:
            on_day(day_stats)

    if not cfg.produce.pipeline:
        for day in days:
            pred = load(day)
            day_stats, job = _predict_one(cfg, device, pred, forests, prov, out_dir, day, buffer)
            done = None
            if job is not None:
                done = _Done(job())
            finish(f"{day:%Y-%m-%d}", day_stats, done)
        return stats
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="smci-reader") as reader,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="smci-writer") as writer,
    ):
        ahead = reader.submit(load, days[0])
        pending = None
        for i, day in enumerate(days):
            pred = ahead.result()
            if i + 1 < len(days):
                ahead = reader.submit(load, days[i + 1])
            day_stats, job = _predict_one(cfg, device, pred, forests, prov, out_dir, day, buffer)
            del pred
            if pending is not None:
                finish(*pending)
            pending = (f"{day:%Y-%m-%d}", day_stats, writer.submit(job) if job else None)
        if pending is not None:
            finish(*pending)
    return stats


class _Done:
    """A finished result in the shape of a future (the sequential path)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def result(self) -> float:
        return self.value


def _predict_one(cfg, device, pred, forests, prov, out_dir, day, buffer):
    """Predict one day; return its stats and the job that writes its file (or None)."""
    stats = _empty_stats()
    key = f"{day:%Y-%m-%d}"
    gap = pred.missing_days.get(key)
    if gap:
        stats["failed"][key] = (
            f"ERA5-Land lacks this day for {', '.join(gap)} in "
            f"{cfg.path('inputs', 'era5land')}; add the day's files and run again"
        )
        return stats, None
    clip = (cfg.produce.clip_min, cfg.produce.clip_max)
    grid, res = pred.grid, cfg.produce.resolution
    int16 = cfg.produce.dtype == "int16" and res == "1km"
    try:
        if res == "9km":
            factor = cfg.grid.coarse_factor
            grid = pred.grid.coarsen(factor)
            sm, t, clipped, nan_pixels = predict_day_coarse(
                pred, forests, day, factor, cfg.produce.tile_size, clip
            )
        else:
            plan = memory_plan(
                grid.shape,
                len(cfg.features),
                len(pred.static_vars),
                len(forests),
                cfg.produce.memory_gb,
                cfg.produce.tile_size,
                int16,
            )
            sm, t, clipped, nan_pixels = predict_day(
                pred, forests, day, plan["tile_size"], clip, int16=int16, buffer=buffer
            )
        t0 = time.perf_counter()
        sm = backend.to_host(sm)  # the writer thread gets host memory only (int16 on 1 km)
        t["to_host"] = time.perf_counter() - t0
    except SmciError as exc:
        stats["failed"][key] = str(exc)
        log.error("day %s failed: %s", day.date(), exc)
        return stats, None
    t.update(pred.seconds)
    attrs = {
        **prov,
        "date": key,
        "device": device,
        "clipped_values": clipped,
        "nan_feature_pixels": nan_pixels,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **grid.to_attrs(),
    }

    def write() -> float:
        t0 = time.perf_counter()
        if cfg.produce.format == "zarr":
            from smci_gpu.io.zarr_store import product_store

            # 1 km int16 days arrive as counts already (encoded per tile on the device).
            counts = sm if sm.dtype == np.int16 else encode_int16(sm)
            product_store(cfg, grid).write_day(day, counts)
            return time.perf_counter() - t0
        ds = product_dataset(sm, day, cfg.layers, grid, attrs, cfg.produce.dtype)
        if res == "9km":
            ds.attrs["title"] = "SMCI-style 9 km daily soil moisture (predicted at 9 km)"
        write_day(
            out_dir / day_file_name(day, res),
            ds,
            cfg.produce.dtype,
            compressor=cfg.produce.compressor,
            threads=cfg.produce.write_threads or None,
            lock=NETCDF_LOCK,  # held while the file is open: the reader opens ERA5-Land files
        )
        return time.perf_counter() - t0

    if nan_pixels:
        log.warning("day %s: %d land pixels without finite predictors left empty", key, nan_pixels)
    stats.update(written=1, clipped=clipped, nan_feature_pixels=nan_pixels, seconds=t)
    return stats, write


@stage("produce")
def produce_stage(cfg: Config, console: Console) -> dict[str, Any]:
    stats = produce(cfg, console)
    console.print(
        f"produce: {stats['written']} day(s) written, {stats['skipped_complete']} "
        f"already complete, {len(stats['failed'])} failed, {stats['pixels']:,} land "
        f"pixels, {stats['clipped']} values clipped, {stats['nan_feature_pixels']} land "
        f"pixels without finite predictors left empty → {stats['path']}"
    )
    for day, err in stats["failed"].items():
        console.print(f"[red]failed[/] {day}: {err}")
    if cfg.produce.layout == "smci1":
        from smci_gpu.layout import smci1_layout

        years = list(range(cfg.produce.start.year, cfg.produce.end.year + 1))
        done = smci1_layout(cfg, cfg.produce.resolution, years)
        console.print(f"layout smci1: {len(done['written'])} year-layer file(s) → {done['path']}")
    run_dir = Path(cfg.path("runs"))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "produce_last.json").write_text(json.dumps(stats, indent=2, default=str))
    return stats
