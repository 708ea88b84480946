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


#: ECMWF parameter ids of the ERA5-Land variables (GRIB tables 128 and 228).
PARAM_IDS = {
    "swvl1": 39,
    "swvl2": 40,
    "swvl3": 41,
    "swvl4": 42,
    "stl1": 139,
    "stl2": 170,
    "stl3": 183,
    "stl4": 236,
    "t2m": 167,
    "tp": 228,
    "e": 182,
    "pev": 228251,
    "ssrd": 169,
    "strd": 175,
    "lai_hv": 66,
    "lai_lv": 67,
}


def write_cds_grib(
    fields: dict[str, np.ndarray],
    times: pd.DatetimeIndex,
    lat: np.ndarray,
    lon: np.ndarray,
    path: str | Path,
    bits_per_value: int = 24,
) -> Path:
    """Write hourly ``(time, lat, lon)`` fields (lat ascending) as ERA5-Land GRIB 1.

    States are analyses at their valid time. Accumulations are written as MARS holds
    them: forecasts from 00 UTC with steps 1–24 h, so the value valid at 00 UTC of day
    d+1 is step 24 of the forecast from day d (the reader recovers valid times).
    """
    import eccodes

    from smci_gpu.variables import ACCUMULATED

    lat_desc = np.asarray(lat, dtype=np.float64)[::-1]
    lon = np.asarray(lon, dtype=np.float64)
    if np.any(np.diff(lon) <= 0):
        # A 0–360 grid crossing 0° (359.8 … 0.1): ecCodes lists a grid's longitudes sorted,
        # so cfgrib would label such columns wrongly; write it in −180..180 instead.
        lon = (lon + 180.0) % 360.0 - 180.0
    res = float(abs(lat_desc[0] - lat_desc[1])) if lat_desc.size > 1 else 0.1
    grid = {
        "Ni": lon.size,
        "Nj": lat_desc.size,
        "latitudeOfFirstGridPointInDegrees": float(lat_desc[0]),
        "longitudeOfFirstGridPointInDegrees": float(lon[0]),
        "latitudeOfLastGridPointInDegrees": float(lat_desc[-1]),
        "longitudeOfLastGridPointInDegrees": float(lon[-1]),
        "iDirectionIncrementInDegrees": res,
        "jDirectionIncrementInDegrees": res,
    }
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for name, values in fields.items():
            for i, t in enumerate(times):
                handle = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib1")
                keys: dict = {"centre": "ecmf", "paramId": PARAM_IDS[name], **grid}
                if name in ACCUMULATED:
                    base = (t - pd.Timedelta(hours=1)).normalize()
                    step = int((t - base) / pd.Timedelta(hours=1))
                    keys.update(dataDate=int(f"{base:%Y%m%d}"), dataTime=0, stepType="accum")
                    keys.update(startStep=0, endStep=step)
                else:
                    keys.update(dataDate=int(f"{t:%Y%m%d}"), dataTime=t.hour * 100)
                for key, value in keys.items():
                    eccodes.codes_set(handle, key, value)
                eccodes.codes_set(handle, "bitsPerValue", bits_per_value)
                eccodes.codes_set_values(handle, np.asarray(values[i], np.float64)[::-1].ravel())
                eccodes.codes_write(handle, f)
                eccodes.codes_release(handle)
    return path
