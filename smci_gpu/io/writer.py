"""CF-1.8 / ACDD-1.3 NetCDF4 product files, written atomically and verifiable for resume.

One file per day: ``sm(time, depth, lat, lon)`` in m³ m⁻³, stored as int16 with a float32
``scale_factor = 0.001`` and ``_FillValue = −999`` (or float32), zlib level 1 + shuffle, chunks
(1, 1, ≤512, ≤512). ``time`` has ``time_bnds`` (the day, 00–24 UTC) and ``sm`` carries
``cell_methods = "time: mean"``; ``depth`` has ``depth_bnds`` (cm, positive down); lat/lon
have bounds; a ``crs`` grid-mapping variable holds pyproj's full WGS 84 WKT and the CF
``latitude_longitude`` parameters, so GDAL, rioxarray and pyproj read EPSG:4326. Global
attributes: provenance (checked on resume) and the discovery metadata data centres ask for
(ACDD-1.3, from the config's ``metadata`` section).
"""

from __future__ import annotations

import contextlib
import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smci_gpu import __version__
from smci_gpu.errors import OutputError
from smci_gpu.grid import RegularGrid
from smci_gpu.io.atomic import atomic_path
from smci_gpu.io.chunks import ZLIB_LEVEL, deflate_chunks, write_pieces

SCALE = 0.001
FILL = -999
#: ACDD-1.3 "Conventions" value: both conventions the files follow.
CONVENTIONS = "CF-1.8, ACDD-1.3"
#: The CF standard-name table release the names were checked against (the one packaged
#: with compliance-checker 6.1, so the checker needs no download to check them).
STANDARD_NAME_VOCABULARY = "CF Standard Name Table v93"
#: The depth axis. CF has no soil-depth standard name; ``depth`` ("vertical distance below
#: the surface") is the one that fits. CDO/CDI would read standard_name ``depth`` alone as
#: ``depth_below_sea``; it reads the axis as ``depth_below_land`` only when the long_name is
#: exactly "depth below land" (cdi ``is_DBL_axis``, checked before the standard name).
DEPTH_ATTRS = {
    "standard_name": "depth",
    "long_name": "depth below land",
    "units": "cm",
    "positive": "down",
    "axis": "Z",
    "bounds": "depth_bnds",
}


@functools.cache
def crs_attributes() -> dict[str, Any]:
    """The ``crs`` grid-mapping variable's attributes for WGS 84 (EPSG:4326).

    Returns
    -------
    dict
        pyproj's CF mapping of EPSG:4326 (``grid_mapping_name = "latitude_longitude"``,
        ``semi_major_axis`` 6378137 m, ``inverse_flattening`` 298.257223563, …) with the
        full WKT both as CF's ``crs_wkt`` and as GDAL's ``spatial_ref``.

    Notes
    -----
    CF-1.8 §5.6 (grid mappings, ``crs_wkt``); GDAL's netCDF driver reads ``spatial_ref``
    or ``crs_wkt``. A bare ``GEOGCS["WGS 84"]`` is not valid WKT (no DATUM node).
    """
    from pyproj import CRS

    crs = CRS.from_epsg(4326)
    attrs = {k: v for k, v in crs.to_cf().items() if v is not None}
    wkt = crs.to_wkt()
    attrs.update(crs_wkt=wkt, spatial_ref=wkt, epsg_code="EPSG:4326")
    return attrs


def day_file_name(day, resolution: str = "1km") -> str:
    return f"SMCI_{resolution}_{pd.Timestamp(day):%Y%m%d}.nc"


def discovery_attributes(meta) -> dict[str, str]:
    """Global ACDD-1.3 attributes from the config's ``metadata`` section.

    Parameters
    ----------
    meta : smci_gpu.config.MetadataConfig
        institution, creator/publisher contacts, summary, keywords, license, references.

    Returns
    -------
    dict
        Text attributes; empty fields are left out.
    """
    attrs = {k: str(v) for k, v in meta.model_dump().items() if str(v) != ""}
    attrs.update(
        standard_name_vocabulary=STANDARD_NAME_VOCABULARY,
        cdm_data_type="Grid",
        processing_level="L4 (model output from in-situ training data)",
        product_version=__version__,
    )
    return attrs


