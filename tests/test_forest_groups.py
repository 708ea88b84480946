"""The cell-group forest kernel: rows sharing their ERA5-Land columns walk trees together.

References: scikit-learn's ``predict`` (≤ 1e-6), the existing branching kernel (same bits:
both sum the trees of a row in tree order) and NumPy's ``unique`` for the grouping.
"""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from smci_gpu.kernels import forest as fk

from smci_gpu.model.forest import PackedForest
from smci_gpu.variables import ERA5LAND_FEATURES, FEATURES

N_COARSE = len(ERA5LAND_FEATURES)  # the first 16 of FEATURES


def _cell_rows(n_cells: int, per_cell: int, seed: int) -> np.ndarray:
    """Rows as a tile's pixels: each cell's ``per_cell`` rows share the 16 ERA5-Land
    columns and differ in the 9 fine ones; cells one after the other."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((n_cells, N_COARSE), dtype=np.float32)
    x = np.empty((n_cells * per_cell, len(FEATURES)), np.float32)
    x[:, :N_COARSE] = np.repeat(coarse, per_cell, axis=0)
    x[:, N_COARSE:] = rng.random((len(x), len(FEATURES) - N_COARSE), dtype=np.float32)
    return x


@pytest.fixture(scope="module")
def fitted():
    x = _cell_rows(200, 30, 0)
    rng = np.random.default_rng(1)
    y = x[:, 0] + np.sin(6 * x[:, 18]) + 0.5 * x[:, 4] * x[:, 20] + rng.normal(0, 0.05, len(x))
    est = RandomForestRegressor(
        n_estimators=13, max_features=1, min_samples_leaf=3, random_state=2, n_jobs=1
    ).fit(x, y)
    return est, PackedForest.from_sklearn(est, list(FEATURES))


def _groups_predict(pf, x, **grouping):
    coarse = pf.coarse_mask()
    order, starts = fk.cell_groups(x, np.flatnonzero(coarse), **grouping)
    out = np.empty(len(x))
    arrays = pf._branching_layout()
    fk.predict_groups_cpu(x, order, starts, *arrays, pf.value, pf.roots, 7, out)
    return out


def _branching_predict(pf, x):
    out = np.empty(len(x))
    fk.predict_branching_cpu(x, *pf._branching_layout(), pf.value, pf.roots, 256, out)
    return out


def test_groups_are_the_classes_of_equal_coarse_columns():
    x = _cell_rows(50, 9, 3)[np.random.default_rng(4).permutation(450)]
    order, starts = fk.cell_groups(x, np.arange(N_COARSE))
    assert np.array_equal(np.sort(order), np.arange(len(x)))
    _, label = np.unique(x[:, :N_COARSE], axis=0, return_inverse=True)
    groups = [order[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]
    assert len(groups) == 50
    for g in groups:
        assert np.unique(label[g]).size == 1 and g.size == 9


@pytest.mark.parametrize("mask", [0, 3])
def test_hash_collisions_give_separate_groups_never_mixed_ones(mask):
    x = _cell_rows(40, 5, 5)[np.random.default_rng(6).permutation(200)]
    order, starts = fk.cell_groups(x, np.arange(N_COARSE), mask=mask)
    assert np.array_equal(np.sort(order), np.arange(len(x)))
    _, label = np.unique(x[:, :N_COARSE], axis=0, return_inverse=True)
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        assert np.unique(label[order[a:b]]).size == 1
    # The table compares the bits in full, so colliding hashes still give whole groups.
    assert starts.size - 1 == 40


def test_group_cap_cuts_large_groups():
    x = _cell_rows(3, 20, 7)
    order, starts = fk.cell_groups(x, np.arange(N_COARSE), cap=6)
    assert np.diff(starts).max() == 6 and starts.size - 1 == 12


@pytest.mark.parametrize(
    "case", ["production", "shuffled", "collide_all", "collide_some", "cap", "singletons"]
)
def test_group_kernel_equals_sklearn_and_the_branching_bits(fitted, case):
    est, pf = fitted
    x = _cell_rows(60, 40, 8)
    grouping = {}
    if case == "shuffled":
        x = x[np.random.default_rng(9).permutation(len(x))]
    elif case == "collide_all":
        grouping = {"mask": 0}
    elif case == "collide_some":
        x = x[np.random.default_rng(9).permutation(len(x))]
        grouping = {"mask": 7}
    elif case == "cap":
        grouping = {"cap": 3}
    elif case == "singletons":  # bilinear ERA5-Land: every row its own coarse values
        x = _cell_rows(2400, 1, 8)
    got = _groups_predict(pf, x, **grouping)
    np.testing.assert_allclose(got, est.predict(x), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got, _branching_predict(pf, x))


def test_group_kernel_sums_trees_in_tree_order(fitted):
    est, pf = fitted
    x = _cell_rows(30, 12, 10)
    want = np.zeros(len(x))
    for tree in est.estimators_:
        want += tree.predict(x)
    np.testing.assert_array_equal(_groups_predict(pf, x), want / len(est.estimators_))


def test_single_leaf_trees():
    x = _cell_rows(20, 10, 11)
    y = np.random.default_rng(12).random(len(x))
    # No split can leave 101 rows on both sides of 200: every tree is its root leaf.
    est = RandomForestRegressor(n_estimators=5, min_samples_leaf=101, random_state=0).fit(x, y)
    pf = PackedForest.from_sklearn(est, list(FEATURES))
    assert (pf.feature[pf.roots] < 0).all()
    np.testing.assert_allclose(_groups_predict(pf, x), est.predict(x), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(_groups_predict(pf, x), _branching_predict(pf, x))


def test_predict_takes_the_group_kernel_only_where_groups_are_large(fitted, monkeypatch):
    est, pf = fitted
    used = []
    real = fk.predict_groups_cpu
    monkeypatch.setattr(fk, "predict_groups_cpu", lambda *a: used.append(1) or real(*a))
    cells = _cell_rows(30, fk.GROUP_MIN_MEAN, 12)
    shuffled = cells[np.random.default_rng(13).permutation(len(cells))]
    small = _cell_rows(40, fk.GROUP_MIN_MEAN - 1, 14)  # cells cut by a tile's edge, say
    bilinear = _cell_rows(600, 1, 14)
    for x, grouped in ((cells, True), (shuffled, True), (small, False), (bilinear, False)):
        used.clear()
        np.testing.assert_allclose(pf.predict(x), est.predict(x), rtol=0, atol=1e-6)
        assert bool(used) is grouped
    unnamed = PackedForest.from_sklearn(est)  # no names: which columns are coarse is unknown
    assert unnamed.coarse_mask() is None
    want = pf.predict(cells)
    used.clear()
    np.testing.assert_array_equal(unnamed.predict(cells), want)
    assert not used


def test_group_kernel_is_exact_for_any_grouping(fitted):
    # Rows of different cells in one group: a node whose threshold splits the group's
    # values partitions it (coarse or not), so the sums still equal scikit-learn's.
    est, pf = fitted
    x = _cell_rows(40, 10, 15)
    order = np.random.default_rng(16).permutation(len(x))
    starts = np.array([0, 1, 3, 50, 51, 200, 399, 400])
    out = np.empty(len(x))
    arrays = pf._branching_layout()
    fk.predict_groups_cpu(x, order, starts, *arrays, pf.value, pf.roots, 2, out)
    np.testing.assert_allclose(out, est.predict(x), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(out, _branching_predict(pf, x))


def test_blocks_are_full_size_for_many_rows_and_eight_per_thread_for_a_tile():
    import numba

    threads = numba.get_num_threads()
    many = 4 * fk.CPU_BLOCK * threads
    assert fk.groups_per_block(many // 100, many) == fk.CPU_BLOCK // 100
    tile = 8 * 100 * threads  # 100 rows per block: 8 blocks per thread
    assert fk.groups_per_block(tile // 10, tile) == 10
    assert fk.groups_per_block(1, 1) == 1 and fk.groups_per_block(0, 0) == 1


def test_nan_in_a_fine_column_walks_as_the_branching_kernel(fitted):
    # PackedForest.predict refuses NaN, but the kernel itself must not let a NaN slip past
    # a group's column range (x <= t is false for NaN: the row goes right, as it walks).
    _, pf = fitted
    x = _cell_rows(20, 12, 9)
    rng = np.random.default_rng(10)
    x[rng.random(x.shape) < 0.05] = np.nan
    np.testing.assert_array_equal(_groups_predict(pf, x), _branching_predict(pf, x))
