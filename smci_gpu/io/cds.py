"""Write ERA5-Land fields as the Copernicus CDS delivers them (used by the demo and tests).

NetCDF layouts:

* ``new`` (CDS since 2024): dimension ``valid_time`` (seconds since 1970), scalar
  coordinate ``number``, ``expver`` as a string coordinate along ``valid_time``, float32.
  With ``statistic`` set it is a file of the daily-statistics service
  (``derived-era5-land-daily-statistics``): one value per day stamped 00 UTC, global
  attributes ``statistic`` and ``frequency = "1d"``.
* ``old`` (CDS before 2024): dimension ``time`` (hours since 1900-01-01), int16 packed
  with ``scale_factor``/``add_offset``/``_FillValue``.

Both have latitude descending (90 → −90) and longitudes as given (0..360 or −180..180).
:func:`write_cds_zip` packs per-stream NetCDF files as the CDS delivers requests that mix
instantaneous and accumulated variables; :func:`write_cds_grib` writes GRIB 1 as MARS
holds ERA5-Land (soil layers on ``depthBelowLandLayer``, accumulations as forecasts).
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
#: ecCodes shortName where it differs from the canonical (cfVarName) name.
_SHORT_NAMES = {"t2m": "2t"}


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
    statistic: str | None = None,
) -> xr.Dataset:
    """Arrange ``(time, lat, lon)`` fields (lat ascending) as a CDS NetCDF dataset.

    Parameters
    ----------
    fields
        Canonical name → ``(time, lat, lon)`` array in canonical units.
    times
        The stamps of the time axis (hourly data: valid times; daily statistics: days).
    statistic
        ``None`` for the hourly dataset; e.g. ``"daily_mean"`` for a file of the CDS
        daily-statistics service (new layout only).

    Returns
    -------
    xarray.Dataset
        In memory, with CDS dimension names, attributes and encodings.
    """
    lat_desc = np.asarray(lat)[::-1]
    tname = "valid_time" if layout == "new" else "time"
    data_vars = {}
    for name, values in fields.items():
        arr = np.asarray(values, dtype=np.float32)[:, ::-1, :]
        attrs = {
            "units": canonical_units("era5land", name),
            "long_name": _LONG_NAMES[name],
            "GRIB_shortName": _SHORT_NAMES.get(name, name),
            "GRIB_paramId": PARAM_IDS[name],
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
        if statistic is not None:
            ds.attrs.update(statistic=statistic, frequency="1d")
    elif statistic is not None:
        raise ValueError("daily statistics come in the new layout only")
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


def write_cds_zip(members: dict[str, xr.Dataset], path: str | Path) -> Path:
    """Write datasets as NetCDF members of one zip (atomically), as the CDS delivers a
    NetCDF request spanning several streams/step types, e.g. members
    ``data_stream-oper_stepType-instant.nc`` and ``data_stream-oper_stepType-accum.nc``.
    """
    import tempfile
    import zipfile

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="smci-cdszip-") as tmp, atomic_path(path) as out:
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
            for name, ds in members.items():
                member = write_cds_netcdf(ds, Path(tmp) / name)
                archive.write(member, arcname=name)
    return path


#: ECMWF parameter ids of the ERA5-Land variables (GRIB tables 128 and 228), as ecCodes
#: defines them (tests/test_era5land_codes.py reads them back through ecCodes).
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
    "lai_hv": 67,
    "lai_lv": 66,
}


_GRIB_MISSING = 9999.0  # ecCodes' default missingValue


def _level_keys(name: str) -> dict:
    """ecCodes level keys of one ERA5-Land variable (soil layer N of swvlN/stlN)."""
    from smci_gpu.variables import ERA5LAND_LAYERS_CM

    if name[:-1] in ("swvl", "stl") and name[-1] in "1234":
        top, bottom = ERA5LAND_LAYERS_CM[f"swvl{name[-1]}"]
        # GRIB 1 holds each level in one octet: layer 4's 289 cm is written as 255.
        bottom = min(bottom, 255)
        return {"typeOfLevel": "depthBelowLandLayer", "topLevel": top, "bottomLevel": bottom}
    return {"typeOfLevel": "surface", "level": 0}


def write_cds_grib(
    fields: dict[str, np.ndarray],
    times: pd.DatetimeIndex,
    lat: np.ndarray,
    lon: np.ndarray,
    path: str | Path,
    bits_per_value: int = 24,
) -> Path:
    """Write ``(time, lat, lon)`` fields (lat ascending) valid at ``times`` as ERA5-Land GRIB 1.

    States are analyses at their valid time. Accumulations are written as MARS holds
    them: forecasts from 00 UTC with steps 1–24 h, so the value valid at 00 UTC of day
    d+1 is step 24 of the forecast from day d (the reader recovers valid times). Soil
    layers (swvl1–4, stl1–4) are on level type ``depthBelowLandLayer`` (GRIB1 table 3
    code 112) with ``topLevel``/``bottomLevel`` in cm (0–7, 7–28, 28–100, 100–255: one
    octet cannot hold 289), as in MARS ERA5-Land messages; the other fields are on ``surface``.

    Returns
    -------
    pathlib.Path
        ``path``, written atomically.
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
                keys.update(_level_keys(name))
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
                flat = np.asarray(values[i], np.float64)[::-1].ravel()
                if np.isnan(flat).any():  # sea/lake cells: a bitmap, as ERA5-Land has
                    eccodes.codes_set(handle, "missingValue", _GRIB_MISSING)
                    eccodes.codes_set(handle, "bitmapPresent", 1)
                    flat = np.where(np.isnan(flat), _GRIB_MISSING, flat)
                eccodes.codes_set_values(handle, flat)
                eccodes.codes_write(handle, f)
                eccodes.codes_release(handle)
    return path
