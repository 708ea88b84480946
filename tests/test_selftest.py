"""`smci selftest`: passes on a healthy CPU install and fails loudly when a kernel is wrong."""

from __future__ import annotations

import numpy as np

from smci_gpu import selftest


def test_cpu_selftest_passes_end_to_end(tmp_path):
    checks = selftest.kernel_checks(("cpu",)) + selftest.forest_checks(("cpu",))
    checks += selftest.end_to_end_checks(("cpu",), workdir=tmp_path)
    assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]
    names = {c.name for c in checks}
    assert "end to end: produce one day" in names
    assert any(n.startswith("kernel lai_daily") for n in names)


def test_a_wrong_kernel_fails_the_selftest(monkeypatch):
    from smci_gpu.bench import kernels as bench_kernels

    real = bench_kernels.make_cases

    def broken(size, xp, seed=0):
        cases = real(size, xp, seed)
        for case in cases:
            if case.stage == "lai_daily":
                twin = case.twin
                case.twin = lambda t=twin: np.asarray(t()) + 1e-3  # a subtle error
        return cases

    monkeypatch.setattr(bench_kernels, "make_cases", broken)
    checks = {c.name: c for c in selftest.kernel_checks(("cpu",))}
    lai = next(c for n, c in checks.items() if n.startswith("kernel lai_daily"))
    assert not lai.passed and "max |diff| 1.0e-03" in lai.detail
    assert all(c.passed for n, c in checks.items() if not n.startswith("kernel lai_daily"))
