"""ERA5-Land reader: CDS NetCDF (old and new layouts), GRIB and CDS zips → canonical daily fields.

Canonical means: dimensions ``(time, lat, lon)``, latitude ascending, longitude in
−180..180, one value per day, canonical names and units from ``variables.yaml``.

* States (soil moisture/temperature, t2m, LAI) are daily means of whatever the file
  holds: hourly values are averaged; files from the CDS daily-statistics service
  (``derived-era5-land-daily-statistics``) are taken as they are when their statistic is
  ``daily_mean``, and refused for any other statistic.
* Accumulations (tp, e, pev, ssrd, strd) accumulate from 00 UTC in the hourly dataset
  ``reanalysis-era5-land``, so the 00 UTC value of day d+1 is day d's total: only 00 UTC
  values are used, stamped back by one day. This works for hourly files and for files
  holding only the 00 UTC steps. The daily-statistics service gives no daily total for
  ERA5-Land accumulations (ECMWF, "ERA5 family post-processed daily statistics
  documentation", Table 1: accumulated parameters are not available for ERA5-Land), so an
  accumulation in such a file is refused with a message saying what to download instead.
* The old layout's ``expver`` dimension (ERA5 and ERA5T mixed) is merged, preferring the
  final release (expver 1) where both exist.
* GRIB (read through cfgrib, which never writes an index beside the file here): soil
  layers sit on level type ``depthBelowLandLayer`` (GRIB1 level type 112) with one scalar
  level coordinate per layer, so each variable is taken from its own hypercube and
  checked against its layer's top depth.
* The file kind comes from its first bytes, not its suffix: a CDS zip of per-stream
  NetCDF files saved as ``.nc`` is read member by member, in memory.
"""

from __future__ import annotations

import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from smci_gpu.errors import InputDataError
from smci_gpu.variables import ACCUMULATED, ERA5LAND_LAYERS_CM, canonical_name, canonical_units

#: Held by every thread of this process that opens a NetCDF through netCDF4-python while
#: another may: netCDF-C and HDF5 as the wheels ship them are not thread-safe (a day read
#: on produce's reader thread while its writer thread closed a file crashed the process).
NETCDF_LOCK = threading.RLock()

GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb2")
#: Suffixes the folder scan picks up; the content, not the suffix, decides how to read.
ERA5_SUFFIXES = (".nc", ".nc4", ".netcdf", ".zip", *GRIB_SUFFIXES)

_MAGIC = {
    b"PK\x03\x04": "zip",
    b"GRIB": "grib",
    b"CDF\x01": "netcdf",
    b"CDF\x02": "netcdf",
    b"CDF\x05": "netcdf",
    b"\x89HDF": "netcdf",  # NetCDF4 is HDF5
}
#: Global attributes that mark a file from the CDS daily-statistics service.
_STATISTIC_KEYS = ("statistic", "daily_statistic")
#: Accepted unit spellings besides the canonical one (ecCodes and CDS NetCDF spellings).
_UNIT_SYNONYMS = {"m": ("m of water equivalent",)}


def file_kind(head: bytes) -> str | None:
    """``"zip"``, ``"grib"``, ``"netcdf"`` or None from a file's first bytes (magic numbers:
    ZIP local header ``PK\\x03\\x04``, GRIB indicator section ``GRIB``, NetCDF classic
    ``CDF\\x01|\\x02|\\x05``, NetCDF4/HDF5 signature ``\\x89HDF``)."""
    return _MAGIC.get(head[:4])


