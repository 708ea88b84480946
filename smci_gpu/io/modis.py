"""MODIS land conventions: granule names, the sinusoidal tile grid and HDF4-EOS subdatasets.

Sources
-------
* MODIS land grid (MODLAND): sinusoidal projection on a sphere of radius
  6 371 007.181 m; 36 × 18 tiles of 1 111 950.5197 m (10° at the equator), tile
  ``h00v00`` has its upper-left corner at x = −20 015 109.354 m, y = +10 007 554.677 m;
  h grows eastwards and v southwards; 500 m products have 2400 × 2400 cells per tile.
* Granule names (LP DAAC): ``MCD15A2H.A2018001.h26v05.061.2021350123456.hdf`` =
  product, ``A`` + year + day of year of the composite's first day, tile, collection,
  production time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from smci_gpu.errors import InputDataError

#: Radius of the MODIS sinusoidal sphere, m.
SPHERE_RADIUS_M = 6371007.181
#: Side of one MODIS tile, m (10° of longitude at the equator on that sphere).
TILE_SIZE_M = 1111950.5197
#: Upper-left corner of tile h00v00, m (x = −π R, y = π R / 2).
GRID_ORIGIN_M = (-20015109.354, 10007554.677)
N_TILES_H, N_TILES_V = 36, 18
#: Cells per tile side of the 500 m products (MCD15A2H, MCD12Q1).
CELLS_500M = 2400
#: The sinusoidal CRS as GDAL writes it for MODIS tiles (a sphere, not WGS84).
SINUSOIDAL_PROJ = f"+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R={SPHERE_RADIUS_M} +units=m +no_defs"

_MODIS_NAME = re.compile(
    r"^(?P<product>M[OYC]D\w+?)\.A(?P<year>\d{4})(?P<doy>\d{3})"
    r"(?:\.h(?P<h>\d{2})v(?P<v>\d{2}))?\.(?P<collection>\d{3})\b"
)
_OWN_NAME = re.compile(r"(?<!\d)(?P<year>\d{4})(?P<doy>\d{3})(?!\d)")


@dataclass(frozen=True)
class Granule:
    """What a LAI file's name says: product (None for the project's own names), the
    composite's first day and the MODIS tile (None when the name has none)."""

    product: str | None
    start: pd.Timestamp
    h: int | None = None
    v: int | None = None

    @property
    def tile(self) -> str | None:
        return None if self.h is None else f"h{self.h:02d}v{self.v:02d}"


def _day_of_year(path: Path, year: int, doy: int) -> pd.Timestamp:
    first = pd.Timestamp(year, 1, 1)
    if not 1 <= doy <= (366 if first.is_leap_year else 365):
        raise InputDataError(f"LAI file {path}: day of year {doy:03d} does not exist in {year}")
    return first + pd.Timedelta(days=doy - 1)


def parse_name(path: str | Path) -> Granule:
    """The composite start date (and tile) from a LAI file name.

    Accepts MODIS granule names (``MCD15A2H.AYYYYDDD.hXXvYY.061.<production>.hdf`` or the
    same stem as ``.tif``/``.nc``) and the project's own ``LAI_YYYYDDD.tif`` (any name with
    one 7-digit ``YYYYDDD`` group).

    Raises
    ------
    InputDataError
        No date in the name, or a day of year that does not exist.
    """
    path = Path(path)
    m = _MODIS_NAME.match(path.name)
    if m:
        start = _day_of_year(path, int(m["year"]), int(m["doy"]))
        h, v = (int(m["h"]), int(m["v"])) if m["h"] else (None, None)
        if h is not None and not (h < N_TILES_H and v < N_TILES_V):
            raise InputDataError(f"LAI file {path}: tile h{h:02d}v{v:02d} is not a MODIS tile")
        return Granule(m["product"], start, h, v)
    m = _OWN_NAME.search(path.stem)
    if not m:
        raise InputDataError(
            f"LAI file {path}: no date in the name; expected a MODIS name "
            "(MCD15A2H.AYYYYDDD.hXXvYY...) or YYYYDDD (year + day of year), e.g. LAI_2018001.tif"
        )
    return Granule(None, _day_of_year(path, int(m["year"]), int(m["doy"])))


def tile_transform(h: int, v: int, cells: int = CELLS_500M) -> tuple[float, ...]:
    """GDAL geotransform ``(x0, dx, 0, y0, 0, -dy)`` of tile ``hHHvVV`` with ``cells`` per side.

    The 500 m cell is ``TILE_SIZE_M / 2400`` = 463.3127165 m.
    """
    x0 = GRID_ORIGIN_M[0] + h * TILE_SIZE_M
    y0 = GRID_ORIGIN_M[1] - v * TILE_SIZE_M
    cell = TILE_SIZE_M / cells
    return (x0, cell, 0.0, y0, 0.0, -cell)


def hdf4_subdataset(path: str | Path, field: str = "Lai_500m") -> str:
    """GDAL name of an HDF4-EOS grid field of a MCD15A2H/MOD15A2H/MYD15A2H granule."""
    return f'HDF4_EOS:EOS_GRID:"{path}":MOD_Grid_MOD15A2H:{field}'


def hdf4_missing_message(path: str | Path, field: str = "Lai_500m") -> str:
    """One line: this GDAL cannot read HDF4, and the ``gdal_translate`` that converts it."""
    path = Path(path)
    out = path.with_suffix(".tif")
    return (
        f"LAI file {path} is HDF4-EOS and the GDAL of the installed rasterio has no HDF4 "
        f"driver; convert it to GeoTIFF beside it (keeping the name, so the date and tile "
        f"are read; the .tif is then read instead of the .hdf): "
        f"gdal_translate '{hdf4_subdataset(path, field)}' '{out}'"
    )
