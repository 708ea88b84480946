"""A China day's fine stack: main's per-day path (8c02970) against the FineBuffer path.

python benchmarks/ab_fine_stack.py WORKDIR [--rounds 5] [--out benchmarks/results-china]

Both paths run in one process in alternating rounds, each round on the next day of the
world's period (the static maps and LAI composites are read once, as `smci produce`
reads them). ``before``: main's ``fine_stack`` as it was (the window's composites
stacked, daily LAI, NaN set to 0 by ``where``, concatenated with the static maps into a
new array) and the land mask computed again; ``after``: ``Predictors.fine_stack`` with
one :class:`~smci_gpu.features.FineBuffer` for all rounds and its land mask. Every
round checks that both give the same stack and mask (bit for bit).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from smci_gpu import kernels
from smci_gpu.config import load_config
from smci_gpu.features import LAI_SEARCH, FineBuffer, Predictors


def before(pred: Predictors, day):
    """main's fine stack and land mask (8c02970), kept here as the A/B's reference."""
    target = np.datetime64(pd.Timestamp(day), "s")
    i = int(np.searchsorted(pred.lai_dates, target, "right"))
    lo, hi = max(i - 1 - LAI_SEARCH, 0), min(i + 1 + LAI_SEARCH, len(pred.lai_dates))
    comps = np.stack(pred.lai_comp[lo:hi])
    lai = kernels.lai_daily(comps, pred.lai_dates[lo:hi], np.array([target]))
    lai = np.where(np.isnan(lai), 0.0, lai).astype(np.float32)
    return np.concatenate([lai, pred.static.astype(np.float32)], axis=0), pred.land_mask()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results-china"))
    args = ap.parse_args()
    cfg = load_config(workdir=args.workdir, overrides={"device": "cpu"})
    days = pd.date_range(cfg.produce.start, cfg.produce.end, freq="D")[: args.rounds + 1]
    buffer = FineBuffer()
    times: dict[str, list[float]] = {"before": [], "after": []}
    for r, day in enumerate(days):
        pred = Predictors.load(cfg, day, day, allow_missing_days=True)
        order = ("before", "after") if r % 2 else ("after", "before")
        got = {}
        for name in order:
            t0 = time.perf_counter()
            if name == "before":
                got[name] = before(pred, day)
            else:
                got[name] = (pred.fine_stack(day, buffer), buffer.land_mask(pred))
            if r:  # round 0 compiles and reads: not timed
                times[name].append(time.perf_counter() - t0)
        for a, b in zip(got["before"], got["after"], strict=True):
            np.testing.assert_array_equal(a, b)
        del got, pred
        print(
            f"round {r} {day:%Y-%m-%d}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v and r),
            flush=True,
        )
    ratio = [b / a for b, a in zip(times["before"], times["after"], strict=True)]
    doc = {
        "what": "fine stack + land mask of one China day, CPU",
        "machine": {"cpus": os.cpu_count(), "load_at_end": os.getloadavg()},
        "seconds": times,
        "median_s": {k: float(np.median(v)) for k, v in times.items()},
        "speedup_before_over_after": {
            "median": float(np.median(ratio)),
            "min": min(ratio),
            "max": max(ratio),
        },
        "identical": True,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ab_fine_stack.json").write_text(json.dumps(doc, indent=2))
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
