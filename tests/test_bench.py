"""Benchmark suite: results validate against the schema; the references compute the same
answers as the kernels they are timed against (a benchmark of a wrong baseline is void)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from smci_gpu.bench import kernels as kb
from smci_gpu.bench.harness import Timing, time_call
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


@pytest.mark.parametrize("case", range(7))
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


def test_inference_bench_is_exact_and_schema_valid(tmp_path):
    doc = run_suite(["inference"], ("cpu",), "tiny", tmp_path, repeats=2, log=lambda _: None)
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    by_impl = {r["impl"]: r for r in doc["records"]}
    assert set(by_impl) == {"sklearn", "packed"}
    assert by_impl["packed"]["extra"]["max_abs_diff_vs_sklearn"] <= 1e-6
    assert by_impl["packed"]["rate"] == pytest.approx(
        50_000 / by_impl["packed"]["seconds"]["median"]
    )


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
    stages = [r["stage"] for r in doc["records"]]
    assert stages == ["read", "lai", "assemble", "infer", "write", "total"]
    total = doc["records"][-1]
    parts = sum(r["seconds"]["median"] for r in doc["records"][:-1])
    assert total["seconds"]["median"] == pytest.approx(parts, rel=0.5)
    assert (
        total["extra"]["hours_full_product_1000_trees"]
        > total["extra"]["hours_full_product_100_trees"]
    )
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))


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
