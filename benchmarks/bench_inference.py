"""Forest inference: PackedForest (CPU twin, GPU twin) vs scikit-learn vs nvForest.

Same forest and rows for every implementation, exactness against scikit-learn recorded:
small = 100 trees, large = 1000 trees (200,000 training rows, 1,000,000 predicted rows).

python benchmarks/bench_inference.py --size small --device cpu --out benchmarks/results/inference
"""

from smci_gpu.bench.suite import script_main

if __name__ == "__main__":
    script_main("inference", __doc__, default_repeats=3)
