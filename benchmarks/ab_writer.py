"""A/B of the daily product writer on a China-size day: netCDF-C's compression vs chunks
compressed on threads and filed directly (``smci_gpu.io.chunks``).

python benchmarks/ab_writer.py [--layers 10] [--rounds 3] [--out benchmarks/results-storage]

The day is :func:`bench_storage.china_day` (10 × 4320 × 7560 int16 counts, the ERA5-Land
land mask, a smooth field with 0.1° texture and per-pixel noise: 213 MB at zlib 1 +
shuffle, the size a realistic day has). Every configuration writes the same dataset with
``smci_gpu.io.writer.write_day`` (what ``smci produce`` calls), in interleaved rounds in one
process (round order reversed every other round); wall seconds, process CPU seconds (all
threads) and bytes on disk per configuration and round. Each file is read back by netCDF-C
and compared with the counts written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_storage import FILL, NX, NY, RES, SOUTH, WEST, china_day  # noqa: E402

from smci_gpu.grid import RegularGrid  # noqa: E402
from smci_gpu.io.writer import product_dataset, write_day  # noqa: E402

#: (label, compressor, threads): None = netCDF-C compresses (the writer before the change).
CONFIGS = [
    ("netCDF-C zlib 1 (before)", None, 1),
    ("zlib 1, 1 thread", "zlib", 1),
    ("zlib 1, 2 threads", "zlib", 2),
    ("ISA-L 2, 1 thread", "isal", 1),
    ("ISA-L 2, 2 threads", "isal", 2),
]


def _check(path: Path, counts: np.ndarray) -> None:
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        var = nc["sm"]
        var.set_auto_maskandscale(False)
        for k in range(counts.shape[0]):  # layer by layer: bounded memory
            if not np.array_equal(var[0, k], counts[k]):
                raise SystemExit(f"{path}: layer {k} differs from the counts written")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results-storage"))
    ap.add_argument("--tmp", type=Path, default=None, help="folder for the files written")
    args = ap.parse_args()
    counts = china_day(args.layers)
    grid = RegularGrid(WEST, SOUTH, RES, NY, NX)
    layers = [10 * (k + 1) for k in range(args.layers)]
    rows: dict[str, dict[str, list[float]]] = {
        c[0]: {"wall": [], "cpu": [], "mb": []} for c in CONFIGS
    }
    load = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for r in range(args.rounds):
            order = CONFIGS if r % 2 == 0 else CONFIGS[::-1]
            for label, compressor, threads in order:
                ds = product_dataset(counts, "2019-07-01", layers, grid, {}, "int16")
                path = Path(tmp) / "day.nc"
                load.append(os.getloadavg()[0])
                w0, c0 = time.perf_counter(), time.process_time()
                write_day(path, ds, "int16", compressor=compressor, threads=threads)
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                if r == 0:
                    _check(path, counts)
                rows[label]["wall"].append(wall)
                rows[label]["cpu"].append(cpu)
                rows[label]["mb"].append(path.stat().st_size / 1e6)
                print(
                    f"round {r + 1} {label:28s} wall {wall:6.2f} s cpu {cpu:6.2f} s "
                    f"{path.stat().st_size / 1e6:7.1f} MB",
                    flush=True,
                )
                path.unlink()
    raw_mb = counts.nbytes / 1e6
    doc = {
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "layers": args.layers,
        "raw_mb": raw_mb,
        "rounds": args.rounds,
        "load_average_1min": [min(load), max(load)],
        "configs": rows,
        "fill": FILL,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ab_writer.json").write_text(json.dumps(doc, indent=1))
    lines = [
        f"China day, {args.layers} layers ({raw_mb:.0f} MB of int16), {args.rounds} interleaved "
        f"rounds, load average {min(load):.1f}–{max(load):.1f}",
        "",
        "| writer | MB on disk | wall s (min–max) | process CPU s (min) | raw MB per CPU s |",
        "|---|---|---|---|---|",
    ]
    for label, _, _ in CONFIGS:
        r = rows[label]
        lines.append(
            f"| {label} | {r['mb'][0]:.0f} | {min(r['wall']):.2f}–{max(r['wall']):.2f} | "
            f"{min(r['cpu']):.2f} | {raw_mb / min(r['cpu']):.0f} |"
        )
    (args.out / "ab_writer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
