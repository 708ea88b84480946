"""Block aggregation: NaN-aware means (500 m → 1 km, 1 km → 9 km) and categorical majority."""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda
from smci_gpu.kernels._common import THREADS_2D, blocks_2d, check_float, check_same_device

from smci_gpu.backend import array_module

MAX_BLOCK_CELLS = 256  # majority: fy * fx at most (12 × 12 = 144 for 1 km → 9 km)


def _block_shape(a, fy: int, fx: int) -> tuple[int, int]:
    if fy < 1 or fx < 1:
        raise ValueError(f"block factors must be >= 1, got fy={fy}, fx={fx}")
    if a.ndim < 2:
        raise ValueError(f"a must have at least 2 dimensions, got shape {a.shape}")
    ny, nx = a.shape[-2:]
    if ny % fy or nx % fx:
        raise ValueError(f"a's last two dims {(ny, nx)} are not multiples of ({fy}, {fx})")
    return ny // fy, nx // fx


def _block_views(a, fy: int, fx: int, out):
    """Check shapes and devices, allocate ``out`` when missing (same dtype and device as
    ``a``), and view both as 3-D ``(lead, y, x)``: ``(on_gpu, out, a3, o3)``."""
    oy, ox = _block_shape(a, fy, fx)
    on_gpu = check_same_device(a=a, out=out)
    if out is None:
        out = array_module(a).empty((*a.shape[:-2], oy, ox), dtype=a.dtype)
    return on_gpu, out, a.reshape(-1, *a.shape[-2:]), out.reshape(-1, oy, ox)


@numba.njit(parallel=True, cache=True)
def _mean_cpu(a, fy, fx, min_valid, n_chunks, out):
    # Rows of blocks in chunks: first sum each block-row's fy input rows column by column
    # (contiguous, vectorisable), then fold fx neighbouring columns into one output.
    lead, oy, ox = out.shape
    nx = a.shape[2]
    n_rows = lead * oy
    for ch in numba.prange(n_chunks):
        col_sum = np.empty(nx, np.float64)
        col_n = np.empty(nx, np.int32)
        for k in range(ch * n_rows // n_chunks, (ch + 1) * n_rows // n_chunks):
            b = k // oy
            i = k - b * oy
            col_sum[:] = 0.0
            col_n[:] = 0
            for u in range(fy):
                row = a[b, i * fy + u]
                for c in range(nx):
                    x = row[c]
                    ok = x == x  # not NaN
                    col_sum[c] += x if ok else 0.0
                    col_n[c] += ok
            orow = out[b, i]
            for j in range(ox):
                s = 0.0
                n = 0
                for v in range(fx):
                    s += col_sum[j * fx + v]
                    n += col_n[j * fx + v]
                orow[j] = s / n if n >= min_valid and n > 0 else np.nan


@numba.njit(parallel=True, cache=True)
def _mean_2x2_cpu(a, min_valid, out):
    # 500 m → 1 km: four loads per output, no partial-sum rows. The sums pair cells
    # column-wise first, as the general kernel does, so both give the same bits.
    lead, oy, ox = out.shape
    for k in numba.prange(lead * oy):
        b = k // oy
        i = k - b * oy
        r0 = a[b, 2 * i]
        r1 = a[b, 2 * i + 1]
        orow = out[b, i]
        for j in range(ox):
            x0, x1, x2, x3 = r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]
            left = (np.float64(x0) if x0 == x0 else 0.0) + (np.float64(x2) if x2 == x2 else 0.0)
            right = (np.float64(x1) if x1 == x1 else 0.0) + (np.float64(x3) if x3 == x3 else 0.0)
            n = (x0 == x0) + (x1 == x1) + (x2 == x2) + (x3 == x3)
            orow[j] = (left + right) / n if n >= min_valid and n > 0 else np.nan