def _open(path: Path) -> list[tuple[str, xr.Dataset]]:
    """The file's datasets, each with the label error messages use for it.

    NetCDF gives one dataset; GRIB one per hypercube (cfgrib splits states and
    accumulations, and each soil layer's scalar level); a zip one or more per member.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError as exc:
        raise InputDataError(f"ERA5-Land file {path} does not exist") from exc
    except PermissionError as exc:
        raise InputDataError(f"ERA5-Land file {path} is not readable (permission denied)") from exc
    if not head:
        raise InputDataError(f"ERA5-Land file {path} is empty")
    kind = file_kind(head)
    if kind == "zip":
        return _open_zip(path)
    label = str(path)
    if kind == "grib":
        return [(label, ds) for ds in _guarded(label, _open_grib, path)]
    return [(label, _guarded(label, _open_netcdf_file, path))]


def _guarded(label: str, opener, *args):
    """``opener(*args)``; any reader failure becomes one :class:`InputDataError` naming
    ``label``."""
    try:
        return opener(*args)
    except InputDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - netCDF/HDF5/ecCodes raise many types
        detail = " ".join(str(exc).split())  # one line, whatever the library printed
        raise InputDataError(
            f"ERA5-Land file {label} is not a readable NetCDF/GRIB file ({detail})"
        ) from exc


def _open_netcdf_file(path: Path) -> xr.Dataset:
    """Lazily: an hourly China month is ~10 GB, read one selected variable at a time."""
    return xr.open_dataset(path, engine="netcdf4")


def _open_netcdf_bytes(name: str, data: bytes) -> xr.Dataset:
    """A NetCDF (classic or 4) held in memory: netCDF4 opens it without a file."""
    import netCDF4

    nc = netCDF4.Dataset(name, mode="r", memory=data)
    return xr.open_dataset(xr.backends.NetCDF4DataStore(nc))


def _open_grib(path: Path, load: bool = False) -> list[xr.Dataset]:
    """cfgrib hypercubes (read into memory with ``load``, e.g. before ``path`` is removed).

    ``indexpath`` must travel in ``backend_kwargs``: ``cfgrib.open_datasets(path,
    backend_kwargs={}, **kwargs)`` builds its file index from ``backend_kwargs`` only and
    otherwise writes ``<file>.<hash>.idx`` beside the file. The index goes to a private
    temporary folder instead of being skipped: cfgrib filters the file once per parameter,
    and without an index each filter scans every message again (about 10 times slower).
    """
    import warnings

    import cfgrib

    with tempfile.TemporaryDirectory(prefix="smci-gribidx-") as tmp:
        index = str(Path(tmp) / "{short_hash}.idx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # xarray's merge defaults, in cfgrib
            datasets = cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": index})
    return [ds.load() for ds in datasets] if load else datasets


def _open_zip(path: Path) -> list[tuple[str, xr.Dataset]]:
    """Every NetCDF/GRIB member of a CDS zip (e.g. ``data_stream-oper_stepType-instant.nc``
    and ``data_stream-oper_stepType-accum.nc``), read without extracting beside it."""
    out: list[tuple[str, xr.Dataset]] = []
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise InputDataError(
            f"ERA5-Land file {path} is a damaged zip archive ({exc}); download it again"
        ) from exc
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            label = f"{path} (zip member {info.filename})"
            data = _guarded(label, archive.read, info)
            kind = file_kind(data[:8])
            if kind == "netcdf":
                out.append((label, _guarded(label, _open_netcdf_bytes, info.filename, data)))
            elif kind == "grib":
                out.extend((label, ds) for ds in _guarded(label, _grib_bytes, data))
    if not out:
        raise InputDataError(
            f"ERA5-Land file {path} is a zip archive without NetCDF or GRIB members; "
            "put the CDS download's .nc/.grib files (or the zip the CDS delivered) there"
        )
    return out


def _grib_bytes(data: bytes) -> list[xr.Dataset]:
    """GRIB held in memory: cfgrib needs a file, so it goes to a private temporary folder
    (never the input folder) and is loaded before the folder is removed."""
    with tempfile.TemporaryDirectory(prefix="smci-grib-") as tmp:
        member = Path(tmp) / "member.grib"
        member.write_bytes(data)
        return _open_grib(member, load=True)


def _time_axis(ds: xr.Dataset, label: str) -> xr.Dataset:
    """``ds`` with one time dimension, named ``time``, holding valid times.

    GRIB hypercubes come as forecasts ``(time, step)`` (accumulations), as analyses with
    a scalar ``step`` and ``valid_time`` along ``time``, or with a scalar time; CDS
    NetCDF has ``valid_time`` (new) or ``time`` (old) as its dimension.
    """
    if "step" in ds.dims:
        ds = _forecast_to_valid_time(ds, label)
    elif "valid_time" in ds.coords and "valid_time" not in ds.dims:
        vt = ds["valid_time"]
        if vt.ndim == 0:
            ds = ds.drop_vars([c for c in ("time",) if c in ds.coords and c not in ds.dims])
            ds = ds.expand_dims("valid_time")
        elif vt.ndim == 1:
            ds = ds.swap_dims({vt.dims[0]: "valid_time"})
    for name in ("valid_time", "time"):
        if name in ds.dims:
            drop = [c for c in ds.coords if c in ("valid_time", "time") and c != name]
            return ds.drop_vars(drop).rename({name: "time"})
    raise InputDataError(f"ERA5-Land file {label} has no 'valid_time' or 'time' dimension")


def _forecast_to_valid_time(ds: xr.Dataset, label: str) -> xr.Dataset:
    """GRIB forecasts ``(time, step, lat, lon)`` (accumulations) → one ``valid_time`` axis.

    Every (start, step) pair becomes its valid time; pairs that are all NaN (steps a
    message set does not hold) are dropped.
    """
    if "valid_time" not in ds.coords:
        raise InputDataError(f"ERA5-Land file {label} has forecast steps but no valid_time")
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


def _check_layer(canon: str, ds: xr.Dataset, label: str) -> None:
    """A soil variable on ``depthBelowLandLayer`` must sit at its own layer's top depth
    (ecCodes ``level`` = ``topLevel``: cm in GRIB1, m in GRIB2); cfgrib gives it as a
    scalar coordinate."""
    if canon not in _LAYER_OF or "depthBelowLandLayer" not in ds.coords:
        return
    level = ds["depthBelowLandLayer"]
    if level.ndim:
        return  # a level dimension: handled (refused) with the other extra dimensions
    top_cm = ERA5LAND_LAYERS_CM[_LAYER_OF[canon]][0]
    if not np.isclose(float(level), top_cm) and not np.isclose(float(level), top_cm / 100.0):
        raise InputDataError(
            f"ERA5-Land file {label}: variable '{canon}' is on depthBelowLandLayer "
            f"{float(level):g}, but its ERA5-Land layer starts at {top_cm:g} cm"
        )


# swvlN and stlN share layer N's depths (ECMWF IFS documentation, Part IV: 0-7, 7-28,
# 28-100, 100-289 cm).
_LAYER_OF = {f"{v}{k}": f"swvl{k}" for v in ("swvl", "stl") for k in range(1, 5)}


def daily_statistic(ds: xr.Dataset) -> str | None:
    """The CDS daily statistic a file holds (``"daily_mean"``, ``"daily_maximum"``, …), or
    None for hourly data.

    Files from ``derived-era5-land-daily-statistics`` carry it as a global attribute
    (``statistic``/``daily_statistic``); a ``frequency`` of one day without a named
    statistic is reported as ``"unknown"``.
    """
    for key in _STATISTIC_KEYS:
        if key in ds.attrs:
            return str(ds.attrs[key]).strip().lower()
    frequency = str(ds.attrs.get("frequency", "")).strip().lower()
    if frequency in ("1d", "1_daily", "daily", "day"):
        return "unknown"
    return None


def canonicalize(ds: xr.Dataset, path: Path | str) -> dict[str, xr.DataArray]:
    """One dataset's variables with canonical names, ``time`` stamps, lat ascending, lon ±180.

    Parameters
    ----------
    ds
        One CDS NetCDF dataset or one cfgrib hypercube.
    path
        The file (or ``file (zip member …)`` label) named in error messages.

    Returns
    -------
    dict
        Canonical name → ``(time, lat, lon)`` DataArray with the file's own time stamps
        (hourly or daily; see :func:`to_daily`); a file from the daily-statistics service
        marks each with ``attrs["cds_daily_statistic"]``.

    Raises
    ------
    InputDataError
        No time or latitude/longitude axis, repeated time stamps, a soil variable on
        another layer's depth, or an extra dimension that is not a single level.
    """
    label = str(path)
    statistic = daily_statistic(ds)
    ds = _time_axis(ds, label)
    if "expver" in ds.dims:  # old layout mixing ERA5 (1) and ERA5T (5)
        first = ds.isel(expver=0)
        for k in range(1, ds.sizes["expver"]):
            first = first.combine_first(ds.isel(expver=k))
        ds = first
    rename = {a: b for a, b in (("latitude", "lat"), ("longitude", "lon")) if a in ds.dims}
    ds = ds.rename(rename)
    for dim in ("lat", "lon"):
        if dim not in ds.dims:
            raise InputDataError(f"ERA5-Land file {label} has no '{dim}' (latitude/longitude) axis")
    if ds.indexes["time"].has_duplicates:
        raise InputDataError(f"ERA5-Land file {label} repeats time stamps")
    lon = ds["lon"].values
    if np.any(lon > 180):
        ds = ds.assign_coords(lon=((lon + 180.0) % 360.0) - 180.0)
    ds = _ascending(ds, ("time", "lat", "lon"))
    out = {}
    for name in ds.data_vars:
        da = ds[name]
        canon = canonical_name("era5land", str(name))
        if canon is None:
            canon = canonical_name("era5land", str(da.attrs.get("GRIB_shortName", "")))
        if canon is None:
            continue
        _check_layer(canon, ds, label)
        out[canon] = _plain(canon, da, label, statistic)
    return out


def _plain(canon: str, da: xr.DataArray, label: str, statistic: str | None) -> xr.DataArray:
    """``da`` as ``(time, lat, lon)`` with no other coordinates (GRIB level, ``number``,
    ``expver``, ``step``…), so variables from different hypercubes combine."""
    extra = [d for d in da.dims if d not in ("time", "lat", "lon")]
    for dim in extra:
        if da.sizes[dim] != 1:
            raise InputDataError(
                f"ERA5-Land file {label}: variable '{canon}' has {da.sizes[dim]} values "
                f"along '{dim}'; expected one field per time (one level, one member)"
            )
    da = da.squeeze(extra, drop=True).transpose("time", "lat", "lon")
    da = da.drop_vars([c for c in da.coords if c not in ("time", "lat", "lon")])
    if statistic is not None:
        da.attrs = {**da.attrs, "cds_daily_statistic": statistic}
    return da.rename(canon)


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


def _unit_key(units: str) -> str:
    """Units without spelling differences: ``m**3 m**-3`` = ``m^3 m^-3`` = ``m3 m-3``."""
    return " ".join(units.replace("**", "").replace("^", "").split())


def _check_units(name: str, da: xr.DataArray, label: str) -> None:
    """The variable's ``units`` attribute must be its canonical unit (any ecCodes/CF
    spelling) or absent (CDO-converted files may drop it)."""
    units = str(da.attrs.get("units", "")).strip()
    want = canonical_units("era5land", name)
    accepted = {_unit_key(want), *(_unit_key(u) for u in _UNIT_SYNONYMS.get(want, ()))}
    if units and _unit_key(units) not in accepted:
        raise InputDataError(f"{label}: variable {name} has units '{units}', expected {want}")


def _check_statistic(name: str, da: xr.DataArray, label: str) -> None:
    """Refuse what a daily-statistics file cannot give (see the module docstring)."""
    statistic = da.attrs.get("cds_daily_statistic")
    if statistic is None:
        return
    if name in ACCUMULATED:
        raise InputDataError(
            f"{label}: variable '{name}' comes from the CDS daily-statistics service "
            f"(statistic '{statistic}'), which gives no daily total for ERA5-Land "
            f"accumulations; download '{name}' from the hourly dataset 'reanalysis-era5-land' "
            "at time 00:00 instead (the 00 UTC value of day d+1 is day d's total)"
        )
    if statistic != "daily_mean":
        raise InputDataError(
            f"{label}: variable '{name}' holds the daily statistic '{statistic}'; the "
            "engine needs 'daily_mean' (or hourly data) for ERA5-Land states"
        )


def to_daily(name: str, da: xr.DataArray) -> xr.DataArray:
    """Daily values of one variable (see the module docstring for the rules).

    Parameters
    ----------
    name
        Canonical name: an accumulation (``ACCUMULATED``) or a state.
    da
        ``(time, …)`` with the file's own time stamps (hourly or daily).

    Returns
    -------
    xarray.DataArray
        One value per day, stamped at the day's 00:00: for accumulations the next day's
        00 UTC value, for states the mean of the day's stamps.
    """
    times = pd.DatetimeIndex(da["time"].values)
    if name in ACCUMULATED:
        at00 = da.isel(time=np.flatnonzero(times.hour == 0))
        day = pd.DatetimeIndex(at00["time"].values) - pd.Timedelta(days=1)
        return at00.assign_coords(time=day.normalize())
    if times.size > 1 and (np.diff(times.values) < np.timedelta64(1, "D")).any():
        return da.resample(time="1D").mean()
    return da.assign_coords(time=times.normalize())


def read_file(path: str | Path) -> dict[str, list[tuple[str, xr.DataArray]]]:
    """Every ERA5-Land variable of one file, canonical (see :func:`canonicalize`).

    Returns
    -------
    dict
        Canonical name → list of ``(label, DataArray)``, one per dataset holding it
        (cfgrib may split one variable over several hypercubes).

    Raises
    ------
    InputDataError
        The file is missing, empty, unreadable or not NetCDF/GRIB/zip of them.
    """
    path = Path(path)
    fields: dict[str, list[tuple[str, xr.DataArray]]] = {}
    for label, ds in _open(path):
        for name, da in canonicalize(ds, label).items():
            fields.setdefault(name, []).append((label, da))
    return fields


def _same_grid(grid, da: xr.DataArray, label: str):
    """The grid every file shares (the first one seen); another grid is an error."""
    this = (da["lat"].values, da["lon"].values)
    if grid is None:
        return this
    if not (np.array_equal(grid[0], this[0]) and np.array_equal(grid[1], this[1])):
        raise InputDataError(f"{label}: grid differs from the other ERA5-Land files")
    return grid


def _one_series(name: str, found: list[tuple[str, xr.DataArray]], path: Path) -> xr.DataArray:
    """One file's pieces of a variable (cfgrib hypercubes, zip members) as one time series."""
    if len(found) == 1:
        return found[0][1]
    da = xr.concat([d for _, d in found], dim="time", join="exact")
    if da.indexes["time"].has_duplicates:
        raise InputDataError(f"ERA5-Land file {path} repeats time stamps of '{name}'")
    return da.sortby("time")


