"""Training benchmark: fitting one layer's forest on a station-day-sized table.

scikit-learn fits on the CPU and cuML on the GPU (where RAPIDS is installed), with the
paper's forest parameters (``max_features=1``, ``min_samples_leaf`` from the default
config) on the same rows; the record notes the forest's size so rates compare like with
like. The station-day table of SMCI1.0 has on the order of 10⁵–10⁶ rows per layer.
"""

from __future__ import annotations

import numpy as np

from smci_gpu.bench.harness import Record, time_call
from smci_gpu.bench.inference import N_FEATURES, node_visits_per_row, synthetic_rows

#: (trees, training rows) per size.
SIZES: dict[str, tuple[int, int]] = {
    "tiny": (10, 10_000),
    "small": (100, 100_000),
    "medium": (100, 500_000),
    "large": (100, 2_000_000),
}


def _estimator(device: str, n_trees: int):
    from smci_gpu.config import Config
    from smci_gpu.model.train import make_estimator

    return make_estimator(Config(), device, n_estimators=n_trees)  # n_jobs=-1 on the CPU


def run(size: str = "small", devices: tuple[str, ...] = ("cpu",), repeats: int = 2) -> list[Record]:
    """rows/s of one fit per device; skipped (with a note) where cuML is missing."""
    n_trees, n_rows = SIZES[size]
    x, y = synthetic_rows(n_rows, seed=0)
    shape = {"trees": n_trees, "rows": n_rows, "features": N_FEATURES}
    records = []
    for device in devices:
        try:
            est = _estimator(device, n_trees)
        except Exception as exc:  # noqa: BLE001 (cuML is optional)
            print(f"train on {device}: skipped ({exc})")
            continue
        if device == "gpu":
            from smci_gpu.backend import cupy_module

            cp = cupy_module()
            xd, yd = cp.asarray(x), cp.asarray(y, dtype=np.float32)
        else:
            xd, yd = x, y
        t = time_call(
            lambda e=est, a=xd, b=yd: e.fit(a, b), device=device, warmup=0, repeats=repeats
        )
        impl = "cuml" if device == "gpu" else "sklearn"
        rec = Record("train", "fit", impl, device, shape, t, items=n_rows, item_name="rows")
        rec.extra = _forest_size(est, device, x)
        records.append(rec)
    return records


def _forest_size(est, device: str, x: np.ndarray) -> dict[str, float]:
    """Nodes and mean root-to-leaf visits per row, so forests from each library compare."""
    from smci_gpu.model.forest import PackedForest

    packed = PackedForest.from_cuml(est) if device == "gpu" else PackedForest.from_sklearn(est)
    return {
        "nodes": int(packed.n_nodes),
        "visits_per_row_per_tree": node_visits_per_row(packed, x) / packed.n_trees,
    }
