"""Products made from the daily 1 km files without recomputing them.

* :func:`aggregate` (`smci aggregate`): the 1 km daily files averaged to 9 km (0.1°,
  12 × 12 blocks, NaN-aware: a 9 km cell is the mean of its land pixels) →
  ``product/9km_from_1km/SMCI_9km_YYYYMMDD.nc`` in the same CF format.
* :func:`smci1_layout` (`smci produce --layout smci1`, or `smci layout`): the files users of
  the published SMCI1.0 dataset read, one per year and layer, ``SMCI_1km_{year}_{depth}cm.nc``
  with ``SMCI(time, lat, lon)`` in integer units of 0.001 m³/m³, fill −999, on the published
  grid (30″, 4320 × 7560 cells over 73–136 E, 18–54 N; 9 km: 0.1°, 360 × 630). A year
  file holds the year's whole time axis; a day is written into its slot and flagged in
  ``day_written`` only after its values are flushed, so adding a day costs that day's
  slices. While a file is open for an update a journal ``.NAME.updating`` exists beside it;
  a run that finds one (a writer was killed) compares every flagged day with its daily file
  and rebuilds the file from the daily files under a temporary name if it cannot be read
  or a day does not match. Only flagged days count as written (readers should mask the others), so a
  kill never leaves a day that looks complete.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smci_gpu import __version__, kernels
from smci_gpu.config import Config
from smci_gpu.errors import GridError, InputDataError
from smci_gpu.grid import RegularGrid
from smci_gpu.io.atomic import atomic_path, host_tag
from smci_gpu.io.lock import output_lock
from smci_gpu.io.writer import (
    CONVENTIONS,
    DEPTH_ATTRS,
    FILL,
    ZLIB_LEVEL,
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


#: Global attributes of a year-layer file that must match every daily file written into it.
_SOURCE_KEYS = ("config_hash", "model_digests")


def _journal(path: Path) -> Path:
    """The marker that exists while ``path`` is open for writing (``.NAME.updating``)."""
    return path.with_name(f".{path.name}.updating")


def _year_days(year: int) -> pd.DatetimeIndex:
    return pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")


def _file_state(path: Path, region: str, source: dict, daily: dict, k: int) -> np.ndarray | None:
    """The ``day_written`` flags of a year-layer file that can be updated in place.

    None when the file is missing, unreadable, made from another region or from daily files
    of another provenance, or when a writer died while it was open (its journal is left)
    and a day flagged written differs from layer ``k`` of its daily file (``daily``: slot →
    path): such a file is rebuilt.
    """
    import netCDF4

    if not path.exists():
        return None
    try:
        with netCDF4.Dataset(path) as nc:
            if str(nc.getncattr("source_region")) != region:
                return None
            if any(str(nc.getncattr(k)) != str(source.get(k, "")) for k in _SOURCE_KEYS):
                return None
            flags = np.asarray(nc["day_written"][:], dtype=np.int8)
            if _journal(path).exists():
                if not _flagged_days_match(nc, flags, region, daily, k):
                    return None
                _journal(path).unlink()  # checked: the flagged days are sound
            return flags
    except Exception:  # noqa: BLE001 - unreadable (e.g. torn by a kill) means "rebuild"
        return None


def _flagged_days_match(nc, flags, region: str, daily: dict, k: int) -> bool:
    """Every flagged day of an open year-layer file equals layer ``k`` of its daily file
    (a day whose daily file is gone cannot be checked and counts as a mismatch)."""
    r0, c0, ny, nx = (int(v) for v in region.split())
    var = nc["SMCI"]
    var.set_auto_maskandscale(False)
    for i in np.flatnonzero(flags == 1):
        if i not in daily:
            return False
        sm, _, _, _ = read_day(daily[i])
        if not np.array_equal(var[i, r0 : r0 + ny, c0 : c0 + nx], encode_int16(sm[k])):
            return False
    return True


def _write_day(nc, i: int, counts: np.ndarray, r0: int, c0: int) -> None:
    """Day slot ``i`` of an open year-layer file: the values, a flush, then
    ``day_written = 1`` and a second flush (a day is flagged only after its values reached
    the file)."""
    ny, nx = counts.shape
    nc["SMCI"][i, r0 : r0 + ny, c0 : c0 + nx] = counts
    nc.sync()
    nc["day_written"][i] = 1
    nc.sync()


@contextlib.contextmanager
def _open_for_update(path: Path, rebuild: bool, make):
    """The year-layer file open for writing: anew under a temporary name (renamed when
    closed), or in place with the journal ``.NAME.updating`` present while it is open."""
    import netCDF4

    journal = _journal(path)
    if rebuild:
        with atomic_path(path) as tmp:
            with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
                make(nc)
                yield nc
        journal.unlink(missing_ok=True)
        return
    with open(journal, "w") as fh:
        fh.write(f"{host_tag()} {os.getpid()}\n")
        fh.flush()
        os.fsync(fh.fileno())
    with netCDF4.Dataset(path, "a") as nc:
        yield nc
        nc.setncattr("date_modified", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        nc.setncattr("days_written", int(np.sum(nc["day_written"][:] == 1)))
    journal.unlink()


def smci1_layout(cfg: Config, resolution: str = "1km", years: list[int] | None = None) -> dict:
    """Write the days of the daily files into ``SMCI_{res}_{year}_{depth}cm.nc`` files.

    A year-layer file holds the whole year's time axis from the start; a day is written into
    its slot (its int16 slices and nothing else) and flagged in ``day_written`` after its
    values are flushed, so adding a day costs that day. A file that cannot be updated in
    place (missing, another region or provenance, or damaged by a killed writer) is rebuilt
    from the daily files under a temporary name and renamed. Each daily file is read once
    for all the layer files of its year.

    Returns
    -------
    dict
        ``path``; ``written``: files changed; ``current``: files that already held every
        available day; ``days_added``: day slots written, over all files; ``rebuilt``.
    """
    src = Path(cfg.path("product", resolution))
    out = Path(cfg.path("product", f"smci1_{resolution}"))
    files = _daily_files(src, resolution)
    by_year: dict[int, list[Path]] = {}
    for f in files:
        by_year.setdefault(int(f.stem[-8:-4]), []).append(f)
    done = {"path": str(out), "written": [], "current": [], "days_added": 0, "rebuilt": []}
    out.mkdir(parents=True, exist_ok=True)
    # One layout run per folder; taking the lock removes a killed run's temporaries.
    with output_lock(out, cfg.lock.stale_after_s, cfg.lock.heartbeat_s):
        for year in sorted(by_year):
            if not years or year in years:
                _layout_year(out, resolution, year, by_year[year], done)
    return done


def _layout_year(out: Path, resolution: str, year: int, files: list[Path], done: dict) -> None:
    """Bring every layer file of ``year`` up to the daily ``files``; tally into ``done``."""
    slots = {d: i for i, d in enumerate(_year_days(year))}
    daily = {slots[pd.Timestamp(f.stem[-8:])]: f for f in files}
    _, grid, depths, attrs = read_day(files[0])
    r0, c0 = _place(grid, PUBLISHED[resolution])
    region = f"{r0} {c0} {grid.ny} {grid.nx}"
    plans = []  # (layer index, path, day slots to write, rebuild?)
    for k, depth in enumerate(depths):
        path = out / f"SMCI_{resolution}_{year}_{depth}cm.nc"
        flags = _file_state(path, region, attrs, daily, k)
        todo = set(daily) if flags is None else {i for i in daily if flags[i] != 1}
        if todo:
            plans.append((k, depth, path, todo, flags is None))
        else:
            done["current"].append(path.name)
    if not plans:
        return
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        handles = []
        for k, depth, path, todo, rebuild in plans:

            def make(nc, depth=depth):
                _year_layer_file(nc, PUBLISHED[resolution], year, depth, attrs, resolution, region)

            handles.append((k, stack.enter_context(_open_for_update(path, rebuild, make)), todo))
        for i in sorted(set().union(*(todo for _, _, todo in handles))):
            sm, g, dd, _ = read_day(daily[i])
            if not g.same_as(grid) or dd != depths:
                raise InputDataError(f"{daily[i]} has another grid or depths than {files[0]}")
            for k, nc, todo in handles:
                if i in todo:
                    _write_day(nc, i, encode_int16(sm[k]), r0, c0)
    for _, _, path, todo, rebuild in plans:
        done["written"].append(path.name)
        done["days_added"] += len(todo)
        if rebuild:
            done["rebuilt"].append(path.name)


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


def _year_layer_file(
    nc, grid: RegularGrid, year: int, depth: int, attrs: dict, resolution: str, region: str
):
    """Create the dimensions, coordinates and variables of a year-layer file.

    The published layout (``SMCI(time, lat, lon)``, integer 0.001 m³/m³, fill −999) with
    the same CF/ACDD metadata as the daily files: ``crs`` (full WGS 84 WKT), lat/lon/time
    bounds, a scalar ``depth`` coordinate with its layer bounds, ``cell_methods``. The time
    axis is every day of ``year``; ``day_written(time)`` (0/1) says which days hold values.
    ``region`` is "row col ny nx" of the product region inside the published grid.
    """
    days = list(_year_days(year))
    nc.createDimension("time", len(days))
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
    flag = nc.createVariable("day_written", "i1", ("time",), fill_value=np.int8(0))
    flag.setncatts(
        {
            "long_name": "the day's values are complete (set after they were flushed)",
            "flag_values": np.array([0, 1], dtype=np.int8),
            "flag_meanings": "not_written written",
        }
    )
    flag.setncatts({"coverage_content_type": "auxiliaryInformation"})
    chunk = (1, min(512, grid.ny), min(512, grid.nx))
    v = nc.createVariable(
        "SMCI",
        "i2",
        ("time", "lat", "lon"),
        zlib=True,
        shuffle=True,
        complevel=ZLIB_LEVEL,
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
            "ancillary_variables": "day_written",
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
            "source_region": region,
            "model_digests": str(attrs.get("model_digests", "")),
            "source": "assembled from the daily smci-gpu product files",
            "history": history_line(f"smci layout: {year}, {depth} cm, days added as produced"),
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "date_created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
