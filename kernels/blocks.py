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


@numba.njit(inline="always")
def _valid_or_zero(x):
    return np.float64(x) if x == x else 0.0


@numba.njit(inline="always")
def _sum_columns(rows, col_sum, col_n):
    """Sum (float64) and count of the valid cells in each column of ``rows``. Rows go four
    at a time, so the column sums are loaded and stored a quarter as often."""
    fy, nx = rows.shape
    col_sum[:] = 0.0
    col_n[:] = 0
    u = 0
    while u + 4 <= fy:
        r0, r1, r2, r3 = rows[u], rows[u + 1], rows[u + 2], rows[u + 3]
        for c in range(nx):
            x0, x1, x2, x3 = r0[c], r1[c], r2[c], r3[c]
            s = _valid_or_zero(x0) + _valid_or_zero(x1) + _valid_or_zero(x2) + _valid_or_zero(x3)
            col_sum[c] += s
            col_n[c] += (x0 == x0) + (x1 == x1) + (x2 == x2) + (x3 == x3)
        u += 4
    for v in range(u, fy):
        row = rows[v]
        for c in range(nx):
            x = row[c]
            col_sum[c] += _valid_or_zero(x)
            col_n[c] += x == x


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
            _sum_columns(a[b, i * fy : (i + 1) * fy], col_sum, col_n)
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
            left = _valid_or_zero(x0) + _valid_or_zero(x2)
            right = _valid_or_zero(x1) + _valid_or_zero(x3)
            n = (x0 == x0) + (x1 == x1) + (x2 == x2) + (x3 == x3)
            orow[j] = (left + right) / n if n >= min_valid and n > 0 else np.nan


@cuda.jit
def _mean_gpu(a, fy, fx, min_valid, out):
    j, i = cuda.grid(2)
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


# The uint8 majority kernels rank candidates by one integer key, count * 256 + (255 -
# value): the largest key has the largest count and, among equal counts, the smallest
# value. Taking a max of keys needs no branch, which matters because neighbouring classes
# are unpredictable.
_NEVER = -(1 << 20)  # nodata's starting count: its keys stay negative, never the best


@numba.njit(inline="always")
def _class_key(n, cls):
    """The key of class ``cls`` seen ``n`` times (0, never the best, when ``n <= 0``)."""
    return n * 256 + 255 - cls if n > 0 else 0


@numba.njit(inline="always")
def _value_of(best_key, nodata):
    return 255 - (best_key & 255) if best_key >= 256 else nodata


MAX_CLASS_PASSES = 32  # class values spanned by a block-row up to which counting per class wins


@numba.njit(inline="always")
def _majority_by_histogram(rows, fx, nodata, has_nodata, counts, o):
    # A 256-bin histogram per block, cleared after it. Blocks are read through row slices
    # so the indices are known non-negative (no wrap-around checks).
    fy = rows.shape[0]
    for j in range(o.size):
        if has_nodata:
            counts[nodata] = _NEVER
        best_key = 0
        for u in range(fy):
            block_row = rows[u, j * fx : (j + 1) * fx]
            for v in range(fx):
                x = block_row[v]
                c = counts[x] + 1
                counts[x] = c
                best_key = max(best_key, _class_key(c, np.int32(x)))
        for u in range(fy):
            block_row = rows[u, j * fx : (j + 1) * fx]
            for v in range(fx):
                counts[block_row[v]] = 0
        o[j] = _value_of(best_key, nodata)


@numba.njit(inline="always")
def _class_range(rows, nodata, has_nodata):
    """Smallest and largest class in a block-row, nodata left out (lo > hi when none):
    uint8 min/max reductions, which vectorise, unlike marking each class seen."""
    nd = np.uint8(nodata)
    lo, hi = np.uint8(255), np.uint8(0)
    for u in range(rows.shape[0]):
        row = rows[u]
        for c in range(row.size):
            x = row[c]
            skip = has_nodata and x == nd
            lo = min(lo, np.uint8(255) if skip else x)
            hi = max(hi, np.uint8(0) if skip else x)
    return np.int32(lo), np.int32(hi)


