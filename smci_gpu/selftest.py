"""`smci selftest`: check an installation on the machine it runs on.

It runs, on the CPU and (with ``--device gpu``) on the GPU:

* every kernel twin against its plain NumPy/xarray reference (exact for gathers, land
  cover majority and feature assembly; 1e-6 relative for means and interpolation), and
  each GPU twin against the CPU twin on the same inputs;
* forest inference: ``PackedForest`` against scikit-learn's ``predict`` (≤ 1e-6) on a
  forest with the paper's parameters, on each device;
* one demo day end to end (tiny twin world: prepare, train, produce), and on a GPU the
  same day produced on the CPU, which must give the identical int16 product.

This is how a GPU user with RAPIDS confirms an install that CI (no GPU) cannot exercise.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXACT_STAGES = ("upsample_nearest", "block_majority", "assemble_features")


@dataclass
class Check:
    """One selftest line."""

    name: str
    device: str
    passed: bool
    detail: str
    seconds: float


def _host(a) -> np.ndarray:
    from smci_gpu.backend import to_host

    return np.asarray(to_host(a))


def _compare(got, want, exact: bool) -> tuple[bool, str]:
    got, want = _host(got), _host(want)
    if got.shape != want.shape:
        return False, f"shape {got.shape} vs {want.shape}"
    if exact:
        same = np.array_equal(got, want, equal_nan=np.issubdtype(got.dtype, np.floating))
        return same, "identical" if same else f"{int((got != want).sum())} values differ"
    ok = np.allclose(got, want, rtol=1e-6, atol=1e-7, equal_nan=True)
    diff = np.nanmax(np.abs(got.astype(np.float64) - want)) if got.size else 0.0
    return bool(ok), f"max |diff| {diff:.1e}"


def _timed(name: str, device: str, fn: Callable[[], tuple[bool, str]]) -> Check:
    t0 = time.perf_counter()
    try:
        passed, detail = fn()
    except Exception as exc:  # noqa: BLE001 - a selftest reports, it does not crash
        passed, detail = False, f"{type(exc).__name__}: {exc}"
    return Check(name, device, passed, detail, time.perf_counter() - t0)


def kernel_checks(devices: tuple[str, ...]) -> list[Check]:
    """Each kernel twin vs its reference; GPU twins vs the CPU twins."""
    from smci_gpu.bench.kernels import make_cases

    checks = []
    cpu_out = {}
    for case in make_cases("tiny", np):
        exact = case.stage.startswith(EXACT_STAGES)
        cpu_out[case.stage] = _host(case.twin()).copy()
        checks.append(
            _timed(
                f"kernel {case.stage} vs {case.reference_name}",
                "cpu",
                lambda c=case, e=exact: _compare(c.twin(), c.reference(), e),
            )
        )
    if "gpu" in devices:
        from smci_gpu.backend import cupy_module

        for case in make_cases("tiny", cupy_module()):
            exact = case.stage.startswith(EXACT_STAGES)
            checks.append(
                _timed(
                    f"kernel {case.stage} GPU twin vs CPU twin",
                    "gpu",
                    lambda c=case, e=exact: _compare(c.twin(), cpu_out[c.stage], e),
                )
            )
    return checks


def forest_checks(devices: tuple[str, ...]) -> list[Check]:
    """PackedForest vs scikit-learn on a forest with the paper's parameters."""
    from sklearn.ensemble import RandomForestRegressor

    from smci_gpu.model.forest import PackedForest
    from smci_gpu.variables import ERA5LAND_FEATURES

    rng = np.random.default_rng(0)
    x = rng.random((4000, 25), dtype=np.float32)
    y = np.sin(6 * x[:, 0]) + x[:, 1] + rng.normal(0, 0.05, x.shape[0])
    est = RandomForestRegressor(
        n_estimators=20, max_features=1, min_samples_leaf=20, max_depth=64, random_state=0
    ).fit(x, y)
    packed = PackedForest.from_sklearn(est)
    rows = rng.random((20000, 25), dtype=np.float32)
    want = est.predict(rows)
    # Production's case too: a forest that knows its features, on rows whose ERA5-Land
    # columns repeat within cells of 144 (the CPU's cell-group kernel).
    names = [*ERA5LAND_FEATURES[:16], *[f"fine_{i}" for i in range(9)]]
    named = PackedForest.from_sklearn(est, feature_names=names)
    cells = np.repeat(rng.random((140, 16), dtype=np.float32), 144, axis=0)
    grouped = np.concatenate([cells, rng.random((cells.shape[0], 9), dtype=np.float32)], 1)
    want_grouped = est.predict(grouped)

    def check(device: str) -> tuple[bool, str]:
        got = _host(packed.predict(rows, device=device))
        diff = float(np.max(np.abs(got - want)))
        got = _host(named.predict(grouped, device=device))
        diff_g = float(np.max(np.abs(got - want_grouped)))
        ok = diff <= 1e-6 and diff_g <= 1e-6
        return ok, (
            f"max |diff| {diff:.1e} over {rows.shape[0]:,} scattered rows, "
            f"{diff_g:.1e} over {grouped.shape[0]:,} rows in cells of 144"
        )

    return [_timed("forest PackedForest vs scikit-learn", d, lambda d=d: check(d)) for d in devices]


