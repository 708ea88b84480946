"""GeoTIFF writing for the demo and tests (reading is :mod:`smci_gpu.io.rasters`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smci_gpu.grid import RegularGrid
from smci_gpu.io.atomic import atomic_path


def write_geotiff(
    path: str | Path,
    data: np.ndarray,
    grid: RegularGrid,
    nodata: float | int | None = None,
    scale: float | None = None,
    crs: str | None = "EPSG:4326",
    tags: dict[str, str] | None = None,
    units: str | None = None,
) -> Path:
    """Write a north-up single-band GeoTIFF of ``data`` (rows south → north, as the grid).

    Parameters
    ----------
    data
        2-D array, latitude ascending (flipped to north-up on write), already in the
        stored dtype.
    nodata, scale
        Written as the band's nodata value and scale factor (the reader applies them).
    crs
        ``None`` writes a file without CRS (for bad-input tests).
    tags
        GDAL metadata items (e.g. ``valid_range``, ``_FillValue`` as ``gdal_translate``
        keeps them from HDF4/NetCDF sources).
    units
        The band's unit (GDAL's unit type, e.g. ``"g/kg"``).
    """
    import rasterio
    from rasterio.transform import from_origin

    path = Path(path)
    transform = from_origin(grid.west, grid.north, grid.res, grid.res)
    profile = {
        "driver": "GTiff",
        "height": grid.ny,
        "width": grid.nx,
        "count": 1,
        "dtype": data.dtype.name,
        "transform": transform,
        "compress": "deflate",
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(np.ascontiguousarray(data[::-1]), 1)
            if scale is not None:
                dst.scales = (scale,)
                dst.offsets = (0.0,)
            if tags:
                dst.update_tags(**tags)
            if units is not None:
                dst.units = (units,)
    return path
