"""Kernel throughput: CPU/GPU twin vs NumPy/xarray reference vs same-size copy.

python benchmarks/bench_kernels.py --size small --device cpu --out benchmarks/results/kernels
"""

from __future__ import annotations

import argparse
from pathlib import Path

from smci_gpu.bench.suite import available_devices, run_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="small", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--device", default="both", choices=["cpu", "gpu", "both"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/kernels"))
    args = parser.parse_args()
    doc = run_suite(["kernels"], available_devices(args.device), args.size, args.out, args.repeats)
    print((args.out / "bench.md").read_text())
    print(f"{len(doc['records'])} records → {args.out / 'bench.json'}")


if __name__ == "__main__":
    main()
