"""Daily LAI from 8-day composites: per-pixel linear interpolation in time, NaN-aware."""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda
from smci_gpu.kernels._common import THREADS_1D, blocks_1d, check_float, check_same_device

from smci_gpu.backend import array_module

_CHUNK = 1024  # pixels per CPU work item with gaps: its carried values stay in L2


@cuda.jit(device=True)
def _interp_searching_gpu(comp, cdates, lo, hi, t, p):
    """Walk outwards from the bracket (lo, hi) past NaN composites; hold at the ends."""
    n = cdates.size
    while lo >= 0 and comp[lo, p] != comp[lo, p]:
        lo -= 1
    while hi < n and comp[hi, p] != comp[hi, p]:
        hi += 1
    if lo < 0 and hi >= n:
        return comp[0, p] * np.nan
    if lo < 0:
        return comp[hi, p]
    if hi >= n or hi == lo:
        return comp[lo, p]
    w = (t - cdates[lo]) / (cdates[hi] - cdates[lo])
    return comp[lo, p] + w * (comp[hi, p] - comp[lo, p])


@numba.njit(parallel=True, cache=True)
def _lai_gapfree_cpu(comp, lo_k, hi_k, w, out):
    # No NaN anywhere: one target day per work item, whole rows, so the stores stream.
    n = comp.shape[0]
    for d in numba.prange(out.shape[0]):
        a = comp[max(lo_k[d], 0)]
        b = comp[min(hi_k[d], n - 1)]
        wd = w[d]
        o = out[d]
        for p in range(o.size):
            o[p] = a[p] + wd * (b[p] - a[p])


@numba.njit(parallel=True, cache=True)
def _lai_gaps_cpu(comp, cdates, tdates, lo_k, hi_k, out):
    # Pixel chunks: first carry each pixel's last valid composite forwards and its next
    # valid one backwards (value and date), then every target day is a branch-free pass
    # over the chunk. Same formula as the bracket weights, so gap-free pixels agree bit
    # for bit with the gap-free kernel.
    n, n_pix = comp.shape
    n_chunks = (n_pix + _CHUNK - 1) // _CHUNK
    for ch in numba.prange(n_chunks):
        p0 = ch * _CHUNK
        m = min(n_pix, p0 + _CHUNK) - p0
        prev_v = np.empty((n, m), comp.dtype)
        prev_t = np.empty((n, m), np.float64)
        next_v = np.empty((n, m), comp.dtype)
        next_t = np.empty((n, m), np.float64)
        for k in range(n):
            for q in range(m):
                x = comp[k, p0 + q]
                ok = x == x
                prev_v[k, q] = x if ok or k == 0 else prev_v[k - 1, q]
                prev_t[k, q] = cdates[k] if ok else (prev_t[k - 1, q] if k > 0 else np.nan)
        for k in range(n - 1, -1, -1):
            for q in range(m):
                x = comp[k, p0 + q]
                ok = x == x
                next_v[k, q] = x if ok or k == n - 1 else next_v[k + 1, q]
                next_t[k, q] = cdates[k] if ok else (next_t[k + 1, q] if k < n - 1 else np.nan)
        for d in range(tdates.size):
            o = out[d]
            lo, hi, t = lo_k[d], hi_k[d], tdates[d]
            if lo < 0:  # before the first composite: hold the first valid one
                o[p0 : p0 + m] = next_v[hi]
            elif hi >= n:  # after the last: hold the last valid one
                o[p0 : p0 + m] = prev_v[lo]
            else:
                av, at, bv, bt = prev_v[lo], prev_t[lo], next_v[hi], next_t[hi]
                for q in range(m):
                    span = bt[q] - at[q]
                    w = (t - at[q]) / span if span > 0 else 0.0
                    v = av[q] + w * (bv[q] - av[q])
                    v = bv[q] if at[q] != at[q] else v  # no valid composite before
                    o[p0 + q] = av[q] if bt[q] != bt[q] else v  # none after (or neither)


@cuda.jit
def _lai_gpu(comp, cdates, tdates, lo_k, hi_k, w, out):
    p = cuda.grid(1)
    n = cdates.size
    if p >= comp.shape[1]:
        return
    for d in range(tdates.size):
        a = comp[max(lo_k[d], 0), p]
        b = comp[min(hi_k[d], n - 1), p]
        v = a + w[d] * (b - a)
        if v != v:
            v = _interp_searching_gpu(comp, cdates, lo_k[d], hi_k[d], tdates[d], p)
        out[d, p] = v


def brackets(cdates: np.ndarray, tdates: np.ndarray):
    """Per target date: last composite at or before it, first at or after it, and weight.

    ``lo`` is −1 before the first composite and ``hi`` is ``len(cdates)`` after the last;
    the weight is that of the clamped pair, 0 when both are the same composite.
    """
    n = cdates.size
    lo = np.searchsorted(cdates, tdates, side="right") - 1
    exact = (lo >= 0) & (cdates[np.clip(lo, 0, n - 1)] == tdates)
    hi = np.where(exact, lo, lo + 1)
    a, b = np.clip(lo, 0, n - 1), np.clip(hi, 0, n - 1)
    span = cdates[b] - cdates[a]
    w = np.where(span > 0, (tdates - cdates[a]) / np.where(span > 0, span, 1.0), 0.0)
    return lo.astype(np.int64), hi.astype(np.int64), w.astype(np.float64)


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
    lo_k, hi_k, w = brackets(cdates, tdates)
    if on_gpu:
        args = [xp.asarray(v) for v in (cdates, tdates, lo_k, hi_k, w)]
        _lai_gpu[blocks_1d(comp2.shape[1]), THREADS_1D](comp2, *args, out2)
    else:
        comp2 = np.ascontiguousarray(comp2)
        if np.isnan(comp2).any():
            _lai_gaps_cpu(comp2, cdates, tdates, lo_k, hi_k, out2)
        else:
            _lai_gapfree_cpu(comp2, lo_k, hi_k, w, out2)
    return out
