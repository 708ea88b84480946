"""LAI composites and static maps (GeoTIFF, NetCDF, HDF4-EOS) → the target grid.

Every file is read as stored (raw counts), decoded with its own packing attributes
(``scale_factor``, ``add_offset``, ``valid_range``, ``_FillValue``, nodata) or, where it
has none, with the defaults of its source in ``variables.yaml``; every value outside the
valid range becomes NaN *before* any averaging. Continuous maps are then averaged
(NaN-aware) and land cover takes the block majority, never an average. When a source is
on the same lat/lon lattice at an integer fraction of the target resolution, the engine's
block kernels do the work; otherwise rasterio reprojects it from its own CRS (e.g. MODIS
sinusoidal tiles) with ``average`` / ``mode`` resampling.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smci_gpu import kernels
from smci_gpu.errors import InputDataError
from smci_gpu.grid import RegularGrid
from smci_gpu.io import modis
from smci_gpu.variables import STATIC_FEATURES, unit_key, variable_table

#: File name endings read as LAI composites or static maps.
RASTER_SUFFIXES = (".tif", ".tiff", ".nc", ".hdf")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


# --------------------------------------------------------------------------- one band


@dataclass
class Band:
    """One band as stored, with the packing attributes the file declares (None: absent).

    ``raw`` is north-up ``(rows, cols)`` in the stored dtype; ``transform``/``crs`` are
    rasterio's.
    """

    path: Path
    raw: np.ndarray
    transform: Any
    crs: Any
    nodata: float | None
    scale: float | None
    offset: float | None
    valid_range: tuple[float, float] | None
    fill: float | None
    units: str | None

    @property
    def packed(self) -> bool:
        """Integer storage: counts to be scaled (floating storage is taken as physical)."""
        return np.issubdtype(self.raw.dtype, np.integer)

    def invalid(self) -> np.ndarray:
        """True where the stored value is nodata, ``_FillValue`` or outside ``valid_range``."""
        raw = self.raw
        bad = ~np.isfinite(raw) if not self.packed else np.zeros(raw.shape, bool)
        for code in (self.nodata, self.fill):
            if code is not None and np.isfinite(code):
                bad |= raw == code
        if self.valid_range is not None:
            bad |= (raw < self.valid_range[0]) | (raw > self.valid_range[1])
        return bad


def _numbers(text: str) -> list[float]:
    return [float(x) for x in _NUMBER.findall(text)]


def _attributes(src) -> dict[str, str]:
    """Dataset then band metadata, keys without a ``VAR#`` prefix (GDAL's NetCDF/HDF4)."""
    tags = {**src.tags(), **src.tags(1)}
    return {k.split("#")[-1]: v for k, v in tags.items()}


def _pick_subdataset(path: Path, subdatasets: list[str], names) -> str:
    wanted = {n.lower() for n in names}
    for sub in subdatasets:
        if sub.rsplit(":", 1)[-1].lower() in wanted:
            return sub
    fields = ", ".join(s.rsplit(":", 1)[-1] for s in subdatasets)
    raise InputDataError(f"raster {path} has no variable named {sorted(names)}; it has {fields}")


def _has_hdf4() -> bool:
    import rasterio

    with rasterio.Env() as env:
        return "HDF4" in env.drivers()


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputDataError(f"raster {path} does not exist")
    if path.stat().st_size == 0:
        raise InputDataError(f"raster {path} is empty")
    if path.suffix.lower() == ".hdf" and not _has_hdf4():
        raise InputDataError(modis.hdf4_missing_message(path))


def _open(path: Path, names):
    """The rasterio dataset holding the variable (a NetCDF/HDF4 subdataset if needed)."""
    import rasterio

    with warnings.catch_warnings():  # a NetCDF/HDF4 container has no geotransform itself
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        src = rasterio.open(path)
    if src.count == 0 and src.subdatasets:
        sub = _pick_subdataset(path, src.subdatasets, names)
        src.close()
        src = rasterio.open(sub)
    return src


