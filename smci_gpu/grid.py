"""Regular latitude/longitude grids and the index maps between them.

A :class:`RegularGrid` stores only its south-west corner, resolution and size, so the full
China grid (4320 × 7560 cells at 30″) costs a few bytes; 1-D coordinates are made on
demand and 2-D meshes are never needed. Latitude runs south → north (ascending), as in
every canonical array of the engine; longitudes are in −180..180.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smci_gpu.errors import GridError

ERA5LAND_RES = 0.1
#: Tolerance (in cells) for snapping a bbox edge to the grid.
_SNAP = 1e-6


def _snap_count(length: float, res: float) -> int:
    n = length / res
    k = round(n)
    if abs(n - k) > _SNAP * max(1.0, n):
        return int(np.ceil(n))
    return int(k)


@dataclass(frozen=True)
class RegularGrid:
    """A cell-centred regular grid, latitude ascending.

    Parameters
    ----------
    west, south
        Outer edges of the south-west cell (degrees).
    res
        Cell size (degrees), the same in latitude and longitude.
    ny, nx
        Number of rows (latitudes) and columns (longitudes).
    """

    west: float
    south: float
    res: float
    ny: int
    nx: int

    @classmethod
    def from_bbox(
        cls, west: float, south: float, east: float, north: float, res: float
    ) -> RegularGrid:
        """Grid whose cells tile the box; a partial cell at the east/north edge is included."""
        if not (west < east and south < north):
            raise GridError(f"empty bbox: west={west}, east={east}, south={south}, north={north}")
        return cls(west, south, res, _snap_count(north - south, res), _snap_count(east - west, res))

    @property
    def east(self) -> float:
        return self.west + self.nx * self.res

    @property
    def north(self) -> float:
        return self.south + self.ny * self.res

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ny, self.nx)

    @property
    def size(self) -> int:
        return self.ny * self.nx

    @property
    def lat(self) -> np.ndarray:
        """Cell-centre latitudes, ascending (float64, length ny)."""
        return self.south + (np.arange(self.ny) + 0.5) * self.res

    @property
    def lon(self) -> np.ndarray:
        """Cell-centre longitudes, ascending (float64, length nx)."""
        return self.west + (np.arange(self.nx) + 0.5) * self.res

    def lat_bounds(self) -> np.ndarray:
        """(ny, 2) cell edges in latitude, CF ``bounds`` layout."""
        edges = self.south + np.arange(self.ny + 1) * self.res
        return np.stack([edges[:-1], edges[1:]], axis=1)

    def lon_bounds(self) -> np.ndarray:
        """(nx, 2) cell edges in longitude, CF ``bounds`` layout."""
        edges = self.west + np.arange(self.nx + 1) * self.res
        return np.stack([edges[:-1], edges[1:]], axis=1)

    def contains(self, lat: np.ndarray | float, lon: np.ndarray | float) -> np.ndarray:
        """Whether points fall inside the grid (south/west edges inclusive)."""
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        return (lat >= self.south) & (lat < self.north) & (lon >= self.west) & (lon < self.east)

    def row_col(
        self, lat: np.ndarray | float, lon: np.ndarray | float, names: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the cell holding each point.

        Raises
        ------
        GridError
            When a point is outside the grid; ``names`` (e.g. station ids) are quoted.
        """
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        inside = self.contains(lat, lon)
        if not inside.all():
            bad = np.flatnonzero(~inside)[:5]
            who = [names[i] for i in bad] if names is not None else [int(i) for i in bad]
            raise GridError(
                f"{int((~inside).sum())} point(s) outside the grid "
                f"[{self.west}, {self.east}] x [{self.south}, {self.north}]: {who} "
                f"(e.g. lat={lat[bad[0]]}, lon={lon[bad[0]]})"
            )
        row = np.floor((lat - self.south) / self.res).astype(np.int64)
        col = np.floor((lon - self.west) / self.res).astype(np.int64)
        return np.minimum(row, self.ny - 1), np.minimum(col, self.nx - 1)

    def flat_index(self, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """Row-major pixel index of (row, col)."""
        return np.asarray(row, dtype=np.int64) * self.nx + np.asarray(col, dtype=np.int64)

    def window(self, row0: int, row1: int, col0: int, col1: int) -> RegularGrid:
        """The sub-grid of rows [row0, row1) and columns [col0, col1)."""
        if not (0 <= row0 < row1 <= self.ny and 0 <= col0 < col1 <= self.nx):
            raise GridError(f"window rows {row0}:{row1}, cols {col0}:{col1} outside {self.shape}")
        return RegularGrid(
            self.west + col0 * self.res,
            self.south + row0 * self.res,
            self.res,
            row1 - row0,
            col1 - col0,
        )

    def coarsen(self, factor: int) -> RegularGrid:
        """The grid of ``factor × factor`` blocks (e.g. 12 for 1 km → 9 km)."""
        if self.ny % factor or self.nx % factor:
            raise GridError(
                f"grid {self.shape} does not divide into {factor}x{factor} blocks; "
                "choose a bbox whose sides are multiples of the coarse resolution"
            )
        return RegularGrid(
            self.west, self.south, self.res * factor, self.ny // factor, self.nx // factor
        )

    def tiles(self, size: int) -> list[tuple[int, int, int, int]]:
        """Row/column windows ``(row0, row1, col0, col1)`` of at most ``size`` × ``size``."""
        return [
            (r, min(r + size, self.ny), c, min(c + size, self.nx))
            for r in range(0, self.ny, size)
            for c in range(0, self.nx, size)
        ]

    def same_as(self, other: RegularGrid, tol: float = 1e-9) -> bool:
        """Equal size and, within ``tol`` degrees, equal corner and resolution."""
        return (
            self.shape == other.shape
            and abs(self.west - other.west) < tol
            and abs(self.south - other.south) < tol
            and abs(self.res - other.res) < tol
        )

    def to_attrs(self) -> dict[str, float | int]:
        """Attributes that describe the grid (stored in product files)."""
        return {
            "grid_west": self.west,
            "grid_south": self.south,
            "grid_res": self.res,
            "grid_ny": self.ny,
            "grid_nx": self.nx,
        }


def target_grid(
    west: float, south: float, east: float, north: float, resolution_arcsec: float = 30.0
) -> RegularGrid:
    """The product grid (30″ by default) over a bbox."""
    return RegularGrid.from_bbox(west, south, east, north, resolution_arcsec / 3600.0)


def era5land_grid(
    west: float, south: float, east: float, north: float, margin: int = 1
) -> RegularGrid:
    """The part of the ERA5-Land 0.1° grid (centres at multiples of 0.1°) covering a bbox.

    ``margin`` extra cells on each side make nearest-neighbour lookups at the box edge
    well defined.
    """
    i0 = int(np.floor(west / ERA5LAND_RES + 0.5)) - margin
    i1 = int(np.floor(east / ERA5LAND_RES + 0.5)) + margin
    j0 = int(np.floor(south / ERA5LAND_RES + 0.5)) - margin
    j1 = int(np.floor(north / ERA5LAND_RES + 0.5)) + margin
    j0, j1 = max(j0, -900), min(j1, 900)
    return RegularGrid(
        (i0 - 0.5) * ERA5LAND_RES, (j0 - 0.5) * ERA5LAND_RES, ERA5LAND_RES, j1 - j0 + 1, i1 - i0 + 1
    )


def _check_monotonic(coords: np.ndarray, name: str) -> bool:
    """True when ascending, False when descending; ValueError when neither."""
    if coords.ndim != 1 or coords.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D coordinate vector")
    if not np.all(np.isfinite(coords)):
        raise ValueError(f"{name} holds NaN or infinite values")
    if coords.size == 1:
        return True
    d = np.diff(coords)
    if np.all(d > 0):
        return True
    if np.all(d < 0):
        return False
    raise ValueError(f"{name} must be strictly increasing or strictly decreasing")


def nearest_index(
    src: np.ndarray,
    dst: np.ndarray,
    period: float | None = None,
    name: str = "src",
    max_distance: float | None = None,
) -> np.ndarray:
    """Index of the nearest ``src`` coordinate for each ``dst`` coordinate.

    Matches ``xarray``'s ``sel(method="nearest")`` (ties go to the larger coordinate).

    Parameters
    ----------
    src
        1-D source coordinates, strictly ascending or strictly descending.
    dst
        1-D target coordinates (any order).
    period
        360 for longitudes when the source may wrap (e.g. 0..360 vs −180..180): distances
        are taken around the circle.
    name
        Argument name quoted in errors.
    max_distance
        Largest allowed distance; by default one source spacing (so targets outside the
        source's span by more than one cell are a ``ValueError``).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    ascending = _check_monotonic(src, name)
    order = np.arange(src.size) if ascending else np.arange(src.size)[::-1]
    s = src[order]
    step = float(np.max(np.diff(s))) if s.size > 1 else np.inf
    limit = step if max_distance is None else max_distance
    if period is not None:
        # Bring targets into the source's span, then also look across the wrap.
        t = s[0] + np.mod(dst - s[0], period)
        cand = np.stack([_nearest_sorted(s, t), _nearest_sorted(s, t - period)])
        dist = np.stack([np.abs(s[c] - tt) for c, tt in zip(cand, (t, t - period), strict=True)])
        wrap_low = np.abs(s[0] + period - t)
        pick = np.argmin(dist, axis=0)
        idx = cand[pick, np.arange(t.size)]
        best = dist[pick, np.arange(t.size)]
        use_first = wrap_low < best
        idx = np.where(use_first, 0, idx)
        best = np.minimum(best, wrap_low)
    else:
        idx = _nearest_sorted(s, dst)
        best = np.abs(s[idx] - dst)
    if np.any(best > limit + 1e-9):
        worst = dst[np.argmax(best)]
        raise ValueError(
            f"target coordinate {worst} is outside {name} [{s[0]}, {s[-1]}] by more than {limit}"
        )
    return order[idx]


def _nearest_sorted(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    right = np.clip(np.searchsorted(s, t, side="left"), 0, s.size - 1)
    left = np.clip(right - 1, 0, s.size - 1)
    take_left = np.abs(t - s[left]) < np.abs(s[right] - t)
    return np.where(take_left, left, right)


def index_maps(
    target: RegularGrid, src_lat: np.ndarray, src_lon: np.ndarray, wrap_lon: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of the nearest source cell for each target row / column."""
    iy = nearest_index(src_lat, target.lat, name="source latitude")
    ix = nearest_index(
        src_lon, target.lon, period=360.0 if wrap_lon else None, name="source longitude"
    )
    return iy, ix
