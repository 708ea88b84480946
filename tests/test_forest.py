"""PackedForest: exact against scikit-learn, persistence, bad input."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from smci_gpu.errors import ModelError
from smci_gpu.model.forest import PackedForest, round_thresholds_down

from .conftest import requires_cuda


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x = rng.random((6000, 25)).astype(np.float32)
    y = x[:, 0] + np.sin(6 * x[:, 1]) + 0.3 * x[:, 2] * x[:, 3] + rng.normal(0, 0.05, 6000)
    est = RandomForestRegressor(
        n_estimators=20,
        max_features=1,
        min_samples_leaf=20,
        max_depth=64,
        random_state=20,
        n_jobs=1,
    ).fit(x, y)
    return est, PackedForest.from_sklearn(est)


def test_threshold_rounding_is_exact_for_every_float32():
    rng = np.random.default_rng(1)
    t64 = rng.random(2000)
    t32 = round_thresholds_down(t64)
    assert (t32.astype(np.float64) <= t64).all()
    # The next float32 up is above t64, so x32 <= t64 ⇔ x32 <= t32.
    up = np.nextafter(t32, np.float32(np.inf))
    assert (up.astype(np.float64) > t64).all()


def test_predictions_equal_sklearn(fitted):
    est, pf = fitted
    x = np.random.default_rng(2).random((50_000, 25)).astype(np.float32)
    np.testing.assert_allclose(pf.predict(x), est.predict(x), rtol=0, atol=1e-6)


def test_naive_float32_cast_would_not_be_exact(fitted):
    """The rounding rule matters: rows placed exactly at thresholds expose a naive cast."""
    est, pf = fitted
    t64 = np.concatenate([e.tree_.threshold[e.tree_.feature >= 0] for e in est.estimators_])
    x32 = t64.astype(np.float32)
    wrong = x32.astype(np.float64) > t64  # naive cast rounded up: x32 goes the other way
    assert wrong.any()
    rows = np.tile(np.float32(0.5), (int(wrong.sum()), 25))
    feats = np.concatenate([e.tree_.feature[e.tree_.feature >= 0] for e in est.estimators_])
    rows[np.arange(rows.shape[0]), feats[wrong]] = x32[wrong]
    np.testing.assert_allclose(pf.predict(rows), est.predict(rows), atol=1e-6)


def test_save_load_is_bit_identical(tmp_path, fitted):
    _, pf = fitted
    x = np.random.default_rng(3).random((1000, 25)).astype(np.float32)
    path = pf.save(tmp_path / "f.npz")
    again = PackedForest.load(path)
    assert np.array_equal(again.predict(x), pf.predict(x))
    assert again.digest() == pf.digest()


def test_load_rejects_other_formats(tmp_path, fitted):
    _, pf = fitted
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a packed forest"):
        PackedForest.load(bad)
    with pytest.raises(ModelError, match="does not exist"):
        PackedForest.load(tmp_path / "none.npz")
    import json

    path = pf.save(tmp_path / "f.npz")
    with np.load(path) as z:
        arrays = dict(z)
    header = json.loads(bytes(arrays["header"]).decode())
    header["version"] = 99
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "v99.npz", **arrays)
    with pytest.raises(ModelError, match="version 99"):
        PackedForest.load(tmp_path / "v99.npz")


def test_bad_input(fitted):
    _, pf = fitted
    with pytest.raises(ValueError, match=r"\(n_rows, 25\)"):
        pf.predict(np.zeros((3, 24), np.float32))
    x = np.zeros((3, 25), np.float32)
    x[1, 7] = np.nan
    with pytest.raises(ValueError, match=r"NaN in column\(s\) \[7\]"):
        pf.predict(x)
    with pytest.raises(ValueError, match="numeric"):
        pf.predict(np.zeros((3, 25), dtype=object))


def test_node_arrays_walked_in_plain_python_equal_sklearn(fitted):
    """The per-row walk both twins do, written as plain Python over the same arrays."""
    est, pf = fitted
    x = np.random.default_rng(4).random((64, 25)).astype(np.float32)
    out = np.empty(64)
    for r in range(64):
        acc = 0.0
        for root in pf.roots:
            node = root
            while pf.feature[node] >= 0:
                go_left = x[r, pf.feature[node]] <= pf.threshold[node]
                node = pf.left[node] if go_left else pf.right[node]
            acc += pf.value[node]
        out[r] = acc / pf.n_trees
    np.testing.assert_allclose(out, est.predict(x), atol=1e-6)


@requires_cuda
def test_gpu_equals_cpu_full_size(fitted):
    _, pf = fitted
    x = np.random.default_rng(5).random((1_000_000, 25)).astype(np.float32)
    import cupy as cp

    np.testing.assert_allclose(cp.asnumpy(pf.predict(x, device="gpu")), pf.predict(x), atol=1e-12)


def test_generated_slot_kernel_matches_its_generator():
    from pathlib import Path

    from smci_gpu.kernels import forest as fk

    committed = Path(fk.__file__).with_name("_forest_slots.py").read_text()
    assert committed == fk.slot_kernel_source(fk.CPU_SLOTS)


@pytest.mark.parametrize("n_rows", [1, 11, 12, 13, 200, 5000])
def test_blocks_and_slots_cover_every_row(fitted, n_rows):
    # Fewer rows than slots, a partial last block, and blocks smaller than the slot count.
    from smci_gpu.kernels import forest as fk

    est, packed = fitted
    x = np.random.default_rng(n_rows).random((n_rows, 25), dtype=np.float32)
    nodes, leaves, roots = packed._cpu_layout()
    for block in (1, 7, 64, fk.CPU_BLOCK):
        got = fk.predict_compact_cpu(x, nodes, leaves, roots, block=block)
        np.testing.assert_allclose(got, est.predict(x), rtol=0, atol=1e-12)


def test_thousand_tree_forest_is_exact():
    rng = np.random.default_rng(3)
    x = rng.random((3000, 25), dtype=np.float32)
    y = np.sin(5 * x[:, 0]) + x[:, 1] + rng.normal(0, 0.05, 3000)
    est = RandomForestRegressor(
        n_estimators=1000, max_features=1, min_samples_leaf=20, max_depth=64, random_state=0
    ).fit(x, y)
    packed = PackedForest.from_sklearn(est)
    xt = rng.random((4000, 25), dtype=np.float32)
    assert np.max(np.abs(packed.predict(xt) - est.predict(xt))) <= 1e-6


class GtilStandIn:
    """Stands in for the nvforest module where none is installed: Treelite's own reference
    evaluator (GTIL) predicts from the same Treelite model nvForest would load."""

    def __init__(self):
        self.loaded = []

    def load_from_treelite_model(self, model, *, device, precision):
        import treelite

        self.loaded.append((device, precision))

        class _Model:
            def predict(self, x):
                return treelite.gtil.predict(model, np.asarray(x))

        return _Model()


def test_treelite_export_is_exact(fitted):
    treelite = pytest.importorskip("treelite")
    est, packed = fitted
    x = np.random.default_rng(4).random((5000, 25), dtype=np.float32)
    ref = est.predict(x)
    wide = treelite.gtil.predict(packed.to_treelite("float64"), x.astype(np.float64))
    np.testing.assert_array_equal(wide.ravel(), ref)  # same decisions, same float64 sums
    narrow = treelite.gtil.predict(packed.to_treelite("float32"), x)
    assert np.max(np.abs(narrow.ravel() - ref)) <= 1e-6


def test_nvforest_predictor_serves_the_packed_forest(fitted, monkeypatch):
    pytest.importorskip("treelite")
    from smci_gpu import backend
    from smci_gpu.model.forest import NvForestPredictor

    est, packed = fitted
    stand_in = GtilStandIn()
    monkeypatch.setattr(backend, "nvforest_module", lambda: stand_in)
    nv = NvForestPredictor(packed, device="gpu")
    assert stand_in.loaded == [("gpu", "single")]
    x = np.random.default_rng(5).random((3000, 25), dtype=np.float32)
    got = nv.predict(x)
    assert got.dtype == np.float64 and np.max(np.abs(got - est.predict(x))) <= 1e-6
    with pytest.raises(ValueError, match="NaN"):
        nv.predict(np.full((2, 25), np.nan, np.float32))


def test_nvforest_missing_is_a_clear_error(fitted, monkeypatch):
    import builtins

    from smci_gpu.errors import DeviceError
    from smci_gpu.model.forest import NvForestPredictor

    real_import = builtins.__import__

    def no_nvforest(name, *args, **kwargs):
        if name == "nvforest":
            raise ImportError("no nvforest")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nvforest)
    with pytest.raises(DeviceError, match="nvforest-cu12/-cu13"):
        NvForestPredictor(fitted[1])


def _spatial_rows(n: int, seed: int) -> np.ndarray:
    # Rows as a tile's pixels come: smooth fields read in row order, so neighbours are
    # close and mostly reach the same leaves.
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n)[:, None]
    phase = rng.random(25)
    return ((np.sin(2 * np.pi * (t * rng.uniform(1, 3, 25) + phase)) + 1) / 2).astype(np.float32)


def test_branching_and_slot_kernels_give_the_same_bits(fitted):
    from smci_gpu.kernels import forest as fk

    _, pf = fitted
    rng = np.random.default_rng(9)
    arrays = pf._branching_layout()
    for x in (_spatial_rows(3001, 1), rng.random((3001, 25)).astype(np.float32)):
        branching = np.empty(len(x))
        fk.predict_branching_cpu(x, *arrays, pf.value, pf.roots, 256, branching)
        slots = fk.predict_compact_cpu(x, *pf._cpu_layout())
        np.testing.assert_array_equal(branching, slots)


@pytest.mark.parametrize("n_trees", [1, 4, 6, 7])
def test_branching_kernel_walks_trees_four_in_step_and_the_rest_alone(fitted, n_trees):
    # Trees are walked four at a time, the last n % 4 alone. Either way the sum runs in
    # tree order, so it equals scikit-learn's trees summed in order, bit for bit.
    from smci_gpu.kernels import forest as fk

    est, pf = fitted
    x = _spatial_rows(1001, 4)
    got = np.empty(len(x))
    roots = pf.roots[:n_trees]
    fk.predict_branching_cpu(x, *pf._branching_layout(), pf.value, roots, 128, got)
    want = np.zeros(len(x))
    for tree in est.estimators_[:n_trees]:
        want += tree.predict(x)
    np.testing.assert_array_equal(got, want / n_trees)


def test_ordered_rows_take_the_branching_kernel_and_shuffled_rows_the_slots(fitted, monkeypatch):
    from smci_gpu.kernels import forest as fk

    est, pf = fitted
    ordered = _spatial_rows(4000, 2)
    shuffled = ordered[np.random.default_rng(3).permutation(len(ordered))]
    agreement = [
        fk.neighbour_agreement(x, *pf._branching_layout(), pf.roots, 64)
        for x in (ordered, shuffled)
    ]
    assert agreement[0] >= fk.ORDERED_AGREEMENT > agreement[1]
    used = []
    real = fk.predict_branching_cpu
    monkeypatch.setattr(fk, "predict_branching_cpu", lambda *a: used.append(1) or real(*a))
    for x, branching in ((ordered, True), (shuffled, False)):
        used.clear()
        np.testing.assert_allclose(pf.predict(x), est.predict(x), atol=1e-12)
        assert bool(used) is branching
    assert fk.neighbour_agreement(ordered[:1], *pf._branching_layout(), pf.roots, 64) == 0.0