@cuda.jit
def _mean_gpu(a, fy, fx, min_valid, out):
    i, j = cuda.grid(2)
    lead, oy, ox = out.shape
    if i < oy and j < ox:
        for b in range(lead):
            s = 0.0
            n = 0
            for u in range(fy):
                for v in range(fx):
                    x = a[b, i * fy + u, j * fx + v]
                    if x == x:
                        s += x
                        n += 1
            if n >= min_valid and n > 0:
                out[b, i, j] = s / n
            else:
                out[b, i, j] = a[b, 0, 0] * np.nan


def block_mean(a, fy: int, fx: int, min_valid: int = 1, out=None):
    """Mean of the valid (non-NaN) cells of each ``fy × fx`` block.

    Blocks with fewer than ``min_valid`` valid cells are NaN. Accumulates in float64;
    the result keeps ``a``'s dtype.
    """
    check_float(a, "a")
    on_gpu, out, a3, o3 = _block_views(a, fy, fx, out)
    oy, ox = o3.shape[1:]
    if on_gpu:
        _mean_gpu[blocks_2d(oy, ox), THREADS_2D](a3, fy, fx, min_valid, o3)
    elif fy == 2 and fx == 2:
        _mean_2x2_cpu(np.ascontiguousarray(a3), min_valid, o3)
    else:
        n_chunks = min(o3.shape[0] * oy, 8 * numba.get_num_threads())
        _mean_cpu(np.ascontiguousarray(a3), fy, fx, min_valid, n_chunks, o3)
    return out


@numba.njit(inline="always")
def _majority_of(buf, n, nodata):
    # Insertion sort of the block's values, then the longest run (ties → smallest value).
    for p in range(1, n):
        x = buf[p]
        q = p - 1
        while q >= 0 and buf[q] > x:
            buf[q + 1] = buf[q]
            q -= 1
        buf[q + 1] = x
    best, best_n, run = nodata, 0, 0
    for p in range(n):
        run = run + 1 if p > 0 and buf[p] == buf[p - 1] else 1
        if run > best_n:
            best, best_n = buf[p], run
    return best


def _collect_block_py(a, b, i, j, fy, fx, nodata, has_nodata, buf):
    """Copy the block's cells other than ``nodata`` into ``buf``; return how many."""
    n = 0
    for u in range(fy):
        for v in range(fx):
            x = a[b, i * fy + u, j * fx + v]
            if not (has_nodata and x == nodata):
                buf[n] = x
                n += 1
    return n


# One body, compiled for each side: inlined into the CPU loop, a device function on GPU.
_collect_block = numba.njit(inline="always")(_collect_block_py)
_collect_block_gpu = cuda.jit(device=True)(_collect_block_py)


@numba.njit(parallel=True, cache=True)
def _majority_cpu(a, fy, fx, nodata, has_nodata, out):
    lead, oy, ox = out.shape
    for k in numba.prange(lead * oy):
        b = k // oy
        i = k - b * oy
        buf = np.empty(fy * fx, dtype=np.int64)
        for j in range(ox):
            n = _collect_block(a, b, i, j, fy, fx, nodata, has_nodata, buf)
            out[b, i, j] = _majority_of(buf, n, nodata)


# uint8 maps rank candidates by one integer key, count * 256 + (255 - value): the largest
# key has the largest count and, among equal counts, the smallest value. Taking a max of
# keys needs no branch, which matters because neighbouring classes are unpredictable.


@numba.njit(inline="always")
def _key(x, count):
    return count * 256 + 255 - x


@numba.njit(inline="always")
def _value_of(best_key, nodata):
    return 255 - (best_key & 255) if best_key >= 256 else nodata


@numba.njit(parallel=True, cache=True)
def _majority_counts_cpu(a, fy, fx, nodata, has_nodata, out):
    # A 256-bin histogram per block (cleared after it) instead of a sort.
    lead, oy, ox = out.shape
    for k in numba.prange(lead * oy):
        b = k // oy
        i = k - b * oy
        counts = np.zeros(256, np.int32)
        for j in range(ox):
            best_key = 0
            for u in range(fy):
                row = a[b, i * fy + u]
                for v in range(fx):
                    x = np.int32(row[j * fx + v])
                    ok = np.int32(not (has_nodata and x == nodata))
                    c = counts[x] + ok
                    counts[x] = c
                    best_key = max(best_key, ok * _key(x, c))
            for u in range(fy):
                row = a[b, i * fy + u]
                for v in range(fx):
                    counts[row[j * fx + v]] = 0
            out[b, i, j] = _value_of(best_key, nodata)


