"""The benchmark suite: named benchmarks run side by side, written as JSON + markdown.

``smci bench`` and the scripts in ``benchmarks/`` both come here, so a figure means the
same thing whichever way it was produced.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from smci_gpu.bench.harness import Record, environment, plot_throughput, write_results

Runner = Callable[[str, tuple[str, ...], int, Path | None], list[Record]]


def _kernels(size: str, devices: tuple[str, ...], repeats: int, workdir=None) -> list[Record]:
    from smci_gpu.bench import kernels

    return kernels.run(size, devices, repeats)


def _inference(size: str, devices: tuple[str, ...], repeats: int, workdir=None) -> list[Record]:
    from smci_gpu.bench import inference

    return inference.run(size, devices, max(1, repeats // 2))


def _produce(size: str, devices: tuple[str, ...], repeats: int, workdir=None) -> list[Record]:
    from smci_gpu.bench import produce

    return produce.run(size, devices, max(1, repeats // 2), workdir)


SUITES: dict[str, Runner] = {"kernels": _kernels, "inference": _inference, "produce": _produce}


def available_devices(request: str) -> tuple[str, ...]:
    """``cpu``, ``gpu`` or ``both`` → the devices to measure (``gpu`` needs a CUDA device)."""
    from smci_gpu.backend import gpu_available, resolve_device

    if request == "both":
        return ("cpu", "gpu") if gpu_available() else ("cpu",)
    return (resolve_device(request),)


def run_suite(
    names: list[str],
    devices: tuple[str, ...],
    size: str,
    out_dir: Path,
    repeats: int = 5,
    log: Callable[[str], Any] = print,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Run the named benchmarks and write ``bench.json`` + ``bench.md`` into ``out_dir``.

    ``workdir``: a trained world for the ``produce`` benchmark (else it builds the tiny one).
    """
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; choose from {sorted(SUITES)}")
    records: list[Record] = []
    for name in names:
        log(f"bench {name}: size={size}, devices={','.join(devices)}")
        records += SUITES[name](size, devices, repeats, workdir)
    env = environment(list(devices))
    env["size"] = size
    doc = write_results(
        records,
        env,
        out_dir / "bench.json",
        out_dir / "bench.md",
        title=f"smci bench ({', '.join(names)}; size {size})",
    )
    for name in names:
        plot_throughput(doc, name, out_dir / f"{name}.png")
    return doc


def script_main(suite: str, description: str, default_repeats: int = 5) -> None:
    """Command-line entry of the scripts in ``benchmarks/``: one suite, JSON + markdown."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size", default="small", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--device", default="both", choices=["cpu", "gpu", "both"])
    parser.add_argument("--repeats", type=int, default=default_repeats)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results") / suite)
    args = parser.parse_args()
    doc = run_suite([suite], available_devices(args.device), args.size, args.out, args.repeats)
    print((args.out / "bench.md").read_text())
    print(f"{len(doc['records'])} records → {args.out / 'bench.json'}")
