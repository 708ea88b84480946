"""Nearest-neighbour upsampling (ERA5-Land 0.1° → 30″) as a separable gather.

On regular latitude/longitude grids the nearest source cell of a target cell depends on
the target row alone (for latitude) and column alone (for longitude), so the work is a
gather ``out[..., i, j] = src[..., iy[i], ix[j]]`` with two small index vectors computed
once on the host. Bilinear upsampling is separable the same way: :func:`linear_weights`
gives each target row (column) its two source rows (columns) and the weight of the second.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda
from smci_gpu.kernels._common import THREADS_2D, blocks_2d, check_float, check_same_device

from smci_gpu.backend import array_module, to_host
from smci_gpu.grid import nearest_index


@numba.njit(parallel=True, cache=True)
def _gather_cpu(src, iy, run_starts, ix, out):
    # Upsampling repeats each source row over a run of target rows: gather the first row
    # of each run once and copy it to the others (a contiguous, vectorised copy).
    lead = out.shape[0]
    n_runs = run_starts.size - 1
    for k in numba.prange(lead * n_runs):
        b = k // n_runs
        r = k - b * n_runs
        first, end = run_starts[r], run_starts[r + 1]
        row = src[b, iy[first]]
        o = out[b, first]
        for j in range(o.size):
            o[j] = row[ix[j]]
        for i in range(first + 1, end):
            out[b, i, :] = o


def _run_starts(iy: np.ndarray) -> np.ndarray:
    """Start of each run of equal consecutive indices, plus the end: ``[0, ..., len]``."""
    breaks = np.flatnonzero(np.diff(iy) != 0) + 1
    return np.concatenate([[0], breaks, [iy.size]]).astype(np.int64)


@cuda.jit
def _gather_gpu(src, iy, ix, out):
    j, i = cuda.grid(2)
    lead, ny, nx = out.shape
    if i < ny and j < nx:
        si, sj = iy[i], ix[j]
        for b in range(lead):
            out[b, i, j] = src[b, si, sj]


def gather_2d(src, iy, ix, out=None):
    """``out[..., i, j] = src[..., iy[i], ix[j]]`` on the device that holds ``src``.

    Parameters
    ----------
    src
        ``(..., ny_src, nx_src)`` float32/float64 array (NumPy or CuPy).
    iy, ix
        int64 row/column indices into the last two axes of ``src``.
    out
        Optional preallocated ``(..., len(iy), len(ix))`` output (same dtype and device).
    """
    check_float(src, "src")
    if src.ndim < 2:
        raise ValueError(f"src must have at least 2 dimensions, got shape {src.shape}")
    on_gpu = check_same_device(src=src, iy=iy, ix=ix, out=out)
    xp = array_module(src)
    lead = src.shape[:-2]
    shape = (*lead, len(iy), len(ix))
    if out is None:
        out = xp.empty(shape, dtype=src.dtype)
    elif out.shape != shape or out.dtype != src.dtype:
        raise ValueError(f"out must be {shape} {src.dtype}, got {out.shape} {out.dtype}")
    s3 = src.reshape(-1, *src.shape[-2:])
    o3 = out.reshape(-1, len(iy), len(ix))
    if on_gpu:
        _gather_gpu[blocks_2d(len(iy), len(ix)), THREADS_2D](s3, iy, ix, o3)
    else:
        iy = np.asarray(iy, np.int64)
        _gather_cpu(np.ascontiguousarray(s3), iy, _run_starts(iy), np.asarray(ix, np.int64), o3)
    return out


def nearest_valid_index(valid: np.ndarray) -> np.ndarray:
    """For each cell of a 2-D mask, the flat index of the nearest ``True`` cell.

    Distances are Euclidean in cell units; valid cells map to themselves.
    """
    from scipy import ndimage

    valid = np.asarray(valid, dtype=bool)
    if not valid.any():
        raise ValueError("the source field has no valid (non-NaN) cell to fill from")
    _, (iy, ix) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return (iy * valid.shape[1] + ix).ravel()


def fill_nearest_valid(src, mask=None):
    """Fill NaN cells of ``(..., ny, nx)`` with their nearest valid cell (per 2-D slice).

    The NaN pattern is taken from the first slice unless ``mask`` (True = valid) is
    given; slices whose NaNs differ from it are filled with their own pattern.
    Runs on the device of ``src`` (the index map is computed once on the host).
    """
    check_float(src, "src")
    xp = array_module(src)
    flat = src.reshape(-1, src.shape[-2] * src.shape[-1])
    nan = xp.isnan(flat)
    if not bool(nan.any()):
        return src
    ref = to_host(~nan[0]) if mask is None else np.asarray(mask, bool).ravel()
    same = to_host((nan == ~xp.asarray(ref)[None]).all(axis=1))
    out = flat.copy()
    idx = xp.asarray(nearest_valid_index(ref.reshape(src.shape[-2:])))
    out[same] = flat[same][:, idx]
    for k in np.flatnonzero(~same):  # rare: a slice with its own NaN pattern
        own = to_host(~nan[k]).reshape(src.shape[-2:])
        out[k] = flat[k][xp.asarray(nearest_valid_index(own))]
    return out.reshape(src.shape)


def upsample_nearest(src, src_lat, src_lon, dst_lat, dst_lon, fill_nan: bool = True, out=None):
    """Nearest-neighbour resampling of a regular lat/lon field onto finer coordinates.

    Gives the same answer as xarray's ``sel(lat=dst_lat, lon=dst_lon, method="nearest")``
    on cells whose nearest source cell is valid. With ``fill_nan`` (the default), target
    pixels whose nearest source cell is NaN (coast, lakes) take the nearest *valid*
    source cell instead: NaNs are filled once on the coarse grid, then gathered.

    Parameters
    ----------
    src
        ``(..., ny, nx)`` float32/float64 (NumPy → CPU twin, CuPy → GPU twin).
    src_lat, src_lon
        1-D source coordinates, ascending or descending (CDS files are lat-descending).
    dst_lat, dst_lon
        1-D target coordinates.
    out
        Optional preallocated output.

    Returns
    -------
    array
        ``(..., len(dst_lat), len(dst_lon))``, dtype of ``src``.
    """
    src_lat, src_lon = np.asarray(src_lat), np.asarray(src_lon)
    if src.ndim < 2 or src.shape[-2:] != (src_lat.size, src_lon.size):
        raise ValueError(
            f"src shape {src.shape} does not end in (len(src_lat), len(src_lon)) = "
            f"({src_lat.size}, {src_lon.size})"
        )
    iy = nearest_index(src_lat, np.asarray(dst_lat), name="src_lat")
    ix = nearest_index(src_lon, np.asarray(dst_lon), name="src_lon", period=360.0)
    if fill_nan:
        src = fill_nearest_valid(src)
    xp = array_module(src)
    return gather_2d(src, xp.asarray(iy), xp.asarray(ix), out=out)


def linear_weights(
    src, dst, period: float | None = None, name: str = "src"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper source index and upper weight of 1-D linear interpolation.

    The source values sit at the cell centres ``src`` (a regular lat/lon grid), so a target
    at a centre takes that cell alone and one halfway between two centres takes both by
    half: ``v = (1 − w) · s[i0] + w · s[i1]``. Targets beyond the outermost centres take
    the edge cell (clamped, weight 0), as ``scipy.interpolate.RegularGridInterpolator``
    does on a grid padded with its edge values.

    Parameters
    ----------
    src
        1-D source coordinates (degrees), strictly ascending or descending (CDS files are
        latitude-descending).
    dst
        1-D target coordinates (degrees).
    period
        360 for longitudes given in another convention (0..360 vs −180..180): each target
        is first brought to the source's span. Interpolation does not cross the wrap.
    name
        Argument name quoted in errors.

    Returns
    -------
    i0, i1 : ndarray of int64
        ``(len(dst),)`` source indices (``i1 = i0`` on a one-cell source).
    w : ndarray of float64
        ``(len(dst),)`` weight of ``i1``, in [0, 1].
    """
    from smci_gpu.grid import _check_monotonic

    src = np.asarray(src, dtype=np.float64)
    t = np.asarray(dst, dtype=np.float64)
    ascending = _check_monotonic(src, name)
    order = np.arange(src.size) if ascending else np.arange(src.size)[::-1]
    s = src[order]
    if period is not None:
        t = s[0] + np.mod(t - s[0], period)
        below = t - period  # the same longitude one turn down, left of the span
        outside = np.maximum(t - s[-1], 0.0)
        t = np.where(s[0] - below < outside, below, t)
    if s.size == 1:
        zero = np.zeros(t.size, np.int64)
        return order[zero], order[zero], np.zeros(t.size)
    t = np.clip(t, s[0], s[-1])
    i0 = np.clip(np.searchsorted(s, t, side="right") - 1, 0, s.size - 2)
    w = np.clip((t - s[i0]) / (s[i0 + 1] - s[i0]), 0.0, 1.0)
    return order[i0].astype(np.int64), order[i0 + 1].astype(np.int64), w
