"""The benchmark suite: named benchmarks run side by side, written as JSON + markdown.

``smci bench`` and the scripts in ``benchmarks/`` both come here, so a figure means the
same thing whichever way it was produced.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from smci_gpu.bench.harness import (
    Record,
    environment,
    plot_rates,
    plot_throughput,
    write_results,
)

Runner = Callable[[str, tuple[str, ...], int, Path | None], list[Record]]


def _kernels(size: str, devices: tuple[str, ...], repeats: int, workdir=None) -> list[Record]:
    from smci_gpu.bench import kernels

    return kernels.run(size, devices, repeats, progress=print)


def _inference(size: str, devices: tuple[str, ...], repeats: int, workdir=None) -> list[Record]:
    from smci_gpu.bench import inference

    return inference.run(size, devices, max(1, repeats // 2), workdir)


def _produce(size: str, devices: tuple[str, ...], repeats: int, workdir=None) -> list[Record]:
    from smci_gpu.bench import produce

    return produce.run(size, devices, max(1, repeats // 2), workdir)


def _train(size: str, devices: tuple[str, ...], repeats: int, workdir=None) -> list[Record]:
    from smci_gpu.bench import train

    return train.run(size, devices, max(1, repeats // 3))


def _io(size: str, devices: tuple[str, ...], repeats: int, workdir=None) -> list[Record]:
    from smci_gpu.bench import io

    return io.run(size, devices, repeats, workdir)


def _scaling(size: str, devices: tuple[str, ...], repeats: int, workdir=None) -> list[Record]:
    from smci_gpu.bench import scaling

    return scaling.run(size, devices, max(1, repeats // 2))


SUITES: dict[str, Runner] = {
    "kernels": _kernels,
    "inference": _inference,
    "train": _train,
    "produce": _produce,
    "io": _io,
    "scaling": _scaling,
}

#: Device counts for the full-product extrapolation (days are independent work).
EXTRAPOLATE_DEVICES = (1, 4, 16, 64)


def roofline_table(records: list[Record]) -> dict[str, Any] | None:
    """Each kernel's achieved GB/s against the same-size copy on its device, and forest
    inference as node visits per second."""
    rows = []
    for r in records:
        if r.suite == "kernels" and r.impl == "twin":
            copy = next(
                c
                for c in records
                if c.suite == "kernels"
                and c.stage == r.stage
                and c.device == r.device
                and c.impl.startswith("copy")
            )
            rows.append([r.stage, r.device, "twin", r.gbps, copy.gbps, r.extra["of_copy"], "–"])
        if r.suite == "inference" and "node_visits_per_s" in r.extra:
            rows.append(
                [f"forest {r.stage}", r.device, r.impl, "–", "–", "–", r.extra["node_visits_per_s"]]
            )
    if not rows:
        return None
    columns = ["kernel", "device", "impl", "GB/s", "copy GB/s", "of copy", "node visits/s"]
    return {"title": "Roofline summary", "columns": columns, "rows": rows}


def extrapolation_table(records: list[Record]) -> dict[str, Any] | None:
    """Hours for the full product (China at 30″, 10 layers, 2000–2020) on N devices."""
    from smci_gpu.bench.produce import extrapolate

    rows = []
    for r in records:
        if r.suite != "produce" or r.stage != "total" or r.impl != "smci":
            continue
        stages = {
            s.stage: s.seconds.median / s.items
            for s in records
            if s.suite == "produce"
            and s.device == r.device
            and s.impl == "smci"
            and s.stage != "total"
        }
        for n in EXTRAPOLATE_DEVICES:
            e = extrapolate(stages, r.size["trees"], n_devices=n)
            for trees in (100, 1000):
                rows.append(
                    [
                        r.device,
                        n,
                        trees,
                        e[f"hours_full_product_{trees}_trees"],
                        e[f"bottleneck_{trees}_trees"],
                    ]
                )
    if not rows:
        return None
    return {
        "title": "Full-product extrapolation (13.6 M land pixels × 10 layers × 7,670 days)",
        "columns": ["device", "devices", "trees", "hours", "bottleneck stage"],
        "rows": rows,
    }


SMALL_WORLD_PIXELS = 20_000


def world_notes(records: list[Record]) -> list[str]:
    """A warning when the production figures come from a world too small to extrapolate."""
    pixels = [
        r.size.get("land_pixels", 0) for r in records if r.suite == "produce" and r.stage == "total"
    ]
    if pixels and min(pixels) < SMALL_WORLD_PIXELS:
        return [
            f"The production stages ran on a world of {min(pixels):,} land pixels, where "
            "fixed per-day costs (opening files, starting threads) dominate the per-pixel "
            "rates, so the extrapolation overstates the hours; run `make demo` first for "
            "the demo world's figures."
        ]
    return []


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
    tables = [t for t in (roofline_table(records), extrapolation_table(records)) if t]
    doc = write_results(
        records,
        env,
        out_dir / "bench.json",
        out_dir / "bench.md",
        title=f"smci bench ({', '.join(names)}; size {size})",
        notes=NOTES
        + [n for name in names for n in SUITE_NOTES.get(name, [])]
        + world_notes(records),
        tables=tables,
    )
    for name in names:
        if name == "scaling":
            from smci_gpu.bench.scaling import plot_scaling

            plot_scaling(doc, out_dir / "scaling.png")
        elif name == "kernels":
            plot_throughput(doc, name, out_dir / f"{name}.png")
        else:
            plot_rates(doc, name, out_dir / f"{name}.png")
    return doc


NOTES = [
    "Times are medians of repeats after one untimed warm-up; spread = (max − min) / median.",
]
#: Notes that concern one suite, shown when it ran.
SUITE_NOTES = {
    "kernels": ["Kernel GB/s count each input read once and each output written once."],
    "inference": [
        "Inference engines: packed = PackedForest as production runs it (cell groups where "
        "rows share their ERA5-Land columns, the grouping timed with it); packed_rowwise = "
        "the same forest walked row by row; predict = rows in random order, "
        "predict_tile_order = production order (a tile's pixels in turn).",
    ],
    "produce": [
        "The extrapolation assumes days are independent (they are) and that reading scales "
        "with the devices (a parallel file system); it divides one device's hours by N.",
        "produce/total xarray+sklearn is the plain approach for the same days: same readers, "
        "xarray sel/interp, scikit-learn predict, to_netcdf float32.",
    ],
}


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
