"""Forest inference benchmark: PackedForest (CPU twin, GPU twin) vs scikit-learn ``predict``
vs onnxruntime (and nvForest on a GPU), same forest and rows, exactness per engine.

Rows are real predictors: a trained world's production days, every land pixel of a day
tile by tile as ``smci produce`` assembles them (``predict_tile_order``), the days one after
the other and cycled when the world has fewer pixel-days than the size asks; the same rows
shuffled are the random order (``predict``). The forest has the paper's parameters
(``max_features=1``, ``min_samples_leaf=20``, ``max_depth=64``), fitted on pixel-days of
the month before production with a synthetic target (a smooth function of the
standardised predictors plus noise: the demo holds no dense truth for those days), so its
thresholds fall where the real predictors lie.

Exactness per engine: the largest ``|prediction − scikit-learn|`` and the number of int16
product values (``round(clip(p, 0, 0.6) / 0.001)``) that differ from scikit-learn's.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np

from smci_gpu.bench.harness import Record, Timing, _sync_for

#: (tree counts, training rows, predicted rows) per size; ``large`` is the issue's case.
SIZES: dict[str, tuple[tuple[int, ...], int, int]] = {
    "tiny": ((10,), 10_000, 20_000),
    "small": ((100, 1000), 50_000, 100_000),
    "medium": ((100, 1000), 200_000, 200_000),
    "large": ((100, 1000), 200_000, 1_000_000),
}
N_FEATURES = 25
#: Environment variable naming an ``.npz`` of rows saved by :func:`save_rows`, for machines
#: without the readers (a lent GPU node): then no world is needed.
ROWS_ENV = "SMCI_INFERENCE_ROWS"
TRAIN_DAYS_BEFORE = 30


def synthetic_rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of uniform predictors and a smooth target with noise."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, N_FEATURES), dtype=np.float32)
    y = np.sin(6 * x[:, 0]) + x[:, 1] ** 2 + 0.3 * x[:, 2] * x[:, 3] + rng.normal(0, 0.1, n)
    return x, y


def synthetic_target(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """A smooth function of the standardised columns of ``x`` (soil-moisture-like scale,
    about 0.25 ± 0.08) plus N(0, 0.02) noise."""
    z = (x - x.mean(0)) / (x.std(0) + 1e-12)
    rng = np.random.default_rng(seed)
    k = x.shape[1]
    return (
        0.25
        + 0.06 * z[:, 0]
        + 0.03 * z[:, 1 % k]
        + 0.02 * z[:, 16 % k]
        - 0.015 * z[:, 21 % k]
        + 0.01 * np.sin(z[:, 18 % k])
        + 0.01 * z[:, 8 % k] * z[:, 20 % k]
        + rng.normal(0, 0.02, len(x))
    )


def fit_forest(
    x: np.ndarray, y: np.ndarray, n_trees: int, seed: int = 0, min_samples_leaf: int = 20
):
    """The paper's forest parameters on ``(x, y)`` (every core)."""
    from sklearn.ensemble import RandomForestRegressor

    est = RandomForestRegressor(
        n_estimators=n_trees,
        max_features=1,
        min_samples_leaf=min_samples_leaf,
        max_depth=64,
        random_state=seed,
        n_jobs=-1,
    )
    return est.fit(x, y)


def synthetic_forest(n_trees: int, n_train: int, seed: int = 0, min_samples_leaf: int = 20):
    """A forest with the paper's parameters fitted on :func:`synthetic_rows`."""
    return fit_forest(*synthetic_rows(n_train, seed), n_trees, seed, min_samples_leaf)


def day_tile_rows(pred, day, tile_size: int) -> np.ndarray:
    """Every land pixel's predictors for ``day``, tile by tile in row order (as production)."""
    land = pred.land_mask()
    fine = pred.fine_stack(day)
    parts = []
    for r0, r1, c0, c1 in pred.grid.tiles(tile_size):
        rr, cc = np.nonzero(land[r0:r1, c0:c1])
        if rr.size:
            parts.append(pred.features(day, rr + r0, cc + c0, fine=fine))
    x = np.concatenate(parts)
    return x[np.isfinite(x).all(axis=1)]


