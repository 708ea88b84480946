"""Shared fixtures and markers."""

from __future__ import annotations

from pathlib import Path

import pytest

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