def coverage_attributes(grid: RegularGrid, start, end, layers: list[int]) -> dict[str, Any]:
    """ACDD geospatial and time coverage of a file over ``grid``, days ``start..end``.

    Time coverage runs from ``start`` 00:00 UTC to the end of ``end`` (exclusive bound of
    the last daily mean); latitude/longitude extremes are the grid's cell edges.
    """
    t0 = pd.Timestamp(start)
    t1 = pd.Timestamp(end) + pd.Timedelta(days=1)
    w, e, s, n = grid.west, grid.east, grid.south, grid.north
    return {
        "geospatial_lat_min": s,
        "geospatial_lat_max": n,
        "geospatial_lon_min": w,
        "geospatial_lon_max": e,
        "geospatial_lat_units": "degrees_north",
        "geospatial_lon_units": "degrees_east",
        "geospatial_lat_resolution": f"{grid.res:.10g} degree",
        "geospatial_lon_resolution": f"{grid.res:.10g} degree",
        "geospatial_bounds": f"POLYGON(({s} {w}, {n} {w}, {n} {e}, {s} {e}, {s} {w}))",
        "geospatial_bounds_crs": "EPSG:4326",
        "geospatial_vertical_min": float(min(layers) - 10),
        "geospatial_vertical_max": float(max(layers)),
        "geospatial_vertical_units": "cm",
        "geospatial_vertical_positive": "down",
        "time_coverage_start": f"{t0:%Y-%m-%dT%H:%M:%SZ}",
        "time_coverage_end": f"{t1:%Y-%m-%dT%H:%M:%SZ}",
        "time_coverage_duration": f"P{(t1 - t0).days}D",
        "time_coverage_resolution": "P1D",
    }


