import numpy as np
import pytest

from smci_gpu import backend
from smci_gpu.errors import DeviceError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(backend, "gpu_available", lambda: False)


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(backend, "gpu_available", lambda: True)


def test_cpu_is_always_cpu(fake_gpu):
    assert backend.resolve_device("cpu") == "cpu"


def test_auto_falls_back_to_cpu(no_gpu):
    assert backend.resolve_device("auto") == "cpu"


def test_auto_takes_a_usable_gpu(fake_gpu):
    assert backend.resolve_device("AUTO") == "gpu"


def test_gpu_without_device_is_a_clear_error(no_gpu):
    with pytest.raises(DeviceError, match="no usable CUDA device"):
        backend.resolve_device("gpu")


def test_unknown_device_request():
    with pytest.raises(DeviceError, match="auto, cpu, gpu"):
        backend.resolve_device("tpu")


def test_hidden_gpu_counts_zero(monkeypatch):
    backend.cuda_device_count.cache_clear()
    monkeypatch.setenv("SMCI_NO_GPU", "1")
    try:
        assert backend.cuda_device_count() == 0
        assert backend.resolve_device("auto") == "cpu"
    finally:
        backend.cuda_device_count.cache_clear()


def test_namespaces_on_cpu():
    a = np.zeros(3)
    assert backend.array_module(a) is np
    assert backend.xp_for("cpu") is np
    assert backend.to_host(a) is a
    from sklearn.ensemble import RandomForestRegressor

    assert backend.forest_regressor_class("cpu") is RandomForestRegressor
    import pandas

    assert backend.frame_module("cpu") is pandas


def test_only_backend_imports_gpu_libraries():
    """No module but backend (and kernels' guarded CUDA twins) may import GPU libraries."""
    import pathlib
    import re

    root = pathlib.Path(backend.__file__).parent
    pattern = re.compile(r"^\s*(import|from)\s+(cupy|cudf|cuml|dask_cuda|nvforest)\b", re.M)
    offenders = [
        p.name
        for p in root.rglob("*.py")
        if p.name != "backend.py" and pattern.search(p.read_text())
    ]
    assert offenders == []


def test_row_stack_alias_is_restored_only_where_numpy_lacks_it(monkeypatch):
    # NumPy 2.5 removed np.row_stack, which numba-cuda 0.30 still registers on first
    # compile; without numba-cuda NumPy is left alone.
    from smci_gpu import backend

    assert backend.restore_row_stack_alias() is False  # present (NumPy < 2.5, or restored)
    monkeypatch.delattr(np, "row_stack")
    monkeypatch.setattr(backend, "_numba_cuda_installed", lambda: False)
    assert backend.restore_row_stack_alias() is False
    assert not hasattr(np, "row_stack")
    monkeypatch.setattr(backend, "_numba_cuda_installed", lambda: True)
    assert backend.restore_row_stack_alias() is True
    row_stack = getattr(np, "row_stack")  # noqa: B009 (the name NumPy 2.5 dropped)
    np.testing.assert_array_equal(row_stack(([1, 2], [3, 4])), [[1, 2], [3, 4]])