def _cf_latitude_longitude(path: Path) -> bool:
    """A NetCDF without a grid mapping whose axes are CF latitude and longitude (units
    ``degrees_north``/``degrees_east``): CF's latitude_longitude grid, taken as WGS 84."""
    if path.suffix.lower() != ".nc":
        return False
    import netCDF4

    from smci_gpu.io.era5land import NETCDF_LOCK

    try:
        with NETCDF_LOCK, netCDF4.Dataset(path) as nc:
            units = {str(getattr(v, "units", "")).lower() for v in nc.variables.values()}
    except OSError:
        return False
    return {"degrees_north", "degrees_east"} <= units


def read_band(path: str | Path, names=()) -> Band:
    """Read the first band of a raster (or its variable ``names``) raw, with its attributes.

    Parameters
    ----------
    path
        GeoTIFF, NetCDF or HDF4-EOS file (HDF4 needs GDAL's HDF4 driver).
    names
        Variable names to look for when the file holds several (NetCDF, HDF4-EOS).

    Raises
    ------
    InputDataError
        Missing, empty, unreadable or CRS-less file; HDF4 without the driver (with the
        ``gdal_translate`` line that converts it); no variable of that name.
    """
    path = Path(path)
    _check_file(path)
    try:
        with _open(path, names) as src:
            attrs = _attributes(src)
            raw = src.read(1)
            crs, transform, nodata = src.crs, src.transform, src.nodata
            gdal_scale, gdal_offset = src.scales[0], src.offsets[0]
            units = attrs.get("units") or (src.units[0] if src.units else None) or None
    except InputDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - rasterio/GDAL raise several types
        raise InputDataError(f"raster {path} could not be read: {exc}") from exc
    if crs is None and _cf_latitude_longitude(path):
        from rasterio.crs import CRS

        crs = CRS.from_epsg(4326)
    if crs is None:
        raise InputDataError(f"raster {path} has no CRS; expected e.g. EPSG:4326")
    scale = _number(attrs, "scale_factor")
    offset = _number(attrs, "add_offset")
    if scale is None and gdal_scale not in (None, 1.0):
        scale = float(gdal_scale)
    if offset is None and gdal_offset not in (None, 0.0):
        offset = float(gdal_offset)
    vr = _numbers(attrs.get("valid_range", ""))
    return Band(
        path,
        raw,
        transform,
        crs,
        None if nodata is None else float(nodata),
        scale,
        offset,
        (vr[0], vr[1]) if len(vr) == 2 else None,
        _number(attrs, "_FillValue"),
        units,
    )


def _number(attrs: dict[str, str], key: str) -> float | None:
    found = _numbers(attrs.get(key, ""))
    return found[0] if found else None


# --------------------------------------------------------------------------- resampling


def _factor(src_res: float, dst_res: float) -> int | None:
    f = dst_res / src_res
    return round(f) if abs(f - round(f)) < 1e-6 and round(f) >= 1 else None


def _aligned_window(data: np.ndarray, transform, crs, grid: RegularGrid):
    """``(window, f)`` when the raster is a lat/lon lattice ``f`` times finer that covers the
    grid (the block kernels do the work), else None."""
    xres, yres = transform.a, -transform.e
    if crs.to_epsg() != 4326 or abs(xres - yres) > 1e-12 or transform.b or transform.d:
        return None
    f = _factor(xres, grid.res)
    left, top = transform.c, transform.f
    right, bottom = left + xres * data.shape[1], top - yres * data.shape[0]
    c0, r0 = (grid.west - left) / xres, (top - grid.north) / xres
    if (
        f is None
        or abs(c0 - round(c0)) > 1e-6
        or abs(r0 - round(r0)) > 1e-6
        or left > grid.west + 1e-9
        or top < grid.north - 1e-9
        or right < grid.east - 1e-9
        or bottom > grid.south + 1e-9
    ):
        return None
    r0, c0 = round(r0), round(c0)
    return data[r0 : r0 + grid.ny * f, c0 : c0 + grid.nx * f][::-1], f


