"""A China day's inference and int16 encoding on the GPU beside the CPU (issue #21, item 6).

The lent GPU machine has NumPy, Numba, numba-cuda and CuPy but not the readers (netCDF4,
rasterio, pydantic), so the day's inputs cannot be read there. This script therefore has
two modes:

``--prepare WORLD CARRY`` (here, with the full install): from the China-size world in
WORLD, loads the first production day's predictors, takes a seeded sample of 200,000 land
pixels' feature rows (float32, the config's order; 19 MB) and copies the layers' forests
into CARRY (git-ignored ``.carry/china``; about 22 MB in all, under the device tool's
64 MiB), with ``meta.json`` (land pixels, trees, layers, clip bounds, day).

``CARRY OUT`` (on the device, from ``benchmarks/device_check.sh``): builds a China day's
worth of rows (the land-pixel count, drawn from the sample with a seeded permutation, in
tiles of 2**20 rows as production's tiles), then for every layer predicts, clips and
encodes to int16 on the GPU (only int16 crosses to the host) and on the CPU (Numba, all
cores), compares the two int16 days value by value and writes ``china_device.json``:
seconds per stage on each device, differing values (count, largest difference in
counts), device names.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

TILE_ROWS = 1 << 20
SAMPLE_ROWS = 200_000


def prepare(world: Path, carry: Path) -> None:
    """Write the sample rows, forests and meta of ``world``'s first day into ``carry``."""
    import shutil

    import pandas as pd

    from smci_gpu.config import load_config
    from smci_gpu.features import Predictors

    cfg = load_config(workdir=world, overrides={"device": "cpu"})
    day = pd.Timestamp(cfg.produce.start)
    pred = Predictors.load(cfg, day, day)
    rows, cols = np.nonzero(pred.land_mask())
    rng = np.random.default_rng(21)
    pick = np.sort(rng.choice(rows.size, min(SAMPLE_ROWS, rows.size), replace=False))
    x = pred.features(day, rows[pick], cols[pick])
    carry.mkdir(parents=True, exist_ok=True)
    np.save(carry / "rows.npy", np.ascontiguousarray(x, dtype=np.float32))
    for depth in cfg.layers:
        dest = carry / "models" / f"layer_{depth:03d}cm"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(world / "models" / f"layer_{depth:03d}cm" / "forest.npz", dest)
    card = json.loads((world / "models" / "layer_010cm" / "card.json").read_text())
    meta = {
        "day": f"{day:%Y-%m-%d}",
        "land_pixels": int(rows.size),
        "layers": list(cfg.layers),
        "trees": int(card["forest"]["n_estimators"]),
        "clip": [cfg.produce.clip_min, cfg.produce.clip_max],
    }
    (carry / "meta.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta))


def _day_rows(carry: Path, n: int) -> np.ndarray:
    """``n`` feature rows drawn from the carried sample (seeded; a China day's count)."""
    sample = np.load(carry / "rows.npy")
    idx = np.random.default_rng(7).integers(0, sample.shape[0], n)
    return sample[idx]


def run_day(x: np.ndarray, forests: list, clip, device: str) -> tuple[np.ndarray, dict]:
    """``(layers, n)`` int16 counts of every layer and the seconds per stage."""
    from smci_gpu import backend
    from smci_gpu.encoding import encode_counts

    xp = backend.xp_for(device)
    t = {"to_device": 0.0, "infer": 0.0, "encode": 0.0, "to_host": 0.0}
    out = np.empty((len(forests), x.shape[0]), np.int16)

    def sync():
        if device == "gpu":
            xp.cuda.Device().synchronize()

    for r0 in range(0, x.shape[0], TILE_ROWS):
        t0 = time.perf_counter()
        tile = xp.asarray(x[r0 : r0 + TILE_ROWS])
        sync()
        t["to_device"] += time.perf_counter() - t0
        for k, forest in enumerate(forests):
            t0 = time.perf_counter()
            p = forest.predict(tile)
            sync()
            t1 = time.perf_counter()
            counts = encode_counts(p, clip[0], clip[1])
            sync()
            t2 = time.perf_counter()
            out[k, r0 : r0 + counts.shape[0]] = backend.to_host(counts)
            t["infer"] += t1 - t0
            t["encode"] += t2 - t1
            t["to_host"] += time.perf_counter() - t2
    return out, t


def on_device(carry: Path, out_dir: Path) -> dict:
    """The China day on the GPU and on the CPU; the comparison and the stage seconds."""
    from smci_gpu import backend
    from smci_gpu.model.forest import PackedForest

    meta = json.loads((carry / "meta.json").read_text())
    forests = [
        PackedForest.load(carry / "models" / f"layer_{d:03d}cm" / "forest.npz")
        for d in meta["layers"]
    ]
    x = _day_rows(carry, meta["land_pixels"])
    doc: dict = {"meta": meta, "rows": int(x.shape[0]), "tile_rows": TILE_ROWS}
    results = {}
    devices = ["gpu", "cpu"] if backend.gpu_available() else ["cpu"]
    for device in devices:
        run_day(x[:TILE_ROWS], forests, meta["clip"], device)  # JIT and device warm-up
        t0 = time.perf_counter()
        results[device], doc[f"{device}_seconds"] = run_day(x, forests, meta["clip"], device)
        doc[f"{device}_wall_s"] = time.perf_counter() - t0
        print(device, json.dumps(doc[f"{device}_seconds"]), flush=True)
    if len(results) == 2:
        diff = results["gpu"].astype(np.int32) - results["cpu"]
        doc["int16_values"] = int(diff.size)
        doc["int16_differing"] = int(np.count_nonzero(diff))
        doc["int16_max_abs_diff_counts"] = int(np.abs(diff).max())
    if "gpu" in devices:
        cp = backend.cupy_module()
        doc["gpu"] = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "china_device.json").write_text(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    if sys.argv[1] == "--prepare":
        prepare(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        print(json.dumps(on_device(Path(sys.argv[1]), Path(sys.argv[2])), indent=2))
