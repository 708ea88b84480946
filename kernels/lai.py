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
    # Row by row, stopping at the first row with a gap: a gappy chunk is known after a
    # row or two, a gap-free one is read whole (into cache, for its interpolation).
    for k in range(comp.shape[0]):
        row = comp[k, p0:p1]
        n = 0
        for q in range(p1 - p0):
            n += row[q] != row[q]
        if n > 0:
            return True
    return False


@numba.njit(inline="always")
def _next_valid(comp, p0, p1, dates, nv, nt):
    """Value and date of each pixel's first valid composite at or after each one (NaN if
    none) into rows ``0..n-1`` of ``nv``, ``nt`` by a backward pass over the chunk; row
    ``n`` is the NaN start. Every load comes before the choice, so it is a vector select
    (a load in one arm only kept a branch, mispredicted at random gaps)."""
    n, m = comp.shape[0], p1 - p0
    nv[n, :m] = np.nan
    nt[n, :m] = np.nan
    for k in range(n - 1, -1, -1):
        row, tk, nvk, ntk = comp[k, p0:p1], dates[k], nv[k], nt[k]
        later_v, later_t = nv[k + 1], nt[k + 1]
        for q in range(m):
            x, lv, lt = row[q], later_v[q], later_t[q]
            ok = x == x
            nvk[q] = x if ok else lv
            ntk[q] = tk if ok else lt


@numba.njit(inline="always")
def _lerp(a, w, b):
    # The one interpolation both twins use, for filled composites and for target days:
    # written once, so the twins evaluate it alike and give the same bits.
    return a + w * (b - a)


@numba.njit(inline="always")
def _filled(a, at, b, bt, t):
    """A missing composite at date ``t`` from the composite before it, ``a`` at ``at``
    (valid or itself filled), and the next valid one, ``b`` at ``bt``: on the line
    through them, the one held where the other is absent (NaN), NaN where both are.

    A filled composite lies on the line between the valid ones around its gap, so the
    line from it to ``b`` is that line: filling in date order needs no date of the last
    valid composite per pixel, only the row before.
    """
    v = _lerp(a, (t - at) / (bt - at), b)
    v = b if a != a else v
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
            o[q] = _lerp(a[q], wd, cur[q])


@numba.njit(inline="always")
def _lai_chunk_gaps(comp, p0, p1, dates, order, starts, lo_c, w, out):
    # Fill each NaN composite on the line between its valid neighbours (held at the
    # ends), row by row, and emit a row's days as soon as it is filled. Linear between
    # neighbouring composites of the filled series is linear between the valid ones, so
    # the answer is the NaN-skipping interpolation the docstring promises.
    n, m = comp.shape[0], p1 - p0
    nv = np.empty((n + 1, m), comp.dtype)
    nt = np.empty((n + 1, m), dates.dtype)
    _next_valid(comp, p0, p1, dates, nv, nt)
    ring = np.empty((2, m), comp.dtype)
    ring[1] = np.nan  # no composite before the first
    for k in range(n):
        row, cur, prev = comp[k, p0:p1], ring[k % 2], ring[(k + 1) % 2]
        tk, t_prev, nvk, ntk = dates[k], dates[max(k - 1, 0)], nv[k], nt[k]
        for q in range(m):
            x = row[q]
            v = _filled(prev[q], t_prev, nvk[q], ntk[q], tk)
            cur[q] = x if x == x else v
        _emit_days(k, prev, cur, order, starts, lo_c, w, out, p0, p1)


@numba.njit(parallel=True, cache=True)
def _lai_cpu(comp, dates, order, starts, lo_c, w, out):
    # Pixel chunks (row slices stay contiguous, so the loops vectorise); a chunk without
    # NaN interpolates straight from the composites, as streaming whole rows would.
    n, n_pix = comp.shape
    n_chunks = (n_pix + _CHUNK - 1) // _CHUNK
    for ch in numba.prange(n_chunks):
        p0 = ch * _CHUNK
        p1 = min(n_pix, p0 + _CHUNK)
        if _has_nan(comp, p0, p1):
            _lai_chunk_gaps(comp, p0, p1, dates, order, starts, lo_c, w, out)
        else:
            for k in range(n):
                prev = comp[max(k - 1, 0), p0:p1]
                _emit_days(k, prev, comp[k, p0:p1], order, starts, lo_c, w, out, p0, p1)