def _grid_window(transform, crs, shape, grid: RegularGrid):
    """Rows/cols of ``grid`` (north-up) that the raster's footprint may touch, or None."""
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds

    box = array_bounds(shape[0], shape[1], transform)  # west, south, east, north
    west, south, east, north = transform_bounds(crs, "EPSG:4326", *box, densify_pts=21)
    if not np.isfinite([west, south, east, north]).all():
        return 0, grid.ny, 0, grid.nx
    if west > east:  # across the antimeridian (e.g. a sinusoidal tile's far corners)
        west, east = -180.0, 180.0
    c0 = max(int(np.floor((west - grid.west) / grid.res)) - 1, 0)
    c1 = min(int(np.ceil((east - grid.west) / grid.res)) + 1, grid.nx)
    r0 = max(int(np.floor((grid.north - north) / grid.res)) - 1, 0)
    r1 = min(int(np.ceil((grid.north - south) / grid.res)) + 1, grid.ny)
    return (r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None


def to_target(
    data: np.ndarray, transform, crs, grid: RegularGrid, categorical: bool, path: Path
) -> np.ndarray:
    """Resample decoded values (north-up, NaN = no data) onto ``grid`` (lat ascending).

    Returns ``(ny, nx)`` float32, NaN where the raster has no valid value. Continuous
    values average the valid cells; categorical values take the majority (``0`` where a
    block has no class on the aligned path).
    """
    aligned = _aligned_window(data, transform, crs, grid)
    if aligned is not None:
        window, f = aligned
        if categorical:
            ints = np.where(np.isfinite(window), window, 0).astype(np.int32)
            if ints.size and 0 <= ints.min() and ints.max() <= 255:
                ints = ints.astype(np.uint8)  # land-cover classes: the 8-bit kernels
            return kernels.block_majority(ints, f, f, nodata=0).astype(np.float32)
        return kernels.block_mean(np.ascontiguousarray(window, dtype=np.float32), f, f)
    out = np.full(grid.shape, np.nan, np.float32)
    win = _grid_window(transform, crs, data.shape, grid)
    if win is None:
        return out
    r0, r1, c0, c1 = win
    north_up = np.full((r1 - r0, c1 - c0), np.nan, np.float32)
    _reproject(data, transform, crs, north_up, grid, r0, c0, categorical, path)
    out[grid.ny - r1 : grid.ny - r0, c0:c1] = north_up[::-1]
    return out


def _reproject(data, transform, crs, dst, grid, r0, c0, categorical, path) -> None:
    from rasterio.enums import Resampling
    from rasterio.transform import from_origin
    from rasterio.warp import reproject

    try:
        reproject(
            np.ascontiguousarray(data, dtype=np.float32),
            dst,
            src_transform=transform,
            src_crs=crs,
            src_nodata=np.nan,
            dst_transform=from_origin(
                grid.west + c0 * grid.res, grid.north - r0 * grid.res, grid.res, grid.res
            ),
            dst_crs="EPSG:4326",
            dst_nodata=np.nan,
            resampling=Resampling.mode if categorical else Resampling.average,
        )
    except Exception as exc:  # noqa: BLE001
        raise InputDataError(f"raster {path} could not be reprojected to the grid: {exc}") from exc


# --------------------------------------------------------------------------- LAI


def lai_source(product: str | None) -> tuple[str, dict]:
    """The LAI source entry of ``variables.yaml`` for a product name (default when None)."""
    entry = variable_table()["lai"]["lai"]
    for name, source in entry["sources"].items():
        if product in source.get("products", (name,)):
            return name, source
    name = entry["default_source"]
    return name, entry["sources"][name]


def decode_lai(band: Band, product: str | None = None) -> np.ndarray:
    """LAI in m2 m-2 (north-up float32), NaN wherever the stored value is not a valid LAI.

    How a file is told apart: integer storage holds counts, decoded with the file's own
    ``scale_factor``/``add_offset``/``valid_range``/``_FillValue`` where it has them and
    otherwise with its source's defaults in ``variables.yaml`` (MCD15A2H: × 0.1, valid
    0–100, 248–255 fill and class codes); floating storage is already m2 m-2 (only a
    declared ``scale_factor``/``add_offset`` is applied). The physical range (0–10) is
    then checked: a map mostly outside it (e.g. counts stored as float) is refused.

    Raises
    ------
    InputDataError
        Most valid values outside the physical range (wrong scale).
    """
    name, source = lai_source(product)
    if band.packed:
        scale = band.scale if band.scale is not None else source["scale_factor"]
        offset = band.offset if band.offset is not None else source["add_offset"]
        if band.valid_range is None:
            band = replace(band, valid_range=tuple(source["valid_range"]))
    else:
        scale = 1.0 if band.scale is None else band.scale
        offset = 0.0 if band.offset is None else band.offset
    bad = band.invalid()
    lai = band.raw.astype(np.float32) * np.float32(scale) + np.float32(offset)
    lai[bad] = np.nan
    return _check_physical(lai, band.path, "lai", variable_table()["lai"]["lai"], name)


def _check_physical(lai: np.ndarray, path: Path, var: str, entry: dict, source: str):
    lo, hi = entry["valid_range"]
    finite = np.isfinite(lai)
    outside = finite & ((lai < lo) | (lai > hi))
    if outside.sum() > 0.5 * max(finite.sum(), 1):
        raise InputDataError(
            f"LAI file {path}: {outside.sum()} of {finite.sum()} values of {var} lie outside "
            f"{lo}–{hi} {entry['units']}; integer files are counts (scale_factor, default "
            f"{entry['sources'][source]['scale_factor']} for {source}), float files must hold "
            "m2 m-2 or declare scale_factor"
        )
    lai[outside] = np.nan  # isolated codes stored as float (e.g. 25.4 for water)
    return lai


def lai_files(folder: str | Path) -> pd.DataFrame:
    """LAI files of a folder: ``path``, ``start`` (composite's first day), ``tile``, ``date``.

    ``date`` is the composite's centre (start + 3.5 days): an 8-day composite stands for
    its period. Several files may share a date (MODIS tiles); :func:`read_lai` mosaics them.

    Raises
    ------
    InputDataError
        No LAI file, or a name without a date (see :func:`smci_gpu.io.modis.parse_name`).
    """
    folder = Path(folder)
    rows = []
    names = [p for p in folder.iterdir() if not p.name.startswith(".")]  # "." : temp files
    paths = [p for p in names if p.suffix.lower() in RASTER_SUFFIXES]
    # A granule converted to GeoTIFF beside its HDF4 original (what the HDF4 error asks for)
    # is one composite: read the GeoTIFF, skip the .hdf.
    converted = {p.with_suffix("").name for p in paths if p.suffix.lower() in (".tif", ".tiff")}
    paths = [
        p for p in paths if not (p.suffix.lower() == ".hdf" and p.with_suffix("").name in converted)
    ]
    for path in sorted(paths):
        g = modis.parse_name(path)
        rows.append({"path": path, "start": g.start, "tile": g.tile, "product": g.product})
    if not rows:
        raise InputDataError(f"no LAI composites ({', '.join(RASTER_SUFFIXES)}) in {folder}")
    df = pd.DataFrame(rows).sort_values(["start", "path"], ignore_index=True)
    df["date"] = df["start"] + pd.Timedelta(hours=84)
    return df


def lai_on_grid(path: Path, grid: RegularGrid, product: str | None = None) -> np.ndarray:
    """One LAI file decoded and averaged onto ``grid`` (``(ny, nx)`` float32, NaN outside)."""
    band = read_band(path, variable_table()["lai"]["lai"]["aliases"] + ["lai"])
    lai = decode_lai(band, product)
    try:
        return to_target(lai, band.transform, band.crs, grid, False, path)
    except InputDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - rasterio/GDAL raise several types
        raise InputDataError(f"raster {path} could not be read: {exc}") from exc


def mosaic_lai(files: pd.DataFrame, grid: RegularGrid) -> np.ndarray:
    """All files of one date (MODIS tiles, or any rasters) onto ``grid``.

    Each file is reprojected from its own CRS; where several give a value for a pixel
    (a pixel on a tile edge, or overlapping files) the result is the mean of their valid
    values: a file with no valid value there does not count.
    """
    total = np.zeros(grid.shape, np.float64)
    count = np.zeros(grid.shape, np.int32)
    for row in files.itertuples():
        lai = lai_on_grid(row.path, grid, row.product)
        ok = np.isfinite(lai)
        total[ok] += lai[ok]
        count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).astype(np.float32)


