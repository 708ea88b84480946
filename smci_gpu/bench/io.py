"""I/O benchmark: the readers and the product writer on a world's real files.

Stages: ``read_era5land_month`` (hourly/daily NetCDF → canonical daily fields, one month),
``read_static`` (every static GeoTIFF onto the grid, without the
per-process cache production keeps), ``read_lai_month``
(the composites around one month) and ``write_day`` (one day's 10-layer product), the
engine's int16 + zlib file against xarray's default ``to_netcdf`` of float32 fields.
Bytes are the files' sizes on disk (read) or the float32 fields written (write), so
GB/s compare the two writers on the same data. All of it runs on the host: the GPU
path reads the same way and copies the result to the device once per period.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from smci_gpu.bench.harness import Record, time_call


def _files_bytes(paths) -> int:
    return int(sum(Path(p).stat().st_size for p in paths))


def run(
    size: str = "small",
    devices: tuple[str, ...] = ("cpu",),
    repeats: int = 3,
    workdir: Path | None = None,
) -> list[Record]:
    """One record per stage (host I/O; measured once whatever the devices)."""
    from smci_gpu.bench.produce import trained_world
    from smci_gpu.config import load_config
    from smci_gpu.io.era5land import Era5LandArchive
    from smci_gpu.io.rasters import lai_files, read_lai, read_static
    from smci_gpu.io.writer import product_dataset, write_day
    from smci_gpu.variables import ERA5LAND_FEATURES, STATIC_FEATURES

    cfg = load_config(workdir=trained_world(workdir), overrides={"device": "cpu"})
    grid = cfg.product_grid()
    start = pd.Timestamp(cfg.produce.start)
    month = pd.date_range(start, start + pd.offsets.MonthEnd(0), freq="D")
    era_vars = [f for f in cfg.features if f in ERA5LAND_FEATURES]
    archive = Era5LandArchive.from_folder(cfg.path("inputs", "era5land"))
    era_files = [p for p in archive.paths if f"{start:%Y%m}" in p.name] or archive.paths
    static_folder = cfg.path("inputs", "static")
    lai = lai_files(cfg.path("inputs", "lai"))
    reps = max(1, repeats)
    shape = {"grid": f"{grid.ny}x{grid.nx}", "days": len(month), "layers": len(cfg.layers)}
    records = []

    def add(stage: str, impl: str, fn, nbytes: int, items: int, item_name: str) -> None:
        t = time_call(fn, repeats=reps)
        records.append(Record("io", stage, impl, "cpu", shape, t, nbytes, items, item_name))

    add(
        "read_era5land_month",
        "smci",
        lambda: archive.load(month[0], month[-1], era_vars).load(),
        _files_bytes(era_files),
        len(month),
        "days",
    )

    add(
        "read_static",
        "smci",
        lambda: read_static(static_folder, grid, STATIC_FEATURES, cfg.static.units),
        _files_bytes(static_folder.glob("*.tif")),
        len(STATIC_FEATURES),
        "maps",
    )
    comp, dates = read_lai(cfg.path("inputs", "lai"), grid, month[0], month[-1])
    used = lai[lai.date.isin(pd.DatetimeIndex(dates).normalize())].path
    add(
        "read_lai_month",
        "smci",
        lambda: read_lai(cfg.path("inputs", "lai"), grid, month[0], month[-1]),
        _files_bytes(used) if len(used) else comp.nbytes,
        len(dates),
        "composites",
    )
    rng = np.random.default_rng(0)
    sm = rng.uniform(0.05, 0.45, (len(cfg.layers), grid.ny, grid.nx)).astype(np.float32)
    out = Path(tempfile.mkdtemp(prefix="smci-bench-io-"))
    ds = product_dataset(sm, start, cfg.layers, grid, {})
    add("write_day", "smci_int16_zlib", lambda: write_day(out / "a.nc", ds), sm.nbytes, 1, "days")
    records[-1].extra = {"file_bytes": (out / "a.nc").stat().st_size}
    plain = product_dataset(sm, start, cfg.layers, grid, {}, dtype="float32")
    add(
        "write_day",
        "xarray_to_netcdf_float32",
        lambda: plain.to_netcdf(out / "b.nc", engine="netcdf4"),
        sm.nbytes,
        1,
        "days",
    )
    records[-1].extra = {"file_bytes": (out / "b.nc").stat().st_size}
    return records