def world_rows(workdir: Path | None, n_rows: int | None, n_train: int, seed: int = 0) -> dict:
    """Production-order rows (``n_rows``) and training rows (``n_train``) of a world.

    Production: the config's production days in turn, each tile by tile, cycled until
    ``n_rows`` (``None``: every production day once). Training: pixel-days drawn at
    random from every third day of the :data:`TRAIN_DAYS_BEFORE` days before production
    (with replacement when too few).
    """
    import pandas as pd

    from smci_gpu.bench.produce import trained_world
    from smci_gpu.config import load_config
    from smci_gpu.features import Predictors

    wd = trained_world(workdir)
    cfg = load_config(workdir=wd, overrides={"device": "cpu"})
    start, end = pd.Timestamp(cfg.produce.start), pd.Timestamp(cfg.produce.end)
    pred = Predictors.load(cfg, start, end)
    days = [day_tile_rows(pred, d, cfg.produce.tile_size) for d in pred.days]
    per_day = [len(d) for d in days]
    reps = 1 if n_rows is None else -(-n_rows // sum(per_day))
    prod = np.concatenate(days * reps)[:n_rows]
    before = Predictors.load(cfg, start - pd.Timedelta(days=TRAIN_DAYS_BEFORE), start)
    pool = np.concatenate([day_tile_rows(before, d, 10**6) for d in before.days[:-1:3]])
    rng = np.random.default_rng(seed)
    train = pool[rng.choice(len(pool), n_train, replace=n_train > len(pool))]
    info = {
        "features": list(cfg.features),
        "world": wd.name,
        "production_days": f"{start.date()}..{end.date()}",
        "rows_per_day": per_day,
        "cycles": reps,
    }
    return {"production": np.ascontiguousarray(prod), "train": train, "info": info}


def save_rows(path: Path, rows: dict) -> Path:
    """Write :func:`world_rows`' result as ``.npz`` (for :data:`ROWS_ENV`)."""
    import json

    np.savez_compressed(
        path,
        production=rows["production"],
        train=rows["train"],
        info=np.frombuffer(json.dumps(rows["info"]).encode(), np.uint8),
    )
    return Path(path)


def load_rows(path: Path, n_rows: int, n_train: int) -> dict:
    """Rows saved by :func:`save_rows`, cycled or cut to the sizes asked."""
    import json

    with np.load(path) as z:
        prod, train = z["production"], z["train"]
        info = json.loads(bytes(z["info"]).decode())
    reps = -(-n_rows // len(prod))
    info["cycles"] = info.get("cycles", 1) * reps
    prod = np.concatenate([prod] * reps)[:n_rows]
    return {"production": prod, "train": train[:n_train], "info": info}


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


def int16_counts(p: np.ndarray) -> np.ndarray:
    """The stored product value of predictions ``p``: ``round(clip(p, 0, 0.6) / 0.001)``
    of the float32 field, by production's own encoder (:func:`smci_gpu.encoding.
    encode_counts`, importable on a lent GPU node without pandas)."""
    from smci_gpu.encoding import encode_counts

    return encode_counts(np.asarray(p), 0.0, 0.6)


def run(
    size: str = "small",
    devices: tuple[str, ...] = ("cpu",),
    repeats: int = 3,
    workdir: Path | None = None,
) -> list[Record]:
    """rows/s and exactness of each engine, per tree count and row order."""
    from smci_gpu.model.forest import PackedForest

    tree_counts, n_train, n_rows = SIZES[size]
    saved = os.environ.get(ROWS_ENV)
    if saved:
        rows = load_rows(Path(saved), n_rows, n_train)
    else:
        rows = world_rows(workdir, n_rows, n_train)
    prod, train = rows["production"], rows["train"]
    shuffled = np.ascontiguousarray(prod[np.random.default_rng(1).permutation(len(prod))])
    y = synthetic_target(train)
    records = []
    for n_trees in tree_counts:
        est = fit_forest(train, y, n_trees)
        est.n_jobs = -1  # predict on every core (2 threads on the project's VM)
        # Named like production's forests, so PackedForest picks its kernels as there
        # (cell groups where rows share their ERA5-Land columns); the same forest without
        # names cannot group and shows the row-by-row kernels alone.
        packed = PackedForest.from_sklearn(est, _feature_names(rows["info"], train.shape[1]))
        rowwise = PackedForest.from_sklearn(est)
        onnx = _onnx_session(est)
        depth = max(e.tree_.max_depth for e in est.estimators_)
        for stage, x in (("predict", shuffled), ("predict_tile_order", prod)):
            shape = {
                "trees": n_trees,
                "train_rows": len(train),
                "rows": len(x),
                "max_depth": depth,
                "order": "random" if stage == "predict" else "production (tile)",
            }
            records += _predict_records(
                stage, est, (packed, rowwise), onnx, x, shape, devices, max(1, repeats)
            )
    info = rows["info"]
    source = f"{info['world']} {info['production_days']} ×{info['cycles']}"
    for r in records:
        r.extra["rows_source"] = source
    return records


def _feature_names(info: dict, n_columns: int) -> list[str] | None:
    """The rows' column names: the world's features, or for saved rows without them the
    default 25 (:data:`smci_gpu.variables.FEATURES`) when the column count matches."""
    from smci_gpu.variables import FEATURES

    names = info.get("features") or (list(FEATURES) if n_columns == len(FEATURES) else None)
    return names if names and len(names) == n_columns else None


def _predict_records(stage, est, packed, onnx, x, shape, devices, reps) -> list[Record]:
    """scikit-learn, each PackedForest twin, onnxruntime (and nvForest) on rows ``x``,
    timed in interleaved rounds (one call of each engine per round, so that a load
    change on a shared machine falls on all of them alike).

    ``packed`` is (the forest as production holds it, the same without feature names):
    on the CPU the first is "packed" (cell groups where rows share their ERA5-Land
    columns, grouping included in its time), the second "packed_rowwise" (the
    row-by-row kernels alone)."""
    packed, rowwise = packed
    engines: dict[tuple[str, str], object] = {("sklearn", "cpu"): lambda: est.predict(x)}
    if "cpu" in devices:
        engines["packed", "cpu"] = lambda: packed.predict(x, device="cpu")
        engines["packed_rowwise", "cpu"] = lambda: rowwise.predict(x, device="cpu")
        if onnx is not None:
            engines["onnxruntime", "cpu"] = lambda: onnx.run(None, {"X": x})[0]
    if "gpu" in devices:
        try:
            engines.update(_gpu_engines(packed, x))
        except Exception as exc:  # the CPU rows still make a table
            warnings.warn(f"inference {shape} on gpu failed: {exc!r}", stacklevel=2)
    ref = est.predict(x)
    ref16 = int16_counts(ref)
    got = {key: np.asarray(_host(fn()), dtype=np.float64) for key, fn in engines.items()}
    seconds = interleaved_seconds(engines, reps)
    visits = node_visits_per_row(packed, x)
    base = np.asarray(seconds["sklearn", "cpu"])
    records = []
    for (impl, device), times in seconds.items():
        t = Timing.of(times)
        rec = Record("inference", stage, impl, device, shape, t, items=len(x), item_name="rows")
        ratio = base / np.asarray(times)  # per round: the same moment's load on both
        rec.extra = {
            "max_abs_diff_vs_sklearn": float(np.max(np.abs(got[impl, device] - ref))),
            "int16_changed_vs_sklearn": int(
                np.count_nonzero(int16_counts(got[impl, device]) != ref16)
            ),
            "node_visits_per_s": visits * len(x) / t.median,
            "speedup_vs_sklearn": float(base.mean() / np.mean(times)),
            "speedup_range": f"{ratio.min():.2f}–{ratio.max():.2f}",
        }
        records.append(rec)
    return records


def interleaved_seconds(engines: dict, reps: int) -> dict:
    """Seconds of ``reps`` rounds, each calling every engine once (the caller has made one
    untimed call of each); GPU engines are synchronised before their clock stops. Unlike
    ``harness.time_interleaved`` it keeps each round's seconds (for per-round ratios) and
    mixes CPU and GPU engines."""
    syncs = {key: _sync_for(key[1]) for key in engines}
    seconds: dict = {key: [] for key in engines}
    for _ in range(reps):
        for key, fn in engines.items():
            t0 = time.perf_counter()
            fn()
            syncs[key]()
            seconds[key].append(time.perf_counter() - t0)
    return seconds


def _onnx_session(est):
    """An onnxruntime session of the forest (skl2onnx, float32 thresholds rounded to
    nearest, so a few decisions differ from scikit-learn's), or None with a printed reason
    where the ``bench`` extra is not installed."""
    try:
        import onnxruntime as ort
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as exc:
        print(f"inference: onnxruntime skipped ({exc}; pip install -e '.[bench]')")
        return None
    model = convert_sklearn(est, initial_types=[("X", FloatTensorType([None, est.n_features_in_]))])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _gpu_engines(packed, x) -> dict:
    """The GPU engines: PackedForest's GPU twin, and nvForest where installed (rows on
    the device beforehand: the copy is not timed)."""
    from smci_gpu.backend import cupy_module

    xg = cupy_module().asarray(x)
    engines = {("packed", "gpu"): lambda: packed.predict(xg, device="gpu")}
    nv = _nvforest(packed)
    if nv is not None:
        engines["nvforest", "gpu"] = lambda: nv.predict(xg)
    return engines


def _host(a):
    from smci_gpu.backend import to_host

    return to_host(a).ravel()


def _nvforest(packed):
    """nvForest on the same forest with PackedForest's rounded-down float32 thresholds
    (scikit-learn's decisions), or None where nvForest is not installed."""
    try:
        from smci_gpu.model.forest import NvForestPredictor

        return NvForestPredictor(packed, device="gpu")
    except Exception as exc:  # noqa: BLE001 (optional backend)
        print(f"inference: nvForest skipped ({exc!r})")
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m smci_gpu.bench.inference ROWS.npz [--workdir DIR] [--size SIZE]``: save a
    world's rows for a machine without the readers (then ``SMCI_INFERENCE_ROWS=ROWS.npz``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m smci_gpu.bench.inference")
    parser.add_argument("rows", type=Path, help="the .npz to write")
    parser.add_argument("--workdir", type=Path, default=None, help="a world (else the tiny one)")
    parser.add_argument("--size", default="small", choices=list(SIZES))
    args = parser.parse_args(argv)
    rows = world_rows(args.workdir, None, SIZES[args.size][1])
    save_rows(args.rows, rows)
    print(f"{len(rows['production']):,} production rows, {len(rows['train']):,} training rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