def end_to_end_checks(devices: tuple[str, ...], workdir: Path | None = None) -> list[Check]:
    """The tiny twin world: prepare, train (few trees), produce one day on each device."""
    from rich.console import Console

    from smci_gpu import demo, pipeline
    from smci_gpu.config import load_config

    wd = Path(workdir or tempfile.mkdtemp(prefix="smci-selftest-")) / "world"
    console = Console(quiet=True)
    products = {}

    def run_world() -> tuple[bool, str]:
        demo.generate(wd, demo.TINY)
        (wd / "smci.toml").write_text(demo.demo_config_toml(demo.TINY))
        pipeline._load_stages()
        cfg = load_config(workdir=wd, overrides={"device": "cpu", "forest": {"n_estimators": 10}})
        for name in ("prepare", "train"):
            pipeline.STAGES[name](cfg, console)
        return True, f"{len(cfg.layers)} layers trained"

    def run_day(device: str) -> tuple[bool, str]:
        import xarray as xr

        from smci_gpu.produce import produce

        out = wd / f"product_{device}"
        overrides = {"device": device, "forest": {"n_estimators": 10}}
        cfg = load_config(workdir=wd, overrides=overrides)
        day = demo.TINY.production_days[0]
        stats = produce(cfg, console, day, day)
        path = Path(stats["path"]) / f"SMCI_1km_{day.replace('-', '')}.nc"
        data = xr.open_dataset(path, mask_and_scale=False, engine="netcdf4").sm.values
        products[device] = data
        out.mkdir(exist_ok=True)
        path.replace(out / path.name)  # keep each device's file apart
        valid = int((data != -999).sum())
        return not stats["failed"] and valid > 0, f"{valid:,} values written"

    checks = [_timed("end to end: tiny world prepare + train", "cpu", run_world)]
    if checks[0].passed:
        checks += [
            _timed("end to end: produce one day", d, lambda d=d: run_day(d)) for d in devices
        ]
        if "gpu" in products and "cpu" in products:
            checks.append(
                _timed(
                    "end to end: GPU product equals CPU product (int16)",
                    "gpu",
                    lambda: _compare(products["gpu"], products["cpu"], exact=True),
                )
            )
    return checks


def run(device: str = "cpu", quick: bool = False) -> tuple[list[Check], dict[str, str]]:
    """All checks for ``cpu`` or ``gpu`` (which also checks the CPU path it is compared to)."""
    from smci_gpu import backend

    resolved = backend.resolve_device(device)
    devices = ("cpu", "gpu") if resolved == "gpu" else ("cpu",)
    checks = kernel_checks(devices) + forest_checks(devices)
    if not quick:
        checks += end_to_end_checks(devices)
    info = {**backend.describe(resolved)}
    import sklearn

    from smci_gpu import __version__

    info.update(smci_gpu=__version__, sklearn=sklearn.__version__)
    return checks, info