@numba.njit(parallel=True, cache=True)
def _majority_2x2_cpu(a, nodata, has_nodata, out):
    # 500 m → 1 km land cover: each cell's count is its matches among the four.
    lead, oy, ox = out.shape
    for k in numba.prange(lead * oy):
        b = k // oy
        i = k - b * oy
        r0 = a[b, 2 * i]
        r1 = a[b, 2 * i + 1]
        o = out[b, i]
        for j in range(ox):
            x0, x1 = np.int32(r0[2 * j]), np.int32(r0[2 * j + 1])
            x2, x3 = np.int32(r1[2 * j]), np.int32(r1[2 * j + 1])
            v0 = np.int32(not (has_nodata and x0 == nodata))
            v1 = np.int32(not (has_nodata and x1 == nodata))
            v2 = np.int32(not (has_nodata and x2 == nodata))
            v3 = np.int32(not (has_nodata and x3 == nodata))
            e01, e02, e03 = np.int32(x0 == x1), np.int32(x0 == x2), np.int32(x0 == x3)
            e12, e13, e23 = np.int32(x1 == x2), np.int32(x1 == x3), np.int32(x2 == x3)
            k0 = v0 * _key(x0, v0 + v1 * e01 + v2 * e02 + v3 * e03)
            k1 = v1 * _key(x1, v1 + v0 * e01 + v2 * e12 + v3 * e13)
            k2 = v2 * _key(x2, v2 + v0 * e02 + v1 * e12 + v3 * e23)
            k3 = v3 * _key(x3, v3 + v0 * e03 + v1 * e13 + v2 * e23)
            o[j] = _value_of(max(max(k0, k1), max(k2, k3)), nodata)


@cuda.jit
def _majority_gpu(a, fy, fx, nodata, has_nodata, out):
    i, j = cuda.grid(2)
    lead, oy, ox = out.shape
    if i < oy and j < ox:
        buf = cuda.local.array(MAX_BLOCK_CELLS, dtype=numba.int64)
        for b in range(lead):
            n = _collect_block_gpu(a, b, i, j, fy, fx, nodata, has_nodata, buf)
            out[b, i, j] = _majority_of(buf, n, nodata)


def block_majority(a, fy: int, fx: int, nodata: int | None = None, out=None):
    """Most frequent value of each ``fy × fx`` block of a categorical (integer) map.

    Cells equal to ``nodata`` are ignored; a block with no other value is ``nodata``
    (or 0 when none is given). Ties go to the smallest class value. Land cover is
    aggregated this way, never averaged.
    """
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"a must be an integer (categorical) array, got {a.dtype}")
    if fy * fx > MAX_BLOCK_CELLS:
        raise ValueError(f"blocks of {fy}x{fx} exceed {MAX_BLOCK_CELLS} cells")
    on_gpu, out, a3, o3 = _block_views(a, fy, fx, out)
    oy, ox = o3.shape[1:]
    fill = 0 if nodata is None else int(nodata)
    if on_gpu:
        _majority_gpu[blocks_2d(oy, ox), THREADS_2D](a3, fy, fx, fill, nodata is not None, o3)
    elif a.dtype == np.uint8 and fy == 2 and fx == 2:
        _majority_2x2_cpu(np.ascontiguousarray(a3), fill, nodata is not None, o3)
    elif a.dtype == np.uint8:
        _majority_counts_cpu(np.ascontiguousarray(a3), fy, fx, fill, nodata is not None, o3)
    else:
        _majority_cpu(np.ascontiguousarray(a3), fy, fx, fill, nodata is not None, o3)
    return out
