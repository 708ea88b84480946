"""Benchmark suite: results validate against the schema; the references compute the same
answers as the kernels they are timed against (a benchmark of a wrong baseline is void)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from smci_gpu.bench import kernels as kb
from smci_gpu.bench.harness import Timing, time_call, time_interleaved
from smci_gpu.bench.suite import run_suite

SCHEMA = Path(__file__).resolve().parents[1] / "benchmarks" / "schema.json"


def test_kernel_bench_writes_schema_valid_json_and_markdown(tmp_path):
    doc = run_suite(["kernels"], ("cpu",), "tiny", tmp_path, repeats=1, log=lambda _: None)
    on_disk = json.loads((tmp_path / "bench.json").read_text())
    jsonschema.validate(on_disk, json.loads(SCHEMA.read_text()))
    assert on_disk == json.loads(json.dumps(doc))
    stages = {r["stage"] for r in on_disk["records"]}
    assert {"upsample_nearest", "lai_daily", "assemble_features"} <= stages
    for r in on_disk["records"]:
        assert r["gbps"] == pytest.approx(r["bytes"] / r["seconds"]["median"] / 1e9)
    md = (tmp_path / "bench.md").read_text()
    assert "| upsample_nearest | twin | cpu |" in md


def test_unknown_suite_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark"):
        run_suite(["nope"], ("cpu",), "tiny", tmp_path)


@pytest.mark.parametrize("case", range(len(kb.make_cases("tiny", np))))
def test_each_reference_equals_its_kernel(case):
    c = kb.make_cases("tiny", np)[case]
    if c.reference is None:
        pytest.skip("no reference")
    got, want = np.asarray(c.twin()), np.asarray(c.reference())
    if np.issubdtype(got.dtype, np.floating):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


def test_time_call_counts_repeats_and_warmup():
    calls = []
    t = time_call(lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5 and t.repeats == 3 and t.min <= t.median <= t.max
    assert Timing(2.0, 1.0, 3.0, 3).spread == pytest.approx(1.0)


def test_time_interleaved_alternates_the_calls():
    calls: list[str] = []
    timed = time_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=1, repeats=3
    )
    assert calls == ["a", "b"] + ["a", "b"] * 3  # one warm-up each, then rounds of a, b
    assert {k: t.repeats for k, t in timed.items()} == {"a": 3, "b": 3}


def test_time_interleaved_prepares_before_every_call_untimed():
    calls: list[str] = []
    time_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
        warmup=1,
        repeats=2,
        before_each=lambda: calls.append("evict"),
    )
    assert calls == ["evict", "a", "evict", "b"] * 3


def test_last_level_cache_size_read_from_sysfs_layout(tmp_path):
    for index, size in (("index0", "48K"), ("index2", "1024K"), ("index3", "32768K")):
        (tmp_path / index).mkdir()
        (tmp_path / index / "size").write_text(size + "\n")
    assert kb.last_level_cache_bytes(root=tmp_path) == 32 << 20
    assert kb.last_level_cache_bytes(default=123, root=tmp_path / "none") == 123


def test_kernel_bench_evicts_the_caches_before_each_cpu_call(monkeypatch):
    # A cache-sized case must not time one call warm and another cold: every call on the
    # CPU is preceded by the eviction.
    calls: list[str] = []
    monkeypatch.setattr(kb, "cpu_cache_evictor", lambda: lambda: calls.append("evict"))
    case = kb.Case("probe", {}, 8, lambda: calls.append("twin"), None, "none")
    monkeypatch.setattr(kb, "make_cases", lambda size, xp: [case])
    kb.run("tiny", ("cpu",), repeats=2)
    n_calls = 3 * (1 + len(kb.copy_candidates(8, np, "cpu")))  # warm-up + 2 rounds, each fn
    assert calls.count("evict") == n_calls
    assert calls.count("twin") == 3
    assert all(calls[i - 1] == "evict" for i, c in enumerate(calls) if c == "twin")


def test_inference_bench_is_exact_and_schema_valid(trained, tmp_path, monkeypatch):
    # The GPU's rows fail (a kernel that does not compile there, say): warned, CPU rows kept.
    from smci_gpu.bench import inference

    def gpu_fails(*args):
        raise RuntimeError("kernel did not compile")

    monkeypatch.setattr(inference, "_gpu_engines", gpu_fails)
    with pytest.warns(UserWarning, match="on gpu failed.*did not compile"):
        records = inference.run("tiny", ("cpu", "gpu"), repeats=2, workdir=trained)
    doc = run_suite(
        ["inference"], ("cpu",), "tiny", tmp_path, repeats=2, log=lambda _: None, workdir=trained
    )
    assert {(r.stage, r.impl) for r in records} == {(r["stage"], r["impl"]) for r in doc["records"]}
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    cells = {(r["stage"], r["impl"]): r for r in doc["records"]}
    onnx = _has("onnxruntime") and _has("skl2onnx")  # the optional `bench` extra
    impls = {"sklearn", "packed", "packed_rowwise"} | ({"onnxruntime"} if onnx else set())
    assert set(cells) == {(s, i) for s in ("predict", "predict_tile_order") for i in impls}
    for stage in ("predict", "predict_tile_order"):
        for impl in ("packed", "packed_rowwise"):
            packed = cells[(stage, impl)]
            assert packed["extra"]["max_abs_diff_vs_sklearn"] <= 1e-6
            assert packed["extra"]["int16_changed_vs_sklearn"] == 0
            assert packed["rate"] == pytest.approx(20_000 / packed["seconds"]["median"])
            assert packed["size"]["trees"] == 10


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_inference_rows_are_a_production_day_tile_by_tile(trained, tmp_path):
    # The tiny world's one production day, every land pixel in tile order, then again.
    from smci_gpu.bench.inference import load_rows, save_rows, world_rows
    from smci_gpu.config import load_config
    from smci_gpu.features import Predictors

    rows = world_rows(trained, 5000, 300)
    cfg = load_config(workdir=trained, overrides={"device": "cpu"})
    day = cfg.produce.start
    pred = Predictors.load(cfg, day, day)
    land = np.asarray(pred.land_mask())
    size = cfg.produce.tile_size  # the first tile's land pixels in row order:
    rr, cc = np.nonzero(land[:size, :size])
    first = pred.features(day, rr, cc)
    n_day = int(land.sum())
    assert rows["info"]["rows_per_day"] == [n_day]
    assert rows["info"]["cycles"] == -(-5000 // n_day)
    np.testing.assert_array_equal(rows["production"][: len(first)], first)
    np.testing.assert_array_equal(rows["production"][n_day : n_day + 10], rows["production"][:10])
    assert rows["train"].shape == (300, 25) and np.isfinite(rows["train"]).all()
    back = load_rows(save_rows(tmp_path / "rows.npz", rows), 12_000, 100)
    assert back["production"].shape == (12_000, 25) and back["train"].shape == (100, 25)
    np.testing.assert_array_equal(back["production"][5000:5100], rows["production"][:100])


def test_int16_counts_are_the_writers():
    from smci_gpu.bench.inference import int16_counts
    from smci_gpu.io.writer import encode_int16

    p = np.random.default_rng(0).uniform(-0.1, 0.7, 10_000)
    p[:3] = [0.0005, 0.0015, 0.6]  # rounding edges and the clip
    want = encode_int16(np.clip(p, 0, 0.6).astype(np.float32))
    np.testing.assert_array_equal(int16_counts(p), want)
    assert int16_counts(np.array([0.7, -1.0, 0.1234])).tolist() == [600, 0, 123]


def test_full_product_extrapolation_by_hand():
    from smci_gpu.bench.produce import extrapolate

    per_pixel = {"read": 1e-6, "lai": 0.0, "assemble": 1e-6, "infer": 8e-6, "write": 0.0}
    got = extrapolate(per_pixel, trees=100, n_devices=2)
    # 1e-5 s per pixel-day × 13.6e6 pixels × 7670 days / 3600 / 2 devices
    assert got["hours_full_product_100_trees"] == pytest.approx(1e-5 * 13.6e6 * 7670 / 3600 / 2)
    # 1000 trees: inference × 10 → 8.2e-5 s per pixel-day
    assert got["hours_full_product_1000_trees"] == pytest.approx(8.2e-5 * 13.6e6 * 7670 / 7200)
    assert got["bottleneck_1000_trees"] == "infer"


def test_produce_benchmark_on_a_trained_world(trained, tmp_path):
    from smci_gpu.bench.suite import run_suite

    doc = run_suite(
        ["produce"], ("cpu",), "tiny", tmp_path, repeats=2, log=lambda m: None, workdir=trained
    )
    stages = [r["stage"] for r in doc["records"] if r["impl"] == "smci"]
    assert stages == ["read", "lai", "assemble", "infer", "write", "total"]
    total = doc["records"][5]
    parts = sum(r["seconds"]["median"] for r in doc["records"][:5])
    assert total["seconds"]["median"] == pytest.approx(parts, rel=0.5)
    assert (
        total["extra"]["hours_full_product_1000_trees"]
        > total["extra"]["hours_full_product_100_trees"]
    )
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    # the plain xarray + scikit-learn day-tile ran on the same days, and the speed-up is its
    # time over the engine's
    base = doc["records"][6]
    assert (base["stage"], base["impl"]) == ("total", "xarray+sklearn")
    assert total["extra"]["speedup_vs_xarray_sklearn"] == pytest.approx(
        base["seconds"]["median"] / total["seconds"]["median"]
    )
    extrapolation = next(t for t in doc["tables"] if t["title"].startswith("Full-product"))
    hours = {(r[1], r[2]): r[3] for r in extrapolation["rows"]}
    assert hours[(4, 100)] == pytest.approx(hours[(1, 100)] / 4)
    assert hours[(1, 100)] == pytest.approx(total["extra"]["hours_full_product_100_trees"])
    # the tiny world is too small to extrapolate from, and the results say so
    assert total["size"]["land_pixels"] < 20_000
    assert any("make demo" in note for note in doc["notes"])


def test_world_note_only_for_small_worlds():
    from smci_gpu.bench.harness import Record, Timing
    from smci_gpu.bench.suite import world_notes

    def total(pixels: int) -> Record:
        size = {"land_pixels": pixels}
        return Record("produce", "total", "smci", "cpu", size, Timing.of([1.0]))

    assert world_notes([total(55_982)]) == []
    assert "3,600 land pixels" in world_notes([total(3_600)])[0]
    assert world_notes([]) == []


def test_baseline_day_computes_the_engines_numbers_where_inputs_are_complete(trained, tmp_path):
    import pandas as pd

    from smci_gpu.bench.baseline import baseline_day, fit_sklearn_forests
    from smci_gpu.config import load_config
    from smci_gpu.features import LAI_SEARCH, Predictors
    from smci_gpu.io.rasters import read_lai
    from smci_gpu.produce import load_forests, predict_day

    cfg = load_config(workdir=trained, overrides={"device": "cpu"})
    day = pd.Timestamp(cfg.produce.start)
    pred = Predictors.load(cfg, day, day)
    engine, *_ = predict_day(pred, load_forests(cfg)[0], day, 64, clip=(-1.0, 2.0))
    plain, _ = baseline_day(cfg, day, fit_sklearn_forests(cfg), tmp_path / "b.nc")
    comp, _ = read_lai(cfg.path("inputs", "lai"), cfg.product_grid(), day, day, LAI_SEARCH + 1)
    complete = pred.land_mask() & np.isfinite(comp).all(axis=0)
    assert complete.mean() > 0.5
    # (the tiny world has no coast, so ERA5-Land's nearest cell is never NaN there)
    np.testing.assert_allclose(plain[:, complete], engine[:, complete], rtol=0, atol=1e-6)


def test_node_visits_equal_scikit_learns_decision_path():
    from smci_gpu.bench.inference import node_visits_per_row, synthetic_forest, synthetic_rows
    from smci_gpu.model.forest import PackedForest

    est = synthetic_forest(4, 3000)
    x, _ = synthetic_rows(200, seed=3)
    want = est.decision_path(x)[0].nnz / 200
    assert node_visits_per_row(PackedForest.from_sklearn(est), x) == pytest.approx(want)


def test_train_io_and_scaling_suites_write_valid_results_and_plots(trained, tmp_path):
    doc = run_suite(
        ["train", "io", "scaling"],
        ("cpu",),
        "tiny",
        tmp_path,
        repeats=1,
        log=lambda _: None,
        workdir=trained,
    )
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    by = {(r["suite"], r["stage"], r["impl"]): r for r in doc["records"]}
    fit = by[("train", "fit", "sklearn")]
    assert fit["rate"] == pytest.approx(10_000 / fit["seconds"]["median"])
    assert fit["extra"]["nodes"] > 10
    ours, plain = (
        by[("io", "write_day", "smci_int16_zlib")],
        by[("io", "write_day", "xarray_to_netcdf_float32")],
    )
    assert ours["bytes"] == plain["bytes"]  # the same fields written both ways
    assert ours["extra"]["file_bytes"] < plain["extra"]["file_bytes"]
    assert {"read_era5land_month", "read_static", "read_lai_month"} <= {
        r["stage"] for r in doc["records"] if r["suite"] == "io"
    }
    curves = {r["stage"] for r in doc["records"] if r["suite"] == "scaling"}
    assert curves == {"tile_pixels", "trees", "min_samples_leaf", "threads"}
    leaf = sorted(
        (r["size"]["x"], r["extra"]["visits_per_row"])
        for r in doc["records"]
        if r["stage"] == "min_samples_leaf" and r["impl"] == "packed"
    )
    assert leaf[0][1] > leaf[-1][1]  # smaller leaves, deeper walks
    for png in ("train.png", "io.png", "scaling.png"):
        assert (tmp_path / png).stat().st_size > 5_000


def test_compare_two_runs_by_hand():
    from smci_gpu.bench.compare import compare, markdown

    def run(*medians):
        return {
            "records": [
                {
                    "suite": "k",
                    "stage": s,
                    "impl": "twin",
                    "device": "cpu",
                    "size": {"n": 1},
                    "seconds": {"median": m},
                }
                for s, m in zip(("a", "b", "c"), medians, strict=True)
            ]
        }

    got = compare(run(1.0, 2.0, 1.0), run(1.1, 3.0, 0.95))
    assert [round(r["difference"], 4) for r in got["cells"]] == [0.1, 0.5, round(1 / 0.95 - 1, 4)]
    assert got["within"] == 2 and got["total"] == 3
    assert "2 of 3 cells differ by less than 20%" in markdown(got)


def test_gpu_node_entry_runs_without_the_full_stack(tmp_path):
    # A lent GPU machine has NumPy, Numba and CuPy but not pydantic, dask, netCDF4 or
    # rioxarray: the kernels, forests and `python -m smci_gpu.bench` must not need them.
    import subprocess
    import sys

    blocked = ["pydantic", "dask", "distributed", "netCDF4", "rioxarray", "cfgrib", "rasterio"]
    script = (
        "import sys\n"
        f"for m in {blocked!r}: sys.modules[m] = None\n"
        "import smci_gpu.kernels, smci_gpu.model.forest\n"
        "from smci_gpu.bench.__main__ import main\n"
        f"sys.exit(main(['kernels', '--device', 'cpu', '--size', 'tiny', '--repeats', '1',"
        f" '--out', {str(tmp_path)!r}]))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads((tmp_path / "bench.json").read_text())
    twins = {r["stage"] for r in doc["records"] if r["impl"] == "twin"}
    assert twins == {c.stage for c in kb.make_cases("tiny", np)}


def test_kernel_bench_gpu_branch_with_a_numpy_stand_in(monkeypatch):
    # The GPU side of the kernel benchmark (array module, device syncs, the CuPy gather
    # reference) run with NumPy standing in for CuPy, so a lent GPU's run is not its test.
    from types import SimpleNamespace

    from smci_gpu import backend

    class NumpyAsCupy:
        cuda = SimpleNamespace(Device=lambda: SimpleNamespace(synchronize=lambda: None))

        def __getattr__(self, name):
            return getattr(np, name)

    monkeypatch.setattr(backend, "cupy_module", lambda: NumpyAsCupy())
    records = kb.run("tiny", devices=("gpu",), repeats=1)
    assert {r.device for r in records} == {"gpu"}
    impls = {(r.stage, r.impl) for r in records}
    assert ("upsample_nearest", "cupy_fancy_index") in impls
    twins = [r for r in records if r.impl == "twin"]
    assert len(twins) == len(kb.make_cases("tiny", np))
    assert all(r.extra["of_copy"] > 0 for r in twins)


def test_a_failing_reference_is_warned_and_the_twin_still_recorded(monkeypatch):
    def broken():
        raise NotImplementedError("not in this CuPy")

    real_cases = kb.make_cases

    def cases(size, xp, seed=0):
        case = real_cases(size, xp, seed)[0]
        case.reference = broken
        return [case]

    monkeypatch.setattr(kb, "make_cases", cases)
    with pytest.warns(UserWarning, match="not in this CuPy"):
        records = kb.run("tiny", repeats=1)
    assert [r.impl for r in records][0] == "twin"
    assert records[0].extra["vs_reference"] is None
    assert len(records) == 2  # twin and copy


def test_a_failing_twin_is_warned_and_the_other_kernels_still_measured(monkeypatch):
    def broken():
        raise RuntimeError("kernel did not compile")

    real_cases = kb.make_cases

    def cases(size, xp, seed=0):
        first, second = real_cases(size, xp, seed)[:2]
        first.twin = broken
        return [first, second]

    monkeypatch.setattr(kb, "make_cases", cases)
    lines = []
    with pytest.warns(UserWarning, match="upsample_nearest on cpu failed.*did not compile"):
        records = kb.run("tiny", repeats=1, progress=lines.append)
    second = real_cases("tiny", np)[1].stage
    assert {r.stage for r in records} == {second}
    assert len(lines) == 1 and lines[0].startswith(second)
