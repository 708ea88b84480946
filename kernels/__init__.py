"""Compute kernels: each algorithm's CPU twin (Numba ``njit``) and GPU twin (Numba-CUDA)
sit in one file behind a dispatcher on the array type (NumPy → CPU, CuPy → GPU).

Kernels take and return arrays: no xarray, no files. Installed as ``smci_gpu.kernels``.
"""

from smci_gpu.kernels.assemble import assemble_features, rows_finite
from smci_gpu.kernels.blocks import block_majority, block_mean
from smci_gpu.kernels.lai import lai_daily
from smci_gpu.kernels.upsample import fill_nearest_valid, gather_2d, upsample_nearest

__all__ = [
    "assemble_features",
    "block_majority",
    "block_mean",
    "fill_nearest_valid",
    "gather_2d",
    "lai_daily",
    "rows_finite",
    "upsample_nearest",
]
