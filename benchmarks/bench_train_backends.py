"""Training backends side by side: scikit-learn vs scikit-learn-intelex on a demo world.

In one process, on the world's station-day table (run `smci demo` first):

1. fit time of the paper's forest (100 trees, max_features = 1, min_samples_leaf = 20,
   max_depth = 64, all cores) per layer, in interleaved rounds (A B, then B A, ...);
2. one tune layer (the world's own [tune] grid, one fold mode), both backends interleaved;
3. validation scores (year and station experiments: R, ubRMSE, RMSE per layer) of both
   backends with the world's own [forest] section, beside ERA5-Land's.

Fits and scores also show scikit-learn-intelex with min_samples_leaf × 1/(1 - 1/e) (its
leaves then hold about as many distinct rows as scikit-learn's; see make_estimator).
Writes ``train_backends.json`` and ``train_backends.md`` into ``--out``.

python benchmarks/bench_train_backends.py --workdir demo-work --out benchmarks/results-train
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from smci_gpu.config import Config, load_config
from smci_gpu.evaluate.experiments import run_experiment
from smci_gpu.model.train import TARGET, load_table, make_estimator
from smci_gpu.model.tune import summarise, tune_layer

BACKENDS = ("sklearn", "sklearnex")
#: Trainers compared: name -> (forest.backend, parameter changes). oneDAL counts a leaf's
#: bootstrap draws where scikit-learn counts distinct rows (~0.632 of the draws), so
#: "sklearnex_leaf×1.6" scales min_samples_leaf by 1 / (1 - 1/e) to hold about as many
#: distinct rows per leaf as scikit-learn's.
LEAF_SCALE = 1 / (1 - np.exp(-1))
#: The paper's forest shape (ForestConfig defaults), whatever the world's config says.
PAPER = dict(n_estimators=100, max_features=1, min_samples_leaf=20, max_depth=64)


def with_backend(cfg: Config, name: str, **forest) -> Config:
    """A copy of ``cfg`` whose forest section uses trainer ``name`` (and ``forest``)."""
    section = cfg.forest.model_copy(update={"backend": name, **forest})
    return cfg.model_copy(update={"forest": section})


def variants(cfg: Config, leaf: int, matched: bool) -> dict[str, tuple[str, dict]]:
    """The trainers to compare, for a forest whose min_samples_leaf is ``leaf``."""
    out = {name: (name, {}) for name in BACKENDS}
    if matched:
        out["sklearnex_leaf×1.6"] = ("sklearnex", {"min_samples_leaf": round(leaf * LEAF_SCALE)})
    return out


def orders(names: list[str], rounds: int) -> list[list[str]]:
    """A B C, C B A, A B C, ...: no trainer always runs first."""
    return [list(names) if r % 2 == 0 else list(names)[::-1] for r in range(rounds)]


def fit_times(
    cfg: Config, table: pd.DataFrame, layers: list[int], rounds: int, matched: bool
) -> list[dict]:
    """Seconds of one paper-shaped fit per layer, round and trainer."""
    rows = []
    todo = variants(cfg, PAPER["min_samples_leaf"], matched)
    fitted.clear()
    for depth in layers:
        part = table[table.depth_cm == depth]
        x = part[cfg.features].to_numpy(np.float32)
        y = part[TARGET].to_numpy(np.float64)
        for r, order in enumerate(orders(list(todo), rounds)):
            for name in order:
                trainer, change = todo[name]
                est = make_estimator(with_backend(cfg, trainer, **{**PAPER, **change}), "cpu")
                t0 = time.perf_counter()
                est.fit(x, y)
                seconds = time.perf_counter() - t0
                nodes = sum(e.tree_.node_count for e in est.estimators_)
                if r == rounds - 1:
                    fitted[(depth, name)] = est
                rows.append(
                    dict(layer_cm=depth, round=r, backend=name, rows=len(x), seconds=seconds,
                         nodes=nodes)
                )  # fmt: skip
                print(f"fit {depth} cm round {r} {name}: {seconds:.2f} s, {nodes:,} nodes")
    return rows


#: The forests of the last fit round, (layer, trainer) -> estimator, for predict_times.
fitted: dict[tuple[int, str], object] = {}


def predict_times(
    cfg: Config, table: pd.DataFrame, rounds: int, n_rows: int = 200_000
) -> list[dict]:
    """What each trainer's forest costs in production: PackedForest CPU predict seconds
    on ``n_rows`` of the layer's rows (shuffled, repeated), interleaved rounds, and the
    nodes a row visits per tree (scikit-learn's decision_path on 20,000 of them)."""
    from smci_gpu.model.forest import PackedForest

    rows = []
    for depth in sorted({d for d, _ in fitted}):
        names = [n for d, n in fitted if d == depth]
        part = table[table.depth_cm == depth][cfg.features].to_numpy(np.float32)
        take = np.random.default_rng(0).integers(0, len(part), n_rows)
        x = np.ascontiguousarray(part[take])
        packed = {n: PackedForest.from_sklearn(fitted[(depth, n)]) for n in names}
        visits = {}
        for n in names:
            est = fitted[(depth, n)]
            packed[n].predict(x[:1000])  # compile outside the timing
            visits[n] = est.decision_path(x[:20_000])[0].nnz / 20_000 / len(est.estimators_)
        for r, order in enumerate(orders(names, rounds)):
            for n in order:
                t0 = time.perf_counter()
                packed[n].predict(x)
                seconds = time.perf_counter() - t0
                rows.append(
                    dict(layer_cm=depth, round=r, backend=n, rows=n_rows, seconds=seconds,
                         visits_per_row_per_tree=visits[n])
                )  # fmt: skip
                print(f"predict {depth} cm round {r} {n}: {seconds:.2f} s")
    return rows


def tune_times(cfg: Config, table: pd.DataFrame, depth: int, mode: str, rounds: int):
    """Seconds and best cell of one tune layer per round and backend."""
    rows, cells = [], {}
    for r, order in enumerate(orders(list(BACKENDS), rounds)):
        for name in order:
            t0 = time.perf_counter()
            folds = tune_layer(table, with_backend(cfg, name), depth, mode, "cpu")
            seconds = time.perf_counter() - t0
            summary = summarise(folds)
            best = summary.iloc[0]
            cells[name] = summary
            rows.append(
                dict(layer_cm=depth, groups=mode, round=r, backend=name, fits=len(folds),
                     seconds=seconds, best_max_features=int(best.max_features),
                     best_min_samples_leaf=int(best.min_samples_leaf), best_rmse=best.rmse)
            )  # fmt: skip
            print(f"tune {depth} cm {mode} round {r} {name}: {seconds:.1f} s, best {dict(best)}")
    return rows, cells


def scores(cfg: Config, table: pd.DataFrame, matched: bool) -> list[dict]:
    """Model (per trainer) and ERA5-Land metrics of the year and station experiments."""
    rows = []
    todo = variants(cfg, cfg.forest.min_samples_leaf, matched)
    for name, (trainer, change) in todo.items():
        for experiment in ("year", "station"):
            t0 = time.perf_counter()
            result = run_experiment(table, with_backend(cfg, trainer, **change), experiment)
            seconds = time.perf_counter() - t0
            for m in result.metrics:
                if "skipped" in m:
                    continue
                source = name if m["source"] == "model" else "era5land"
                if source == "era5land" and name != BACKENDS[0]:
                    continue
                rows.append(
                    dict(experiment=experiment, layer_cm=m["layer_cm"], source=source,
                         r=m["r"], ubrmse=m["ubrmse"], rmse=m["rmse"], n=m["n"],
                         experiment_seconds=seconds)
                )  # fmt: skip
            print(f"{experiment} experiment with {name}: {seconds:.1f} s")
    return rows


def _ratio_line(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group and trainer: median seconds, and median and range over rounds of
    scikit-learn's seconds / the trainer's (same round)."""
    wide = frame.pivot_table(index=[*keys, "round"], columns="backend", values="seconds")
    out = []
    for name in wide.columns:
        ratio = wide["sklearn"] / wide[name]
        g = wide[name].groupby(level=keys)
        r = ratio.groupby(level=keys)
        part = pd.DataFrame(
            {"seconds": g.median(), "ratio_median": r.median(), "ratio_min": r.min(),
             "ratio_max": r.max(), "rounds": r.size()}
        )  # fmt: skip
        part.insert(0, "backend", name)
        out.append(part.reset_index())
    return pd.concat(out, ignore_index=True)


def markdown(doc: dict) -> str:
    """The figures as markdown tables (what RESULTS.md quotes)."""
    fit = pd.DataFrame(doc["fit"])
    lines = [
        f"Machine: {doc['machine']}; load average (1, 5, 15 min) at start "
        f"{_load(doc['load_start'])}, at end {_load(doc['load_end'])}.",
        "",
        "Fit of the paper's forest (100 trees, max_features = 1, min_samples_leaf = 20, "
        "max_depth = 64, n_jobs = -1); seconds are medians, the ratio is scikit-learn's "
        "seconds / the trainer's in the same round (median, range):",
        "",
        "| layer | rows | trainer | seconds | ratio | rounds | nodes |",
        "|---|---|---|---|---|---|---|",
    ]
    if not fit.empty:
        facts = fit.groupby(["layer_cm", "backend"]).agg(
            rows=("rows", "first"), nodes=("nodes", "first")
        )
        summary = pd.DataFrame(doc["fit_summary"])
        summary["order"] = summary.backend.map({b: i for i, b in enumerate(facts.index.levels[1])})
        for _, f in summary.sort_values(["layer_cm", "order"], kind="stable").iterrows():
            n = facts.loc[(f.layer_cm, f.backend)]
            lines.append(
                f"| {f.layer_cm} cm | {n.rows:,} | {f.backend} | {f.seconds:.2f} "
                f"| {_ratio(f)} | {f.rounds} | {n.nodes:,} |"
            )
    predict = pd.DataFrame(doc.get("predict", []))
    if not predict.empty:
        lines += [
            "",
            "What each forest costs in production: PackedForest CPU predict of "
            f"{predict.rows.iloc[0]:,} of the layer's rows (random order), median seconds, "
            "ratio the scikit-learn forest's seconds / this forest's (same round):",
            "",
            "| layer | trainer | seconds | ratio | rounds | nodes visited per row per tree |",
            "|---|---|---|---|---|---|",
        ]
        visits = predict.groupby(["layer_cm", "backend"]).visits_per_row_per_tree.first()
        summary = pd.DataFrame(doc["predict_summary"])
        summary["order"] = summary.backend.map(
            {b: i for i, b in enumerate(sorted(visits.index.levels[1]))}
        )
        for _, f in summary.sort_values(["layer_cm", "order"], kind="stable").iterrows():
            lines.append(
                f"| {f.layer_cm} cm | {f.backend} | {f.seconds:.2f} | {_ratio(f)} "
                f"| {f.rounds} | {visits[(f.layer_cm, f.backend)]:.1f} |"
            )
    tune = pd.DataFrame(doc["tune"])
    lines += (
        []
        if tune.empty
        else [
            "",
            "One tune layer (the world's [tune] grid), seconds and best cell:",
            "",
            "| layer | folds | fits | trainer | seconds | ratio | best cell (max_features, "
            "min_samples_leaf): RMSE |",
            "|---|---|---|---|---|---|---|",
        ]
    )
    if not tune.empty:
        last = tune.groupby("backend").last()
        for _, t in pd.DataFrame(doc["tune_summary"]).iterrows():
            b = last.loc[t.backend]
            lines.append(
                f"| {t.layer_cm} cm | {t.groups} | {b.fits} | {t.backend} | {t.seconds:.1f} "
                f"| {_ratio(t)} | ({b.best_max_features}, {b.best_min_samples_leaf}): "
                f"{b.best_rmse:.4f} |"
            )
    score = pd.DataFrame(doc["scores"])
    lines += (
        []
        if score.empty
        else [
            "",
            "Validation with the world's [forest] section, model per trainer and ERA5-Land:",
            "",
            "| experiment | layer | source | R | ubRMSE | RMSE | n |",
            "|---|---|---|---|---|---|---|",
        ]
    )
    if not score.empty:
        for _, s in score.sort_values(["experiment", "layer_cm", "source"]).iterrows():
            lines.append(
                f"| {s.experiment} | {s.layer_cm} cm | {s.source} | {s.r:.3f} "
                f"| {s.ubrmse:.4f} | {s.rmse:.4f} | {s.n:,} |"
            )
        seconds = score.groupby(["source", "experiment"]).experiment_seconds.first().unstack()
        lines += ["", "Seconds of each experiment (all layers; one run per trainer, in turn):", ""]
        lines += ["| trainer | year s | station s |", "|---|---|---|"]
        for src, t in seconds.drop(index="era5land", errors="ignore").iterrows():
            lines.append(f"| {src} | {t['year']:.1f} | {t['station']:.1f} |")
        mean = score.groupby(["experiment", "source"])[["r", "ubrmse", "rmse"]].mean()
        lines += ["", "Mean over layers:", "", "| experiment | source | R | ubRMSE | RMSE |"]
        lines.append("|---|---|---|---|---|")
        for (e, src), m in mean.iterrows():
            lines.append(f"| {e} | {src} | {m.r:.3f} | {m.ubrmse:.4f} | {m.rmse:.4f} |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    """Host, cores and CPU model (Linux: /proc/cpuinfo), as the tables name the machine."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        model = names[0] if names else model
    return f"{platform.node()}, {os.cpu_count()} cores, {model}"


def _ratio(row) -> str:
    return f"{row.ratio_median:.2f}× ({row.ratio_min:.2f}–{row.ratio_max:.2f})"


def _load(values) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True, help="a world after `smci demo` (prepare)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, nargs="+", default=None, help="fit-time layers")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--tune-layer", type=int, default=None)
    ap.add_argument("--tune-groups", default="station")
    ap.add_argument("--tune-rounds", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], choices=["fit", "tune", "scores"])
    ap.add_argument("--markdown-only", action="store_true", help="re-render --out's JSON")
    ap.add_argument(
        "--no-leaf-matched", action="store_true",
        help="leave out sklearnex with min_samples_leaf × 1/(1 - 1/e)",
    )  # fmt: skip
    a = ap.parse_args()
    out = Path(a.out)
    if a.markdown_only:
        doc = json.loads((out / "train_backends.json").read_text())
        (out / "train_backends.md").write_text(markdown(doc))
        return
    cfg = load_config(workdir=a.workdir)
    table = load_table(cfg)
    layers = a.layers or list(cfg.tune.layers or cfg.layers)[:2]
    doc = {
        "machine": machine(),
        "load_start": os.getloadavg(),
        "fit": [],
        "predict": [],
        "tune": [],
        "scores": [],
        "tune_best": {},
        "leaf_scale": LEAF_SCALE,
    }
    if "fit" not in a.skip:
        doc["fit"] = fit_times(cfg, table, layers, a.rounds, not a.no_leaf_matched)
        doc["predict"] = predict_times(cfg, table, max(a.rounds - 1, 1))
    if "tune" not in a.skip:
        depth = a.tune_layer or layers[0]
        doc["tune"], cells = tune_times(cfg, table, depth, a.tune_groups, a.tune_rounds)
        doc["tune_best"] = {k: v.head(3).to_dict("records") for k, v in cells.items()}
    if "scores" not in a.skip:
        doc["scores"] = scores(cfg, table, not a.no_leaf_matched)
    doc["load_end"] = os.getloadavg()
    fit = pd.DataFrame(doc["fit"])
    tune = pd.DataFrame(doc["tune"])
    doc["fit_summary"] = [] if fit.empty else _ratio_line(fit, ["layer_cm"]).to_dict("records")
    predict = pd.DataFrame(doc["predict"])
    doc["predict_summary"] = (
        [] if predict.empty else _ratio_line(predict, ["layer_cm"]).to_dict("records")
    )
    doc["tune_summary"] = (
        [] if tune.empty else _ratio_line(tune, ["layer_cm", "groups"]).to_dict("records")
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_backends.json").write_text(json.dumps(doc, indent=2, default=float))
    (out / "train_backends.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
