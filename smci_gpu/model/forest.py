"""Per-layer random forests and :class:`PackedForest`, the exact fast inference format.

Training uses scikit-learn on the CPU or cuML on the GPU with the same parameters (the
paper's ``max_features=1`` is an int: one feature per split). Inference uses a
``PackedForest``: the trees flattened into node arrays that a Numba (CPU) or Numba-CUDA
(GPU) kernel walks, saved as ``.npz`` arrays plus JSON (no pickle).

Exactness: scikit-learn compares float32 features with float64 thresholds. A float32
threshold ``t32`` gives the same decisions for every float32 ``x`` when it is the largest
float32 not above ``t64`` (``x <= t64`` ⇔ ``x <= t32``), so thresholds are rounded down,
never to nearest; leaf values stay float64.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smci_gpu import backend
from smci_gpu.errors import ModelError
from smci_gpu.io.atomic import atomic_path
from smci_gpu.kernels import forest as fk

FORMAT = "smci-packed-forest"
FORMAT_VERSION = 1


def round_thresholds_down(t64: np.ndarray) -> np.ndarray:
    """Largest float32 ≤ each float64 threshold."""
    t32 = t64.astype(np.float32)
    above = t32.astype(np.float64) > t64
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


def check_features(x: Any, n_features: int, names: list[str] | None = None) -> np.ndarray:
    """Validate a predictor matrix (shape, dtype, NaN) and return it as float32."""
    xp = backend.array_module(x)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValueError(f"X must be (n_rows, {n_features}), got shape {tuple(x.shape)}")
    if not (xp.issubdtype(x.dtype, xp.floating) or xp.issubdtype(x.dtype, xp.integer)):
        raise ValueError(f"X must be numeric (float32 preferred), got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    bad = xp.isnan(x).any(axis=0)
    if bool(bad.any()):
        cols = np.flatnonzero(backend.to_host(bad)).tolist()
        label = [names[c] for c in cols] if names else cols
        raise ValueError(f"X holds NaN in column(s) {label}; forests need complete predictors")
    return x


@dataclass
class PackedForest:
    """A regression forest as flat node arrays.

    Use :meth:`from_sklearn` (or :meth:`from_cuml`), :meth:`predict`, :meth:`save`,
    :meth:`load`.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    n_features: int
    feature_names: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _device_arrays: tuple | None = field(default=None, repr=False, compare=False)
    _compact: tuple | None = field(default=None, repr=False, compare=False)
    _branching: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def n_trees(self) -> int:
        return int(self.roots.size)

    @property
    def n_nodes(self) -> int:
        return int(self.feature.size)

    @classmethod
    def from_sklearn(cls, est, feature_names: list[str] | None = None) -> PackedForest:
        """Pack a fitted scikit-learn ``RandomForestRegressor`` (single output)."""
        trees = [e.tree_ for e in est.estimators_]
        if any(t.n_outputs != 1 for t in trees):
            raise ModelError("only single-output regression forests can be packed")
        sizes = np.array([t.node_count for t in trees])
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        feature, threshold, left, right, value = [], [], [], [], []
        for t, off in zip(trees, roots, strict=True):
            leaf = t.children_left < 0
            feature.append(np.where(leaf, -1, t.feature).astype(np.int32))
            threshold.append(np.where(leaf, 0.0, t.threshold))
            left.append(np.where(leaf, -1, t.children_left + off).astype(np.int64))
            right.append(np.where(leaf, -1, t.children_right + off).astype(np.int64))
            value.append(t.value[:, 0, 0].astype(np.float64))
        names = feature_names or (
            list(est.feature_names_in_) if hasattr(est, "feature_names_in_") else None
        )
        return cls(
            np.concatenate(feature),
            round_thresholds_down(np.concatenate(threshold)),
            np.concatenate(left),
            np.concatenate(right),
            np.concatenate(value),
            roots,
            int(est.n_features_in_),
            names,
            {
                "source": f"sklearn {type(est).__name__}",
                "params": {
                    k: v
                    for k, v in est.get_params().items()
                    if isinstance(v, (int, float, str, bool, type(None)))
                },
            },
        )

    @classmethod
    def from_cuml(cls, est, feature_names: list[str] | None = None) -> PackedForest:
        """Pack a cuML forest through its scikit-learn export (``as_sklearn``)."""
        if not hasattr(est, "as_sklearn"):
            raise ModelError("this cuML model has no as_sklearn(); cuML >= 26.08 is required")
        return cls.from_sklearn(est.as_sklearn(), feature_names)

    def to_treelite(self, precision: str = "float32"):
        """The forest as a Treelite model, for nvForest (and Treelite's own GTIL).

        With ``precision="float32"`` the thresholds are this forest's rounded-down float32
        values, so an engine comparing float32 features with float32 thresholds takes
        exactly scikit-learn's decisions; Treelite requires leaves of the same type, so leaf
        values are float32 too (the mean over trees then differs from scikit-learn's by
        about 1e-7 relative). ``"float64"`` keeps float64 leaves and widens the thresholds.
        """
        from treelite import model_builder as mb

        builder = mb.ModelBuilder(
            threshold_type=precision,
            leaf_output_type=precision,
            metadata=mb.Metadata(
                num_feature=self.n_features,
                task_type="kRegressor",
                average_tree_output=True,
                num_target=1,
                num_class=[1],
                leaf_vector_shape=(1, 1),
            ),
            tree_annotation=mb.TreeAnnotation(
                num_tree=self.n_trees, target_id=[0] * self.n_trees, class_id=[0] * self.n_trees
            ),
            postprocessor=mb.PostProcessorFunc(name="identity"),
            base_scores=[0.0],
        )
        ends = np.append(self.roots[1:], self.feature.size)
        feature, left, right = self.feature.tolist(), self.left.tolist(), self.right.tolist()
        threshold, value = self.threshold.astype(np.float64).tolist(), self.value.tolist()
        for root, end in zip(self.roots.tolist(), ends.tolist(), strict=True):
            builder.start_tree()
            for node in range(root, end):
                builder.start_node(node - root)
                if feature[node] < 0:
                    builder.leaf(value[node])
                else:
                    builder.numerical_test(
                        feature[node],
                        threshold[node],
                        default_left=True,
                        opname="<=",
                        left_child_key=left[node] - root,
                        right_child_key=right[node] - root,
                    )
                builder.end_node()
            builder.end_tree()
        return builder.commit()

    # ----------------------------------------------------------- inference

    def _on_device(self):
        if self._device_arrays is None:
            cp = backend.cupy_module()
            self._device_arrays = tuple(
                cp.asarray(a)
                for a in (
                    self.feature,
                    self.threshold,
                    self.left,
                    self.right,
                    self.value,
                    self.roots,
                )
            )
        return self._device_arrays

    def predict(self, x, device: str | None = None, out=None):
        """Mean leaf value over trees for each row of ``x`` (float64).

        ``device`` defaults to where ``x`` lives; ``"gpu"`` with a host array copies it to
        the GPU once. NaN or a wrong column count is a ``ValueError``. On the CPU, rows
        sharing their ERA5-Land columns (a 0.1° cell's pixels of a day, in any row order)
        walk the trees as groups where the forest has feature names and the groups are
        large enough (:meth:`_predict_cell_groups`); otherwise a tile's pixels in order
        take the branching kernel, other rows the slot kernel. All give the same bits.
        """
        x = check_features(x, self.n_features, self.feature_names)
        on_gpu = device == "gpu" or (device is None and backend.is_device_array(x))
        if on_gpu:
            x = backend.to_device(x, "gpu")
            return fk.predict_gpu(x, *self._on_device(), out=out)
        x = np.ascontiguousarray(backend.to_host(x))
        arrays = self._branching_layout() if self.n_nodes < 2**31 else None
        coarse = self.coarse_mask() if arrays else None
        if coarse is not None:
            grouped = self._predict_cell_groups(x, coarse, arrays, out)
            if grouped is not None:
                return grouped
        if arrays and fk.rows_agree(x, *arrays, self.roots):  # a tile's pixels in order
            out = np.empty(x.shape[0], np.float64) if out is None else out
            block = fk.cpu_block(x.shape[0])
            fk.predict_branching_cpu(x, *arrays, self.value, self.roots, block, out)
            return out
        return fk.predict_compact_cpu(x, *self._cpu_layout(), out=out)

    def coarse_mask(self) -> np.ndarray | None:
        """``(n_features,)`` bool: the columns that are ERA5-Land features (shared by a 0.1°
        cell's pixels when upsampled by nearest), or None without feature names or such
        columns."""
        if not self.feature_names:
            return None
        from smci_gpu.variables import ERA5LAND_FEATURES

        mask = np.array([n in ERA5LAND_FEATURES for n in self.feature_names])
        return mask if mask.any() else None

    def _predict_cell_groups(self, x, coarse, arrays, out):
        """The cell-group kernel when rows with equal coarse columns form groups of
        :data:`~smci_gpu.kernels.forest.GROUP_MIN_MEAN` rows or more on average (by value,
        so in any row order); None otherwise (bilinear ERA5-Land, station rows). The
        grouping is built before the choice: ~40 bytes and a few ns per row (1–7 ms per
        56,000 rows), small beside the walk; production calls this per tile."""
        return fk.predict_groups(
            x, coarse, *arrays, self.value, self.roots, out=out, min_mean=fk.GROUP_MIN_MEAN
        )

    def _branching_layout(self):
        """Feature, threshold and int32 children for the branching CPU kernel (int32: with
        int64 children its loop ran 2× slower), built once on first use."""
        if self._branching is None:
            self._branching = (
                self.feature.astype(np.int32, copy=False),
                self.threshold.astype(np.float32, copy=False),
                self.left.astype(np.int32),
                self.right.astype(np.int32),
            )
        return self._branching

    def _cpu_layout(self):
        """The breadth-first CPU layout, built once on first use."""
        if self._compact is None:
            self._compact = fk.compact_layout(
                self.feature, self.threshold, self.left, self.right, self.value, self.roots
            )
        return self._compact

    def check_names(self, names: list[str]) -> None:
        """Refuse predictors whose names or order differ from the training features."""
        if self.feature_names is not None and list(names) != list(self.feature_names):
            diff = [
                f"{i}: model {a!r} vs given {b!r}"
                for i, (a, b) in enumerate(zip(self.feature_names, names, strict=False))
                if a != b
            ][:3]
            raise ModelError(
                f"predictors differ from the model's ({len(self.feature_names)} vs {len(names)} "
                f"columns; first differences: {diff})"
            )

    # ----------------------------------------------------------- persistence

    def digest(self) -> str:
        """sha256 of the node arrays (identifies the model in product provenance)."""
        h = hashlib.sha256()
        for a in (self.feature, self.threshold, self.left, self.right, self.value, self.roots):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    def save(self, path: str | Path) -> Path:
        """Write ``.npz`` node arrays with a JSON header (atomically)."""
        path = Path(path)
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "n_features": self.n_features,
            "feature_names": self.feature_names,
            "meta": self.meta,
            "digest": self.digest(),
        }
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    feature=self.feature,
                    threshold=self.threshold,
                    left=self.left,
                    right=self.right,
                    value=self.value,
                    roots=self.roots,
                    header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                )
        return path

    @classmethod
    def load(cls, path: str | Path) -> PackedForest:
        """Read a file written by :meth:`save`; other formats/versions are a ModelError."""
        path = Path(path)
        if not path.exists():
            raise ModelError(f"model file {path} does not exist (run `smci train`)")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode())
                arrays = {
                    k: z[k] for k in ("feature", "threshold", "left", "right", "value", "roots")
                }
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"model file {path} is not a packed forest: {exc}") from exc
        if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
            raise ModelError(
                f"model file {path} has format {header.get('format')!r} version "
                f"{header.get('version')!r}; this engine reads {FORMAT!r} version {FORMAT_VERSION}"
            )
        forest = cls(
            **arrays,
            n_features=header["n_features"],
            feature_names=header["feature_names"],
            meta=header["meta"],
        )
        if forest.digest() != header["digest"]:
            raise ModelError(f"model file {path} is corrupt (digest mismatch)")
        return forest


class NvForestPredictor:
    """A :class:`PackedForest` served by nvForest (``produce.inference = "nvforest"``).

    The forest goes to nvForest through :meth:`PackedForest.to_treelite` in single
    precision with the rounded-down float32 thresholds, so its decisions are
    scikit-learn's; predictions are float32 (about 1e-7 relative from PackedForest's
    float64 mean, which can move a stored 0.001 step where a value sits on a rounding edge).
    """

    def __init__(self, forest: PackedForest, device: str = "gpu"):
        nvforest = backend.nvforest_module()
        self.forest = forest
        self.feature_names = forest.feature_names
        self.model = nvforest.load_from_treelite_model(
            forest.to_treelite("float32"), device=device, precision="single"
        )

    def check_names(self, names: list[str]) -> None:
        self.forest.check_names(names)

    def predict(self, x):
        x = check_features(x, self.forest.n_features, self.feature_names)
        xp = backend.array_module(x)
        return xp.asarray(self.model.predict(x)).reshape(-1).astype(np.float64)