def _period_stamps(name: str, da: xr.DataArray, start, end) -> xr.DataArray:
    """Only the stamps that days ``start..end`` need, still unread: a state's stamps in
    ``[start, end + 1 day)``, an accumulation's 00 UTC stamps in ``(start, end + 1 day]``.

    So a day's values are read and reduced without reading the rest of the file (an hourly
    China month is ~0.7 GB per variable; one day of it ~23 MB).
    """
    times = pd.DatetimeIndex(da["time"].values)
    stop = end + pd.Timedelta(days=1)
    if name in ACCUMULATED:
        keep = (times.hour == 0) & (times > start) & (times <= stop)
    else:
        keep = (times >= start) & (times < stop)
    return da.isel(time=np.flatnonzero(keep))


#: First and last time stamp of each file, by path, size and modification time.
_SPANS: dict[tuple, tuple[pd.Timestamp, pd.Timestamp] | None] = {}


def _time_span(path: Path) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """A file's first and last valid time, read once per process while the file is
    unchanged (None when it cannot be read: the caller's read then names the problem).

    A day's read skips the files that hold none of its stamps instead of opening every
    monthly file of the folder again.
    """
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SPANS:
        try:
            stamps = [
                pd.DatetimeIndex(np.ravel(_time_axis(ds, label)["time"].values))
                for label, ds in _open(path)
            ]
            stamps = [t for t in stamps if t.size]
            _SPANS[key] = (
                (min(t.min() for t in stamps), max(t.max() for t in stamps)) if stamps else None
            )
        except InputDataError:
            _SPANS[key] = None
    return _SPANS[key]


