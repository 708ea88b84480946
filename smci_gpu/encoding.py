"""The product's int16 encoding on the array's own device (NumPy or CuPy).

Kept free of the config, pandas and NetCDF imports so that a GPU machine with only NumPy,
Numba and CuPy can run it (``benchmarks/device_check.sh``).
"""

from __future__ import annotations

import numba
import numpy as np

from smci_gpu import backend

#: The product's packing: counts of 0.001 m³ m⁻³, fill −999 (as :mod:`smci_gpu.io.writer`).
SCALE = 0.001
FILL = -999


def encode_counts(values, lo: float, hi: float):
    """Soil moisture (m³ m⁻³) → the product's int16 counts, on the array's own device.

    ``rint(clip(values, lo, hi) / 0.001)`` in float32, NaN → −999: the same numbers as
    :func:`smci_gpu.io.writer.encode_int16` of the clipped values (round half to even in
    both; float32 division is correctly rounded on CPUs and on CUDA devices). On the GPU
    path it runs on the device, so only int16 (half of float32) crosses to the host.

    Parameters
    ----------
    values : ndarray (NumPy or CuPy), float32 or float64 (taken to float32 first)
    lo, hi : float
        Clip bounds, m³ m⁻³ (``produce.clip_min``/``clip_max``).

    Returns
    -------
    ndarray of int16, same shape and device.
    """
    xp = backend.array_module(values)
    # float32 first, as the float product stores predictions (forests give float64):
    # the counts are then those of the float32 file's values.
    v = values.astype(xp.float32, copy=False)
    counts = xp.rint(xp.clip(v, lo, hi) / xp.float32(SCALE))
    return xp.where(xp.isfinite(v), counts, xp.float32(FILL)).astype(xp.int16)


def encode_scatter(out, rows, cols, values, lo: float, hi: float) -> int:
    """``out[rows, cols] = encode_counts(values, lo, hi)`` in one pass; returns how many
    ``values`` lie outside ``[lo, hi]`` (compared in their own dtype, NaN not counted).

    The CPU path of production's per-tile encoding: one fused Numba loop instead of
    NumPy's cast, clip, divide, round, test, select and scatter passes over the tile
    (each a full temporary), with the same numbers (float32 arithmetic, round half to
    even; the tests compare it with :func:`encode_counts`). On CuPy arrays it runs
    :func:`encode_counts` and the scatter on the device.

    Parameters
    ----------
    out : ndarray (ny, nx) int16, written at ``(rows, cols)``
    rows, cols : ndarray (n,) integer pixel indexes
    values : ndarray (n,) float32 or float64 soil moisture, m³ m⁻³
    lo, hi : float
        Clip bounds, m³ m⁻³.
    """
    xp = backend.array_module(values)
    if xp.__name__ != "numpy":
        out[rows, cols] = encode_counts(values, lo, hi)
        return int(((values < lo) | (values > hi)).sum())
    kind = values.dtype.type
    return int(_encode_scatter_cpu(values, kind(lo), kind(hi), rows, cols, out))


@numba.njit(cache=True)
def _encode_scatter_cpu(values, lo, hi, rows, cols, out):
    # One thread: ~1,000 calls a China day (tiles × layers), each a few ms. As a parallel
    # region each call waited at its barrier whenever the reader or writer thread held a
    # core (2-core VM, pipelined: 9.0 s per day against 0.4 s alone).
    clipped = 0
    lo32, hi32 = np.float32(lo), np.float32(hi)
    scale = np.float32(SCALE)
    for i in range(values.size):
        x = values[i]
        if x < lo or x > hi:  # in the values' dtype, as the float path counts
            clipped += 1
        v = np.float32(x)  # float32 first, as encode_counts
        if np.isfinite(v):
            out[rows[i], cols[i]] = np.int16(np.rint(min(max(v, lo32), hi32) / scale))
        else:
            out[rows[i], cols[i]] = FILL
    return clipped
