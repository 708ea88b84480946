"""Scaling curves: how throughput changes with tile pixels, trees, leaf size and threads.

Each curve varies one thing and keeps the rest fixed:

* ``tile_pixels``: rows per call of forest inference (PackedForest on each device, and
  scikit-learn on the CPU) and of feature assembly (the kernel that builds those rows);
* ``trees``: forest size, the first *n* trees of one fitted forest, so only the count
  changes;
* ``min_samples_leaf``: smaller leaves → deeper trees → more node visits per row;
* ``threads``: Numba threads for the CPU twins (and ``n_jobs`` for scikit-learn).

Records are in the ``scaling`` suite, with the varied parameter in ``size`` under
``x``; :func:`plot_scaling` draws rate against it on log axes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numba
import numpy as np

from smci_gpu.bench.harness import Record, time_call
from smci_gpu.bench.inference import N_FEATURES, node_visits_per_row, synthetic_forest

#: Points of each curve per size (the GPU curve of tile pixels goes further).
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "pixels": [1_000, 10_000],
        "gpu_pixels": [10_000, 100_000],
        "trees": [5, 20],
        "leaf": [5, 50],
        "rows": 10_000,
        "train": 5_000,
        "max_trees": 20,
    },
    "small": {
        "pixels": [10_000, 100_000, 1_000_000],
        "gpu_pixels": [10_000, 100_000, 1_000_000, 10_000_000],
        "trees": [10, 30, 100, 300],
        "leaf": [1, 5, 20, 100],
        "rows": 100_000,
        "train": 50_000,
        "max_trees": 300,
    },
    "medium": {
        "pixels": [10_000, 100_000, 1_000_000, 4_000_000],
        "gpu_pixels": [10_000, 100_000, 1_000_000, 10_000_000, 30_000_000],
        "trees": [10, 30, 100, 300, 1000],
        "leaf": [1, 5, 20, 100],
        "rows": 200_000,
        "train": 200_000,
        "max_trees": 1000,
    },
}
SIZES["large"] = SIZES["medium"]
SCALING_TREES = 50  # forest for the pixel, leaf and thread curves


def _subforest(est, n: int):
    """The first ``n`` trees of a fitted scikit-learn forest, as a forest of its own."""
    sub = copy.copy(est)
    sub.estimators_ = est.estimators_[:n]
    sub.n_estimators = n
    return sub


def _rows(n: int, xp=np) -> Any:
    return xp.asarray(np.random.default_rng(1).random((n, N_FEATURES), dtype=np.float32))


def _record(stage: str, impl: str, device: str, x_value, t, n_rows: int, extra=None) -> Record:
    rec = Record("scaling", stage, impl, device, {"x": x_value}, t, items=n_rows)
    rec.item_name = "rows"
    rec.extra = extra or {}
    return rec


def _inference_points(est, packed, x_host, devices, repeats, stage, x_value, visits=None):
    """PackedForest on each device and scikit-learn on the CPU for the same rows."""
    out = []
    n = x_host.shape[0]
    extra = {} if visits is None else {"visits_per_row": visits}
    for device in devices:
        xd = x_host if device == "cpu" else _rows(n, _cupy())
        t = time_call(
            lambda d=device, a=xd: packed.predict(a, device=d), device=device, repeats=repeats
        )
        out.append(_record(stage, "packed", device, x_value, t, n, dict(extra)))
    t = time_call(lambda: est.predict(x_host), repeats=max(1, repeats // 2))
    out.append(_record(stage, "sklearn", "cpu", x_value, t, n, dict(extra)))
    return out


def _cupy():
    from smci_gpu.backend import cupy_module

    return cupy_module()


def tile_pixels(size: str, devices, repeats: int) -> list[Record]:
    from smci_gpu.model.forest import PackedForest

    s = SIZES[size]
    est = synthetic_forest(SCALING_TREES, s["train"])
    packed = PackedForest.from_sklearn(est)
    records = []
    for n in sorted(set(s["pixels"]) | (set(s["gpu_pixels"]) if "gpu" in devices else set())):
        on = tuple(d for d in devices if d == "gpu" or n in s["pixels"])
        x = _rows(n)
        for device in on:
            xd = x if device == "cpu" else _cupy().asarray(x)
            t = time_call(
                lambda d=device, a=xd: packed.predict(a, device=d), device=device, repeats=repeats
            )
            records.append(_record("tile_pixels", "packed", device, n, t, n))
        if n in s["pixels"]:
            t = time_call(lambda a=x: est.predict(a), repeats=max(1, repeats // 2))
            records.append(_record("tile_pixels", "sklearn", "cpu", n, t, n))
        records += _assemble_points(n, on, repeats)
    return records


def _assemble_points(n_pixels: int, devices, repeats: int) -> list[Record]:
    """Feature assembly for ``n_pixels`` land pixels of a square 1 km tile (70 % land)."""
    from smci_gpu import kernels as K

    side = int(np.ceil(np.sqrt(n_pixels / 0.7)))
    coarse_side = max(2, side // 12 + 1)
    rng = np.random.default_rng(2)
    land = rng.random((side, side)) < 0.7
    rows, cols = (v[:n_pixels] for v in np.nonzero(land))
    n_coarse, n_fine = 16, 9
    kind = np.array([K.assemble.COARSE] * n_coarse + [K.assemble.FINE] * n_fine)
    index = np.concatenate([np.arange(n_coarse), np.arange(n_fine)])
    out = []
    for device in devices:
        xp = np if device == "cpu" else _cupy()
        coarse = xp.asarray(rng.random((n_coarse, coarse_side, coarse_side), dtype=np.float32))
        fine = xp.asarray(rng.random((n_fine, side, side), dtype=np.float32))
        iy = xp.asarray(np.minimum(np.arange(side) // 12, coarse_side - 1))
        r, c = xp.asarray(rows), xp.asarray(cols)
        feat = xp.empty((r.size, kind.size), dtype=np.float32)
        args = (coarse, iy, iy, fine, r, c, kind, index)
        t = time_call(
            lambda a=args, o=feat: K.assemble_features(*a, out=o), device=device, repeats=repeats
        )
        out.append(_record("tile_pixels", "assemble", device, int(r.size), t, int(r.size)))
    return out


def trees(size: str, devices, repeats: int) -> list[Record]:
    from smci_gpu.model.forest import PackedForest

    s = SIZES[size]
    full = synthetic_forest(s["max_trees"], s["train"])
    x = _rows(s["rows"])
    records = []
    for n in s["trees"]:
        est = _subforest(full, n)
        packed = PackedForest.from_sklearn(est)
        records += _inference_points(est, packed, x, devices, repeats, "trees", n)
    return records


def min_samples_leaf(size: str, devices, repeats: int) -> list[Record]:
    from smci_gpu.model.forest import PackedForest

    s = SIZES[size]
    x = _rows(s["rows"])
    records = []
    for leaf in s["leaf"]:
        est = synthetic_forest(SCALING_TREES, s["train"], min_samples_leaf=leaf)
        packed = PackedForest.from_sklearn(est)
        visits = node_visits_per_row(packed, x) / packed.n_trees
        records += _inference_points(
            est, packed, x, devices, repeats, "min_samples_leaf", leaf, visits
        )
    return records


def threads(size: str, devices, repeats: int) -> list[Record]:
    """CPU only: Numba threads 1 … all, for inference and upsampling."""
    from smci_gpu import kernels as K
    from smci_gpu.model.forest import PackedForest

    s = SIZES[size]
    est = synthetic_forest(SCALING_TREES, s["train"])
    packed = PackedForest.from_sklearn(est)
    x = _rows(s["rows"])
    src = np.random.default_rng(3).random((16, 100, 100), dtype=np.float32)
    iy = np.repeat(np.arange(100), 12)
    up = np.empty((16, 1200, 1200), np.float32)
    n_max = numba.config.NUMBA_NUM_THREADS
    counts = sorted({1, *(2**k for k in range(1, 8) if 2**k < n_max), n_max})
    records = []
    before = numba.get_num_threads()
    try:
        for n in counts:
            numba.set_num_threads(n)
            t = time_call(lambda: packed.predict(x, device="cpu"), repeats=repeats)
            records.append(_record("threads", "packed", "cpu", n, t, x.shape[0]))
            sub = copy.copy(est)
            sub.n_jobs = n
            t = time_call(lambda e=sub: e.predict(x), repeats=max(1, repeats // 2))
            records.append(_record("threads", "sklearn", "cpu", n, t, x.shape[0]))
            t = time_call(lambda: K.gather_2d(src, iy, iy, out=up), repeats=repeats)
            rec = _record("threads", "upsample", "cpu", n, t, up.size)
            rec.item_name, rec.bytes = "pixels", src.nbytes + up.nbytes
            records.append(rec)
    finally:
        numba.set_num_threads(before)
    return records


CURVES = {
    "tile_pixels": tile_pixels,
    "trees": trees,
    "min_samples_leaf": min_samples_leaf,
    "threads": threads,
}


def run(size: str = "small", devices: tuple[str, ...] = ("cpu",), repeats: int = 3) -> list[Record]:
    """Every curve at ``size`` on ``devices``."""
    records: list[Record] = []
    for curve in CURVES.values():
        records += curve(size, devices, max(1, repeats))
    return records


def plot_scaling(doc: dict[str, Any], path: Path) -> Path | None:
    """One panel per curve: rate vs the varied parameter, log–log, a line per impl/device."""
    rows = [r for r in doc["records"] if r["suite"] == "scaling"]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = list(dict.fromkeys(r["stage"] for r in rows))
    fig, axes = plt.subplots(1, len(curves), figsize=(4.6 * len(curves), 3.8), squeeze=False)
    labels = {
        "tile_pixels": "rows (pixels) per call",
        "trees": "trees",
        "min_samples_leaf": "min_samples_leaf",
        "threads": "Numba threads / n_jobs",
    }
    for ax, curve in zip(axes[0], curves, strict=True):
        mine = [r for r in rows if r["stage"] == curve]
        for key in dict.fromkeys((r["impl"], r["device"]) for r in mine):
            pts = sorted(
                (r["size"]["x"], r["rate"]) for r in mine if (r["impl"], r["device"]) == key
            )
            ax.plot(*zip(*pts, strict=True), marker="o", label=f"{key[0]} ({key[1]})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(labels.get(curve, curve))
        ax.set_ylabel("items / s")
        ax.set_title(curve)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