def _window(dates: np.ndarray, start, end, margin: int) -> slice:
    """The composites covering ``start..end`` plus ``margin`` more each side."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    lo = max(int(np.searchsorted(dates, np.datetime64(start), "right")) - 1 - margin, 0)
    hi = min(int(np.searchsorted(dates, np.datetime64(end), "left")) + 1 + margin, len(dates))
    return slice(lo, hi)


def read_lai(
    folder: str | Path, grid: RegularGrid, start, end, margin: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Composites covering ``start..end`` plus ``margin`` more each side, at 1 km, and dates.

    Returns ``(n_dates, ny, nx)`` float32 m2 m-2 (NaN = no valid LAI) and the composites'
    centre dates (strictly increasing: the tiles of one date are mosaicked).
    """
    df = lai_files(folder)
    dates = np.unique(df.date.values)
    sel = dates[_window(dates, start, end, margin)]
    comps = np.stack([mosaic_lai(df[df.date == d], grid) for d in sel])
    return comps, sel


class LaiComposites:
    """LAI composites on a grid, each read once and held only while a window needs it.

    Production walks the days in order; each day's window (:func:`read_lai`'s) shares
    most composites with the previous day's. :meth:`window` reads the composites it lacks
    and drops those the new window no longer holds, so a China-size run keeps about a
    window of composites (≤ 2 + 2 × margin maps of 130 MB at 30″) instead of a period's.
    A composite is read again when its files change (size or modification time).

    Attributes
    ----------
    reads
        Composites read so far (the files of one date count once).
    """

    def __init__(self) -> None:
        self._held: dict[tuple, np.ndarray] = {}
        self.reads = 0

    def window(
        self, folder: str | Path, grid: RegularGrid, start, end, margin: int = 1
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """As :func:`read_lai`, but a list of ``(ny, nx)`` float32 maps, shared with later
        windows (callers must not write into them)."""
        df = lai_files(folder)
        dates = np.unique(df.date.values)
        sel = dates[_window(dates, start, end, margin)]
        held: dict[tuple, np.ndarray] = {}
        for d in sel:
            files = df[df.date == d]
            stamps = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files.path)
            key = (grid, stamps)
            if key not in self._held:
                self._held[key] = mosaic_lai(files, grid)
                self.reads += 1
            held[key] = self._held[key]
        self._held = held
        return list(held.values()), sel


