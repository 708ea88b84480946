"""Write ERA5-Land fields as the Copernicus CDS delivers them (used by the demo and tests).

Two layouts are written:

* ``new`` (CDS since 2024): dimension ``valid_time`` (seconds since 1970), scalar
  coordinate ``number``, ``expver`` as a string coordinate along ``valid_time``, float32.
* ``old`` (CDS before 2024): dimension ``time`` (hours since 1900-01-01), int16 packed
  with ``scale_factor``/``add_offset``/``_FillValue``.

Both have latitude descending (90 → −90) and longitudes as given (0..360 or −180..180).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from smci_gpu.io.atomic import atomic_path
from smci_gpu.variables import canonical_units, variable_table

_LONG_NAMES = {
    name: attrs["aliases"][0].replace("_", " ").capitalize()
    for name, attrs in variable_table()["era5land"].items()
}


def _pack(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scale = (hi - lo) / 65530.0 if hi > lo else 1.0
    offset = (hi + lo) / 2.0
    packed = np.round((values - offset) / scale)
    packed = np.where(np.isfinite(values), packed, -32767).astype(np.int16)
    return packed, scale, offset


def cds_dataset(
    fields: dict[str, np.ndarray],
    times: pd.DatetimeIndex,
    lat: np.ndarray,
    lon: np.ndarray,
    layout: Literal["new", "old"] = "new",
) -> xr.Dataset:
    """Arrange ``(time, lat, lon)`` fields (lat ascending) as a CDS NetCDF dataset.

    Returns an in-memory dataset with CDS dimension names, attributes and encodings.
    """
    lat_desc = np.asarray(lat)[::-1]
    tname = "valid_time" if layout == "new" else "time"
    data_vars = {}
    for name, values in fields.items():
        arr = np.asarray(values, dtype=np.float32)[:, ::-1, :]
        attrs = {
            "units": canonical_units("era5land", name),
            "long_name": _LONG_NAMES[name],
            "GRIB_shortName": name,
        }
        data_vars[name] = xr.Variable((tname, "latitude", "longitude"), arr, attrs)
    ds = xr.Dataset(data_vars)
    ds = ds.assign_coords(
        {
            tname: (tname, times.values.astype("datetime64[ns]"), {"standard_name": "time"}),
            "latitude": (
                "latitude",
                lat_desc.astype(np.float64),
                {"units": "degrees_north", "standard_name": "latitude"},
            ),
            "longitude": (
                "longitude",
                np.asarray(lon, dtype=np.float64),
                {"units": "degrees_east", "standard_name": "longitude"},
            ),
        }
    )
    if layout == "new":
        ds = ds.assign_coords(
            number=((), np.int64(0), {"long_name": "ensemble member numerical id"}),
            expver=(tname, np.full(times.size, "0001", dtype="<U4")),
        )
        ds.attrs = {
            "GRIB_centre": "ecmf",
            "Conventions": "CF-1.7",
            "institution": "European Centre for Medium-Range Weather Forecasts",
        }
    else:
        ds.attrs = {"Conventions": "CF-1.6", "history": "synthetic CDS download (old layout)"}
    return ds


def write_cds_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write a dataset from :func:`cds_dataset` with the layout's encodings (atomically)."""
    path = Path(path)
    old = "time" in ds.dims
    tname = "time" if old else "valid_time"
    encoding: dict[str, dict] = {}
    if old:
        encoding[tname] = {
            "units": "hours since 1900-01-01 00:00:00.0",
            "calendar": "gregorian",
            "dtype": "int32",
        }
        for name in ds.data_vars:
            packed, scale, offset = _pack(ds[name].values)
            encoding[name] = {
                "dtype": "int16",
                "scale_factor": scale,
                "add_offset": offset,
                "_FillValue": np.int16(-32767),
                "missing_value": np.int16(-32767),
            }
        fmt = "NETCDF3_64BIT"
    else:
        encoding[tname] = {
            "units": "seconds since 1970-01-01",
            "calendar": "proleptic_gregorian",
            "dtype": "int64",
        }
        for name in ds.data_vars:
            encoding[name] = {
                "dtype": "float32",
                "zlib": True,
                "complevel": 1,
                "_FillValue": np.float32(np.nan),
            }
        fmt = "NETCDF4"
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, format=fmt, encoding=encoding, engine="netcdf4")
    return path
