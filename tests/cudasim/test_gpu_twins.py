"""GPU twins under the Numba CUDA simulator equal the CPU twins (tiny inputs).

Collected only when NUMBA_ENABLE_CUDASIM=1 (``tests/test_cudasim.py`` runs this folder in
a subprocess with it set). The kernels are launched exactly as the dispatchers launch them.
"""

import numpy as np
import pytest
from smci_gpu.kernels import assemble, blocks, lai, upsample
from smci_gpu.kernels._common import THREADS_2D, blocks_2d

from smci_gpu import kernels as K


def test_gather(rng):
    src = rng.random((2, 4, 5)).astype(np.float32)
    iy, ix = rng.integers(0, 4, 7), rng.integers(0, 5, 6)
    out = np.empty((2, 7, 6), np.float32)
    upsample._gather_gpu[blocks_2d(7, 6), THREADS_2D](src, iy, ix, out)
    np.testing.assert_array_equal(out, K.gather_2d(src, iy, ix))


def test_block_mean(rng):
    a = rng.random((1, 6, 9))
    a[0, :3, :3] = np.nan
    a[0, 4, 5] = np.nan
    out = np.empty((1, 2, 3))
    blocks._mean_gpu[blocks_2d(2, 3), THREADS_2D](a, 3, 3, 1, out)
    np.testing.assert_allclose(out, K.block_mean(a, 3, 3), rtol=1e-12, equal_nan=True)


def test_block_majority(rng):
    a = rng.integers(0, 4, (1, 6, 8)).astype(np.int64)
    out = np.empty((1, 2, 2), np.int64)
    blocks._majority_on_gpu(a, 3, 4, 0, False, out)
    np.testing.assert_array_equal(out, K.block_majority(a, 3, 4))


def test_block_majority_uint8_paths(rng):
    # uint8 maps take their own GPU kernels (2 × 2 sorting network; a warp's histogram per
    # block otherwise), as the CPU twin has its own: they must agree, nodata included, also
    # on more blocks than one launch block holds and with ties between classes.
    for fy, fx, shape in ((2, 2, (2, 8, 10)), (12, 12, (2, 24, 36)), (3, 3, (1, 9, 30))):
        a = rng.choice(np.array([0, 3, 7, 255], np.uint8), shape)
        for nodata in (None, 0, 255):
            out = np.empty((shape[0], shape[1] // fy, shape[2] // fx), np.uint8)
            fill = 0 if nodata is None else nodata
            blocks._majority_on_gpu(a, fy, fx, fill, nodata is not None, out)
            np.testing.assert_array_equal(out, K.block_majority(a, fy, fx, nodata=nodata))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lai(rng, dtype):
    comp = rng.random((5, 7)).astype(dtype)
    comp[1, :3] = np.nan
    comp[2:4, 2] = np.nan  # two NaN composites in a row: search past both
    comp[0, 4] = np.nan  # NaN first composite: hold the next one before it
    comp[3:, 5] = np.nan  # NaN last composites: hold the last valid one after it
    comp[:, 6] = np.nan
    cd, td = np.array([0.0, 8, 16, 24, 32]), np.arange(-3.0, 40.0, 2.5)
    out = np.empty((td.size, 7), dtype)
    lai._lai_on_gpu(comp, *lai.lai_tables(cd, td, comp.dtype), out)
    np.testing.assert_array_equal(out, K.lai_daily(comp, cd, td))  # same steps, same bits


def test_assemble(rng):
    coarse = rng.random((3, 4, 4)).astype(np.float32)
    fine = rng.random((2, 8, 8)).astype(np.float32)
    iy = ix = np.repeat(np.arange(4), 2)
    rows, cols = rng.integers(0, 8, 9), rng.integers(0, 8, 9)
    kind, index = np.array([0, 1, 0, 1]), np.array([2, 1, 0, 0])
    out = np.empty((9, 4), np.float32)
    grid = blocks_2d(4, 9, assemble.ASSEMBLE_THREADS)  # pixels along x
    assemble._assemble_gpu[grid, assemble.ASSEMBLE_THREADS](
        coarse, iy, ix, fine, rows, cols, kind, index, out
    )
    np.testing.assert_array_equal(
        out, K.assemble_features(coarse, iy, ix, fine, rows, cols, kind, index)
    )


def test_forest_traversal(rng):
    from sklearn.ensemble import RandomForestRegressor
    from smci_gpu.kernels import forest as fk

    from smci_gpu.model.forest import PackedForest

    x = rng.random((400, 5)).astype(np.float32)
    y = x[:, 0] + x[:, 1] ** 2
    est = RandomForestRegressor(
        4, max_features=1, min_samples_leaf=5, max_depth=64, random_state=0
    ).fit(x, y)
    pf = PackedForest.from_sklearn(est)
    xt = rng.random((37, 5)).astype(np.float32)
    out = np.empty(37)
    fk._predict_gpu[fk.blocks_1d(37), fk.THREADS_1D](
        xt, pf.feature, pf.threshold, pf.left, pf.right, pf.value, pf.roots, out
    )
    np.testing.assert_allclose(out, est.predict(xt), atol=1e-6)


def test_assemble_bilinear(rng):
    from smci_gpu.kernels.upsample import linear_weights

    coarse = rng.random((3, 4, 5)).astype(np.float32)
    fine = rng.random((2, 9, 11)).astype(np.float32)
    iy0, iy1, wy = linear_weights(np.arange(4.0)[::-1], np.linspace(-0.3, 3.3, 9))
    ix0, ix1, wx = linear_weights(np.arange(5.0), np.linspace(-0.2, 4.4, 11))
    rows, cols = rng.integers(0, 9, 13), rng.integers(0, 11, 13)
    kind, index = np.array([0, 1, 0, 1]), np.array([2, 1, 0, 0])
    out = np.empty((13, 4), np.float32)
    grid = blocks_2d(4, 13, assemble.ASSEMBLE_THREADS)
    assemble._assemble_bilinear_gpu[grid, assemble.ASSEMBLE_THREADS](
        coarse, iy0, ix0, iy1, wy, ix1, wx, fine, rows, cols, kind, index, out
    )
    want = K.assemble_features(
        coarse, iy0, ix0, fine, rows, cols, kind, index, bilinear=(iy1, wy, ix1, wx)
    )
    np.testing.assert_allclose(out, want, rtol=1e-6)