@numba.njit(inline="always")
def _count_class_per_column(rows, x, col):
    # col[c] = cells of class x in column c of the block-row. Rows go four at a time, so
    # col is loaded and stored once per four rows; uint8 lanes hold up to fy <= 255.
    fy, nx = rows.shape
    col[:nx] = 0
    u = 0
    while u + 4 <= fy:
        r0, r1, r2, r3 = rows[u], rows[u + 1], rows[u + 2], rows[u + 3]
        for c in range(nx):
            col[c] += (
                np.uint8(r0[c] == x)
                + np.uint8(r1[c] == x)
                + np.uint8(r2[c] == x)
                + np.uint8(r3[c] == x)
            )
        u += 4
    for v in range(u, fy):
        r = rows[v]
        for c in range(nx):
            col[c] += np.uint8(r[c] == x)


@numba.njit(inline="always")
def _byte_sum(w):
    # The four bytes of a uint32 word added: the top byte of w * 0x01010101 (exact while
    # the sum is at most 255). Numba widens uint32 arithmetic to 64 bits: keep 32 only.
    return np.int32(((w * np.uint32(0x01010101)) >> np.uint32(24)) & np.uint32(255))


@numba.njit(inline="always")
def _fold_block_counts(col, fy, fx, cls, best):
    # Each block's count of class cls from its fx column counts, kept as the best key
    # per block. With fx a multiple of 4 the columns are summed four to a uint32 word,
    # then the word's bytes: exact while a block holds at most 255 cells.
    ox = best.size
    if fx % 4 == 0 and fy * fx <= 255:
        words = col.view(np.uint32)
        k = fx // 4
        if k == 3:  # 12 columns: 1 km → 9 km
            for j in range(ox):
                w = words[3 * j] + words[3 * j + 1] + words[3 * j + 2]
                best[j] = max(best[j], _class_key(_byte_sum(w), cls))
        else:
            for j in range(ox):
                w = np.uint32(0)
                for v in range(k):
                    w += words[j * k + v]
                best[j] = max(best[j], _class_key(_byte_sum(w), cls))
    else:
        for j in range(ox):
            block = col[j * fx : (j + 1) * fx]
            n = np.int32(0)
            for v in range(fx):
                n += block[v]
            best[j] = max(best[j], _class_key(n, cls))


@numba.njit(inline="always")
def _majority_by_class(rows, fx, lo, hi, nodata, has_nodata, col, best, o):
    # One pass per class in lo..hi: count its cells per column over the block-row (a
    # compare-and-add over whole rows, which vectorises), fold each block's columns, and
    # keep the best key per block. Few classes per block-row, as land cover has, make this
    # several times faster than the histogram, whose counter updates form a chain.
    best[:] = 0
    for cls in range(lo, hi + 1):
        if has_nodata and cls == nodata:
            continue
        _count_class_per_column(rows, np.uint8(cls), col)
        _fold_block_counts(col, rows.shape[0], fx, cls, best)
    for j in range(o.size):
        o[j] = _value_of(best[j], nodata)


@numba.njit(parallel=True, cache=True)
def _majority_counts_cpu(a, fy, fx, nodata, has_nodata, out):
    # uint8 maps, any block shape with fy <= 255: per block-row, count per class when its
    # classes span few values, else fall back to a histogram per block.
    lead, oy, ox = out.shape
    nx = a.shape[2]
    for k in numba.prange(lead * oy):
        b = k // oy
        i = k - b * oy
        rows = a[b, i * fy : (i + 1) * fy]
        lo, hi = _class_range(rows, nodata, has_nodata)
        if hi - lo < MAX_CLASS_PASSES:
            col = np.empty(nx, np.uint8)
            best = np.empty(ox, np.int32)
            _majority_by_class(rows, fx, lo, hi, nodata, has_nodata, col, best, out[b, i])
        else:
            counts = np.zeros(256, np.int32)
            _majority_by_histogram(rows, fx, nodata, has_nodata, counts, out[b, i])


@numba.njit(inline="always")
def _sorted_pair(a, b):
    return min(a, b), max(a, b)


