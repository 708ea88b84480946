"""CPU kernels of another revision against the working tree's, side by side in one process.

python benchmarks/ab_kernels.py REV [--rounds 9] [--out ab.json]

On a shared machine the memory bandwidth drifts between runs by up to 2×, so two
benchmark runs compare machines as much as code. Here both revisions' ``kernels/lai.py``
and ``kernels/blocks.py`` are loaded side by side (Numba's on-disk cache off, so neither
reuses the other's machine code) and timed in alternating rounds with a same-size copy,
every call after the caches are evicted, on the benchmark's medium-size inputs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from smci_gpu.bench.harness import time_interleaved
from smci_gpu.bench.kernels import _parallel_copy, cpu_cache_evictor

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("lai", "blocks")


def load_kernels(source: str, tag: str, folder: Path) -> dict[str, object]:
    """Import each kernel module's ``source`` text under a private name, cache off."""
    mods = {}
    for name in MODULES:
        text = _read(source, name).replace("cache=True", "cache=False")
        path = folder / f"{name}_{tag}.py"
        path.write_text(text)
        spec = importlib.util.spec_from_file_location(f"{name}_{tag}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        mods[name] = module
    return mods


def _read(source: str, name: str) -> str:
    if source == "worktree":
        return (ROOT / "kernels" / f"{name}.py").read_text()
    return subprocess.run(
        ["git", "show", f"{source}:kernels/{name}.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def cases(rng: np.random.Generator) -> dict[str, tuple[int, object]]:
    """Medium-size inputs: ``name -> (bytes read + written, call(module dict))``."""
    npix, cdates, tdates = 1_000_000, np.arange(46) * 8.0, np.arange(365.0)
    lai_out = np.empty((365, npix), np.float32)
    out: dict[str, tuple[int, object]] = {}
    for name, gaps in (("lai_daily", 0.1), ("lai_daily_gapfree", 0.0)):
        comp = rng.random((46, npix), dtype=np.float32) * 6
        comp[rng.random(comp.shape) < gaps] = np.nan
        out[name] = (
            comp.nbytes + lai_out.nbytes,
            lambda m, c=comp: m["lai"].lai_daily(c, cdates, tdates, out=lai_out),
        )
    a = rng.random((4, 2400, 2400), dtype=np.float32)
    a[a < 0.15] = np.nan
    mean_out = np.empty((4, 200, 200), np.float32)
    out["block_mean_12x12"] = (
        a.nbytes + mean_out.nbytes,
        lambda m: m["blocks"].block_mean(a, 12, 12, out=mean_out),
    )
    for f in (2, 12):
        n = 4800 if f == 2 else 2400
        lc = rng.integers(0, 17, (n, n)).astype(np.uint8)
        lc_out = np.empty((n // f, n // f), np.uint8)
        out[f"block_majority_{f}x{f}"] = (
            lc.nbytes + lc_out.nbytes,
            lambda m, lc=lc, lo=lc_out, f=f: m["blocks"].block_majority(lc, f, f, out=lo),
        )
    return out


def measure(nbytes: int, call, sides: dict, evict, rounds: int) -> dict[str, float]:
    """Median seconds of each side's call and of a same-size copy, in alternating rounds."""
    src = np.ones(max(1, nbytes // 8), np.float32)
    dst = np.empty_like(src)
    fns = {side: (lambda m=m: call(m)) for side, m in sides.items()}
    fns["copy"] = lambda: _parallel_copy(src, dst)
    timed = time_interleaved(fns, repeats=rounds, before_each=evict)
    return {k: t.median for k, t in timed.items()}


def _line(name: str, nbytes: int, t: dict[str, float]) -> str:
    gbps = {k: nbytes / v / 1e9 for k, v in t.items()}
    return (
        f"{name:22s} base {gbps['base']:6.1f} GB/s  work {gbps['work']:6.1f} GB/s  "
        f"{t['base'] / t['work']:.2f}x  copy {gbps['copy']:6.1f}  "
        f"of copy {t['copy'] / t['base']:.3f} -> {t['copy'] / t['work']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="git revision whose kernels are the baseline")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ab_kernels.json"))
    args = parser.parse_args()
    evict = cpu_cache_evictor()
    results: dict = {"rev": args.rev, "rounds": args.rounds, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        sides = {"base": load_kernels(args.rev, "base", Path(tmp))}
        sides["work"] = load_kernels("worktree", "work", Path(tmp))
        for name, (nbytes, call) in cases(np.random.default_rng(0)).items():
            times = measure(nbytes, call, sides, evict, args.rounds)
            results["cases"][name] = {
                k: {"median_s": t, "gbps": nbytes / t / 1e9} for k, t in times.items()
            }
            print(_line(name, nbytes, times), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"→ {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
