#!/usr/bin/env bash
# One prepared run for a lent GPU machine: the real-GPU parity tests, then the kernel and
# inference benchmarks on GPU and CPU side by side, and the kernels on GPU at size large:
# about 6 minutes, 11 at the most.
#
# Needs only NumPy, Numba, numba-cuda and CuPy (plus pytest and hypothesis for the tests):
# pydantic, dask, netCDF4 and rioxarray are not imported. The checkout is not installed
# there, so it is copied to a scratch folder with the top-level kernels/ folder placed where
# the installed package has it (smci_gpu/kernels).
#
#   bash benchmarks/device_check.sh [result-folder]     # default: $OUT, else ./device-check
#
# KERNEL_SIZE (medium) and INFERENCE_SIZE (small, or "skip") choose the benchmark sizes,
# INFERENCE_ROWS the inference rows (a world's production days, tile by tile; the device
# has no readers, so write them beforehand with
# `python -m smci_gpu.bench.inference .carry/rows.npz --workdir demo-work` and carry
# .carry; without them the inference benchmark fails for want of a world),
# KERNEL_DEVICE (both) the kernel table's devices and TESTS_K a pytest -k selection, so a
# rerun after a GPU-side change can measure only the GPU (about 2 minutes). At most eight
# files come back from the device tool, so only each suite's bench.json is kept
# (`smci_gpu.bench.harness.markdown` turns one into the table) and the logs are merged.
# Each step has its own time limit; one that fails or runs out does not stop the next, and
# the benchmarks print a line per kernel as it finishes.
set -u -o pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${OUT:-$repo/device-check}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

if [ -n "${INFERENCE_ROWS:-}" ]; then
    SMCI_INFERENCE_ROWS=$(realpath "$INFERENCE_ROWS")
    export SMCI_INFERENCE_ROWS
fi
work=$(mktemp -d)
cp -r "$repo/smci_gpu" "$repo/tests" "$repo/pyproject.toml" "$work/"
rm -rf "$work/smci_gpu/kernels"
cp -r "$repo/kernels" "$work/smci_gpu/kernels"
cd "$work" || exit 1
export PYTHONPATH=$work${PYTHONPATH:+:$PYTHONPATH}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    echo "cpus $(nproc)"
    $python - <<'EOF'
import platform, numpy, numba
from importlib import metadata
print("python", platform.python_version(), "numpy", numpy.__version__, "numba", numba.__version__)
for name in ("numba-cuda", "cupy-cuda13x", "cupy-cuda12x", "scikit-learn"):
    try:
        print(name, metadata.version(name))
    except metadata.PackageNotFoundError:
        pass
try:
    import cupy
    print("cupy", cupy.__version__, "device", cupy.cuda.runtime.getDeviceProperties(0)["name"])
except Exception as exc:  # the script still runs the CPU side
    print("cupy unavailable:", exc)
EOF
} 2>&1 | tee "$out/machine.txt"

status=0
timeout 110 $python -m pytest -q -rs -p no:cacheprovider ${TESTS_K:+-k "$TESTS_K"} \
    tests/test_kernels.py tests/test_forest.py 2>&1 | tee "$out/tests.log" || status=1

# The self-test's kernel and forest checks: every GPU twin against its CPU twin at the
# benchmark's small size (appended to tests.log: at most eight files come back).
timeout 80 $python - >> "$out/tests.log" 2>&1 <<'EOF' || status=1
from smci_gpu import backend, selftest

device = "gpu" if backend.gpu_available() else "cpu"
checks, info = selftest.run(device, quick=True)
print("selftest", info)
for c in checks:
    print(f"{'pass' if c.passed else 'FAIL'} {c.device:4s} {c.name}: {c.detail} ({c.seconds:.2f} s)")
raise SystemExit(0 if all(c.passed for c in checks) else 1)
EOF

bench() {  # time limit in seconds, result folder, then the suite's arguments
    local limit=$1 dest=$2
    shift 2
    echo "== $(date +%T) python -m smci_gpu.bench $* (limit ${limit} s)" >> "$out/run.log"
    timeout "$limit" $python -m smci_gpu.bench "$@" --out "$work/results/$dest" \
        >> "$out/run.log" 2>&1 || status=1
    mkdir -p "$out/$dest"
    cp "$work/results/$dest/bench.json" "$out/$dest/" 2>/dev/null || status=1
}
bench 190 kernels kernels --device "${KERNEL_DEVICE:-both}" --size "${KERNEL_SIZE:-medium}" \
    --repeats 5
if [ "${INFERENCE_SIZE:-small}" != skip ]; then
    # PackedForest CPU/GPU, scikit-learn, nvForest (onnxruntime where installed), 100 and
    # 1000 trees, random and production order, exactness per engine
    bench 200 inference inference --device both --size "${INFERENCE_SIZE:-small}" --repeats 3
fi
if $python -c "from smci_gpu import backend; raise SystemExit(not backend.gpu_available())"; then
    bench 60 kernels-gpu-large kernels --device gpu --size large --repeats 5
fi
# A China day's inference + int16 encoding on the GPU beside the CPU, identical int16 or
# the differences counted (issue #21). Needs the carried sample: made here with
#   .venv/bin/python benchmarks/device_china.py --prepare CHINA_WORLD .carry/china
# and sent with the device tool's carry=[".carry/china"] (22 MB).
if [ -f "$repo/.carry/china/meta.json" ]; then
    echo "== $(date +%T) device_china.py (limit 240 s)" >> "$out/run.log"
    timeout 240 $python "$repo/benchmarks/device_china.py" "$repo/.carry/china" "$out/china" \
        >> "$out/run.log" 2>&1 || status=1
fi
grep -v '^|' "$out/run.log" | tail -n 40
rm -rf "$work"
exit $status