#: Canonical variable names and the grid of each file, by path, size and modification time.
_CONTENTS: dict[tuple, tuple[set[str], np.ndarray, np.ndarray]] = {}


def _contents(path: Path) -> tuple[set[str], np.ndarray, np.ndarray]:
    """A file's canonical variable names and its (lat, lon), read once per process while
    the file is unchanged."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _CONTENTS:
        fields = _guarded(str(path), read_file, path)
        first = next(iter(fields.values()))[0][1] if fields else None
        empty = np.array([], np.float64)
        grid = (first["lat"].values, first["lon"].values) if first is not None else (empty, empty)
        _CONTENTS[key] = (set(fields), *grid)
    return _CONTENTS[key]


@dataclass
class Era5LandArchive:
    """All ERA5-Land files of a folder, read per period into canonical daily fields."""

    paths: list[Path]

    @classmethod
    def from_folder(cls, folder: str | Path) -> Era5LandArchive:
        """The folder's NetCDF, GRIB and zip files (by suffix; hidden files are skipped).

        Raises
        ------
        InputDataError
            The folder holds no such file.
        """
        folder = Path(folder)
        paths = sorted(
            p
            for p in folder.glob("*")
            if p.suffix.lower() in ERA5_SUFFIXES and not p.name.startswith(".")
        )
        if not paths:
            raise InputDataError(f"no ERA5-Land NetCDF/GRIB/zip files in {folder}")
        return cls(paths)

    def holds_any(self, start, end) -> bool:
        """Whether any file holds a stamp that days ``start..end`` use (a file that cannot be
        read counts as holding them: reading it names the problem)."""
        start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        stop = end + pd.Timedelta(days=1)
        spans = [_time_span(p) for p in self.paths]
        return any(s is None or (s[1] >= start and s[0] <= stop) for s in spans)

    def period(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last valid time held by the files (time stamps, not days).

        Raises
        ------
        InputDataError
            A file cannot be read or has no time axis.
        """
        stamps: list[pd.Timestamp] = []
        for path in self.paths:
            for label, ds in _open(path):
                t = pd.DatetimeIndex(np.ravel(_time_axis(ds, label)["time"].values))
                if t.size:
                    stamps += [t.min(), t.max()]
        if not stamps:
            raise InputDataError(f"no time stamps in the ERA5-Land files {self.paths}")
        return min(stamps), max(stamps)

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

        Returns
        -------
        xarray.Dataset
            ``(time, lat, lon)`` (or ``(time, point)``) float32 variables in canonical units.
        """
        start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        pieces: dict[str, list[xr.DataArray]] = {v: [] for v in variables}
        grid = None
        for path in self.paths:
            span = _time_span(path)
            if span is not None and (span[1] < start or span[0] > end + pd.Timedelta(days=1)):
                continue  # holds nothing of the period: not opened again
            # Values are read lazily: a file damaged past its header fails here, named.
            grid = _guarded(str(path), self._read_into, path, pieces, grid, start, end, points)
        return self._assemble(pieces, start, end, allow_missing_days)

    def _read_into(self, path: Path, pieces: dict, grid, start, end, points):
        """Append ``path``'s daily pieces of the wanted variables; return the shared grid."""
        for name, found in read_file(path).items():
            if name not in pieces:
                continue
            for label, da in found:
                _check_statistic(name, da, label)
                _check_units(name, da, label)
                grid = _same_grid(grid, da, label)
            da = _one_series(name, found, path)
            t = pd.DatetimeIndex(da["time"].values)
            if t.max() < start or t.min() > end + pd.Timedelta(days=1):
                continue
            pieces[name].append(self._daily(name, da, start, end, points))
        return grid

    @staticmethod
    def _daily(name, da, start, end, points) -> xr.DataArray:
        daily = to_daily(name, _period_stamps(name, da, start, end)).sel(time=slice(start, end))
        if points is not None:
            daily = daily.isel(
                lat=xr.DataArray(points[0], dims="point"),
                lon=xr.DataArray(points[1], dims="point"),
            )
        return daily.astype(np.float32).load()

    def _holding(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The grid (lat, lon) of a file that holds variable ``name``, or None if none does.

        A day read alone (production's one-day loads) can find no piece of a variable that
        other days have; that is a missing day, not a missing variable.
        """
        for path in self.paths:
            names, lat, lon = _contents(path)
            if name in names:
                return lat, lon
        return None

    def _assemble(self, pieces, start, end, allow_missing_days) -> xr.Dataset:
        days = pd.date_range(start, end, freq="D")
        out = {}
        gaps: dict[str, list[str]] = {}
        for name, parts in pieces.items():
            held = self._holding(name) if not parts and allow_missing_days else None
            if held is not None:  # the variable exists, none of these days has it
                lat, lon = held
                nan = np.full((days.size, lat.size, lon.size), np.nan, np.float32)
                out[name] = xr.DataArray(nan, {"time": days, "lat": lat, "lon": lon}, name=name)
                for day in days:
                    gaps.setdefault(f"{day:%Y-%m-%d}", []).append(name)
                continue
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
