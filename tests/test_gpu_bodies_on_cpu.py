"""GPU kernels' bodies compiled by Numba for the CPU, one thread at a time.

The CUDA simulator that CI runs executes a kernel as Python with NumPy scalars, whose
promotion rules differ from Numba's (NumPy keeps ``float32 * 0.5`` in float32, Numba
types it float64), so a kernel can pass there and compute in other types on a device.
Here ``cuda.grid`` is replaced by a function returning thread 0 and the body is compiled
for the CPU with Numba's own typing; each output is computed by slicing the inputs so
that it is thread 0's. Equal answers then mean the device computes what the CPU twin does
in the same types.
"""

from __future__ import annotations

import types

import numba
import numpy as np
import pytest

from smci_gpu import kernels as K


def gpu_body_on_cpu(kernel, ndim: int):
    """``kernel``'s Python body compiled for the CPU with ``cuda.grid(ndim)`` at 0."""
    fake_cuda = types.ModuleType("fake_cuda")
    fake_cuda.grid = numba.njit(lambda n: 0) if ndim == 1 else numba.njit(lambda n: (0, 0))
    body = kernel.py_func
    env = dict(body.__globals__, cuda=fake_cuda)
    func = types.FunctionType(body.__code__, env, body.__name__, None, body.__closure__)
    return numba.njit(func)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lai_gpu_kernel_computes_in_the_cpu_twins_types(dtype):
    from smci_gpu.kernels import lai

    rng = np.random.default_rng(5)
    comp = (rng.random((12, 300)) * 6).astype(dtype)
    comp[rng.random(comp.shape) < 0.4] = np.nan
    comp[:4, :20] = np.nan  # leading gaps: hold the first valid composite
    comp[-3:, 20:40] = np.nan  # trailing gaps: hold the last
    comp[:, 40] = np.nan  # no valid composite at all
    cdates = np.cumsum(rng.integers(3, 12, 12)).astype(float) + 7300.0
    tdates = np.arange(cdates[0] - 4, cdates[-1] + 4, 0.7)
    want = K.lai_daily(comp, cdates, tdates)
    kernel = gpu_body_on_cpu(lai._LAI_GPU[np.dtype(dtype)], 1)
    tables = lai.lai_tables(cdates, tdates, comp.dtype)
    got = np.empty_like(want)
    for p in range(comp.shape[1]):
        kernel(comp[:, p : p + 1], *tables, got[:, p : p + 1])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gather_gpu_kernel(dtype):
    from smci_gpu.kernels import upsample

    rng = np.random.default_rng(6)
    src = rng.random((3, 5, 6)).astype(dtype)
    iy, ix = rng.integers(0, 5, 9), rng.integers(0, 6, 11)
    kernel = gpu_body_on_cpu(upsample._gather_gpu, 2)
    got = np.empty((3, 9, 11), dtype)
    for i in range(9):
        for j in range(11):
            kernel(src, iy[i:], ix[j:], got[:, i:, j:])
    np.testing.assert_array_equal(got, K.gather_2d(src, iy, ix))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("f, min_valid", [(2, 1), (3, 4)])
def test_block_mean_gpu_kernel(dtype, f, min_valid):
    from smci_gpu.kernels import blocks

    rng = np.random.default_rng(7)
    a = rng.random((2, 4 * f, 5 * f)).astype(dtype)
    a[rng.random(a.shape) < 0.4] = np.nan
    a[:, :f, :f] = np.nan  # an all-NaN block
    kernel = gpu_body_on_cpu(blocks._mean_gpu, 2)
    got = np.empty((2, 4, 5), dtype)
    for i in range(4):
        for j in range(5):
            kernel(a[:, i * f :, j * f :], f, f, min_valid, got[:, i:, j:])
    # Same float64 sums in another order than the CPU twin's column sums.
    want = K.block_mean(a, f, f, min_valid=min_valid)
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    assert got.dtype == want.dtype


@pytest.mark.parametrize("nodata", [None, 0, 255])
def test_block_majority_2x2_gpu_kernel(nodata):
    from smci_gpu.kernels import blocks

    rng = np.random.default_rng(8)
    a = rng.choice(np.array([0, 1, 2, 255], np.uint8), (1, 16, 18))
    kernel = gpu_body_on_cpu(blocks._majority_2x2_u8_gpu, 2)
    got = np.empty((1, 8, 9), np.uint8)
    fill = 0 if nodata is None else nodata
    for i in range(8):
        for j in range(9):
            kernel(a[:, 2 * i :, 2 * j :], fill, nodata is not None, got[:, i:, j:])
    np.testing.assert_array_equal(got[0], K.block_majority(a[0], 2, 2, nodata=nodata))


def test_assemble_gpu_kernel():
    from smci_gpu.kernels import assemble

    rng = np.random.default_rng(9)
    coarse = rng.random((3, 4, 4)).astype(np.float32)
    fine = rng.random((2, 8, 8)).astype(np.float32)
    iy = ix = np.repeat(np.arange(4), 2)
    rows, cols = rng.integers(0, 8, 9), rng.integers(0, 8, 9)
    kind, index = np.array([0, 1, 0, 1]), np.array([2, 1, 0, 0])
    kernel = gpu_body_on_cpu(assemble._assemble_gpu, 2)
    got = np.empty((9, 4), np.float32)
    for p in range(9):
        for f in range(4):
            kernel(coarse, iy, ix, fine, rows[p:], cols[p:], kind[f:], index[f:], got[p:, f:])
    want = K.assemble_features(coarse, iy, ix, fine, rows, cols, kind, index)
    np.testing.assert_array_equal(got, want)


def test_forest_gpu_kernel():
    from sklearn.ensemble import RandomForestRegressor
    from smci_gpu.kernels import forest as fk

    from smci_gpu.model.forest import PackedForest

    rng = np.random.default_rng(10)
    x = rng.random((400, 5)).astype(np.float32)
    est = RandomForestRegressor(
        6, max_features=1, min_samples_leaf=5, max_depth=64, random_state=0
    ).fit(x, x[:, 0] + x[:, 1] ** 2)
    pf = PackedForest.from_sklearn(est)
    xt = rng.random((37, 5)).astype(np.float32)
    kernel = gpu_body_on_cpu(fk._predict_gpu, 1)
    got = np.empty(37)
    for r in range(37):
        kernel(xt[r:], pf.feature, pf.threshold, pf.left, pf.right, pf.value, pf.roots, got[r:])
    np.testing.assert_allclose(got, pf.predict(xt), rtol=1e-12)
    np.testing.assert_allclose(got, est.predict(xt), rtol=1e-12)
