"""Permutation importance: how much worse the forest predicts when one predictor is shuffled.

For each feature, its column in the test rows is permuted (seeded, ``n_repeats`` times) and
the increase in RMSE over the unshuffled score is recorded. It is only predictions, so it
runs wherever the forest predicts: on the GPU when the rows live there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from smci_gpu import backend


def _rmse(xp, obs, pred) -> float:
    return float(xp.sqrt(xp.mean((pred - obs) ** 2)))


def permutation_importance(
    forest: Any,
    x: Any,
    y: Any,
    names: list[str],
    n_repeats: int = 3,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """RMSE increase when each column of ``x`` is permuted.

    Parameters
    ----------
    forest
        Anything with ``predict(x)`` (a :class:`~smci_gpu.model.forest.PackedForest`).
    x, y
        Test predictors ``(n, n_features)`` and targets ``(n,)``: NumPy or CuPy.
    names
        Feature names, one per column.
    n_repeats, seed
        Permutations per feature and the seed of their generator (the same permutations
        are used on CPU and GPU, drawn on the host).

    Returns
    -------
    list of dict
        Per feature: ``feature``, ``importance`` (mean RMSE increase), ``std`` and
        ``baseline_rmse``; sorted most important first.
    """
    xp = backend.array_module(x, y)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"x must be (n, {len(names)}) for {len(names)} names, got {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must be ({x.shape[0]},), got {y.shape}")
    base = _rmse(xp, y, forest.predict(x))
    rng = np.random.default_rng(seed)
    work = x.copy()
    out = []
    for j, name in enumerate(names):
        scores = []
        for _ in range(n_repeats):
            perm = xp.asarray(rng.permutation(x.shape[0]))
            work[:, j] = x[perm, j]
            scores.append(_rmse(xp, y, forest.predict(work)) - base)
        work[:, j] = x[:, j]
        out.append(
            {
                "feature": name,
                "importance": float(np.mean(scores)),
                "std": float(np.std(scores)),
                "baseline_rmse": base,
            }
        )
    return sorted(out, key=lambda r: -r["importance"])
