"""Forest inference: PackedForest (CPU twin, GPU twin) vs scikit-learn vs nvForest.

Same forest and rows for every implementation, exactness against scikit-learn recorded:
small = 100 trees, large = 1000 trees (200,000 training rows, 1,000,000 predicted rows).

python benchmarks/bench_inference.py --size small --device cpu --out benchmarks/results/inference
"""

from __future__ import annotations

import argparse
from pathlib import Path

from smci_gpu.bench.suite import available_devices, run_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="small", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--device", default="both", choices=["cpu", "gpu", "both"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/inference"))
    args = parser.parse_args()
    devices = available_devices(args.device)
    doc = run_suite(["inference"], devices, args.size, args.out, args.repeats)
    print((args.out / "bench.md").read_text())
    print(f"{len(doc['records'])} records → {args.out / 'bench.json'}")


if __name__ == "__main__":
    main()
