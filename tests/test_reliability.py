"""The reliability corpus: every bad input gets a clear error (or is counted), nothing lost."""

from __future__ import annotations

import shutil

from smci_gpu import reliability as R


def test_every_bad_input_case_passes(trained, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(trained, world)
    R._produce(world)  # a product the cases must leave unchanged
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    results = [R.run_case(case, world, scratch) for case in R.corpus()]
    assert len(results) >= 30
    failed = [r for r in results if not r["passed"]]
    assert failed == []
    assert all(r["outcome"] in ("error", "counted") for r in results)
    table = R.markdown(
        {"date": "today", "cases": results, "kill_resume": None, "full_disk": {"passed": True}}
    )
    assert f"| {len(results)} | {len(results)} | 0 |" in table


def test_a_case_that_crashes_is_reported_not_passed(trained, tmp_path):
    def boom(wd):
        raise KeyError("bare")

    case = R.Case("crashing reader", "test", lambda w: None, boom, "anything")
    world = tmp_path / "world"
    shutil.copytree(trained, world)
    (world / "product").mkdir(exist_ok=True)
    result = R.run_case(case, world, tmp_path)
    assert result["outcome"] == "crash" and not result["passed"]
