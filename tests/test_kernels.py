"""CPU twins of the kernels against independent NumPy/xarray references."""

import warnings

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from smci_gpu.kernels.assemble import COARSE, FINE
from smci_gpu.kernels.blocks import _mean_cpu

from smci_gpu import kernels as K

from .conftest import requires_cuda

# ----------------------------------------------------------------- references


def ref_block_mean(a, fy, fx, min_valid=1):
    lead = a.shape[:-2]
    ny, nx = a.shape[-2:]
    b = a.reshape(*lead, ny // fy, fy, nx // fx, fx).astype(np.float64)
    n = np.isfinite(b).sum(axis=(-3, -1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        m = np.nanmean(b, axis=(-3, -1))
    m[n < max(min_valid, 1)] = np.nan
    return m


def ref_block_majority(a, fy, fx, nodata=None):
    ny, nx = a.shape
    out = np.empty((ny // fy, nx // fx), a.dtype)
    for i in range(ny // fy):
        for j in range(nx // fx):
            v = a[i * fy : (i + 1) * fy, j * fx : (j + 1) * fx].ravel()
            if nodata is not None:
                v = v[v != nodata]
            if v.size == 0:
                out[i, j] = 0 if nodata is None else nodata
                continue
            vals, counts = np.unique(v, return_counts=True)
            out[i, j] = vals[np.argmax(counts)]  # unique sorts: first max = smallest value
    return out


def ref_lai(comp, cdates, tdates):
    out = np.full((tdates.size, comp.shape[1]), np.nan)
    for p in range(comp.shape[1]):
        ok = np.isfinite(comp[:, p])
        if ok.any():
            out[:, p] = np.interp(tdates, cdates[ok], comp[ok, p])
    return out


# ----------------------------------------------------------------- upsample


@settings(max_examples=40, deadline=None)
@given(
    ny=st.integers(2, 9),
    nx=st.integers(2, 11),
    lead=st.integers(1, 3),
    f=st.integers(1, 13),
    descending=st.booleans(),
    f32=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_upsample_equals_xarray_sel_nearest(ny, nx, lead, f, descending, f32, seed):
    rng = np.random.default_rng(seed)
    dtype = np.float32 if f32 else np.float64
    src = rng.random((lead, ny, nx)).astype(dtype)
    lat = 30.0 + 0.1 * np.arange(ny)
    lon = 110.0 + 0.1 * np.arange(nx)
    if descending:
        lat, src = lat[::-1], src[:, ::-1].copy()
    res = 0.1 / f
    dlat = lat.min() - 0.05 + res * (np.arange(ny * f) + 0.5)
    dlon = lon.min() - 0.05 + res * (np.arange(nx * f) + 0.5)
    got = K.upsample_nearest(src, lat, lon, dlat, dlon)
    da = xr.DataArray(src, dims=("k", "lat", "lon"), coords={"lat": lat, "lon": lon})
    want = da.sel(lat=dlat, lon=dlon, method="nearest").values
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_upsample_fills_nan_cells_from_the_nearest_valid_cell():
    src = np.arange(25, dtype=np.float64).reshape(1, 5, 5)
    src[0, 2, 2] = np.nan  # a lake cell: its 4 neighbours are at distance 1
    src[0, 0, 0] = np.nan  # a corner: neighbours (0,1) and (1,0)
    lat = np.arange(5.0)
    got = K.upsample_nearest(src, lat, lat, np.array([2.0, 0.0]), np.array([2.0, 0.0]))
    assert got[0, 0, 0] in (src[0, 1, 2], src[0, 3, 2], src[0, 2, 1], src[0, 2, 3])
    assert got[0, 1, 1] in (src[0, 0, 1], src[0, 1, 0])
    assert np.isfinite(got).all()
    # Without filling, the NaN cell stays NaN (plain nearest neighbour).
    raw = K.upsample_nearest(src, lat, lat, np.array([2.0]), np.array([2.0]), fill_nan=False)
    assert np.isnan(raw[0, 0, 0])


def test_fill_handles_slices_with_their_own_nan_pattern():
    src = np.ones((2, 3, 3))
    src[0, 0, 0] = np.nan
    src[1, 2, 2] = np.nan
    src[1, 2, 1] = 5.0
    out = K.fill_nearest_valid(src)
    assert out[0, 0, 0] == 1.0 and out[1, 2, 2] in (5.0, 1.0) and np.isfinite(out).all()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: K.upsample_nearest(
                np.zeros((3, 4)), np.arange(4.0), np.arange(4.0), np.arange(2.0), np.arange(2.0)
            ),
            "len\\(src_lat\\)",
        ),
        (
            lambda: K.upsample_nearest(
                np.zeros((3, 3)),
                np.array([0.0, 2, 1]),
                np.arange(3.0),
                np.arange(2.0),
                np.arange(2.0),
            ),
            "src_lat must be strictly",
        ),
        (
            lambda: K.upsample_nearest(
                np.zeros((3, 3)), np.arange(3.0), np.arange(3.0), np.array([50.0]), np.arange(2.0)
            ),
            "outside src_lat",
        ),
        (
            lambda: K.upsample_nearest(
                np.zeros((3, 3), np.int32),
                np.arange(3.0),
                np.arange(3.0),
                np.arange(2.0),
                np.arange(2.0),
            ),
            "src must be float32",
        ),
        (lambda: K.block_mean(np.zeros((5, 4)), 2, 2), "not multiples"),
        (lambda: K.block_majority(np.zeros((4, 4)), 2, 2), "integer"),
        (
            lambda: K.lai_daily(np.zeros((3, 2)), np.array([0.0, 8.0]), np.array([1.0])),
            "composite_dates has 2",
        ),
        (
            lambda: K.lai_daily(np.zeros((2, 2)), np.array([8.0, 0.0]), np.array([1.0])),
            "strictly increasing",
        ),
        (  # float32 composites: 1e-5 day after day 300 rounds onto it
            lambda: K.lai_daily(
                np.zeros((3, 2), np.float32), np.array([0.0, 300.0, 300.00001]), np.array([1.0])
            ),
            "composite_dates are too close together for float32",
        ),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------- blocks


@settings(max_examples=40, deadline=None)
@given(
    oy=st.integers(1, 5),
    ox=st.integers(1, 5),
    fy=st.integers(1, 5),
    fx=st.integers(1, 5),
    nan_frac=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
    min_valid=st.integers(1, 4),
    f32=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_block_mean_equals_reference(oy, ox, fy, fx, nan_frac, min_valid, f32, seed):
    rng = np.random.default_rng(seed)
    a = rng.random((2, oy * fy, ox * fx)).astype(np.float32 if f32 else np.float64)
    a[rng.random(a.shape) < nan_frac] = np.nan
    got = K.block_mean(a, fy, fx, min_valid=min_valid)
    want = ref_block_mean(a, fy, fx, min_valid)
    assert got.dtype == a.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


def test_all_nan_block_is_nan_and_partial_block_is_mean():
    a = np.array([[np.nan, np.nan, 1.0, np.nan], [np.nan, np.nan, 3.0, 5.0]])
    np.testing.assert_allclose(K.block_mean(a, 2, 2), [[np.nan, 3.0]])
    np.testing.assert_allclose(K.block_mean(a, 2, 2, min_valid=4), [[np.nan, np.nan]])


@settings(max_examples=40, deadline=None)
@given(
    oy=st.integers(1, 4),
    ox=st.integers(1, 4),
    fy=st.integers(1, 6),
    fx=st.integers(1, 6),
    classes=st.integers(1, 6),
    nodata=st.sampled_from([None, 0]),
    dtype=st.sampled_from([np.uint8, np.int16]),  # counting and sorting CPU paths
    seed=st.integers(0, 10_000),
)
def test_block_majority_equals_reference(oy, ox, fy, fx, classes, nodata, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, classes, (oy * fy, ox * fx)).astype(dtype)
    np.testing.assert_array_equal(
        K.block_majority(a, fy, fx, nodata=nodata), ref_block_majority(a, fy, fx, nodata)
    )


@pytest.mark.parametrize("f32", [True, False])
@pytest.mark.parametrize("nan_frac", [0.0, 0.3, 1.0])
def test_block_mean_2x2_path_equals_reference(f32, nan_frac):
    # 2 × 2 has its own CPU kernel (500 m → 1 km); it must agree with the reference and,
    # bit for bit, with the general kernel.
    rng = np.random.default_rng(7)
    a = rng.random((3, 14, 22)).astype(np.float32 if f32 else np.float64)
    a[rng.random(a.shape) < nan_frac] = np.nan
    for min_valid in (1, 3):
        got = K.block_mean(a, 2, 2, min_valid=min_valid)
        want = ref_block_mean(a, 2, 2, min_valid)
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
        general = np.empty_like(got)
        _mean_cpu(a, 2, 2, min_valid, 4, general)
        np.testing.assert_array_equal(got, general)


@pytest.mark.parametrize("nodata", [None, 0, 7, 255])
def test_block_majority_2x2_uint8_path_equals_reference(nodata):
    rng = np.random.default_rng(11)
    a = rng.choice(np.array([0, 1, 7, 200, 255], np.uint8), (30, 42))
    a[:2, :2] = 7  # a block of nodata only (when nodata is 7)
    a[2:4, :2] = [[255, 255], [0, 0]]  # a tie between the extreme values
    want = ref_block_majority(a, 2, 2, nodata)
    np.testing.assert_array_equal(K.block_majority(a, 2, 2, nodata=nodata), want)
    # the 2 × 2 kernel and the histogram kernel (via the int16 → sorting path) agree
    np.testing.assert_array_equal(
        K.block_majority(a.astype(np.int16), 2, 2, nodata=nodata), want.astype(np.int16)
    )


@pytest.mark.parametrize("nodata", [None, 1, 255])
def test_block_majority_2x2_uint8_every_block_of_four_classes(nodata):
    # Every arrangement of {0, 1, 2, 255} in a 2 × 2 block (256 blocks): the sorting
    # network's pair logic against the counting reference, nodata among the values.
    values = np.array([0, 1, 2, 255], np.uint8)
    blocks = np.array(np.meshgrid(values, values, values, values, indexing="ij")).reshape(4, -1)
    a = np.empty((2, 2 * blocks.shape[1]), np.uint8)
    a[0, 0::2], a[0, 1::2], a[1, 0::2], a[1, 1::2] = blocks
    np.testing.assert_array_equal(
        K.block_majority(a, 2, 2, nodata=nodata), ref_block_majority(a, 2, 2, nodata)
    )


def test_block_majority_uint8_many_and_few_classes_per_block_row():
    # Block-rows whose classes span more than MAX_CLASS_PASSES values take the histogram,
    # the others count per class: both in one call, with nodata among the values.
    from smci_gpu.kernels.blocks import MAX_CLASS_PASSES

    rng = np.random.default_rng(12)
    a = rng.integers(0, 256, (48, 60)).astype(np.uint8)  # ~all 256 classes per block-row
    a[12:24] = rng.choice(np.array([3, 9, 20], np.uint8), (12, 60))
    a[24:36] = 9  # one class
    a[36:48, :24] = 200  # a wide span (3..200) made of few classes: the histogram
    a[36:48, 24:] = rng.choice(np.array([3, 9], np.uint8), (12, 36))
    assert np.ptp(a[:12]) >= MAX_CLASS_PASSES > np.ptp(a[12:24])
    for nodata in (None, 9, 20, 200):
        np.testing.assert_array_equal(
            K.block_majority(a, 12, 12, nodata=nodata), ref_block_majority(a, 12, 12, nodata)
        )


@pytest.mark.parametrize("fy, fx", [(12, 12), (3, 4), (5, 8), (7, 20), (16, 16), (12, 6)])
@pytest.mark.parametrize("nodata", [None, 0, 255])
def test_block_majority_uint8_per_class_fold_equals_reference(fy, fx, nodata):
    # The per-class path folds column counts four to a word when fx is a multiple of 4
    # (12 × 12: three words per block; 8, 20: the general word loop) and a block has at
    # most 255 cells (16 × 16 has 256: the byte-by-byte fold, as 12 × 6).
    rng = np.random.default_rng(fy * 100 + fx)
    a = rng.integers(0, 20, (4 * fy, 9 * fx)).astype(np.uint8)
    a[:fy, :fx] = 17  # a block of one class: its count is the whole block
    a[fy : 2 * fy, :fx] = 255  # a block of nodata (when it is 255)
    np.testing.assert_array_equal(
        K.block_majority(a, fy, fx, nodata=nodata), ref_block_majority(a, fy, fx, nodata)
    )


def test_block_majority_refuses_nodata_outside_the_dtype():
    with pytest.raises(ValueError, match="nodata=300"):
        K.block_majority(np.zeros((4, 4), np.uint8), 2, 2, nodata=300)


def test_majority_ties_go_to_the_smallest_class():
    a = np.array([[3, 1], [1, 3]], dtype=np.int16)
    assert K.block_majority(a, 2, 2)[0, 0] == 1


# ----------------------------------------------------------------- LAI


@settings(max_examples=40, deadline=None)
@given(
    t=st.integers(1, 8),
    pix=st.integers(1, 20),
    nan_frac=st.sampled_from([0.0, 0.4, 1.0]),
    f32=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_lai_daily_equals_np_interp_over_valid_composites(t, pix, nan_frac, f32, seed):
    rng = np.random.default_rng(seed)
    dtype = np.float32 if f32 else np.float64
    comp = (rng.random((t, pix)) * 6).astype(dtype)
    comp[rng.random(comp.shape) < nan_frac] = np.nan
    cdates = np.cumsum(rng.integers(1, 12, t)).astype(np.float64)
    tdates = np.arange(cdates[0] - 5, cdates[-1] + 6, 0.5)
    got = K.lai_daily(comp, cdates, tdates)
    assert got.dtype == dtype
    np.testing.assert_allclose(
        got, ref_lai(comp.astype(np.float64), cdates, tdates), rtol=1e-6, atol=1e-6, equal_nan=True
    )


@pytest.mark.parametrize("nan_frac", [0.0, 0.2])
def test_lai_daily_many_pixel_chunks_equals_np_interp(nan_frac):
    # More pixels than one CPU work item; with nan_frac 0 only the first chunk (pixel
    # 100) has gaps, the others take the gap-free branch.
    rng = np.random.default_rng(5)
    comp = (rng.random((12, 2600)) * 6).astype(np.float32)
    comp[rng.random(comp.shape) < nan_frac] = np.nan
    comp[:, 100] = np.nan  # a pixel with no valid composite
    cdates = np.arange(12) * 8.0
    tdates = np.arange(-4.0, 100.0)
    got = K.lai_daily(comp, cdates, tdates)
    np.testing.assert_allclose(
        got, ref_lai(comp.astype(np.float64), cdates, tdates), rtol=1e-6, atol=1e-6, equal_nan=True
    )


def test_lai_gap_kernel_equals_gap_free_kernel_bitwise_on_gap_free_pixels():
    rng = np.random.default_rng(6)
    comp = (rng.random((10, 3000)) * 6).astype(np.float32)
    cdates, tdates = np.arange(10) * 8.0, np.arange(-3.0, 80.0, 0.7)
    clean = K.lai_daily(comp, cdates, tdates)  # no NaN: the gap-free kernel
    holed = comp.copy()
    holed[4, ::2] = np.nan  # every other pixel has a gap: the gap kernel runs
    mixed = K.lai_daily(holed, cdates, tdates)
    np.testing.assert_array_equal(mixed[:, 1::2], clean[:, 1::2])


def test_lai_daily_unordered_days_and_gaps_in_some_chunks_only():
    # Target days in any order (the CPU kernel emits them grouped by bracket); gaps in
    # the last pixel chunk only, so clean and gappy chunks meet in one call; target days
    # falling exactly on a missing composite.
    rng = np.random.default_rng(8)
    comp = (rng.random((9, 2500)) * 6).astype(np.float32)
    comp[rng.random(comp.shape) < 0.3] = np.nan
    comp[:, :2048] = rng.random((9, 2048)) * 6  # the first two chunks: no gap
    cdates = np.arange(9) * 8.0
    tdates = rng.permutation(np.concatenate([np.arange(-3.0, 75.0, 1.5), cdates]))
    got = K.lai_daily(comp, cdates, tdates)
    np.testing.assert_allclose(
        got, ref_lai(comp.astype(np.float64), cdates, tdates), rtol=1e-6, atol=1e-6, equal_nan=True
    )


def test_lai_hand_worked_with_datetimes():
    comp = np.array([[1.0, 2.0], [np.nan, 4.0], [3.0, np.nan]])
    dates = np.array(["2018-01-01", "2018-01-09", "2018-01-17"], dtype="datetime64[D]")
    target = np.array(
        ["2017-12-25", "2018-01-05", "2018-01-13", "2018-02-01"], dtype="datetime64[D]"
    )
    got = K.lai_daily(comp, dates, target)
    np.testing.assert_allclose(got[:, 0], [1.0, 1.5, 2.5, 3.0])  # NaN skipped
    np.testing.assert_allclose(got[:, 1], [2.0, 3.0, 4.0, 4.0])  # held past the last


# ----------------------------------------------------------------- assemble


@pytest.mark.parametrize("n_pixels", [50, 400])  # 30 coarse cells: 400 pixels go pixel-major
def test_assemble_equals_upsample_then_pick(n_pixels):
    rng = np.random.default_rng(3)
    coarse = rng.random((4, 5, 6)).astype(np.float32)
    fine = rng.random((3, 36, 48)).astype(np.float32)
    lat_c, lon_c = np.arange(5) * 0.1, np.arange(6) * 0.1
    lat_f = -0.05 + (np.arange(36) + 0.5) * 0.0125
    lon_f = -0.05 + (np.arange(48) + 0.5) * 0.0125
    up = K.upsample_nearest(coarse, lat_c, lon_c, lat_f, lon_f)
    from smci_gpu.grid import nearest_index

    iy, ix = nearest_index(lat_c, lat_f), nearest_index(lon_c, lon_f)
    rows, cols = rng.integers(0, 36, n_pixels), rng.integers(0, 48, n_pixels)
    kind = np.array([COARSE, FINE, COARSE, FINE, COARSE])
    index = np.array([2, 0, 0, 2, 3])
    got = K.assemble_features(coarse, iy, ix, fine, rows, cols, kind, index)
    want = np.stack(
        [
            up[2][rows, cols],
            fine[0][rows, cols],
            up[0][rows, cols],
            fine[2][rows, cols],
            up[3][rows, cols],
        ],
        axis=1,
    )
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


@settings(max_examples=25, deadline=None)
@given(n_coarse=st.integers(0, 4), n_fine=st.integers(0, 4), seed=st.integers(0, 10_000))
def test_assemble_cpu_kernels_agree(n_coarse, n_fine, seed):
    # Both CPU kernels (column-kind branch, pixel-major coarse) on the same inputs, with
    # columns in any order and either source possibly absent.
    from smci_gpu.kernels import assemble

    rng = np.random.default_rng(seed)
    coarse = rng.random((max(n_coarse, 1), 3, 4)).astype(np.float32)
    fine = rng.random((max(n_fine, 1), 9, 12)).astype(np.float32)
    iy, ix = np.repeat(np.arange(3), 3), np.repeat(np.arange(4), 3)
    rows, cols = rng.integers(0, 9, 70), rng.integers(0, 12, 70)
    kind = rng.permutation([COARSE] * n_coarse + [FINE] * n_fine)
    index = np.where(kind == COARSE, rng.integers(0, max(n_coarse, 1), kind.size), 0)
    index = np.where(kind == FINE, rng.integers(0, max(n_fine, 1), kind.size), index)
    args = [np.asarray(v, dtype=np.int64) for v in (iy, ix, rows, cols, kind, index)]
    outs = []
    for share in (0.0, np.inf):  # never / always pixel-major
        out = np.full((70, kind.size), np.nan, np.float32)
        assemble.TRANSPOSE_SHARE, saved = share, assemble.TRANSPOSE_SHARE
        try:
            assemble._assemble_on_cpu(coarse, fine, args, out)
        finally:
            assemble.TRANSPOSE_SHARE = saved
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.isnan(outs[0]).any()


# ----------------------------------------------------------------- real GPU


# One test per kernel, so that a lent GPU's single run reports each on its own.
FULL = 480  # a 40 × 40 coarse tile at 12 fine cells per coarse cell
FULL_LAT = np.arange(40) * 0.1
FULL_DST = -0.05 + (np.arange(FULL) + 0.5) / 120


@requires_cuda
def test_gpu_upsample_equals_cpu_full_size():
    import cupy as cp

    src = np.random.default_rng(0).random((16, 40, 40)).astype(np.float32)
    src[:, 3, 3] = np.nan
    cpu = K.upsample_nearest(src, FULL_LAT, FULL_LAT, FULL_DST, FULL_DST)
    gpu = K.upsample_nearest(cp.asarray(src), FULL_LAT, FULL_LAT, FULL_DST, FULL_DST)
    np.testing.assert_array_equal(cp.asnumpy(gpu), cpu)


@requires_cuda
@pytest.mark.parametrize("factor", [2, 12])
def test_gpu_block_mean_equals_cpu_full_size(factor):
    import cupy as cp

    a = np.random.default_rng(1).random((5, FULL, FULL)).astype(np.float32)
    a[a < 0.2] = np.nan
    np.testing.assert_allclose(
        cp.asnumpy(K.block_mean(cp.asarray(a), factor, factor)),
        K.block_mean(a, factor, factor),
        rtol=1e-6,
        equal_nan=True,
    )


@requires_cuda
def test_gpu_block_majority_equals_cpu_full_size():
    import cupy as cp

    rng = np.random.default_rng(2)
    lc = rng.integers(0, 17, (FULL, FULL)).astype(np.uint8)
    np.testing.assert_array_equal(
        cp.asnumpy(K.block_majority(cp.asarray(lc), 12, 12)), K.block_majority(lc, 12, 12)
    )
    for fy in (3, 12):  # other integer types take the generic kernel
        wide = rng.integers(0, 30, (FULL, FULL)).astype(np.int32)
        np.testing.assert_array_equal(
            cp.asnumpy(K.block_majority(cp.asarray(wide), fy, fy, nodata=4)),
            K.block_majority(wide, fy, fy, nodata=4),
        )
    lc2 = rng.choice(np.array([0, 3, 7, 255], np.uint8), (2 * FULL, 2 * FULL))  # 8-bit 2 × 2
    for nodata in (None, 0, 255):
        np.testing.assert_array_equal(
            cp.asnumpy(K.block_majority(cp.asarray(lc2), 2, 2, nodata=nodata)),
            K.block_majority(lc2, 2, 2, nodata=nodata),
        )


@requires_cuda
@pytest.mark.parametrize("gaps", [0.0, 0.1])
def test_gpu_lai_daily_equals_cpu_full_size(gaps):
    import cupy as cp

    rng = np.random.default_rng(3)
    comp = rng.random((46, 100_000)).astype(np.float32)
    comp[rng.random(comp.shape) < gaps] = np.nan
    cd, td = np.arange(46) * 8.0, np.arange(365.0)
    np.testing.assert_allclose(
        cp.asnumpy(K.lai_daily(cp.asarray(comp), cd, td)),
        K.lai_daily(comp, cd, td),
        rtol=1e-6,
        equal_nan=True,
    )


@requires_cuda
def test_gpu_assemble_equals_cpu_full_size():
    import cupy as cp

    from smci_gpu.grid import nearest_index

    rng = np.random.default_rng(4)
    coarse = rng.random((16, 40, 40)).astype(np.float32)
    fine = rng.random((9, FULL, FULL)).astype(np.float32)
    rows, cols = np.nonzero(rng.random((FULL, FULL)) < 0.7)
    kind = rng.permutation([COARSE] * 16 + [FINE] * 9)
    index = np.where(kind == COARSE, rng.integers(0, 16, 25), rng.integers(0, 9, 25))
    iy = ix = nearest_index(FULL_LAT, FULL_DST)
    on_gpu = K.assemble_features(
        cp.asarray(coarse), cp.asarray(iy), cp.asarray(ix), cp.asarray(fine),
        cp.asarray(rows), cp.asarray(cols), kind, index,
    )  # fmt: skip
    np.testing.assert_array_equal(
        cp.asnumpy(on_gpu), K.assemble_features(coarse, iy, ix, fine, rows, cols, kind, index)
    )


def test_rows_finite_flags_rows_with_nan_or_inf():
    from smci_gpu.kernels import rows_finite

    x = np.random.default_rng(3).uniform(-5, 5, (1000, 24)).astype(np.float32)
    x[3, 0], x[10, 23], x[20, 7], x[30, 5] = np.nan, np.inf, -np.inf, np.float32(3e38)
    got = rows_finite(x)
    assert got.dtype == np.bool_ and got.shape == (1000,)
    assert not got[[3, 10, 20]].any() and got[30]  # a huge finite value is finite
    np.testing.assert_array_equal(got, np.all(np.isfinite(x), axis=1))
    np.testing.assert_array_equal(rows_finite(x[:, ::2]), np.all(np.isfinite(x[:, ::2]), axis=1))
