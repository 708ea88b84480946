"""Spatial detail of 1 km maps relative to the 0.1° ERA5-Land cells they sit in.

Two measures say whether a "1 km" map carries detail finer than its coarse predictor:

* :func:`within_cell_std` — the standard deviation of the 1 km values inside each 0.1°
  cell, averaged over cells. A map that is its 0.1° cell's value everywhere (ERA5-Land
  upsampled by nearest neighbour) scores exactly 0.
* :func:`edge_jumps` — the mean absolute difference between 4-neighbouring pixels, once
  over the pairs that straddle a 0.1° cell border and once over the pairs inside a cell.
  A blocky map jumps at the borders and is flat inside; a map with real 1 km structure
  (the twin world's truth) moves about as much at both.

Cells are those of the predictor builder's nearest-cell maps ``iy``/``ix`` (fine row →
ERA5-Land row, fine column → ERA5-Land column). NaN pixels (water, no product) are left
out of both measures. Values are in the map's units (m³/m³ for soil moisture).
"""

from __future__ import annotations

import numpy as np


def _cell_ids(iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    """``(ny, nx)`` id of the coarse cell of each fine pixel."""
    iy, ix = np.asarray(iy, np.int64), np.asarray(ix, np.int64)
    return iy[:, None] * (int(ix.max()) + 1) + ix[None, :]


def within_cell_std(
    field: np.ndarray, iy: np.ndarray, ix: np.ndarray, min_pixels: int = 2
) -> float:
    """Mean over coarse cells of the (population) std of the cell's valid fine values.

    Parameters
    ----------
    field
        ``(ny, nx)`` fine map, NaN where there is no value.
    iy, ix
        ``(ny,)``, ``(nx,)`` coarse row of each fine row and coarse column of each column.
    min_pixels
        Cells with fewer valid pixels are left out (one pixel has no spread).

    Returns
    -------
    float
        Mean within-cell std (ddof = 0), NaN when no cell has ``min_pixels`` values.
    """
    field = np.asarray(field, dtype=np.float64)
    if field.shape != (len(iy), len(ix)):
        raise ValueError(f"field {field.shape} does not match iy/ix ({len(iy)}, {len(ix)})")
    ok = np.isfinite(field)
    ids = np.unique(_cell_ids(iy, ix)[ok], return_inverse=True)[1]
    v = field[ok]
    n = np.bincount(ids).astype(np.float64)
    s1, s2 = np.bincount(ids, weights=v), np.bincount(ids, weights=v * v)
    keep = n >= min_pixels
    if not keep.any():
        return float("nan")
    mean = s1[keep] / n[keep]
    var = np.maximum(s2[keep] / n[keep] - mean * mean, 0.0)
    return float(np.sqrt(var).mean())


def edge_jumps(field: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> dict[str, float]:
    """Mean ``|Δ|`` between 4-neighbouring valid pixels, across cell borders and inside.

    Parameters
    ----------
    field
        ``(ny, nx)`` fine map, NaN where there is no value.
    iy, ix
        ``(ny,)``, ``(nx,)`` coarse row of each fine row and coarse column of each column.

    Returns
    -------
    dict
        ``border`` (pairs in different coarse cells), ``inside`` (pairs in one cell),
        their ratio ``border_over_inside`` (inf for a map flat inside its cells, NaN where a
        class has no pairs), and the pair counts ``n_border``, ``n_inside``.
    """
    field = np.asarray(field, dtype=np.float64)
    if field.shape != (len(iy), len(ix)):
        raise ValueError(f"field {field.shape} does not match iy/ix ({len(iy)}, {len(ix)})")
    iy, ix = np.asarray(iy), np.asarray(ix)
    diffs, borders = [], []
    # horizontal pairs (r, c)–(r, c+1), then vertical pairs (r, c)–(r+1, c)
    for d, cross in (
        (np.diff(field, axis=1), np.broadcast_to(np.diff(ix) != 0, (field.shape[0], len(ix) - 1))),
        (
            np.diff(field, axis=0),
            np.broadcast_to((np.diff(iy) != 0)[:, None], (len(iy) - 1, field.shape[1])),
        ),
    ):
        ok = np.isfinite(d)
        diffs.append(np.abs(d[ok]))
        borders.append(cross[ok])
    jump, border = np.concatenate(diffs), np.concatenate(borders)
    across = float(jump[border].mean()) if border.any() else float("nan")
    inside = float(jump[~border].mean()) if (~border).any() else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.float64(across) / np.float64(inside))
    return {
        "border": across,
        "inside": inside,
        "border_over_inside": ratio,
        "n_border": int(border.sum()),
        "n_inside": int((~border).sum()),
    }


def detail_measures(field: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> dict[str, float]:
    """Both measures of one map as flat columns: ``cell_std``, ``jump_border``,
    ``jump_inside``, ``jump_ratio`` (m³/m³, ratio unitless)."""
    j = edge_jumps(field, iy, ix)
    return {
        "cell_std": within_cell_std(field, iy, ix),
        "jump_border": j["border"],
        "jump_inside": j["inside"],
        "jump_ratio": j["border_over_inside"],
    }
