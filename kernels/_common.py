"""Helpers shared by the kernels: argument checks and CUDA launch shapes."""

from __future__ import annotations

import math

import numpy as np

from smci_gpu.backend import is_device_array

THREADS_1D = 256
#: 2-D launches: x (32 threads, a warp) runs along the last, contiguous axis, so a warp's
#: loads and stores fall on neighbouring addresses; kernels read ``j, i = cuda.grid(2)``.
THREADS_2D = (32, 8)


def check_float(a, name: str) -> None:
    """Kernels work in float32 or float64 and keep the dtype."""
    if a.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} must be float32 or float64, got {a.dtype}")


def check_same_device(**arrays) -> bool:
    """True when all arrays are on the GPU, False when all on the host; else ValueError."""
    flags = {name: is_device_array(a) for name, a in arrays.items() if a is not None}
    if len(set(flags.values())) > 1:
        on_gpu = [n for n, f in flags.items() if f]
        raise ValueError(f"arrays must all be NumPy or all CuPy; on the GPU: {on_gpu}")
    return any(flags.values())


def blocks_1d(n: int) -> int:
    return max(1, math.ceil(n / THREADS_1D))


def blocks_2d(ny: int, nx: int, threads: tuple[int, int] = THREADS_2D) -> tuple[int, int]:
    """Blocks of ``threads`` covering ``ny`` rows × ``nx`` columns, x along the columns."""
    return (max(1, math.ceil(nx / threads[0])), max(1, math.ceil(ny / threads[1])))
