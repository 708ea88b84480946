"""``python -m smci_gpu.bench``: the benchmark suites without the CLI's dependencies.

For machines that hold NumPy, Numba and CuPy but not the whole stack (a GPU node without
pydantic, dask or netCDF4): the ``kernels``, ``inference`` and ``scaling`` suites need
nothing else. Same suites, options and result files as ``smci bench``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from smci_gpu.bench.suite import SUITES, available_devices, run_suite


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the suites, print the markdown summary."""
    parser = argparse.ArgumentParser(prog="python -m smci_gpu.bench", description=__doc__)
    parser.add_argument("suites", nargs="*", default=["kernels"], help=" | ".join(SUITES))
    parser.add_argument("--device", default="both", help="cpu | gpu | both (every one found)")
    parser.add_argument("--size", default="small", help="tiny | small | medium | large")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per cell")
    parser.add_argument("--out", type=Path, default=Path("bench"), help="result folder")
    args = parser.parse_args(argv)
    names = list(SUITES) if args.suites == ["all"] else args.suites
    run_suite(names, available_devices(args.device), args.size, args.out, args.repeats)
    print((args.out / "bench.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
