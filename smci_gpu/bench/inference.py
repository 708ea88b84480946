"""Forest inference benchmark: PackedForest (CPU twin, GPU twin) vs scikit-learn ``predict``
(and nvForest where installed) on the same forest and rows, with exactness recorded."""

from __future__ import annotations

import warnings

import numpy as np

from smci_gpu.bench.harness import Record, time_call

#: (trees, training rows, predicted rows) per size; the paper's forest parameters.
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (10, 20_000, 50_000),
    "small": (100, 200_000, 1_000_000),
    "medium": (100, 200_000, 4_000_000),
    "large": (1000, 200_000, 1_000_000),
}
N_FEATURES = 25


def synthetic_rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of uniform predictors and a smooth target with noise."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, N_FEATURES), dtype=np.float32)
    y = np.sin(6 * x[:, 0]) + x[:, 1] ** 2 + 0.3 * x[:, 2] * x[:, 3] + rng.normal(0, 0.1, n)
    return x, y


def tile_order_rows(n: int, seed: int = 2) -> np.ndarray:
    """``n`` rows as a tile's pixels come in production: each predictor a smooth field on a
    square grid (a few long waves plus a little noise), read in row order, in [0, 1]."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    i, j = np.meshgrid(np.arange(side) / side, np.arange(side) / side, indexing="ij")
    cols = []
    for _ in range(N_FEATURES):
        f = sum(
            np.sin(2 * np.pi * (rng.uniform(0.5, 3) * i + rng.uniform(0.5, 3) * j + rng.random()))
            for _ in range(3)
        )
        f = f + rng.normal(0, 0.05, f.shape)
        cols.append(((f - f.min()) / (f.max() - f.min())).ravel()[:n])
    return np.ascontiguousarray(np.stack(cols, axis=1), dtype=np.float32)


def synthetic_forest(n_trees: int, n_train: int, seed: int = 0, min_samples_leaf: int = 20):
    """A forest fitted with max_features=1 (the paper's) on :func:`synthetic_rows`."""
    from sklearn.ensemble import RandomForestRegressor

    x, y = synthetic_rows(n_train, seed)
    est = RandomForestRegressor(
        n_estimators=n_trees,
        max_features=1,
        min_samples_leaf=min_samples_leaf,
        max_depth=64,
        random_state=seed,
        n_jobs=-1,
    )
    return est.fit(x, y)


def node_visits_per_row(forest, x: np.ndarray, sample: int = 2000) -> float:
    """Mean number of nodes a row visits over all trees (root to leaf, inclusive).

    Walked in NumPy over a sample of rows, so it counts what any traversal must do;
    rows/s × this is the inference node-visit rate.
    """
    x = np.asarray(x[:sample], dtype=np.float64)
    total = 0
    for root in forest.roots:
        node = np.full(x.shape[0], root, dtype=np.int64)
        rows = np.arange(x.shape[0])
        while node.size:
            total += node.size
            inner = forest.feature[node] >= 0  # leaves end their walk here
            node, rows = node[inner], rows[inner]
            go_left = x[rows, forest.feature[node]] <= forest.threshold[node]
            node = np.where(go_left, forest.left[node], forest.right[node])
    return total / x.shape[0]


def run(size: str = "small", devices: tuple[str, ...] = ("cpu",), repeats: int = 3) -> list[Record]:
    """rows/s of each implementation on one forest and one set of rows."""
    from smci_gpu.model.forest import PackedForest

    n_trees, n_train, n_rows = SIZES[size]
    est = synthetic_forest(n_trees, n_train)
    packed = PackedForest.from_sklearn(est)
    row_sets = {
        "predict": np.random.default_rng(1).random((n_rows, N_FEATURES), dtype=np.float32),
        # Production predicts a tile's pixels in row order: neighbours take the same paths.
        "predict_tile_order": tile_order_rows(n_rows // 4),
    }
    depth = max(e.tree_.max_depth for e in est.estimators_)
    records = []
    for stage, x in row_sets.items():
        shape = {"trees": n_trees, "train_rows": n_train, "rows": len(x), "max_depth": depth}
        records += _predict_records(stage, est, packed, x, shape, devices, max(1, repeats))
    return records


def _predict_records(stage, est, packed, x, shape, devices, reps) -> list[Record]:
    """scikit-learn, then each PackedForest twin (and nvForest) on the rows ``x``."""
    visits = node_visits_per_row(packed, x)
    ref = est.predict(x)
    records = []

    def add(impl: str, device: str, fn) -> None:
        t = time_call(fn, device=device, repeats=reps)
        got = np.asarray(_host(fn()))
        rec = Record("inference", stage, impl, device, shape, t, items=len(x), item_name="rows")
        rec.extra = {
            "max_abs_diff_vs_sklearn": float(np.max(np.abs(got - ref))),
            "node_visits_per_s": visits * len(x) / t.median,
        }
        records.append(rec)

    add("sklearn", "cpu", lambda: est.predict(x))
    if "cpu" in devices:
        add("packed", "cpu", lambda: packed.predict(x, device="cpu"))
    if "gpu" in devices:
        try:
            _add_gpu(add, est, packed, x)
        except Exception as exc:  # the CPU rows above still make a table
            warnings.warn(f"inference {shape} on gpu failed: {exc!r}", stacklevel=2)
    base = records[0].seconds.median
    for r in records:
        r.extra["speedup_vs_sklearn"] = base / r.seconds.median
    return records


def _add_gpu(add, est, packed, x) -> None:
    """The GPU rows: PackedForest's GPU twin, and nvForest where installed."""
    from smci_gpu.backend import cupy_module

    xg = cupy_module().asarray(x)
    add("packed", "gpu", lambda: packed.predict(xg, device="gpu"))
    nv = _nvforest(est)
    if nv is not None:
        add("nvforest", "gpu", lambda: nv.predict(xg))


def _host(a):
    from smci_gpu.backend import to_host

    return to_host(a).ravel()


def _nvforest(est):
    """An nvForest model of the same forest, or None where nvForest is not installed."""
    try:
        from smci_gpu.backend import nvforest_module

        nvf = nvforest_module()
    except Exception:  # noqa: BLE001 (optional backend)
        return None
    return nvf.load_from_sklearn(est, device="gpu")
