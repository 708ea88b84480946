"""The product's int16 encoding on the array's own device (NumPy or CuPy).

Kept free of the config, pandas and NetCDF imports so that a GPU machine with only NumPy,
Numba and CuPy can run it (``benchmarks/device_check.sh``).
"""

from __future__ import annotations

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
