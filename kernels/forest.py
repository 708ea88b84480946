"""Random-forest inference over flat node arrays: CPU (Numba, parallel) and GPU (Numba-CUDA).

Node arrays (one entry per node, all trees concatenated): ``feature`` (−1 at leaves),
``threshold`` (float32, go left when ``x <= threshold``), ``left``/``right`` (absolute node
indices) and ``value`` (float64 leaf values). ``roots`` holds each tree's first node. The
prediction is the mean of the trees' leaf values, accumulated in float64.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda
from smci_gpu.kernels._common import THREADS_1D, blocks_1d  # noqa: F401 (used by tests)

ROW_BLOCK = 128  # rows that share a tree while it is hot in cache


@numba.njit(parallel=True, cache=True, fastmath=False)
def _predict_cpu(x, feature, threshold, left, right, value, roots, out):
    n = x.shape[0]
    n_blocks = (n + ROW_BLOCK - 1) // ROW_BLOCK
    n_trees = roots.size
    for b in numba.prange(n_blocks):
        lo = b * ROW_BLOCK
        hi = min(lo + ROW_BLOCK, n)
        acc = np.zeros(hi - lo)
        for t in range(n_trees):
            root = roots[t]
            for r in range(lo, hi):
                node = root
                while feature[node] >= 0:
                    if x[r, feature[node]] <= threshold[node]:
                        node = left[node]
                    else:
                        node = right[node]
                acc[r - lo] += value[node]
        for r in range(lo, hi):
            out[r] = acc[r - lo] / n_trees


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


def predict_cpu(x, feature, threshold, left, right, value, roots, out=None):
    """CPU twin: ``(n,)`` float64 predictions for float32 rows ``x``."""
    out = np.empty(x.shape[0], np.float64) if out is None else out
    _predict_cpu(np.ascontiguousarray(x), feature, threshold, left, right, value, roots, out)
    return out


def predict_gpu(x, feature, threshold, left, right, value, roots, out=None):
    """GPU twin (device arrays; NumPy arrays under the CUDA simulator)."""
    if out is None:
        from smci_gpu.backend import array_module

        out = array_module(x).empty(x.shape[0], dtype=np.float64)
    _predict_gpu[blocks_1d(x.shape[0]), THREADS_1D](
        x, feature, threshold, left, right, value, roots, out
    )
    return out