def _make_lai_gpu(as_dtype):
    """The GPU twin for one composite dtype (``as_dtype`` rounds a filled composite to it,
    as the CPU twin's float32/float64 scratch rows do)."""

    @cuda.jit
    def lai_gpu(comp, dates, order, starts, lo_c, w, out):
        # One thread per pixel, the CPU twin's order of work: walk the composites once,
        # fill a NaN one from the row before and the next valid one (held at the ends),
        # and emit each target day when the composite ending its bracket is reached. The
        # next valid composite is searched for once and kept until passed.
        p = cuda.grid(1)
        n = comp.shape[0]
        if p >= comp.shape[1]:
            return
        # Every NaN in the composites' dtype: a float64 one would widen the fill's
        # arithmetic on the device (Numba types float32 * float64 as float64), while the
        # CUDA simulator follows NumPy, which keeps float32, so only a real GPU would differ.
        nan = as_dtype(np.nan)
        prev, b, bt = nan, nan, nan  # prev: no composite before the first
        j = -1  # index of the cached next valid composite (n: none left)
        for k in range(n):
            x = comp[k, p]
            cur = x
            if x != x:
                if j <= k:
                    j = k + 1
                    while j < n and comp[j, p] != comp[j, p]:
                        j += 1
                    b, bt = (comp[j, p], dates[j]) if j < n else (nan, nan)
                cur = as_dtype(_filled(prev, dates[max(k - 1, 0)], b, bt, dates[k]))
            for q in range(starts[k], starts[k + 1]):
                d = order[q]
                lo = prev if lo_c[d] < k else cur
                out[d, p] = _lerp(lo, w[d], cur)
            prev = cur

    return lai_gpu


_LAI_GPU = {np.dtype(np.float32): _make_lai_gpu(numba.float32)}
_LAI_GPU[np.dtype(np.float64)] = _make_lai_gpu(numba.float64)


def _lai_on_gpu(comp, dates, order, starts, lo_c, w, out) -> None:
    """Launch the GPU twin on ``(T, pixels)`` composites (the small tables copied over)."""
    xp = array_module(comp)
    args = [xp.asarray(v) for v in (dates, order, starts, lo_c, w)]
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


def lai_tables(cdates: np.ndarray, tdates: np.ndarray, dtype):
    """The small tables both twins take: ``(dates, order, starts, lo_c, w)``.

    Arithmetic is in the composites' ``dtype``: composite dates counted from the first
    composite (float32 holds those to minutes even over decades) and the target days'
    weights. In float64 the conversions to and from float32 made the CPU interpolation
    compute-bound; in float32 it runs at the speed of its stores.
    """
    lo_k, hi_k, w = brackets(cdates, tdates)
    lo_c, order, starts = _day_order(lo_k, hi_k, cdates.size)
    dates = (cdates - cdates[0] if cdates.size else cdates).astype(dtype)
    if dates.size > 1 and not np.all(np.diff(dates) > 0):
        raise ValueError(
            f"composite_dates are too close together for {np.dtype(dtype).name} composites: "
            "counted from the first, two of them round to the same value"
        )
    return dates, order, starts, lo_c, w.astype(dtype)


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
    composite stays NaN. The arithmetic is in the composites' dtype: for float32 LAI
    (0–7) the result is within 1e-6 of the same interpolation in float64.

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
    tables = lai_tables(cdates, tdates, comp2.dtype)
    if on_gpu:
        _lai_on_gpu(xp.ascontiguousarray(comp2), *tables, out2)
    else:
        _lai_cpu(np.ascontiguousarray(comp2), *tables, out2)
    return out
