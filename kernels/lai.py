"""Daily LAI from 8-day composites: per-pixel linear interpolation in time, NaN-aware."""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda
from smci_gpu.kernels._common import THREADS_1D, blocks_1d, check_float, check_same_device

from smci_gpu.backend import array_module


@numba.njit(inline="always")
def _interp_pixel(series, cdates, t):
    """Value at time t from the nearest valid composite on each side (hold at the ends)."""
    n = cdates.size
    # Last composite at or before t.
    k = -1
    for c in range(n):
        if cdates[c] <= t:
            k = c
        else:
            break
    lo = k
    while lo >= 0 and np.isnan(series[lo]):
        lo -= 1
    hi = k + 1 if k < 0 or cdates[k] < t else k
    while hi < n and np.isnan(series[hi]):
        hi += 1
    if lo < 0 and hi >= n:
        return np.nan
    if lo < 0:
        return series[hi]
    if hi >= n or hi == lo:
        return series[lo]
    w = (t - cdates[lo]) / (cdates[hi] - cdates[lo])
    return series[lo] + w * (series[hi] - series[lo])


@numba.njit(parallel=True, cache=True)
def _lai_cpu(comp, cdates, tdates, out):
    n_pix = comp.shape[1]
    for p in numba.prange(n_pix):
        series = comp[:, p]
        for d in range(tdates.size):
            out[d, p] = _interp_pixel(series, cdates, tdates[d])


@cuda.jit
def _lai_gpu(comp, cdates, tdates, out):
    p = cuda.grid(1)
    n = cdates.size
    if p >= comp.shape[1]:
        return
    for d in range(tdates.size):
        t = tdates[d]
        k = -1
        for c in range(n):
            if cdates[c] <= t:
                k = c
        lo = k
        while lo >= 0 and comp[lo, p] != comp[lo, p]:  # NaN test
            lo -= 1
        hi = k
        if k < 0 or cdates[k] < t:
            hi = k + 1
        while hi < n and comp[hi, p] != comp[hi, p]:
            hi += 1
        if lo < 0 and hi >= n:
            out[d, p] = comp[0, p] * np.nan
        elif lo < 0:
            out[d, p] = comp[hi, p]
        elif hi >= n or hi == lo:
            out[d, p] = comp[lo, p]
        else:
            w = (t - cdates[lo]) / (cdates[hi] - cdates[lo])
            out[d, p] = comp[lo, p] + w * (comp[hi, p] - comp[lo, p])


def _as_days(dates) -> np.ndarray:
    a = np.asarray(dates)
    if np.issubdtype(a.dtype, np.datetime64):
        return (a.astype("datetime64[s]").astype(np.int64) / 86400.0).astype(np.float64)
    return a.astype(np.float64)


def lai_daily(composites, composite_dates, target_dates, out=None):
    """Interpolate composites ``(T, ...)`` to ``target_dates`` → ``(D, ...)``.

    Each pixel is interpolated linearly between the two nearest composites around the
    target date; a NaN composite is skipped to the next valid one on that side; beyond
    the first/last valid composite the nearest one is held; a pixel with no valid
    composite stays NaN.

    Parameters
    ----------
    composites
        ``(T, ...)`` float32/float64, NaN where a composite is missing or filled.
    composite_dates, target_dates
        ``datetime64`` or numbers (days); composite dates strictly increasing.
    """
    check_float(composites, "composites")
    cdates, tdates = _as_days(composite_dates), _as_days(target_dates)
    if cdates.ndim != 1 or cdates.size != composites.shape[0]:
        raise ValueError(
            f"composite_dates has {cdates.size} entries but composites has "
            f"{composites.shape[0]} along axis 0"
        )
    if cdates.size > 1 and not np.all(np.diff(cdates) > 0):
        raise ValueError("composite_dates must be strictly increasing")
    on_gpu = check_same_device(composites=composites, out=out)
    xp = array_module(composites)
    space = composites.shape[1:]
    shape = (tdates.size, *space)
    if out is None:
        out = xp.empty(shape, dtype=composites.dtype)
    elif out.shape != shape or out.dtype != composites.dtype:
        raise ValueError(f"out must be {shape} {composites.dtype}, got {out.shape} {out.dtype}")
    comp2 = composites.reshape(cdates.size, -1)
    out2 = out.reshape(tdates.size, -1)
    if on_gpu:
        c, t = xp.asarray(cdates), xp.asarray(tdates)
        _lai_gpu[blocks_1d(comp2.shape[1]), THREADS_1D](comp2, c, t, out2)
    else:
        _lai_cpu(np.ascontiguousarray(comp2), cdates, tdates, out2)
    return out
