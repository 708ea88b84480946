"""Products made from the daily 1 km files without recomputing them.

* :func:`aggregate` (`smci aggregate`): the 1 km daily files averaged to 9 km (0.1°,
  12 × 12 blocks, NaN-aware: a 9 km cell is the mean of its land pixels) →
  ``product/9km_from_1km/SMCI_9km_YYYYMMDD.nc`` in the same CF format.
* :func:`smci1_layout` (`smci produce --layout smci1`, or `smci layout`): the files users of
  the published SMCI1.0 dataset read, one per year and layer, ``SMCI_1km_{year}_{depth}cm.nc``
  with ``SMCI(time, lat, lon)`` in integer units of 0.001 m³/m³, fill −999, on the published
  grid (30″, 4320 × 7560 cells over 73–136 E, 18–54 N; 9 km: 0.1°, 360 × 630). A year file
  is rebuilt under a temporary name from every daily file present and renamed, so adding
  days is resumable and a killed run never leaves a half-written year file; a year file
  that already holds exactly the available days is left alone.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smci_gpu import __version__, kernels
from smci_gpu.config import Config
from smci_gpu.errors import GridError, InputDataError
from smci_gpu.grid import RegularGrid
from smci_gpu.io.atomic import atomic_path
from smci_gpu.io.writer import (
    CONVENTIONS,
    DEPTH_ATTRS,
    FILL,
    coverage_attributes,
    crs_attributes,
    day_file_name,
    encode_int16,
    history_line,
    product_dataset,
    write_day,
)

#: The published SMCI1.0 grids.
PUBLISHED = {
    "1km": RegularGrid(73.0, 18.0, 30.0 / 3600.0, 4320, 7560),
    "9km": RegularGrid(73.0, 18.0, 0.1, 360, 630),
}


def read_day(path: Path):
    """A daily product file: ``(layers, ny, nx)`` float m³/m³ (NaN = fill), grid, depths."""
    import xarray as xr

    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            sm = ds.sm.values[0].astype(np.float32)
            depths = [int(d) for d in ds.depth.values]
            attrs = dict(ds.attrs)
    except Exception as exc:  # noqa: BLE001 - a damaged file is named, not a traceback
        raise InputDataError(f"daily product {path} cannot be read: {exc}") from exc
    grid = RegularGrid(
        float(attrs["grid_west"]),
        float(attrs["grid_south"]),
        float(attrs["grid_res"]),
        int(attrs["grid_ny"]),
        int(attrs["grid_nx"]),
    )
    return sm, grid, depths, attrs


def _daily_files(folder: Path, resolution: str, start=None, end=None) -> list[Path]:
    files = sorted(folder.glob(f"SMCI_{resolution}_????????.nc"))
    if start is not None:
        files = [f for f in files if f.stem[-8:] >= pd.Timestamp(start).strftime("%Y%m%d")]
    if end is not None:
        files = [f for f in files if f.stem[-8:] <= pd.Timestamp(end).strftime("%Y%m%d")]
    if not files:
        raise InputDataError(f"no daily SMCI_{resolution}_YYYYMMDD.nc files in {folder}")
    return files


def aggregate(cfg: Config, start=None, end=None, factor: int | None = None) -> dict[str, Any]:
    """Average the 1 km daily files to 9 km; days already aggregated are kept."""
    factor = factor or cfg.grid.coarse_factor
    src = Path(cfg.path("product", "1km"))
    out = Path(cfg.path("product", "9km_from_1km"))
    written = skipped = 0
    for path in _daily_files(src, "1km", start, end):
        day = pd.Timestamp(path.stem[-8:])
        target = out / day_file_name(day, "9km")
        if target.exists() and target.stat().st_mtime >= path.stat().st_mtime:
            skipped += 1
            continue
        sm, grid, depths, attrs = read_day(path)
        coarse_grid = grid.coarsen(factor)
        coarse = kernels.block_mean(sm, factor, factor, min_valid=1)
        keep = {k: v for k, v in attrs.items() if k not in ("title", "Conventions", "created")}
        keep.update(
            {
                **coarse_grid.to_attrs(),
                "aggregated_from": path.name,
                "aggregation": f"{factor}x{factor} block mean of the 1 km land pixels",
                "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        action = f"smci aggregate: {factor}x{factor} block mean of {path.name}"
        ds = product_dataset(coarse, day, depths, coarse_grid, keep, action=action)
        ds.attrs["title"] = "SMCI-style 9 km daily soil moisture (aggregated from 1 km)"
        write_day(target, ds)
        written += 1
    return {"path": str(out), "written": written, "skipped": skipped}


def _place(grid: RegularGrid, published: RegularGrid) -> tuple[int, int]:
    """Row/column offset of ``grid`` inside the published grid (it must align)."""
    if abs(grid.res - published.res) > 1e-12:
        raise GridError(
            f"product resolution {grid.res}° differs from the published {published.res}°"
        )
    r = (grid.south - published.south) / published.res
    c = (grid.west - published.west) / published.res
    r0, c0 = round(r), round(c)
    aligned = abs(r - r0) < 1e-6 and abs(c - c0) < 1e-6
    inside = r0 >= 0 and c0 >= 0 and r0 + grid.ny <= published.ny and c0 + grid.nx <= published.nx
    if not (aligned and inside):
        raise GridError(
            f"the product grid (west {grid.west}, south {grid.south}, {grid.shape}) does not sit "
            f"on the published SMCI1.0 grid cells (73–136 E, 18–54 N)"
        )
    return r0, c0


def _year_file_is_current(path: Path, days: list[pd.Timestamp]) -> bool:
    import netCDF4

    try:
        with netCDF4.Dataset(path) as nc:
            have = netCDF4.num2date(
                nc["time"][:], nc["time"].units, only_use_cftime_datetimes=False
            )
            return [pd.Timestamp(str(t)) for t in have] == days
    except Exception:  # noqa: BLE001 - unreadable means "rebuild"
        return False


def smci1_layout(cfg: Config, resolution: str = "1km", years: list[int] | None = None) -> dict:
    """Write ``SMCI_{res}_{year}_{depth}cm.nc`` files from the daily product files."""
    import netCDF4

    src = Path(cfg.path("product", resolution))
    out = Path(cfg.path("product", f"smci1_{resolution}"))
    files = _daily_files(src, resolution)
    by_year: dict[int, list[Path]] = {}
    for f in files:
        by_year.setdefault(int(f.stem[-8:-4]), []).append(f)
    published = PUBLISHED[resolution]
    written, current = [], []
    for year in sorted(by_year):
        if years and year not in years:
            continue
        days = [pd.Timestamp(f.stem[-8:]) for f in by_year[year]]
        _, grid, depths, attrs = read_day(by_year[year][0])
        r0, c0 = _place(grid, published)
        todo = []
        for k, depth in enumerate(depths):
            path = out / f"SMCI_{resolution}_{year}_{depth}cm.nc"
            if path.exists() and _year_file_is_current(path, days):
                current.append(path.name)
            else:
                todo.append((k, depth, path))
        if not todo:
            continue
        # Every layer file of the year is open at once, so each daily file is read once.
        with contextlib.ExitStack() as stack:
            layer_files = {}
            for k, depth, path in todo:
                tmp = stack.enter_context(atomic_path(path))
                nc = stack.enter_context(netCDF4.Dataset(tmp, "w", format="NETCDF4"))
                _year_layer_file(nc, published, days, depth, attrs, resolution)
                layer_files[k] = nc
            for i, f in enumerate(by_year[year]):
                sm, g, dd, _ = read_day(f)
                if not g.same_as(grid) or dd != depths:
                    raise InputDataError(f"{f} has another grid or depths than {year}")
                for k, nc in layer_files.items():
                    nc["SMCI"][i, r0 : r0 + grid.ny, c0 : c0 + grid.nx] = encode_int16(sm[k])
        written += [path.name for _, _, path in todo]
    return {"path": str(out), "written": written, "current": current}


#: Global attributes of a daily file that describe the product, not one file or day.
_DISCOVERY_KEYS = (
    "summary",
    "keywords",
    "keywords_vocabulary",
    "institution",
    "project",
    "creator_name",
    "creator_email",
    "creator_url",
    "creator_type",
    "publisher_name",
    "publisher_email",
    "publisher_url",
    "license",
    "references",
    "acknowledgement",
    "comment",
    "id",
    "naming_authority",
    "standard_name_vocabulary",
    "cdm_data_type",
    "processing_level",
    "product_version",
)


def _year_layer_file(nc, grid: RegularGrid, days, depth: int, attrs: dict, resolution: str):
    """Create the dimensions, coordinates and the ``SMCI`` variable of a year-layer file.

    The published layout (``SMCI(time, lat, lon)``, integer 0.001 m³/m³, fill −999) with
    the same CF/ACDD metadata as the daily files: ``crs`` (full WGS 84 WKT), lat/lon/time
    bounds, a scalar ``depth`` coordinate with its layer bounds, ``cell_methods``.
    """
    nc.createDimension("time", None)
    nc.createDimension("lat", grid.ny)
    nc.createDimension("lon", grid.nx)
    nc.createDimension("nv", 2)
    t = nc.createVariable("time", "i4", ("time",))
    t.setncatts(
        {
            "units": "days since 1970-01-01",
            "calendar": "standard",
            "standard_name": "time",
            "long_name": "time",
            "axis": "T",
            "bounds": "time_bnds",
        }
    )
    t[:] = [(d - pd.Timestamp("1970-01-01")).days for d in days]
    tb = nc.createVariable("time_bnds", "i4", ("time", "nv"))
    tb[:] = np.stack([t[:], t[:] + 1], axis=1)
    for name, values, bounds, units, sn in (
        ("lat", grid.lat, grid.lat_bounds(), "degrees_north", "latitude"),
        ("lon", grid.lon, grid.lon_bounds(), "degrees_east", "longitude"),
    ):
        v = nc.createVariable(name, "f8", (name,))
        axis = "Y" if name == "lat" else "X"
        v.setncatts(
            {
                "units": units,
                "standard_name": sn,
                "long_name": sn,
                "axis": axis,
                "bounds": f"{name}_bnds",
            }
        )
        v[:] = values
        nc.createVariable(f"{name}_bnds", "f8", (name, "nv"))[:] = bounds
    d = nc.createVariable("depth", "f4", ())
    d.setncatts(DEPTH_ATTRS)
    d[:] = float(depth)
    nc.createVariable("depth_bnds", "f4", ("nv",))[:] = [depth - 10.0, float(depth)]
    crs = nc.createVariable("crs", "i4", ())
    crs.setncatts(crs_attributes())
    chunk = (1, min(512, grid.ny), min(512, grid.nx))
    v = nc.createVariable(
        "SMCI",
        "i2",
        ("time", "lat", "lon"),
        zlib=True,
        shuffle=True,
        complevel=4,
        chunksizes=chunk,
        fill_value=np.int16(FILL),
    )
    # The published unit: integer counts of 0.001 m3/m3 (UDUNITS reads "0.001 m3/m3" as a
    # scaled volume fraction, so the CF standard name still applies to the counts).
    v.setncatts(
        {
            "standard_name": "volume_fraction_of_condensed_water_in_soil",
            "units": "0.001 m3/m3",
            "long_name": f"volumetric soil moisture at {depth - 10}-{depth} cm",
            "missing_value": np.int16(FILL),
            "cell_methods": "time: mean",
            "coverage_content_type": "modelResult",
            "coordinates": "depth",
            "grid_mapping": "crs",
        }
    )
    # Cells outside the product region are never written: HDF5 stores no chunk for them
    # and they read as the fill value, so a full-China file costs what the region costs.
    meta = {k: str(attrs[k]) for k in _DISCOVERY_KEYS if str(attrs.get(k, "")) != ""}
    nc.setncatts(
        {
            "title": f"SMCI1.0-layout {resolution} soil moisture, {depth} cm",
            "Conventions": CONVENTIONS,
            **meta,
            **coverage_attributes(grid, days[0], days[-1], [depth]),
            "depth_cm": depth,
            "smci_gpu_version": __version__,
            "config_hash": str(attrs.get("config_hash", "")),
            "model_digests": str(attrs.get("model_digests", "")),
            "source": "assembled from the daily smci-gpu product files",
            "history": history_line(f"smci layout: {len(days)} daily files, {depth} cm"),
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "date_created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
