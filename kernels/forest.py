"""Random-forest inference over flat node arrays: CPU (Numba, parallel) and GPU (Numba-CUDA).

Node arrays (one entry per node, all trees concatenated): ``feature`` (−1 at leaves),
``threshold`` (float32, go left when ``x <= threshold``), ``left``/``right`` (absolute node
indices) and ``value`` (float64 leaf values). ``roots`` holds each tree's first node. The
GPU twin walks these arrays directly; the CPU twin walks the breadth-first
:func:`compact_layout` built from them. The prediction is the mean of the trees' leaf
values, accumulated in float64.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda
from smci_gpu.kernels._common import THREADS_1D, blocks_1d  # noqa: F401 (used by tests)


@numba.njit(cache=True)
def _compact_cpu(feature, threshold, left, right, value, roots, nodes, thr, leaf_values, new_roots):
    # Breadth-first per tree, the two children of a node side by side (right = left + 1),
    # so that one 12-byte record (feature, threshold, first child) is all a step reads.
    queue = np.empty(feature.size, np.int64)
    pos = 0
    n_leaf = 0
    for t in range(roots.size):
        new_roots[t] = pos
        head, tail = 0, 1
        queue[0] = roots[t]
        pos += 1
        slot = new_roots[t]  # new index of queue[head]
        while head < tail:
            old = queue[head]
            if feature[old] < 0:
                nodes[slot, 0] = -1
                nodes[slot, 2] = n_leaf
                leaf_values[n_leaf] = value[old]
                n_leaf += 1
            else:
                nodes[slot, 0] = feature[old]
                thr[slot, 1] = threshold[old]
                nodes[slot, 2] = pos
                queue[tail] = left[old]
                queue[tail + 1] = right[old]
                tail += 2
                pos += 2
            head += 1
            slot += 1
    return n_leaf


def compact_layout(feature, threshold, left, right, value, roots):
    """CPU layout: ``nodes`` ``(n, 3)`` int32 records (feature or −1, float32 threshold
    bits, first child or leaf slot), leaf values (float64) and the new tree roots."""
    n = feature.size
    nodes = np.zeros((n, 3), np.int32)
    leaf_values = np.empty(n, np.float64)
    new_roots = np.empty(roots.size, np.int64)
    thr = nodes.view(np.float32)
    n_leaf = _compact_cpu(
        feature,
        threshold.astype(np.float32),
        left,
        right,
        value,
        roots,
        nodes,
        thr,
        leaf_values,
        new_roots,
    )
    return nodes, leaf_values[:n_leaf].copy(), new_roots


CPU_BLOCK = 16384  # rows per parallel task: every tree is walked over them in turn
CPU_IN_FLIGHT = 16  # rows traversing one tree at once, so their memory loads overlap


@numba.njit(parallel=True, cache=True)
def _predict_compact_cpu(x, nodes, thr, leaf_values, roots, block, width, out):
    n = x.shape[0]
    n_blocks = (n + block - 1) // block
    for b in numba.prange(n_blocks):
        lo = b * block
        hi = min(lo + block, n)
        acc = np.zeros(hi - lo)
        cur = np.empty(width, np.int64)
        row = np.empty(width, np.int64)
        for t in range(roots.size):
            root = roots[t]
            nxt = lo
            m = 0
            while nxt < hi and m < width:
                cur[m] = root
                row[m] = nxt
                m += 1
                nxt += 1
            # Step every in-flight row once per pass; a row that reaches a leaf hands its
            # slot to the next row of the block.
            while m > 0:
                k = 0
                while k < m:
                    nd = cur[k]
                    f = nodes[nd, 0]
                    if f >= 0:
                        cur[k] = nodes[nd, 2] + (1 if x[row[k], f] > thr[nd, 1] else 0)
                        k += 1
                    else:
                        acc[row[k] - lo] += leaf_values[nodes[nd, 2]]
                        if nxt < hi:
                            cur[k] = root
                            row[k] = nxt
                            nxt += 1
                            k += 1
                        else:
                            m -= 1
                            cur[k] = cur[m]
                            row[k] = row[m]
        for r in range(lo, hi):
            out[r] = acc[r - lo] / roots.size


def predict_compact_cpu(x, nodes, leaf_values, roots, out=None):
    """CPU twin over the :func:`compact_layout`: ``(n,)`` float64 for float32 rows ``x``."""
    out = np.empty(x.shape[0], np.float64) if out is None else out
    thr = nodes.view(np.float32)
    _predict_compact_cpu(
        np.ascontiguousarray(x), nodes, thr, leaf_values, roots, CPU_BLOCK, CPU_IN_FLIGHT, out
    )
    return out


@cuda.jit
def _predict_gpu(x, feature, threshold, left, right, value, roots, out):
    r = cuda.grid(1)
    if r >= x.shape[0]:
        return
    acc = 0.0
    for t in range(roots.size):
        node = roots[t]
        while feature[node] >= 0:
            if x[r, feature[node]] <= threshold[node]:
                node = left[node]
            else:
                node = right[node]
        acc += value[node]
    out[r] = acc / roots.size


def predict_gpu(x, feature, threshold, left, right, value, roots, out=None):
    """GPU twin (device arrays; NumPy arrays under the CUDA simulator)."""
    if out is None:
        from smci_gpu.backend import array_module

        out = array_module(x).empty(x.shape[0], dtype=np.float64)
    _predict_gpu[blocks_1d(x.shape[0]), THREADS_1D](
        x, feature, threshold, left, right, value, roots, out
    )
    return out
