"""The forest-inference candidates tried for issue 24, A/B against the kernels in use.

python benchmarks/ab_inference.py [--workdir DIR] [--rows 200000] [--rounds 3] [--trees 100]
    [--order production|random] [--engines a,b,...] [--produce]

Rows and forest as ``smci bench inference`` builds them (a world's production days tile by
tile; the paper's forest on the world's predictors, 100 trees, ``--train`` rows); every
engine is timed in interleaved rounds in this one process and checked against
scikit-learn (``--produce``: the world's own infer stage with cell groups on and off). The
candidates (cell groups kept, the others not: see benchmarks/RESULTS.md, "Forest inference
in production order") are here so that the comparison can be rerun elsewhere:

* ``paths``: each tree keeps the previous row's path and a row re-checks it first;
* ``groups``: consecutive rows with equal ERA5-Land columns walk a tree together;
* ``cellgroups``: the kernel kept (``fk.predict_groups_cpu``), grouping included;
  ``cellgroups_kernel`` without the grouping, ``cellgroups_groupmajor`` its first version,
  ``grouping`` / ``grouping_sorted`` the hash-table grouping and the first (argsort) one;
* ``bins``: rows and thresholds as bin indices of the forest's own thresholds;
* ``boxes``: a row sharing its neighbour's ERA5-Land values first tests the neighbour's
  leaf's bounds on the other columns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numba
import numpy as np
from smci_gpu.kernels import forest as fk

from smci_gpu.bench import inference
from smci_gpu.bench.produce import trained_world
from smci_gpu.config import load_config
from smci_gpu.model.forest import PackedForest
from smci_gpu.variables import ERA5LAND_FEATURES


@numba.njit(parallel=True, cache=True)
def predict_paths(x, feature, threshold, left, right, value, roots, block, max_depth, out):
    """Path reuse: a row first re-tests the previous row's path of each tree (independent
    loads) and walks on from the first test that fails. Same sums as the slot kernel."""
    n, nt = x.shape[0], roots.size
    for b in numba.prange((n + block - 1) // block):
        lo, hi = b * block, min(b * block + block, n)
        pn = np.empty((nt, max_depth + 1), np.int32)
        pf = np.empty((nt, max_depth + 1), np.int32)
        pt = np.empty((nt, max_depth + 1), np.float32)
        pr = np.empty((nt, max_depth + 1), np.bool_)
        plen = np.full(nt, -1, np.int32)
        pleaf = np.empty(nt, np.int32)
        for r in range(lo, hi):
            xr = x[r]
            acc = 0.0
            for t in range(nt):
                d, length, node = 0, plen[t], roots[t]
                if length >= 0:
                    while d < length and (xr[pf[t, d]] > pt[t, d]) == pr[t, d]:
                        d += 1
                    if d == length:
                        acc += value[pleaf[t]]
                        continue
                    pr[t, d] = not pr[t, d]
                    node = right[pn[t, d]] if pr[t, d] else left[pn[t, d]]
                    d += 1
                f = feature[node]
                while f >= 0:
                    pn[t, d], pf[t, d], pt[t, d] = node, f, threshold[node]
                    pr[t, d] = xr[f] > threshold[node]
                    node = right[node] if pr[t, d] else left[node]
                    f = feature[node]
                    d += 1
                plen[t], pleaf[t] = d, node
                acc += value[node]
            out[r] = acc / nt


@numba.njit(cache=True)
def shared_runs(x, shared, cap):
    """Row offsets of runs of consecutive rows equal in every ``shared`` column (≤ cap)."""
    n = x.shape[0]
    starts = np.empty(n + 1, np.int64)
    g = 0
    starts[0] = 0
    for r in range(1, n):
        same = r - starts[g] < cap
        for f in range(x.shape[1]):
            if same and shared[f] and x[r, f] != x[r - 1, f]:
                same = False
        if not same:
            g += 1
            starts[g] = r
    starts[g + 1] = n
    return starts[: g + 2]


@numba.njit(parallel=True, cache=True)
def predict_groups(
    x, feature, threshold, left, right, value, roots, shared, starts, per_block, out
):
    """Cell groups: a run's rows walk each tree as one bit mask; a shared-column node sends
    the whole mask one way, another node splits it. Same sums as the slot kernel."""
    n_groups = starts.size - 1
    one = np.uint64(1)
    for b in numba.prange((n_groups + per_block - 1) // per_block):
        g0, g1 = b * per_block, min(b * per_block + per_block, n_groups)
        lo, hi = starts[g0], starts[g1]
        acc = np.zeros(hi - lo)
        stack_node = np.empty(256, np.int64)
        stack_mask = np.empty(256, np.uint64)
        for t in range(roots.size):
            for g in range(g0, g1):
                r0, k = starts[g], starts[g + 1] - starts[g]
                full = np.uint64(0xFFFFFFFFFFFFFFFF) if k == 64 else (one << np.uint64(k)) - one
                stack_node[0], stack_mask[0], sp = roots[t], full, 1
                while sp > 0:
                    sp -= 1
                    node, m = stack_node[sp], stack_mask[sp]
                    f = feature[node]
                    while f >= 0:
                        th = threshold[node]
                        if shared[f]:
                            node = left[node] if x[r0, f] <= th else right[node]
                        else:
                            lm = np.uint64(0)
                            for j in range(k):
                                bit = one << np.uint64(j)
                                if (m & bit) != 0 and x[r0 + j, f] <= th:
                                    lm |= bit
                            rm = m & ~lm
                            if lm == 0:
                                node = right[node]
                            elif rm == 0:
                                node = left[node]
                            else:
                                stack_node[sp], stack_mask[sp] = right[node], rm
                                sp += 1
                                node, m = left[node], lm
                        f = feature[node]
                    for j in range(k):
                        if (m >> np.uint64(j)) & one:
                            acc[r0 + j - lo] += value[node]
        for r in range(lo, hi):
            out[r] = acc[r - lo] / roots.size


@numba.njit(cache=True)
def leaf_boxes(feature, threshold, left, right, roots, fine):
    """Per node its leaf slot (−1 inside), per leaf its (lo, hi] bounds on columns ``fine``."""
    nf = fine.size
    col = np.full(feature.max() + 1, -1, np.int64)
    for j in range(nf):
        col[fine[j]] = j
    slot = np.full(feature.size, -1, np.int32)
    n_leaf = 0
    for i in range(feature.size):
        if feature[i] < 0:
            slot[i] = n_leaf
            n_leaf += 1
    blo = np.empty((n_leaf, nf), np.float32)
    bhi = np.empty((n_leaf, nf), np.float32)
    stack = np.empty(256, np.int64)
    lo = np.empty((256, nf), np.float32)
    hi = np.empty((256, nf), np.float32)
    for t in range(roots.size):
        stack[0], sp = roots[t], 1
        lo[0, :] = -np.inf
        hi[0, :] = np.inf
        while sp > 0:
            sp -= 1
            node, l0, h0 = stack[sp], lo[sp].copy(), hi[sp].copy()
            if feature[node] < 0:
                blo[slot[node]] = l0
                bhi[slot[node]] = h0
                continue
            j = col[feature[node]]
            stack[sp], lo[sp], hi[sp] = right[node], l0, h0  # x > threshold
            if j >= 0:
                lo[sp, j] = max(l0[j], threshold[node])
            stack[sp + 1], lo[sp + 1], hi[sp + 1] = left[node], l0, h0
            if j >= 0:
                hi[sp + 1, j] = min(h0[j], threshold[node])
            sp += 2
    return slot, blo, bhi


@numba.njit(cache=True)
def same_as_previous(x, shared):
    """Per row: every ``shared`` column equals the previous row's."""
    same = np.zeros(x.shape[0], np.bool_)
    for r in range(1, x.shape[0]):
        same[r] = True
        for f in range(x.shape[1]):
            if shared[f] and x[r, f] != x[r - 1, f]:
                same[r] = False
    return same


