"""What a day costs in the Zarr product store at China size (staging and block copy).

python benchmarks/bench_zarr_days.py [--layers 4] [--days 8] [--out benchmarks/results-storage]

``ZarrProduct.write_day`` on the published 30″ grid (4320 × 7560) with the default chunks
(8 days × 256 × 256) and zstd 1 + shuffle: each day is staged (Blosc-LZ4) and the 8th day
triggers the block copy into the store. CPU and wall seconds per day (process-wide, all
threads) and per layer; the days are the storage benchmark's China day with the layers
shifted by the day number, so no two days are equal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_storage import china_day  # noqa: E402

from smci_gpu import layout  # noqa: E402
from smci_gpu.io.zarr_store import open_product  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results-storage")
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()
    base = china_day(args.layers)
    grid = layout.PUBLISHED["1km"]
    scratch = Path(tempfile.mkdtemp(prefix="smci-zarr-bench-", dir=args.tmp))
    days = pd.date_range("2020-01-01", periods=args.days)
    layers = [10 * (k + 1) for k in range(args.layers)]
    attrs = {"config_hash": "x", "model_digests": "y", **grid.to_attrs()}
    store = open_product(scratch, "1km", grid, layers, days, attrs, (8, 256, 256))
    per_day = []
    for i, day in enumerate(days):
        counts = np.where(base == -999, base, base + np.int16(i)).astype(np.int16)
        w0, c0 = time.perf_counter(), time.process_time()
        store.write_day(day, counts)
        per_day.append(
            {"day": i + 1, "wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0}
        )
        print(per_day[-1], flush=True)
    assert (np.asarray(store.written[:]) == 1).all()
    w0, c0 = time.perf_counter(), time.process_time()
    got = store.sm[3, 0]
    map_read = {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0}
    np.testing.assert_array_equal(got, np.where(base[0] == -999, -999, base[0] + 3))
    w0, c0 = time.perf_counter(), time.process_time()
    store.sm[:, 0, 2500, 5000]
    point = {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0}
    size = sum(p.stat().st_size for p in store.path.rglob("*") if p.is_file())
    shutil.rmtree(scratch, ignore_errors=True)
    cpu = sum(d["cpu_s"] for d in per_day)
    result = {
        "grid": [grid.ny, grid.nx],
        "layers": args.layers,
        "days": args.days,
        "chunks": [8, 1, 256, 256],
        "codec": "zstd1+shuffle",
        "staging": "blosc-lz4-5",
        "per_day": per_day,
        "cpu_s_per_day": cpu / args.days,
        "cpu_s_per_day_per_layer": cpu / args.days / args.layers,
        "store_bytes_per_day_per_layer": size / args.days / args.layers,
        "map_read_one_layer": map_read,
        "point_series_8_days": point,
        "load_avg_at_end": os.getloadavg(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "zarr_days.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "per_day"}, indent=2))


if __name__ == "__main__":
    main()