@numba.njit(inline="always")
def _sort4(x0, x1, x2, x3):
    # A five-exchange sorting network: no branch, so the loop around it vectorises.
    x0, x1 = _sorted_pair(x0, x1)
    x2, x3 = _sorted_pair(x2, x3)
    x0, x2 = _sorted_pair(x0, x2)
    x1, x3 = _sorted_pair(x1, x3)
    x1, x2 = _sorted_pair(x1, x2)
    return x0, x1, x2, x3


@numba.njit(inline="always")
def _majority_sorted(x0, x1, x2, x3, absent):
    """Majority of four sorted values (ties → smallest), ignoring those equal to ``absent``,
    which must be the largest value the type holds in this block (it sorts last).

    A middle pair (x1 = x2) holds at least two of the four and no other value can hold
    two: it wins. Else an upper pair wins unless there is also a lower pair (two pairs:
    the smaller, x0). Else x0: the lower pair, or the smallest of distinct values.
    """
    best = x2 if (x2 == x3) & (x0 != x1) & (x2 != absent) else x0
    return x1 if (x1 == x2) & (x1 != absent) else best


@numba.njit(inline="always")
def _majority_2x2(x0, x1, x2, x3):
    """Majority of four cells when every value counts (no nodata): ``_majority_sorted``'s
    rule without the ``absent`` tests."""
    x0, x1, x2, x3 = _sort4(x0, x1, x2, x3)
    best = x2 if (x2 == x3) & (x0 != x1) else x0
    return x1 if x1 == x2 else best


@numba.njit(inline="always")
def _majority_2x2_nodata(x0, x1, x2, x3, nd):
    """Majority of four uint8 cells leaving out ``nd`` (``nd`` when all four are it)."""
    x0, x1, x2, x3 = _sort4(
        _rank_below(x0, nd), _rank_below(x1, nd), _rank_below(x2, nd), _rank_below(x3, nd)
    )
    best = _majority_sorted(x0, x1, x2, x3, np.uint8(255))
    return nd if best == 255 else np.uint8(best + np.uint8(best >= nd))


@numba.njit(inline="always")
def _rank_below(x, nd):
    # Classes other than nodata map order-preservingly onto 0..254 (those above nodata
    # move down by one) and nodata onto 255, so every class fits in 8 bits with nodata
    # sorting last.
    return np.uint8(255) if x == nd else np.uint8(x - np.uint8(x > nd))


@numba.njit(inline="always")
def _row_majority_2x2(top, bottom, o):
    for j in range(o.size):
        o[j] = _majority_2x2(top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1])


@numba.njit(inline="always")
def _row_majority_2x2_nodata(top, bottom, nd, o):
    for j in range(o.size):
        o[j] = _majority_2x2_nodata(
            top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1], nd
        )


@numba.njit(parallel=True, cache=True)
def _majority_2x2_cpu(a, nodata, has_nodata, out):
    # 500 m → 1 km land cover in 8-bit lanes: stride-2 loads, a sorting network and no
    # branch in the loops, so they vectorise.
    lead, oy, ox = out.shape
    nd = np.uint8(nodata)
    for k in numba.prange(lead * oy):
        b = k // oy
        i = k - b * oy
        top, bottom, o = a[b, 2 * i], a[b, 2 * i + 1], out[b, i]
        if has_nodata:
            _row_majority_2x2_nodata(top, bottom, nd, o)
        else:
            _row_majority_2x2(top, bottom, o)


@cuda.jit
def _majority_gpu(a, fy, fx, nodata, has_nodata, out):
    j, i = cuda.grid(2)
    lead, oy, ox = out.shape
    if i < oy and j < ox:
        buf = cuda.local.array(MAX_BLOCK_CELLS, dtype=numba.int64)
        for b in range(lead):
            n = _collect_block_gpu(a, b, i, j, fy, fx, nodata, has_nodata, buf)
            out[b, i, j] = _majority_of(buf, n, nodata)


