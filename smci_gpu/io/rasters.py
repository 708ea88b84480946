"""LAI composites and static maps (GeoTIFF via rioxarray, or NetCDF) → the target grid.

Continuous maps are averaged (NaN-aware) and categorical maps (land cover) take the
block majority, never an average. When the source is on the same lat/lon lattice at an
integer fraction of the target resolution, the engine's block kernels do the work;
otherwise rasterio reprojects (``average`` / ``mode`` resampling).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from smci_gpu import kernels
from smci_gpu.errors import InputDataError
from smci_gpu.grid import RegularGrid
from smci_gpu.variables import STATIC_FEATURES

_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})(\d{3})(?!\d)")  # MODIS style A2018001


def open_raster(path: Path):
    """Open a one-band raster with rioxarray, masked and scaled; clear errors otherwise."""
    import rioxarray

    if not path.exists():
        raise InputDataError(f"raster {path} does not exist")
    if path.stat().st_size == 0:
        raise InputDataError(f"raster {path} is empty")
    try:
        da = rioxarray.open_rasterio(path, masked=True, mask_and_scale=True)
    except Exception as exc:  # noqa: BLE001 - rasterio raises several types
        raise InputDataError(f"raster {path} could not be read: {exc}") from exc
    if da.rio.crs is None:
        raise InputDataError(f"raster {path} has no CRS; expected e.g. EPSG:4326")
    return da.isel(band=0) if "band" in da.dims else da


def _factor(src_res: float, dst_res: float) -> int | None:
    f = dst_res / src_res
    return round(f) if abs(f - round(f)) < 1e-6 and round(f) >= 1 else None


def to_target(da, grid: RegularGrid, categorical: bool, path: Path) -> np.ndarray:
    """Resample a raster onto ``grid`` (lat ascending), float32 (NaN = no data)."""
    crs = da.rio.crs
    xres, yres = (abs(r) for r in da.rio.resolution())
    left, bottom, right, top = da.rio.bounds()
    f = _factor(xres, grid.res) if crs.to_epsg() == 4326 and abs(xres - yres) < 1e-12 else None
    aligned = (
        f is not None
        and abs((grid.west - left) / xres - round((grid.west - left) / xres)) < 1e-6
        and abs((top - grid.north) / xres - round((top - grid.north) / xres)) < 1e-6
        and left <= grid.west + 1e-9
        and top >= grid.north - 1e-9
        and right >= grid.east - 1e-9
        and bottom <= grid.south + 1e-9
    )
    if aligned:
        c0 = round((grid.west - left) / xres)
        r0 = round((top - grid.north) / xres)
        window = da.values[r0 : r0 + grid.ny * f, c0 : c0 + grid.nx * f][::-1]
        if categorical:
            ints = np.where(np.isfinite(window), window, 0).astype(np.int32)
            if ints.size and 0 <= ints.min() and ints.max() <= 255:
                ints = ints.astype(np.uint8)  # land-cover classes: the 8-bit kernels
            return kernels.block_majority(ints, f, f, nodata=0).astype(np.float32)
        return kernels.block_mean(np.ascontiguousarray(window, dtype=np.float32), f, f)
    from rasterio.enums import Resampling
    from rasterio.transform import from_origin

    try:
        out = da.rio.reproject(
            "EPSG:4326",
            shape=grid.shape,
            transform=from_origin(grid.west, grid.north, grid.res, grid.res),
            resampling=Resampling.mode if categorical else Resampling.average,
        )
    except Exception as exc:  # noqa: BLE001
        raise InputDataError(f"raster {path} could not be reprojected to the grid: {exc}") from exc
    return np.asarray(out.values[::-1], dtype=np.float32)


def read_on_grid(path: Path, grid: RegularGrid, categorical: bool) -> np.ndarray:
    """A raster resampled onto ``grid``; damaged data (found by GDAL only when read) is an
    :class:`InputDataError` naming the file."""
    try:
        return to_target(open_raster(path), grid, categorical, path)
    except InputDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - rasterio/GDAL raise several types
        raise InputDataError(f"raster {path} could not be read: {exc}") from exc


def read_static(folder: str | Path, grid: RegularGrid, names=STATIC_FEATURES) -> np.ndarray:
    """``(len(names), ny, nx)`` float32 static maps on the target grid."""
    folder = Path(folder)
    maps = []
    for name in names:
        path = folder / f"{name}.tif"
        if not path.exists():
            nc = folder / f"{name}.nc"
            path = nc if nc.exists() else path
        data = read_on_grid(path, grid, name == "landcover")
        _check_coverage(data, path, grid)
        maps.append(data)
    return np.stack(maps)


#: A static map must give values on at least this share of the product region.
MIN_STATIC_COVERAGE = 0.5


def _check_coverage(data: np.ndarray, path: Path, grid: RegularGrid) -> None:
    """Refuse a static map on another grid or region than the product (a silent empty map)."""
    categorical = path.stem == "landcover"
    valid = np.isfinite(data) & (data > 0) if categorical else np.isfinite(data)
    share = float(valid.mean()) if data.size else 0.0
    if share < MIN_STATIC_COVERAGE:
        box = f"west {grid.west}, south {grid.south}, east {grid.east:.4f}, north {grid.north:.4f}"
        raise InputDataError(
            f"static map {path} has {'classes' if categorical else 'values'} on only "
            f"{share:.0%} of the product region ({box}); is it for another region or grid?"
        )


def lai_files(folder: str | Path) -> pd.DataFrame:
    """LAI composites of a folder with their start dates (from the ``date`` tag or the name)."""
    folder = Path(folder)
    rows = []
    for path in sorted(folder.glob("*.tif")) + sorted(folder.glob("*.nc")):
        m = _DATE_IN_NAME.search(path.stem)
        if not m:
            raise InputDataError(f"LAI file {path}: no YYYYDDD date in the name")
        start = pd.Timestamp(int(m.group(1)), 1, 1) + pd.Timedelta(days=int(m.group(2)) - 1)
        rows.append({"path": path, "start": start})
    if not rows:
        raise InputDataError(f"no LAI composites (*.tif, *.nc) in {folder}")
    df = pd.DataFrame(rows).sort_values("start", ignore_index=True)
    # An 8-day composite stands for its period: date it at the period's centre.
    df["date"] = df["start"] + pd.Timedelta(hours=84)
    return df


def read_lai(
    folder: str | Path, grid: RegularGrid, start, end, margin: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Composites covering ``start..end`` plus ``margin`` more each side, at 1 km, and dates."""
    df = lai_files(folder)
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    lo = max(int(np.searchsorted(df.date.values, np.datetime64(start), "right")) - 1 - margin, 0)
    hi = min(int(np.searchsorted(df.date.values, np.datetime64(end), "left")) + 1 + margin, len(df))
    sel = df.iloc[lo:hi]
    comps = np.stack([read_on_grid(p, grid, False) for p in sel.path])
    return comps, sel.date.values
