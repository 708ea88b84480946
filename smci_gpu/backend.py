"""Device choice and the array / frame / estimator / cluster namespaces.

This is the only module that imports CuPy, cuDF, cuML or dask-cuda. Everything else asks
it for a namespace (``xp``), so the same code runs on NumPy and CuPy arrays.

A GPU counts as usable only when a CUDA device really answers (not merely when ``cupy``
imports): ``auto`` falls back to the CPU with one log line; ``gpu`` without a device is a
:class:`~smci_gpu.errors.DeviceError`.
"""

from __future__ import annotations

import functools
import logging
import os
from types import ModuleType
from typing import Any, Literal

import numpy as np

from smci_gpu.errors import DeviceError

log = logging.getLogger(__name__)

Device = Literal["cpu", "gpu"]
DeviceRequest = Literal["auto", "cpu", "gpu"]


def restore_row_stack_alias() -> bool:
    """Put back ``np.row_stack`` (an alias of ``np.vstack``) where NumPy removed it.

    numba-cuda 0.30.x registers a CUDA overload of ``np.row_stack`` whenever NumPy ≥ 2.0,
    and NumPy 2.5 removed the alias, so every first CUDA compile there fails with
    ``AttributeError: module 'numpy' has no attribute 'row_stack'`` (NVIDIA/numba-cuda
    issue 907, which that project does not plan to fix). The kernels import this module
    before they compile, so the alias is back in time; nothing here calls it. Where
    numba-cuda is not installed, NumPy is left as it is.

    Returns
    -------
    bool
        True when the alias was missing and has been added.
    """
    if hasattr(np, "row_stack") or not _numba_cuda_installed():
        return False
    np.row_stack = _row_stack  # noqa: NPY201 (the name numba-cuda asks for)
    return True


def _numba_cuda_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("numba_cuda") is not None


def _row_stack(tup, *, dtype=None, casting="same_kind"):
    # A function of its own, not np.vstack itself, as in NumPy 2.0–2.4: numba-cuda then
    # registers its overload on a distinct object, the combination it was released for.
    return np.vstack(tup, dtype=dtype, casting=casting)


restore_row_stack_alias()


@functools.lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """Number of CUDA devices that answer, 0 when none (or when hidden by ``SMCI_NO_GPU``)."""
    if os.environ.get("SMCI_NO_GPU", "") not in ("", "0"):
        return 0
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "") == "1":
        return 0  # the simulator is not a device to compute on
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - any failure means "no usable device"
        pass
    try:
        from numba import cuda

        return len(cuda.gpus) if cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        return 0


def gpu_available() -> bool:
    """True when a CUDA device answers and CuPy can use it."""
    if cuda_device_count() == 0:
        return False
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_device(request: str = "auto") -> Device:
    """Turn ``auto|cpu|gpu`` into the device to use.

    Parameters
    ----------
    request
        ``"auto"`` picks the GPU when one is usable, else the CPU (logged once);
        ``"gpu"`` requires a usable GPU; ``"cpu"`` always works.
    """
    request = str(request).lower()
    if request not in ("auto", "cpu", "gpu"):
        raise DeviceError(f"device must be one of auto, cpu, gpu (got {request!r})")
    if request == "cpu":
        return "cpu"
    if gpu_available():
        return "gpu"
    if request == "gpu":
        raise DeviceError(
            "device 'gpu' was requested but no usable CUDA device was found "
            "(check `nvidia-smi` and that cupy-cuda12x/13x is installed); use --device cpu"
        )
    _log_cpu_fallback_once()
    return "cpu"


@functools.lru_cache(maxsize=1)
def _log_cpu_fallback_once() -> None:
    log.info("no usable CUDA device found: running on the CPU")


def cupy_module() -> ModuleType:
    """Import CuPy, or raise a :class:`DeviceError` saying how to install it."""
    try:
        import cupy
    except ImportError as exc:
        raise DeviceError("the GPU path needs CuPy: pip install 'smci-gpu[gpu]'") from exc
    return cupy


def is_device_array(a: Any) -> bool:
    """True for CuPy (device) arrays, without importing CuPy."""
    return type(a).__module__.split(".")[0] == "cupy"


def array_module(*arrays: Any) -> ModuleType:
    """NumPy or CuPy, whichever holds the arrays (NumPy when given none)."""
    if any(is_device_array(a) for a in arrays):
        return cupy_module()
    return np


def xp_for(device: Device) -> ModuleType:
    """Array namespace for a resolved device."""
    return cupy_module() if device == "gpu" else np


def to_host(a: Any) -> np.ndarray:
    """Copy a device array to host memory (no-op for NumPy)."""
    return a.get() if is_device_array(a) else np.asarray(a)


def to_device(a: Any, device: Device) -> Any:
    """Put an array on ``device`` (host → GPU copies once; same-device is a no-op)."""
    if device == "gpu":
        return cupy_module().asarray(a)
    return to_host(a)


def frame_module(device: Device) -> ModuleType:
    """pandas on the CPU, cuDF on the GPU."""
    if device == "gpu":
        try:
            import cudf
        except ImportError as exc:
            raise DeviceError("GPU data frames need cuDF (RAPIDS); see conda-env.yml") from exc
        return cudf
    import pandas

    return pandas


def forest_regressor_class(device: Device) -> type:
    """scikit-learn's RandomForestRegressor on CPU, cuML's on GPU."""
    if device == "gpu":
        try:
            from cuml.ensemble import RandomForestRegressor
        except ImportError as exc:
            raise DeviceError(
                "GPU training needs cuML >= 26.08 (RAPIDS); see conda-env.yml, "
                "or train with --device cpu"
            ) from exc
        return RandomForestRegressor
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor


def nvforest_module() -> ModuleType:
    """nvForest (GPU forest inference), or a DeviceError naming the wheel to install."""
    try:
        import nvforest
    except ImportError as exc:
        raise DeviceError("nvForest inference needs the nvforest-cu12/-cu13 wheel") from exc
    return nvforest


def local_cluster(device: Device, n_workers: int | None = None, threads_per_worker: int = 1):
    """A local Dask cluster: one worker per GPU (dask-cuda) or ``n_workers`` processes."""
    if device == "gpu":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError as exc:
            raise DeviceError("multi-GPU production needs dask-cuda") from exc
        return LocalCUDACluster(
            rmm_pool_size=None, threads_per_worker=threads_per_worker, dashboard_address=":0"
        )
    from dask.distributed import LocalCluster

    # ":0": the dashboard on a free port (its address is logged with -v); the default 8787
    # warns on every run whose port another job already holds.
    return LocalCluster(
        n_workers=n_workers or 1,
        threads_per_worker=threads_per_worker,
        processes=True,
        dashboard_address=":0",
    )


def describe(device: Device) -> dict[str, str]:
    """Name the device and library versions, for run logs and benchmark records."""
    import platform

    import numba

    info = {
        "device": device,
        "cpu": platform.processor() or platform.machine(),
        "cores": str(os.cpu_count()),
        "numpy": np.__version__,
        "numba": numba.__version__,
    }
    if device == "gpu":
        cp = cupy_module()
        props = cp.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        info["cupy"] = cp.__version__
        info["cuda_driver"] = str(cp.cuda.runtime.driverGetVersion())
    return info