@cuda.jit
def _majority_2x2_u8_gpu(a, nodata, has_nodata, out):
    # One thread per 2 × 2 block, the CPU twin's sorting network and pair rule.
    j, i = cuda.grid(2)
    lead, oy, ox = out.shape
    if i < oy and j < ox:
        nd = np.uint8(nodata)
        for b in range(lead):
            x0, x1 = a[b, 2 * i, 2 * j], a[b, 2 * i, 2 * j + 1]
            x2, x3 = a[b, 2 * i + 1, 2 * j], a[b, 2 * i + 1, 2 * j + 1]
            if has_nodata:
                out[b, i, j] = _majority_2x2_nodata(x0, x1, x2, x3, nd)
            else:
                out[b, i, j] = _majority_2x2(x0, x1, x2, x3)


WARPS_PER_BLOCK = 8  # uint8 majority: one warp per output cell, eight cells per block


@cuda.jit
def _majority_u8_gpu(a, fy, fx, nodata, has_nodata, out):
    # One warp per output cell: its lanes count the block's cells into a 256-bin histogram
    # in shared memory, then take the largest key count * 256 + (255 - class) (ties →
    # the smaller class) over the bins.
    lane, w = cuda.threadIdx.x, cuda.threadIdx.y
    hist = cuda.shared.array((WARPS_PER_BLOCK, 256), numba.int32)
    lead, oy, ox = out.shape
    cell = cuda.blockIdx.x * WARPS_PER_BLOCK + w
    active = cell < lead * oy * ox  # no early return: every thread reaches the barriers
    b = cell // (oy * ox)
    i = (cell // ox) % oy
    j = cell % ox
    for c in range(lane, 256, 32):
        hist[w, c] = 0
    cuda.syncthreads()
    if active:
        for q in range(lane, fy * fx, 32):
            u = q // fx
            cuda.atomic.add(hist, (w, a[b, i * fy + u, j * fx + q - u * fx]), 1)
    cuda.syncthreads()
    best = 0
    for c in range(lane, 256, 32):
        n = hist[w, c]
        if not (has_nodata and c == nodata):
            best = max(best, _class_key(n, c))
    # The warp's maximum by halving in shared memory (shuffles would do, but the CUDA
    # simulator that CI runs has none).
    keys = cuda.shared.array((WARPS_PER_BLOCK, 32), numba.int32)
    keys[w, lane] = best
    half = 16
    while half > 0:
        cuda.syncthreads()
        if lane < half:
            keys[w, lane] = max(keys[w, lane], keys[w, lane + half])
        half //= 2
    if active and lane == 0:
        out[b, i, j] = _value_of(keys[w, 0], nodata)


def _majority_on_gpu(a3, fy: int, fx: int, fill: int, has_nodata: bool, o3) -> None:
    """Launch the GPU majority kernel for this dtype and block shape."""
    lead, oy, ox = o3.shape
    if a3.dtype == np.uint8 and fy == 2 and fx == 2:
        _majority_2x2_u8_gpu[blocks_2d(oy, ox), THREADS_2D](a3, fill, has_nodata, o3)
    elif a3.dtype == np.uint8:
        n_blocks = max(1, -(-lead * oy * ox // WARPS_PER_BLOCK))
        _majority_u8_gpu[n_blocks, (32, WARPS_PER_BLOCK)](a3, fy, fx, fill, has_nodata, o3)
    else:
        _majority_gpu[blocks_2d(oy, ox), THREADS_2D](a3, fy, fx, fill, has_nodata, o3)


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
    if nodata is not None and not np.iinfo(a.dtype).min <= nodata <= np.iinfo(a.dtype).max:
        raise ValueError(f"nodata={nodata} is outside the range of a's dtype {a.dtype}")
    on_gpu, out, a3, o3 = _block_views(a, fy, fx, out)
    oy, ox = o3.shape[1:]
    fill = 0 if nodata is None else int(nodata)
    if on_gpu:
        _majority_on_gpu(a3, fy, fx, fill, nodata is not None, o3)
    elif a.dtype == np.uint8 and fy == 2 and fx == 2:
        _majority_2x2_cpu(np.ascontiguousarray(a3), fill, nodata is not None, o3)
    elif a.dtype == np.uint8 and fy <= 255:
        _majority_counts_cpu(np.ascontiguousarray(a3), fy, fx, fill, nodata is not None, o3)
    else:
        _majority_cpu(np.ascontiguousarray(a3), fy, fx, fill, nodata is not None, o3)
    return out