# --------------------------------------------------------------------------- static maps


#: A static map must give values on at least this share of the product region.
MIN_STATIC_COVERAGE = 0.5


def static_units(name: str, path: Path, file_units: str | None, declared: str | None) -> float:
    """Factor that brings static map ``name`` to its canonical unit.

    The unit is the one declared in the config (``[static] units``), else the file's own
    ``units`` attribute, else the variable table's canonical unit; both given and different
    is an error.

    Raises
    ------
    InputDataError
        Declared and file units disagree, or the unit has no known conversion.
    """
    entry = variable_table()["static"][name]
    canonical = entry["units"]
    if declared and file_units and unit_key(declared) != unit_key(file_units):
        raise InputDataError(
            f"static map {path} says units '{file_units}' but the config declares "
            f"'{declared}' for {name}; remove one of them"
        )
    unit = declared or file_units or canonical
    if unit_key(unit) == unit_key(canonical):
        return 1.0
    factors = {unit_key(u): f for u, f in entry.get("convert", {}).items()}
    if unit_key(unit) not in factors:
        known = ", ".join([canonical, *entry.get("convert", {})])
        raise InputDataError(
            f"static map {path} is in '{unit}', which {name} cannot be converted from; "
            f"known units: {known}"
        )
    return float(factors[unit_key(unit)])


def _check_range(data: np.ndarray, path: Path, name: str, unit_hint: str) -> None:
    entry = variable_table()["static"][name]
    lo, hi = entry["valid_range"]
    finite = data[np.isfinite(data)]
    example = next(iter(entry.get("convert", {})), entry["units"])
    if finite.size and (finite.min() < lo or finite.max() > hi):
        raise InputDataError(
            f"static map {path}: {name} values {finite.min():g}..{finite.max():g} lie outside "
            f"{lo:g}..{hi:g} {entry['units']} ({unit_hint}); declare the file's unit in "
            f'smci.toml, e.g. [static] units = {{ {name} = "{example}" }}, or fix its nodata value'
        )