def history_line(action: str) -> str:
    """One ``history`` line: UTC time stamp, program and version, what was done."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} smci-gpu {__version__}: {action}"


def encode_int16(sm: np.ndarray) -> np.ndarray:
    """m³/m³ → int16 counts of 0.001 (NaN → −999): ``round(sm / 0.001)``."""
    counts = np.where(np.isfinite(sm), np.round(sm / SCALE), FILL)
    return counts.astype(np.int16)


def product_dataset(
    sm: np.ndarray,
    day,
    layers: list[int],
    grid: RegularGrid,
    attrs: dict[str, Any],
    dtype: str = "int16",
    action: str = "smci produce",
):
    """The in-memory CF dataset of one day.

    Parameters
    ----------
    sm : ndarray, shape (layers, ny, nx), float or int16
        Volumetric soil moisture, m³ m⁻³; NaN where there is no value (written as fill).
        int16 values are taken as counts already encoded (as :func:`encode_int16` does;
        production encodes on the device) and stored as they are.
    day : date-like
        The day; the value is that day's mean (``time_bnds`` = day 00 UTC to next day).
    layers : list of int
        Layer bottoms in cm (10, 20, …); each layer spans ``[d − 10, d]``.
    grid : RegularGrid
        The grid of ``sm``.
    attrs : dict
        Global attributes (provenance, discovery metadata); a ``history`` in them is kept
        below this step's line. Coverage attributes are recomputed for this grid and day.
    dtype : {"int16", "float32"}
        Stored type: int16 counts of 0.001 (see :func:`encode_int16`) or float32.
    action : str
        What made the file, for the ``history`` line.

    Returns
    -------
    xarray.Dataset
    """
    import xarray as xr

    depth = np.asarray(layers, dtype=np.float32)
    bnds = np.stack([depth - 10.0, depth], axis=1).astype(np.float32)
    if dtype == "int16":  # counts already encoded (produce encodes on the device) pass as they are
        values = sm if sm.dtype == np.int16 else encode_int16(sm)
    else:
        values = sm.astype(np.float32)
    t0 = pd.Timestamp(day).normalize()
    time_bnds = np.array([[t0, t0 + pd.Timedelta(days=1)]], dtype="datetime64[ns]")
    ds = xr.Dataset(
        {
            "sm": (
                ("time", "depth", "lat", "lon"),
                values[None],
                {
                    "standard_name": "volume_fraction_of_condensed_water_in_soil",
                    "long_name": "volumetric soil moisture",
                    "units": "m3 m-3",
                    "cell_methods": "time: mean",
                    "coverage_content_type": "modelResult",
                    "grid_mapping": "crs",
                },
            ),
            "time_bnds": (("time", "nv"), time_bnds),
            "depth_bnds": (("depth", "nv"), bnds),
            "lat_bnds": (("lat", "nv"), grid.lat_bounds()),
            "lon_bnds": (("lon", "nv"), grid.lon_bounds()),
            "crs": ((), np.int32(0), dict(crs_attributes())),
        },
        coords={
            "time": (
                "time",
                [t0],
                {"standard_name": "time", "long_name": "time", "axis": "T", "bounds": "time_bnds"},
            ),
            "depth": ("depth", depth, dict(DEPTH_ATTRS)),
            "lat": (
                "lat",
                grid.lat,
                {
                    "standard_name": "latitude",
                    "long_name": "latitude",
                    "units": "degrees_north",
                    "axis": "Y",
                    "bounds": "lat_bnds",
                },
            ),
            "lon": (
                "lon",
                grid.lon,
                {
                    "standard_name": "longitude",
                    "long_name": "longitude",
                    "units": "degrees_east",
                    "axis": "X",
                    "bounds": "lon_bnds",
                },
            ),
        },
    )
    plain = {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in attrs.items()}
    history = "\n".join(h for h in (history_line(action), plain.pop("history", "")) if h)
    ds.attrs = {
        "Conventions": CONVENTIONS,
        "title": "SMCI-style 1 km daily soil moisture",
        **plain,
        **coverage_attributes(grid, t0, t0, layers),
        "history": history,
        "date_created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    ds.attrs.setdefault("source", "smci-gpu")
    return ds


def write_day(
    path: str | Path,
    ds,
    dtype: str = "int16",
    compressor: str | None = "isal",
    threads: int | None = None,
    lock=None,
) -> Path:
    """Write a day's dataset to a temporary name and rename it when complete.

    int16 files carry a float32 ``scale_factor`` (no ``add_offset``): xarray decodes packed
    data to the scale factor's type, so a read gives float32, not float64 (CF-1.8 §8.1:
    the unpacked type is the type of ``scale_factor``).

    Parameters
    ----------
    path : path
        The day's file.
    ds : xarray.Dataset
        From :func:`product_dataset`.
    dtype : {"int16", "float32"}
    compressor : {"isal", "zlib"} or None
        For int16: ``sm``'s chunks are shuffled and deflated on ``threads`` threads by this
        compressor and filed as they are (:mod:`smci_gpu.io.chunks`); the file is the same
        NetCDF4 (shuffle + zlib filters) whichever writes the zlib streams. ``None`` leaves
        the compression to netCDF-C (one core), as float32 files always do.
    threads : int, optional
        Compressing threads (default: this process's cores).
    lock : context manager, optional
        Held while the file is open (netCDF-C/HDF5 are not thread-safe; produce passes the
        lock its reader thread takes), not while chunks are compressed.

    Raises
    ------
    OutputError
        The file could not be written (disk full, permissions); nothing is left under
        ``path``.
    """
    path = Path(path)
    lock = contextlib.nullcontext() if lock is None else lock
    chunks = (1, 1, min(512, ds.sizes["lat"]), min(512, ds.sizes["lon"]))
    time_enc = {"units": "days since 1970-01-01", "calendar": "standard", "dtype": "int32"}
    enc: dict[str, dict] = {
        "sm": {"zlib": True, "shuffle": True, "complevel": ZLIB_LEVEL, "chunksizes": chunks},
        "time": time_enc,
        "time_bnds": {"dtype": "int32", "_FillValue": None},
    }
    if dtype == "int16":
        # Values are already int16 counts (encode_int16): store them as they are.
        ds["sm"].attrs.update(scale_factor=np.float32(SCALE))
        ds["sm"].attrs.pop("add_offset", None)
        enc["sm"].update(dtype="int16", _FillValue=np.int16(FILL))
    else:
        enc["sm"].update(dtype="float32", _FillValue=np.float32(FILL))
    for v in ("lat", "lon", "depth", "depth_bnds", "lat_bnds", "lon_bnds"):
        enc[v] = {"_FillValue": None}
    direct = dtype == "int16" and compressor is not None
    if direct:
        counts = np.asarray(ds["sm"].values, dtype="<i2")
        pieces = deflate_chunks(counts, chunks, np.int16(FILL), compressor, threads)
        sm_attrs, sm_dims = dict(ds["sm"].attrs), ds["sm"].dims
        ds = ds.drop_vars("sm")
        del enc["sm"]
    try:
        with lock, atomic_path(path) as tmp:
            ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=enc)
            if direct:
                _define_int16(tmp, "sm", sm_dims, sm_attrs, chunks)
                write_pieces(tmp, "sm", pieces, chunks, np.int16(FILL))
    except OSError as exc:
        raise OutputError(f"could not write {path}: {exc}") from exc
    return path


def _define_int16(path: Path, name: str, dims, attrs: dict, chunks: tuple[int, ...]) -> None:
    """Declare an int16 variable with the product's fill, chunks and filters (shuffle +
    zlib), its values left unwritten for :func:`~smci_gpu.io.chunks.write_pieces`."""
    import netCDF4

    with netCDF4.Dataset(path, "a") as nc:
        var = nc.createVariable(
            name,
            "i2",
            tuple(dims),
            zlib=True,
            complevel=ZLIB_LEVEL,
            shuffle=True,
            chunksizes=chunks,
            fill_value=np.int16(FILL),
        )
        var.setncatts(attrs)


def verify_day(path: str | Path, expect: dict[str, Any], shape: tuple[int, ...]) -> bool:
    """True when a finished day file opens, has the right shape and provenance."""
    import netCDF4

    try:
        with netCDF4.Dataset(path) as nc:
            if tuple(nc["sm"].shape) != shape:
                return False
            return all(str(nc.getncattr(k)) == str(v) for k, v in expect.items())
    except Exception:  # noqa: BLE001 - any failure means "redo this day"
        return False
