"""Daily LAI from 8-day composites: per-pixel linear interpolation in time, NaN-aware."""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda
from smci_gpu.kernels._common import THREADS_1D, blocks_1d, check_float, check_same_device

from smci_gpu.backend import array_module

_CHUNK = 1024  # pixels per CPU work item: its scratch rows stay in L2


@numba.njit(inline="always")
def _has_nan(comp, p0, p1):
    n = 0
    for k in range(comp.shape[0]):
        row = comp[k, p0:p1]
        for q in range(p1 - p0):
            n += row[q] != row[q]
    return n > 0


@numba.njit(inline="always")
def _next_valid(comp, p0, p1, cdates, nv, nt, run_v, run_t):
    """Value and date of each pixel's first valid composite at or after each one (NaN if
    none), by a backward pass over the chunk; ``run_v``, ``run_t``: scratch rows."""
    m = p1 - p0
    run_v[:m] = np.nan
    run_t[:m] = np.nan
    for k in range(comp.shape[0] - 1, -1, -1):
        # Running next-valid rows, updated in place and copied out, and every load before
        # the choice: a load in one arm only kept the choice a branch, mispredicted at
        # random gaps, instead of a vector select (3× slower).
        row, tk, nvk, ntk = comp[k, p0:p1], cdates[k], nv[k], nt[k]
        for q in range(m):
            x, later_v, later_t = row[q], run_v[q], run_t[q]
            ok = x == x
            v = x if ok else later_v
            t = tk if ok else later_t
            run_v[q] = v
            run_t[q] = t
            nvk[q] = v
            ntk[q] = t


@numba.njit(inline="always")
def _filled(a, at, b, bt, t):
    """A missing composite at date ``t`` between the valid ``a`` (date ``at``) before it and
    ``b`` (``bt``) after it: their interpolation, the one held where the other is absent
    (NaN date), NaN where both are."""
    v = a + (t - at) / (bt - at) * (b - a)
    v = b if at != at else v
    return a if bt != bt else v


@numba.njit(inline="always")
def _emit_days(k, prev, cur, order, starts, lo_c, w, out, p0, p1):
    # The target days whose bracket ends at composite k: rows k-1 (prev) and k (cur).
    for i in range(starts[k], starts[k + 1]):
        d = order[i]
        a = prev if lo_c[d] < k else cur
        wd = w[d]
        o = out[d, p0:p1]
        for q in range(p1 - p0):
            o[q] = a[q] + wd * (cur[q] - a[q])


@numba.njit(inline="always")
def _lai_chunk_gaps(comp, p0, p1, cdates, order, starts, lo_c, w, out):
    # Fill each NaN composite with the interpolation between its valid neighbours (held
    # at the ends), row by row, and emit a row's days as soon as it is filled. Linear
    # between neighbouring composites of the filled series is linear between the valid
    # ones, so the answer is the NaN-skipping interpolation the docstring promises.
    n, m = comp.shape[0], p1 - p0
    nv = np.empty((n, m), comp.dtype)
    nt = np.empty((n, m), np.float64)
    pv = np.empty(m, comp.dtype)
    pt = np.empty(m, np.float64)
    _next_valid(comp, p0, p1, cdates, nv, nt, pv, pt)  # pv, pt: its scratch, then reset
    ring = np.empty((2, m), comp.dtype)
    pv[:] = np.nan
    pt[:] = np.nan
    for k in range(n):
        row, tk, cur = comp[k, p0:p1], cdates[k], ring[k % 2]
        nvk, ntk = nv[k], nt[k]
        for q in range(m):
            x, a, at, b, bt = row[q], pv[q], pt[q], nvk[q], ntk[q]
            ok = x == x
            v = _filled(a, at, b, bt, tk)
            cur[q] = x if ok else v
            pv[q] = x if ok else a
            pt[q] = tk if ok else at
        _emit_days(k, ring[(k + 1) % 2], cur, order, starts, lo_c, w, out, p0, p1)


