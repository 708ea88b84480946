"""Shared fixtures and markers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import smci_gpu.io  # noqa: F401  (loads GDAL/PROJ before netCDF4/ecCodes: see that module)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _has_cuda() -> bool:
    from smci_gpu import backend

    return backend.gpu_available()


requires_cuda = pytest.mark.skipif(not _has_cuda(), reason="needs a real CUDA device")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """The tiny twin world, generated once per test session."""
    from smci_gpu import demo

    wd = tmp_path_factory.mktemp("tiny")
    demo.generate(wd, demo.TINY)
    (wd / "smci.toml").write_text(demo.demo_config_toml(demo.TINY))
    return wd


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def trained(tiny_world, tmp_path_factory):
    """A copy of the tiny world with its station table and models, and no product yet."""
    import shutil

    from rich.console import Console

    from smci_gpu import pipeline
    from smci_gpu.config import load_config

    wd = tmp_path_factory.mktemp("trained") / "w"
    shutil.copytree(tiny_world, wd, ignore=shutil.ignore_patterns("product"))
    pipeline._load_stages()
    cfg = load_config(workdir=wd, overrides={"device": "cpu"})
    if not (wd / "models" / "layer_010cm" / "card.json").exists():
        for name in ("prepare", "train"):
            pipeline.STAGES[name](cfg, Console(quiet=True))
    return wd


def run_killable_child(code: str, *args: str, kill_after: float | None) -> float | None:
    """Run ``python -c code *args``, which prints ``ready`` once imported; SIGKILL it
    ``kill_after`` s later, or (None) wait for it and return the seconds after ``ready``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    if kill_after is None:
        assert proc.wait(timeout=120) == 0
        return time.perf_counter() - t0  # the writing, after imports
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return None