def _check_classes(data: np.ndarray, path: Path) -> None:
    entry = variable_table()["static"]["landcover"]
    lo, hi = entry["classes"]
    classes = np.unique(data[np.isfinite(data)])
    bad = classes[(classes < lo) | (classes > hi)]
    if bad.size:
        raise InputDataError(
            f"static map {path}: land-cover classes {bad.astype(int).tolist()} are not in the "
            f"{entry['scheme']} scheme ({lo}–{hi}, fill {list(entry['fill_codes'])})"
        )


def _static_path(folder: Path, name: str) -> Path:
    for suffix in (".tif", ".tiff", ".nc"):
        if (folder / f"{name}{suffix}").exists():
            return folder / f"{name}{suffix}"
    return folder / f"{name}.tif"


def static_on_grid(
    path: Path, name: str, grid: RegularGrid, declared_units: str | None = None
) -> np.ndarray:
    """Static map ``name`` from ``path`` on ``grid`` in canonical units, range-checked.

    Returns ``(ny, nx)`` float32 (lat ascending, NaN = no data; land cover: class codes of
    the declared scheme, 0 = no class).

    Raises
    ------
    InputDataError
        Unreadable file, unknown or conflicting unit, values outside the variable's valid
        range after conversion, land-cover classes outside the scheme, or a map that
        covers too little of the product region.
    """
    entry = variable_table()["static"][name]
    band = read_band(path, [name, *entry.get("aliases", ())])
    categorical = entry["kind"] == "categorical"
    bad = band.invalid()
    if categorical:
        bad |= np.isin(band.raw, list(entry.get("fill_codes", {})))
        factor, hint = 1.0, entry["scheme"]
    else:
        factor = static_units(name, path, band.units, declared_units)
        unit = declared_units or band.units or entry["units"]
        hint = f"read as {unit}" + (f", × {factor:g}" if factor != 1.0 else "")
    data = band.raw.astype(np.float32)
    if band.scale is not None or band.offset is not None:
        data = data * np.float32(band.scale or 1.0) + np.float32(band.offset or 0.0)
    data[bad] = np.nan
    if categorical:
        _check_classes(data, path)  # before the majority, where 0 means "no class"
    try:
        out = to_target(data, band.transform, band.crs, grid, categorical, path)
    except InputDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - rasterio/GDAL raise several types
        raise InputDataError(f"raster {path} could not be read: {exc}") from exc
    _check_coverage(out, path, grid, categorical)
    if categorical:
        return out
    out *= np.float32(factor)
    _check_range(out, path, name, hint)
    return out


def read_static(
    folder: str | Path,
    grid: RegularGrid,
    names=STATIC_FEATURES,
    units: dict[str, str] | None = None,
) -> np.ndarray:
    """``(len(names), ny, nx)`` float32 static maps on the target grid, canonical units.

    ``units`` declares a map's unit (``{"cl": "g/kg"}``) where the file does not say it;
    see :func:`static_on_grid`. Files are ``<name>.tif`` / ``.tiff`` / ``.nc``.
    """
    folder = Path(folder)
    units = units or {}
    return np.stack([static_on_grid(_static_path(folder, n), n, grid, units.get(n)) for n in names])


def _check_coverage(data: np.ndarray, path: Path, grid: RegularGrid, categorical: bool) -> None:
    """Refuse a static map on another grid or region than the product (a silent empty map)."""
    valid = np.isfinite(data) & (data > 0) if categorical else np.isfinite(data)
    share = float(valid.mean()) if data.size else 0.0
    if share < MIN_STATIC_COVERAGE:
        box = f"west {grid.west}, south {grid.south}, east {grid.east:.4f}, north {grid.north:.4f}"
        raise InputDataError(
            f"static map {path} has {'classes' if categorical else 'values'} on only "
            f"{share:.0%} of the product region ({box}); is it for another region or grid?"
        )
