"""CF-1.8 NetCDF4 product files, written atomically and verifiable for resume.

One file per day: ``sm(time, depth, lat, lon)`` in m³ m⁻³, stored as int16 with
``scale_factor = 0.001`` and ``_FillValue = −999`` (or float32), zlib + shuffle, chunks
(1, 1, ≤512, ≤512), ``depth`` with ``depth_bnds`` (cm, positive down), lat/lon with
bounds, a ``crs`` variable (WGS84) and global provenance attributes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smci_gpu.errors import OutputError
from smci_gpu.grid import RegularGrid
from smci_gpu.io.atomic import atomic_path

SCALE = 0.001
FILL = -999


def day_file_name(day, resolution: str = "1km") -> str:
    return f"SMCI_{resolution}_{pd.Timestamp(day):%Y%m%d}.nc"


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
):
    """The in-memory CF dataset of one day (``sm`` is ``(layers, ny, nx)`` float)."""
    import xarray as xr

    depth = np.asarray(layers, dtype=np.float32)
    bnds = np.stack([depth - 10.0, depth], axis=1).astype(np.float32)
    values = encode_int16(sm) if dtype == "int16" else sm.astype(np.float32)
    ds = xr.Dataset(
        {
            "sm": (
                ("time", "depth", "lat", "lon"),
                values[None],
                {
                    "standard_name": "volume_fraction_of_condensed_water_in_soil",
                    "long_name": "volumetric soil moisture",
                    "units": "m3 m-3",
                    "grid_mapping": "crs",
                    "coordinates": "time depth lat lon",
                },
            ),
            "depth_bnds": (("depth", "nv"), bnds),
            "lat_bnds": (("lat", "nv"), grid.lat_bounds()),
            "lon_bnds": (("lon", "nv"), grid.lon_bounds()),
            "crs": (
                (),
                np.int32(0),
                {
                    "grid_mapping_name": "latitude_longitude",
                    "semi_major_axis": 6378137.0,
                    "inverse_flattening": 298.257223563,
                    "crs_wkt": 'GEOGCS["WGS 84"]',
                    "epsg_code": "EPSG:4326",
                },
            ),
        },
        coords={
            "time": ("time", [pd.Timestamp(day)], {"standard_name": "time", "axis": "T"}),
            "depth": (
                "depth",
                depth,
                {
                    "standard_name": "depth",
                    "units": "cm",
                    "positive": "down",
                    "axis": "Z",
                    "bounds": "depth_bnds",
                },
            ),
            "lat": (
                "lat",
                grid.lat,
                {
                    "standard_name": "latitude",
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
                    "units": "degrees_east",
                    "axis": "X",
                    "bounds": "lon_bnds",
                },
            ),
        },
    )
    ds.attrs = {
        "Conventions": "CF-1.8",
        "title": "SMCI-style 1 km daily soil moisture",
        **{k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in attrs.items()},
    }
    return ds


def write_day(path: str | Path, ds, dtype: str = "int16") -> Path:
    """Write a day's dataset to a temporary name and rename it when complete."""
    path = Path(path)
    chunks = (1, 1, min(512, ds.sizes["lat"]), min(512, ds.sizes["lon"]))
    enc: dict[str, dict] = {
        "sm": {"zlib": True, "shuffle": True, "complevel": 4, "chunksizes": chunks},
        "time": {"units": "days since 1970-01-01", "calendar": "standard", "dtype": "int32"},
    }
    if dtype == "int16":
        # Values are already int16 counts (encode_int16): store them as they are.
        ds["sm"].attrs.update(scale_factor=SCALE, add_offset=0.0)
        enc["sm"].update(dtype="int16", _FillValue=np.int16(FILL))
    else:
        enc["sm"].update(dtype="float32", _FillValue=np.float32(FILL))
    for v in ("lat", "lon", "depth", "depth_bnds", "lat_bnds", "lon_bnds"):
        enc[v] = {"_FillValue": None}
    try:
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=enc)
    except OSError as exc:
        raise OutputError(f"could not write {path}: {exc}") from exc
    return path


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