@numba.njit(parallel=True, cache=True)
def _lai_cpu(comp, cdates, order, starts, lo_c, w, out):
    # Pixel chunks (row slices stay contiguous, so the loops vectorise); a chunk without
    # NaN interpolates straight from the composites, as streaming whole rows would.
    n, n_pix = comp.shape
    n_chunks = (n_pix + _CHUNK - 1) // _CHUNK
    for ch in numba.prange(n_chunks):
        p0 = ch * _CHUNK
        p1 = min(n_pix, p0 + _CHUNK)
        if _has_nan(comp, p0, p1):
            _lai_chunk_gaps(comp, p0, p1, cdates, order, starts, lo_c, w, out)
        else:
            for k in range(n):
                prev = comp[max(k - 1, 0), p0:p1]
                _emit_days(k, prev, comp[k, p0:p1], order, starts, lo_c, w, out, p0, p1)


def _make_lai_gpu(as_dtype):
    """The GPU twin for one composite dtype (``as_dtype`` rounds a filled composite to it,
    as the CPU twin's float32/float64 scratch rows do)."""

    @cuda.jit
    def lai_gpu(comp, cdates, order, starts, lo_c, w, out):
        # One thread per pixel, the CPU twin's order of work: walk the composites once,
        # fill a NaN one between its valid neighbours (held at the ends), and emit each
        # target day when the composite ending its bracket is reached. The next valid
        # composite is searched for once and kept until passed.
        p = cuda.grid(1)
        n = comp.shape[0]
        if p >= comp.shape[1]:
            return
        nan = as_dtype(np.nan)
        prev, a, b = nan, nan, nan  # prev: the filled composite before k (unused at k = 0)
        at, bt = np.nan, np.nan
        j = -1  # index of the cached next valid composite (n: none left)
        for k in range(n):
            x = comp[k, p]
            if x == x:
                cur, a, at = x, x, cdates[k]
            else:
                if j <= k:
                    j = k + 1
                    while j < n and comp[j, p] != comp[j, p]:
                        j += 1
                    b, bt = (comp[j, p], cdates[j]) if j < n else (nan, np.nan)
                cur = as_dtype(_filled(a, at, b, bt, cdates[k]))
            for q in range(starts[k], starts[k + 1]):
                d = order[q]
                lo = prev if lo_c[d] < k else cur
                out[d, p] = lo + w[d] * (cur - lo)
            prev = cur

    return lai_gpu


_LAI_GPU = {np.dtype(np.float32): _make_lai_gpu(numba.float32)}
_LAI_GPU[np.dtype(np.float64)] = _make_lai_gpu(numba.float64)


def _lai_on_gpu(comp, cdates, order, starts, lo_c, w, out) -> None:
    """Launch the GPU twin on ``(T, pixels)`` composites (the small tables copied over)."""
    xp = array_module(comp)
    args = [xp.asarray(v) for v in (cdates, order, starts, lo_c, w)]
    _LAI_GPU[np.dtype(comp.dtype)][blocks_1d(comp.shape[1]), THREADS_1D](comp, *args, out)


def _day_order(lo_k, hi_k, n: int):
    """Brackets clipped to the composites, and the target days grouped by the composite
    that ends their bracket: ``(lo_c, order, starts)``, days ``order[starts[k]:starts[k+1]]``
    end at composite ``k``."""
    lo_c, hi_c = np.clip(lo_k, 0, n - 1), np.clip(hi_k, 0, n - 1)
    order = np.argsort(hi_c, kind="stable")
    starts = np.searchsorted(hi_c[order], np.arange(n + 1))
    return lo_c, order, starts


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
    lo_c, order, starts = _day_order(lo_k, hi_k, cdates.size)
    if on_gpu:
        _lai_on_gpu(xp.ascontiguousarray(comp2), cdates, order, starts, lo_c, w, out2)
    else:
        _lai_cpu(np.ascontiguousarray(comp2), cdates, order, starts, lo_c, w, out2)
    return out