@numba.njit(parallel=True, cache=True)
def predict_boxes(x, feature, threshold, left, right, value, roots, boxes, same, block, out):
    """Leaf boxes: a row like its neighbour in the shared columns tests the neighbour's leaf
    bounds on the other columns (branch-free) and walks only on a miss."""
    fine, slot, blo, bhi = boxes
    n = x.shape[0]
    for b in numba.prange((n + block - 1) // block):
        lo, hi = b * block, min(b * block + block, n)
        acc = np.zeros(hi - lo)
        for t in range(roots.size):
            prev = -1
            for r in range(lo, hi):
                leaf = -1
                if prev >= 0 and same[r]:
                    ok = True
                    for j in range(fine.size):
                        v = x[r, fine[j]]
                        ok = ok & (v > blo[slot[prev], j]) & (v <= bhi[slot[prev], j])
                    if ok:
                        leaf = prev
                if leaf < 0:
                    leaf = fk._leaf_of(x[r], feature, threshold, left, right, roots[t])
                acc[r - lo] += value[leaf]
                prev = leaf
        for r in range(lo, hi):
            out[r] = acc[r - lo] / roots.size


@numba.njit(parallel=True, cache=True)
def predict_groups_group_major(
    x, order, starts, feature, threshold, left, right, value, roots, per_block, out
):
    """Cell groups, group-major (the first version): each group walks every tree before
    the next group starts (its rows stay in L1; the trees' nodes do not stay in cache).
    Sums and exactness as in ``kernels.forest.predict_groups_cpu`` (the same bits)."""
    n_groups = starts.size - 1
    nf = x.shape[1]
    cap = 1
    for g in range(n_groups):
        cap = max(cap, starts[g + 1] - starts[g])
    for b in numba.prange((n_groups + per_block - 1) // per_block):
        xl = np.empty((cap, nf), np.float32)
        lo = np.empty(nf, np.float32)
        hi = np.empty(nf, np.float32)
        buf = np.empty(cap, np.int32)
        tmp = np.empty(cap, np.int32)
        acc = np.empty(cap, np.float64)
        stack = np.empty((cap + 64, 3), np.int32)
        for g in range(b * per_block, min(b * per_block + per_block, n_groups)):
            s0, k = starts[g], starts[g + 1] - starts[g]
            fk._gather_group(x, order, s0, k, xl, lo, hi, acc)
            for t in range(roots.size):
                fk._group_tree(
                    xl,
                    k,
                    lo,
                    hi,
                    feature,
                    threshold,
                    left,
                    right,
                    value,
                    roots[t],
                    buf,
                    tmp,
                    stack,
                    acc,
                )
            for j in range(k):
                out[order[s0 + j]] = acc[j] / roots.size


@numba.njit(parallel=True, cache=True)
def coarse_hashes(bits, cols, mask):
    """Per row a 64-bit FNV-1a hash of the float32 bit patterns ``bits[r, cols]`` (uint32
    view of the rows), ANDed with ``mask`` (tests pass a narrow mask to force collisions)."""
    n = bits.shape[0]
    h = np.empty(n, np.uint64)
    for r in numba.prange(n):
        v = fk._FNV_OFFSET
        for c in cols:
            v = (v ^ np.uint64(bits[r, c])) * fk._FNV_PRIME
        h[r] = v & mask
    return h


@numba.njit(cache=True)
def split_groups(bits, cols, order, hashes, cap):
    """Offsets into ``order`` of runs whose rows have equal bits in every column ``cols``
    (rows sorted by hash, so equal rows are adjacent unless a collision interleaves them:
    then they form separate, smaller groups, never a mixed one); runs longer than ``cap``
    are cut."""
    n = order.size
    starts = np.empty(n + 1, np.int64)
    g = 0
    starts[0] = 0
    for i in range(1, n):
        a, b = order[i - 1], order[i]
        same = hashes[a] == hashes[b] and i - starts[g] < cap
        for c in cols:
            same = same and bits[a, c] == bits[b, c]
        if not same:
            g += 1
            starts[g] = i
    starts[g + 1] = n
    return starts[: g + 2]


def cell_groups_sorted(x, coarse_cols, cap=fk.GROUP_CAP):
    """The first grouping tried: hashes, a stable NumPy argsort by hash, runs split where
    the bits differ (dropped for :func:`fk.cell_groups`' hash table)."""
    bits = x.view(np.uint32)
    cols = np.asarray(coarse_cols, np.int64)
    hashes = coarse_hashes(bits, cols, np.uint64(2**64 - 1))
    order = np.argsort(hashes, kind="stable")
    return order, split_groups(bits, cols, order, hashes, cap)


def bins_of(forest: PackedForest):
    """Per feature the sorted unique thresholds, and each node's threshold as its bin."""
    f, th = forest.feature, forest.threshold
    edges = [np.unique(th[f == k]) for k in range(forest.n_features)]
    tb = np.zeros(f.size, np.uint16)
    for k, e in enumerate(edges):
        tb[f == k] = np.searchsorted(e, th[f == k])
    return edges, tb


def binned(x, edges):
    """Each value's bin: the number of the feature's thresholds below it, so that
    ``x <= t`` ⇔ ``bin(x) <= bin(t)`` exactly."""
    q = np.empty(x.shape, np.uint16)
    for k, e in enumerate(edges):
        q[:, k] = np.searchsorted(e, x[:, k], side="left")
    return q


def engines(est, forest, x, names):
    """Name → zero-argument call returning predictions, for each engine compared."""
    f, th, lf, rt = forest._branching_layout()
    block = fk.cpu_block(len(x))
    depth = max(e.tree_.max_depth for e in est.estimators_)
    shared = np.array([n in ERA5LAND_FEATURES for n in names])
    edges, tb = bins_of(forest)

    def call(kernel, *args):
        def go():
            out = np.empty(len(x))
            kernel(*args, out)
            return out

        return go

    def groups():
        starts = shared_runs(x, shared, 64)
        return call(
            predict_groups, x, f, th, lf, rt, forest.value, forest.roots, shared, starts, 1500
        )()

    fine = np.flatnonzero(~shared)
    boxes = (fine, *leaf_boxes(f, th, lf, rt, forest.roots, fine))

    def box_walk():
        same = same_as_previous(x, shared)
        args = (x, f, th, lf, rt, forest.value, forest.roots, boxes, same, block)
        return call(predict_boxes, *args)()

    def bins():
        args = (binned(x, edges), f, tb, lf, rt, forest.value, forest.roots, block)
        return call(fk.predict_branching_cpu, *args)()

    coarse_cols = np.flatnonzero(shared)
    order, starts = fk.cell_groups(x, coarse_cols)
    per_block = fk.groups_per_block(starts.size - 1, len(x))
    sizes = np.diff(starts)
    print(
        f"cell groups: {sizes.size:,} of {len(x):,} rows, mean {sizes.mean():.1f}, "
        f"max {sizes.max()}, single rows {np.count_nonzero(sizes == 1):,}"
    )

    def cellgroups_call():
        return fk.predict_groups(x, shared, f, th, lf, rt, forest.value, forest.roots)

    return {
        "sklearn": lambda: est.predict(x),
        "cellgroups": cellgroups_call,
        "cellgroups_kernel": call(
            fk.predict_groups_cpu,
            *(x, order, starts, f, th, lf, rt, forest.value, forest.roots, per_block),
        ),
        "cellgroups_groupmajor": call(
            predict_groups_group_major,
            *(x, order, starts, f, th, lf, rt, forest.value, forest.roots, per_block),
        ),
        "grouping": lambda: fk.cell_groups(x, coarse_cols)[0].astype(np.float64),
        "grouping_sorted": lambda: cell_groups_sorted(x, coarse_cols)[0].astype(np.float64),
        "branching": call(
            fk.predict_branching_cpu, x, f, th, lf, rt, forest.value, forest.roots, block
        ),
        "slots": lambda: fk.predict_compact_cpu(x, *forest._cpu_layout()),
        "paths": call(predict_paths, x, f, th, lf, rt, forest.value, forest.roots, block, depth),
        "groups": groups,
        "bins": bins,
        "boxes": box_walk,
    }


def produce_infer(workdir: Path, rounds: int) -> None:
    """The infer stage of ``predict_day`` over the world's production days with its own
    forests: cell groups on (as production runs), the same with blocks of few groups,
    the group-major kernel (with those blocks, as first measured), and off (the same
    forests without feature names, so the row-by-row kernels run), interleaved; the
    products must be equal."""
    import pandas as pd

    from smci_gpu.features import Predictors
    from smci_gpu.produce import load_forests, predict_day

    cfg = load_config(workdir=workdir, overrides={"device": "cpu"})
    forests, _ = load_forests(cfg)
    days = pd.date_range(cfg.produce.start, cfg.produce.end, freq="D")
    pred = Predictors.load(cfg, days[0], days[-1])
    rowwise = {k: PackedForest(**{**vars(f), "feature_names": None}) for k, f in forests.items()}
    kept, blocks = fk.predict_groups_cpu, fk.groups_per_block

    def small_blocks(n_groups: int, n_rows: int) -> int:  # 8 blocks per thread
        rows = min(fk.CPU_BLOCK, -(-n_rows // (8 * numba.get_num_threads())))
        return int(max(1, rows * max(n_groups, 1) // max(n_rows, 1)))

    engines = {
        "groups": (forests, kept, blocks),
        "groups_smallblocks": (forests, kept, small_blocks),
        "groupmajor": (forests, predict_groups_group_major, small_blocks),
        "rowwise": (rowwise, kept, blocks),
    }

    def infer(name):
        fs, fk.predict_groups_cpu, fk.groups_per_block = engines[name]
        try:
            runs = [predict_day(pred, fs, d, cfg.produce.tile_size) for d in days]
        finally:
            fk.predict_groups_cpu, fk.groups_per_block = kept, blocks
        return [r[0] for r in runs], sum(r[1]["infer"] for r in runs)

    products = {name: infer(name)[0] for name in engines}  # untimed: JIT, layouts
    same = all(
        np.array_equal(a, b, equal_nan=True)
        for name in engines
        for a, b in zip(products[name], products["groups"], strict=True)
    )
    seconds: dict = {k: [] for k in engines}
    for _ in range(rounds):
        for name in engines:
            seconds[name].append(infer(name)[1])
    f0 = next(iter(forests.values()))
    print(
        f"{len(days)} days × {len(forests)} layers, {f0.n_trees} trees, land pixels "
        f"{int(pred.land_mask().sum()):,}; products equal: {same}"
    )
    for name, s in seconds.items():
        ratio = np.asarray(seconds["rowwise"]) / np.asarray(s)
        print(
            f"infer, {name:10s} per round {' '.join(f'{v:.2f}' for v in s)} s; rowwise ÷ "
            f"this {ratio.min():.2f}–{ratio.max():.2f}× (median {np.median(ratio):.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=None, help="a world (else the tiny one)")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--train", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--order", choices=["production", "random"], default="production")
    parser.add_argument("--engines", default="", help="comma-separated subset (default all)")
    parser.add_argument("--produce", action="store_true", help="the infer stage, on vs off")
    args = parser.parse_args()
    if args.produce:
        produce_infer(trained_world(args.workdir), args.rounds)
        return
    rows = inference.world_rows(args.workdir, args.rows, args.train)
    prod, train = rows["production"], rows["train"]
    if args.order == "random":
        prod = np.ascontiguousarray(prod[np.random.default_rng(1).permutation(len(prod))])
    est = inference.fit_forest(train, inference.synthetic_target(train), args.trees)
    est.n_jobs = -1
    forest = PackedForest.from_sklearn(est)
    names = load_config(workdir=trained_world(args.workdir)).features
    calls = engines(est, forest, prod, names)
    if args.engines:
        keep = ["sklearn", *args.engines.split(",")]
        calls = {k: calls[k] for k in keep}
    ref = est.predict(prod)
    print(f"{len(prod):,} rows ({args.order} order), {args.trees} trees, {forest.n_nodes:,} nodes")
    bits = fk.predict_compact_cpu(prod, *forest._cpu_layout()).view(np.int64)
    for name, fn in calls.items():
        if name.startswith("grouping"):
            continue
        p = fn()
        same = (
            ""
            if name == "sklearn"
            else f", bits differ from slots: {np.sum(p.view(np.int64) != bits)}"
        )
        print(f"{name}: max |diff| vs scikit-learn {np.abs(p - ref).max():.1e}{same}")
    seconds = inference.interleaved_seconds({(k, "cpu"): v for k, v in calls.items()}, args.rounds)
    base = np.asarray(seconds["sklearn", "cpu"])
    for (name, _), s in seconds.items():
        ratio = base / np.asarray(s)
        print(
            f"{name:10s} best {min(s):.3f} s  vs scikit-learn {ratio.min():.2f}–{ratio.max():.2f}× "
            f"(median {np.median(ratio):.2f}; per round {' '.join(f'{v:.2f}' for v in ratio)})"
        )


if __name__ == "__main__":
    main()
