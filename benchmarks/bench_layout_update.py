"""What adding one day to a China-size SMCI1.0 year-layer file costs, two ways.

python benchmarks/bench_layout_update.py [--days 4] [--out benchmarks/results-storage]

* in place (what ``smci layout`` does): the day's 4320 × 7560 int16 slice written into its
  slot of the year file, flushed, then its ``day_written`` flag, flushed;
* copy and rename (the crash-safe alternative without a journal): the same, into a copy of
  the year file, renamed over it; the copy grows with the days the file holds.

The year file is the layout's own (``layout._year_layer_file``: whole-year time axis,
(1, 512, 512) chunks, zlib 4 + shuffle); the slice is one layer of the storage benchmark's
China day. Times are wall and CPU seconds per day added; the copy's cost per day is
projected over a year from the measured copy rate and the measured bytes per day.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_storage import china_day  # noqa: E402

from smci_gpu import layout  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results-storage")
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()
    import netCDF4

    counts = china_day(1)[0]
    scratch = Path(tempfile.mkdtemp(prefix="smci-layout-bench-", dir=args.tmp))
    path = scratch / "SMCI_1km_2020_10cm.nc"
    attrs = {"config_hash": "x", "model_digests": "y"}
    grid = layout.PUBLISHED["1km"]
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        layout._year_layer_file(nc, grid, 2020, 10, attrs, "1km", f"0 0 {grid.ny} {grid.nx}")
    in_place, copies = [], []
    for i in range(args.days):
        w0, c0 = time.perf_counter(), time.process_time()
        with netCDF4.Dataset(path, "a") as nc:
            layout._write_day(nc, i, counts, 0, 0)
        in_place.append(
            {
                "day": i + 1,
                "wall_s": time.perf_counter() - w0,
                "cpu_s": time.process_time() - c0,
                "file_bytes": path.stat().st_size,
            }
        )
        w0 = time.perf_counter()
        tmp = scratch / "copy.nc"
        shutil.copyfile(path, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, scratch / "renamed.nc")
        copies.append({"day": i + 1, "copy_wall_s": time.perf_counter() - w0})
        print(in_place[-1], copies[-1], flush=True)
    per_day = (in_place[-1]["file_bytes"] - in_place[0]["file_bytes"]) / max(1, args.days - 1)
    copy_rate = in_place[-1]["file_bytes"] / copies[-1]["copy_wall_s"]
    year_copy_s = sum(d * per_day for d in range(1, 366)) / copy_rate
    shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "in_place": in_place,
        "copy_and_rename": copies,
        "bytes_per_day_slice": per_day,
        "copy_bytes_per_s": copy_rate,
        "projection": {
            "in_place_year_s_per_layer": float(np.median([d["wall_s"] for d in in_place])) * 365,
            "copy_year_s_per_layer": year_copy_s,
            "copy_last_day_s_per_layer": 365 * per_day / copy_rate,
        },
        "load_avg_at_end": os.getloadavg(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "layout_update.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["projection"], indent=2))


if __name__ == "__main__":
    main()
