"""ERA5-Land reader: CDS NetCDF (old and new layouts) and GRIB → canonical daily fields.

Canonical means: dimensions ``(time, lat, lon)``, latitude ascending, longitude in
−180..180, one value per day, canonical names and units from ``variables.yaml``.

* States (soil moisture/temperature, t2m, LAI) are daily means of whatever the file
  holds (hourly values are averaged; daily-statistics files are taken as they are).
* Accumulations (tp, e, pev, ssrd, strd) accumulate from 00 UTC, so the 00 UTC value of
  day d+1 is day d's total: only 00 UTC values are used, stamped back by one day. This
  works for hourly files and for files holding only the 00 UTC steps.
* The old layout's ``expver`` dimension (ERA5 and ERA5T mixed) is merged, preferring the
  final release (expver 1) where both exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from smci_gpu.errors import InputDataError
from smci_gpu.variables import ACCUMULATED, canonical_name

GRIB_SUFFIXES = (".grib", ".grb", ".grib2", ".grb2")


def _open(path: Path) -> list[xr.Dataset]:
    """The file as datasets: one for NetCDF; for GRIB one per hypercube, because states
    (analyses) and accumulations (forecast steps) do not share a time axis."""
    try:
        if path.suffix.lower() in GRIB_SUFFIXES:
            import cfgrib

            return cfgrib.open_datasets(str(path), indexpath="")
        return [xr.open_dataset(path, engine="netcdf4")]
    except FileNotFoundError as exc:
        raise InputDataError(f"ERA5-Land file {path} does not exist") from exc
    except PermissionError as exc:
        raise InputDataError(f"ERA5-Land file {path} is not readable (permission denied)") from exc
    except Exception as exc:  # noqa: BLE001 - netCDF/HDF5/ecCodes raise many types
        size = path.stat().st_size if path.exists() else 0
        what = "is empty" if size == 0 else f"is not a readable NetCDF/GRIB file ({exc})"
        raise InputDataError(f"ERA5-Land file {path} {what}") from exc


def _time_name(ds: xr.Dataset, path: Path) -> str:
    for name in ("valid_time", "time"):
        if name in ds.dims:
            return name
    if "valid_time" in ds.coords and ds["valid_time"].ndim == 0:  # GRIB with scalar time
        return "valid_time"
    raise InputDataError(f"ERA5-Land file {path} has no 'valid_time' or 'time' dimension")


def _forecast_to_valid_time(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """GRIB forecasts ``(time, step, lat, lon)`` (accumulations) → one ``valid_time`` axis.

    Every (start, step) pair becomes its valid time; pairs that are all NaN (steps a
    message set does not hold) are dropped.
    """
    if "valid_time" not in ds.coords:
        raise InputDataError(f"ERA5-Land file {path} has forecast steps but no valid_time")
    if "time" not in ds.dims:
        ds = ds.expand_dims("time")
    ds = ds.transpose("time", "step", ...)
    valid = np.asarray(ds["valid_time"].values).reshape(-1)
    out = {}
    keep = None
    for name, da in ds.data_vars.items():
        flat = da.values.reshape(valid.size, *da.shape[2:])
        has = np.isfinite(flat).reshape(valid.size, -1).any(axis=1)
        keep = has if keep is None else keep | has
        out[name] = (("valid_time", *da.dims[2:]), flat, da.attrs)
    coords = {d: ds[d] for d in ds.dims if d not in ("time", "step")}
    flat_ds = xr.Dataset(out, coords={"valid_time": valid, **coords}, attrs=ds.attrs)
    return flat_ds.isel(valid_time=np.flatnonzero(keep))


def canonicalize(ds: xr.Dataset, path: Path) -> dict[str, xr.DataArray]:
    """One file's variables with canonical names, ``time`` stamps, lat ascending, lon ±180.

    Time stamps are still the file's own (hourly or daily); see :func:`to_daily`.
    """
    if "step" in ds.dims:
        ds = _forecast_to_valid_time(ds, path)
    tname = _time_name(ds, path)
    if ds[tname].ndim == 0:
        ds = ds.expand_dims(tname)
    if "expver" in ds.dims:  # old layout mixing ERA5 (1) and ERA5T (5)
        first = ds.isel(expver=0)
        for k in range(1, ds.sizes["expver"]):
            first = first.combine_first(ds.isel(expver=k))
        ds = first
    drop = [
        c for c in ("number", "expver", "step", "surface", "time") if c in ds.coords and c != tname
    ]
    ds = ds.drop_vars(drop).rename({tname: "time"})
    rename = {a: b for a, b in (("latitude", "lat"), ("longitude", "lon")) if a in ds.dims}
    ds = ds.rename(rename)
    for dim in ("lat", "lon"):
        if dim not in ds.dims:
            raise InputDataError(f"ERA5-Land file {path} has no '{dim}' (latitude/longitude) axis")
    if ds.indexes["time"].has_duplicates:
        raise InputDataError(f"ERA5-Land file {path} repeats time stamps")
    lon = ds["lon"].values
    if np.any(lon > 180):
        ds = ds.assign_coords(lon=((lon + 180.0) % 360.0) - 180.0)
    ds = _ascending(ds, ("time", "lat", "lon"))
    out = {}
    for name in ds.data_vars:
        canon = canonical_name("era5land", str(name))
        if canon is None:
            canon = canonical_name("era5land", str(ds[name].attrs.get("GRIB_shortName", "")))
        if canon is not None:
            out[canon] = ds[name]
    return out


def _ascending(ds: xr.Dataset, dims: tuple[str, ...]) -> xr.Dataset:
    """``ds`` with each of ``dims`` in ascending order: as ``sortby``, but an axis already
    ascending is kept and a descending one (CDS latitudes) reversed as a view, since
    ``sortby`` reindexes every variable even when nothing moves."""
    for dim in dims:
        index = ds.indexes[dim]
        if index.is_monotonic_increasing:
            continue
        if index.is_monotonic_decreasing:
            ds = ds.isel({dim: slice(None, None, -1)})
        else:
            ds = ds.sortby(dim)
    return ds


def _check_units(name: str, da: xr.DataArray, path: Path) -> None:
    units = str(da.attrs.get("units", "")).strip()
    if name.startswith("swvl") and units not in ("", "m3 m-3", "m**3 m**-3", "m^3 m^-3"):
        raise InputDataError(f"{path}: variable {name} has units '{units}', expected m3 m-3")
    if name.startswith(("stl", "t2m")) and units not in ("", "K"):
        raise InputDataError(f"{path}: variable {name} has units '{units}', expected K")


def to_daily(name: str, da: xr.DataArray) -> xr.DataArray:
    """Daily values of one variable (see the module docstring for the rules)."""
    times = pd.DatetimeIndex(da["time"].values)
    if name in ACCUMULATED:
        at00 = da.isel(time=np.flatnonzero(times.hour == 0))
        day = pd.DatetimeIndex(at00["time"].values) - pd.Timedelta(days=1)
        return at00.assign_coords(time=day.normalize())
    if times.size > 1 and (np.diff(times.values) < np.timedelta64(1, "D")).any():
        return da.resample(time="1D").mean()
    return da.assign_coords(time=times.normalize())


@dataclass
class Era5LandArchive:
    """All ERA5-Land files of a folder, read per period into canonical daily fields."""

    paths: list[Path]

    @classmethod
    def from_folder(cls, folder: str | Path) -> Era5LandArchive:
        folder = Path(folder)
        paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".nc", *GRIB_SUFFIXES))
        if not paths:
            raise InputDataError(f"no ERA5-Land NetCDF/GRIB files in {folder}")
        return cls(paths)

    def load(
        self, start, end, variables: list[str], points=None, allow_missing_days: bool = False
    ) -> xr.Dataset:
        """Canonical daily dataset for days ``start..end`` (inclusive).

        Parameters
        ----------
        variables
            Canonical names needed; a missing one is an :class:`InputDataError`.
        points
            Optional ``(lat_index, lon_index)`` integer arrays: only those cells are
            kept (dimension ``point``), which keeps station sampling small.
        allow_missing_days
            A day that some variable lacks is an error (False), or NaN with the day and
            its variables listed in ``attrs["missing_days"]`` (``{"YYYY-MM-DD": [names]}``),
            so that production can fail that day alone.
        """
        start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        pieces: dict[str, list[xr.DataArray]] = {v: [] for v in variables}
        grid = None
        for path in self.paths:
            fields = {}
            for ds in _open(path):
                fields.update(canonicalize(ds, path))
            for name, da in fields.items():
                if name not in pieces:
                    continue
                t = pd.DatetimeIndex(da["time"].values)
                if t.max() < start or t.min() > end + pd.Timedelta(days=1):
                    continue
                _check_units(name, da, path)
                this_grid = (da["lat"].values, da["lon"].values)
                if grid is None:
                    grid = this_grid
                elif not (
                    np.array_equal(grid[0], this_grid[0]) and np.array_equal(grid[1], this_grid[1])
                ):
                    raise InputDataError(f"{path}: grid differs from the other ERA5-Land files")
                daily = to_daily(name, da)
                daily = daily.sel(time=slice(start, end))
                if points is not None:
                    daily = daily.isel(
                        lat=xr.DataArray(points[0], dims="point"),
                        lon=xr.DataArray(points[1], dims="point"),
                    )
                pieces[name].append(daily.astype(np.float32).load())
        days = pd.date_range(start, end, freq="D")
        out = {}
        gaps: dict[str, list[str]] = {}
        for name, parts in pieces.items():
            if not parts:
                raise InputDataError(
                    f"variable '{name}' not found in the ERA5-Land files for "
                    f"{start.date()}..{end.date()} ({len(self.paths)} files searched)"
                )
            da = xr.concat(parts, dim="time")
            idx = pd.DatetimeIndex(da["time"].values)
            if idx.has_duplicates:
                dup = idx[idx.duplicated()][0]
                raise InputDataError(f"variable '{name}': day {dup.date()} appears in two files")
            da = da.sortby("time")
            missing = days.difference(pd.DatetimeIndex(da["time"].values))
            if len(missing) and not allow_missing_days:
                raise InputDataError(
                    f"variable '{name}': {len(missing)} day(s) missing in the ERA5-Land files, "
                    f"first {missing[0].date()}"
                )
            for day in missing:
                gaps.setdefault(f"{day:%Y-%m-%d}", []).append(name)
            out[name] = da.reindex(time=days)
        ds = xr.Dataset(out)
        ds.attrs["source"] = "ERA5-Land"
        ds.attrs["missing_days"] = gaps
        return ds
