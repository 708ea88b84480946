"""Kernel throughput: CPU/GPU twin vs NumPy/xarray reference vs same-size copy.

python benchmarks/bench_kernels.py --size small --device cpu --out benchmarks/results/kernels
"""

from smci_gpu.bench.suite import script_main

if __name__ == "__main__":
    script_main("kernels", __doc__)
