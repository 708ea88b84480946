"""Product storage on a China-size day: compression choices, chunk shapes, parallel writers.

python benchmarks/bench_storage.py [--layers 10] [--rounds 2] [--out benchmarks/results-storage]

The day is 10 layers × 4320 × 7560 int16 counts of 0.001 m³/m³ (the published 30″ grid,
73–136 E, 18–54 N), fill −999 off land. Land is the ERA5-Land land-sea mask
(``../shared/data/era5/landmask_0.1_0.1.nc``, land fraction > 0.5) taken to 30″ by nearest
cell; values are a smooth large-scale field plus a 0.1° random texture plus per-pixel noise
(s.d. 2 counts), so they compress about as a real day does not hide: a real day's 1 km
texture from soils and land cover may compress somewhat worse.

Every configuration is timed in interleaved rounds (all configurations in round 1, then
all in reverse order in round 2, ...) in one process: the 2-core machine is shared, so
wall times drift; CPU seconds (``time.process_time``: all threads of this process) give
the MB/s per core, which load affects much less. Sizes are the bytes on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from smci_gpu.bench.produce import textured_counts

ROOT = Path(__file__).resolve().parents[1]
MASK = ROOT.parent / "shared" / "data" / "era5" / "landmask_0.1_0.1.nc"
NY, NX, RES, WEST, SOUTH = 4320, 7560, 30.0 / 3600.0, 73.0, 18.0
FILL = -999
#: One day's data, shared with forked writer processes.
_DAY: np.ndarray | None = None


def china_day(layers: int, seed: int = 0) -> np.ndarray:
    """``(layers, 4320, 7560)`` int16 counts, −999 off land (see the module docstring)."""
    import xarray as xr

    with xr.open_dataset(MASK) as ds:
        land01 = ds.land.sel(latitude=slice(54.0, 18.0), longitude=slice(73.0, 136.0)).values
        lat01 = ds.latitude.sel(latitude=slice(54.0, 18.0)).values.astype(np.float64)
        lon01 = ds.longitude.sel(longitude=slice(73.0, 136.0)).values.astype(np.float64)
    lat = SOUTH + (np.arange(NY) + 0.5) * RES
    lon = WEST + (np.arange(NX) + 0.5) * RES
    iy = np.abs(lat[:, None] - lat01[None, :]).argmin(axis=1)
    ix = np.abs(lon[:, None] - lon01[None, :]).argmin(axis=1)
    land = land01[iy][:, ix] > 0.5
    return textured_counts(land, layers, seed, cells=(iy, ix, land01.shape))


def _timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- netCDF4 -------------------------------------------------------------------------------


def nc_write(path: Path, data: np.ndarray, level: int, shuffle: bool, chunk) -> None:
    import netCDF4

    layers, ny, nx = data.shape
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("depth", layers)
        nc.createDimension("lat", ny)
        nc.createDimension("lon", nx)
        v = nc.createVariable(
            "sm",
            "i2",
            ("depth", "lat", "lon"),
            zlib=level > 0,
            complevel=max(level, 1),
            shuffle=shuffle,
            chunksizes=(1, *chunk),
            fill_value=np.int16(FILL),
        )
        v.set_auto_maskandscale(False)
        for k in range(layers):
            v[k] = data[k]


def nc_read(path: Path) -> np.ndarray:
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        v = nc["sm"]
        v.set_auto_maskandscale(False)
        return v[:]


# --- Zarr v3 -------------------------------------------------------------------------------


def zarr_codecs(name: str):
    """(filters, compressors) of a named Zarr v3 codec choice (shuffle is bytes → bytes)."""
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec
    from zarr.codecs.numcodecs import Shuffle

    shuffle = [Shuffle(elementsize=2)]
    table = {
        "zstd1": ([], [ZstdCodec(level=1)]),
        "zstd1+shuffle": ([], [*shuffle, ZstdCodec(level=1)]),
        "zstd3+shuffle": ([], [*shuffle, ZstdCodec(level=3)]),
        "blosc-zstd3-shuffle": ([], [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")]),
        "blosc-lz4-5-shuffle": ([], [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]),
        "gzip1+shuffle": ([], [*shuffle, GzipCodec(level=1)]),
    }
    return table[name]


def zarr_write(path: Path, data: np.ndarray, codec: str, chunk, workers: int = 1) -> None:
    import zarr

    filters, compressors = zarr_codecs(codec)
    with zarr.config.set({"threading.max_workers": workers, "async.concurrency": 4 * workers}):
        arr = zarr.create_array(
            store=str(path),
            shape=data.shape,
            chunks=(1, *chunk),
            dtype="int16",
            fill_value=FILL,
            filters=filters,
            compressors=compressors,
            overwrite=True,
        )
        arr[:] = data


def zarr_read(path: Path, workers: int = 1) -> np.ndarray:
    import zarr

    with zarr.config.set({"threading.max_workers": workers}):
        return zarr.open_array(str(path), mode="r")[:]


# --- parallel writers ----------------------------------------------------------------------


def _nc_layer(args) -> None:
    folder, k = args
    nc_write(Path(folder) / f"layer{k}.nc", _DAY[k : k + 1], 4, True, (512, 512))


def nc_layers(folder: Path, processes: int) -> None:
    """Each layer to its own file (the SMCI1.0 layout's unit), in 1 or more processes."""
    jobs = [(str(folder), k) for k in range(_DAY.shape[0])]
    if processes == 1:
        for job in jobs:
            _nc_layer(job)
        return
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_nc_layer, jobs))


# --- chunk shapes for map and point-series reads --------------------------------------------


def chunk_read_costs(day: np.ndarray, shapes, days: int, out: Path, rounds: int) -> list[dict]:
    """Map and point-series read cost of a (days, 1080, 1080) store per chunk shape.

    The region is a quarter-degree-aligned 9° × 9° block of the China day (land-rich),
    repeated over ``days`` days with noise; a China map and a 7,670-day point series are
    scaled from the measured reads by their chunk counts.
    """
    import zarr
    from zarr.codecs import ZstdCodec
    from zarr.codecs.numcodecs import Shuffle

    r0, c0, size = 1800, 3600, 1080
    rng = np.random.default_rng(1)
    region = day[0, r0 : r0 + size, c0 : c0 + size]
    stack = np.empty((days, size, size), dtype=np.int16)
    for t in range(days):
        noisy = region + rng.integers(-3, 4, region.shape).astype(np.int16)
        stack[t] = np.where(region == FILL, FILL, noisy)
    results = []
    stores = {}
    for shape in shapes:
        path = out / f"ts_{'x'.join(map(str, shape))}.zarr"
        arr = zarr.create_array(
            store=str(path),
            shape=stack.shape,
            chunks=shape,
            dtype="int16",
            fill_value=FILL,
            compressors=[Shuffle(elementsize=2), ZstdCodec(level=1)],
            overwrite=True,
        )
        arr[:] = stack
        stores[shape] = path
    timings = {s: {"map": [], "point": []} for s in shapes}
    order = list(shapes)
    for rnd in range(rounds):
        for shape in order if rnd % 2 == 0 else order[::-1]:
            with zarr.config.set({"threading.max_workers": 1}):
                arr = zarr.open_array(str(stores[shape]), mode="r")
                t, cy, cx = shape
                w, c = _timed(lambda a=arr: a[days // 2, :, :])
                timings[shape]["map"].append((w, c))
                w, c = _timed(lambda a=arr: a[:, size // 2 + 7, size // 2 + 3])
                timings[shape]["point"].append((w, c))
    for shape in shapes:
        t, cy, cx = shape
        region_chunks = int(np.ceil(size / cy) * np.ceil(size / cx))
        china_chunks = int(np.ceil(NY / cy) * np.ceil(NX / cx))
        map_cpu = min(c for _, c in timings[shape]["map"])
        point_cpu = min(c for _, c in timings[shape]["point"])
        results.append(
            {
                "chunks": list(shape),
                "chunk_bytes_raw": t * cy * cx * 2,
                "map_region_cpu_s": [c for _, c in timings[shape]["map"]],
                "point_days_cpu_s": [c for _, c in timings[shape]["point"]],
                "days": days,
                "store_bytes": _folder_bytes(stores[shape]),
                "china_map_cpu_s_scaled": map_cpu * china_chunks / region_chunks,
                "point_7670_days_cpu_s_scaled": point_cpu * 7670 / days,
            }
        )
    return results


def netcdf_point_series(day: np.ndarray, days: int, out: Path, rounds: int) -> dict:
    """A point's series over ``days`` daily NetCDF files (one per day, as the product's
    daily files: zlib 1 + shuffle, 512 × 512 chunks) of the same 1080 × 1080 region as
    :func:`chunk_read_costs`, scaled to 7,670 days (one file open and one chunk per day)."""
    import netCDF4

    region = day[0:1, 1800:2880, 3600:4680]
    paths = []
    for t in range(days):
        path = out / f"day{t:04d}.nc"
        nc_write(path, region, 1, True, (512, 512))
        paths.append(path)

    def read() -> None:
        for path in paths:
            with netCDF4.Dataset(path) as nc:
                v = nc["sm"]
                v.set_auto_maskandscale(False)
                v[0, 547, 543]

    cpu = [_timed(read)[1] for _ in range(rounds)]
    return {"days": days, "cpu_s": cpu, "point_7670_days_cpu_s_scaled": min(cpu) * 7670 / days}


def main() -> None:
    global _DAY
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--series-days", type=int, default=64)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results-storage")
    ap.add_argument("--tmp", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument(
        "--netcdf-series-only",
        action="store_true",
        help="only the point series over daily NetCDF files (netcdf_series.json)",
    )
    args = ap.parse_args()
    if args.netcdf_series_only:
        scratch = Path(tempfile.mkdtemp(prefix="smci-storage-", dir=args.tmp))
        res = netcdf_point_series(china_day(1), args.series_days, scratch, args.rounds)
        shutil.rmtree(scratch, ignore_errors=True)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "netcdf_series.json").write_text(json.dumps(res, indent=2))
        print(res)
        return
    t0 = time.perf_counter()
    day = china_day(args.layers)
    _DAY = day
    build_s = time.perf_counter() - t0
    raw = day.nbytes
    land = int((day[0] != FILL).sum())
    scratch = Path(tempfile.mkdtemp(prefix="smci-storage-", dir=args.tmp))
    configs = []
    for level in (1, 4, 9):
        for shuffle in (True, False) if level < 9 else (True,):
            name = f"zlib{level}" + ("+shuffle" if shuffle else "")
            configs.append(("netcdf4", name, (512, 512)))
    for chunk in ((256, 256), (1080, 1890)):
        for name in ("zlib1+shuffle", "zlib4+shuffle"):
            configs.append(("netcdf4", name, chunk))
    for codec in (
        "zstd1",
        "zstd1+shuffle",
        "zstd3+shuffle",
        "blosc-zstd3-shuffle",
        "blosc-lz4-5-shuffle",
        "gzip1+shuffle",
    ):
        configs.append(("zarr", codec, (512, 512)))
    configs.append(("zarr", "zstd1+shuffle", (256, 256)))
    configs.append(("zarr", "zstd1+shuffle", (1080, 1890)))
    rows = {c: {"write": [], "read": [], "bytes": 0} for c in configs}

    def target(cfg) -> Path:
        fmt, name, chunk = cfg
        ext = "nc" if fmt == "netcdf4" else "zarr"
        return scratch / f"{fmt}_{name}_{chunk[0]}x{chunk[1]}.{ext}"

    def write(cfg) -> None:
        fmt, name, chunk = cfg
        path = target(cfg)
        if fmt == "netcdf4":
            level = int(name[4])
            nc_write(path, day, level, "shuffle" in name, chunk)
        else:
            zarr_write(path, day, name, chunk)

    def read(cfg) -> None:
        fmt, _, _ = cfg
        got = nc_read(target(cfg)) if fmt == "netcdf4" else zarr_read(target(cfg))
        if not np.array_equal(np.asarray(got), day):
            raise SystemExit(f"{cfg}: read-back differs from what was written")

    for rnd in range(args.rounds):
        for cfg in configs if rnd % 2 == 0 else configs[::-1]:
            path = target(cfg)
            if path.exists():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            rows[cfg]["write"].append(_timed(lambda c=cfg: write(c)))
            rows[cfg]["bytes"] = _folder_bytes(path)
            rows[cfg]["read"].append(_timed(lambda c=cfg: read(c)))
            r = rows[cfg]
            print(cfg, r["write"][-1], r["read"][-1], r["bytes"], flush=True)
    mb = raw / 1e6
    table = []
    for (fmt, name, chunk), r in rows.items():
        wc = [c for _, c in r["write"]]
        rc = [c for _, c in r["read"]]
        table.append(
            {
                "format": fmt,
                "codec": name,
                "chunk": list(chunk),
                "bytes": r["bytes"],
                "bytes_per_10_layer_day": r["bytes"] * 10 // day.shape[0],
                "ratio": raw / r["bytes"],
                "write_wall_s": [w for w, _ in r["write"]],
                "write_cpu_s": wc,
                "read_wall_s": [w for w, _ in r["read"]],
                "read_cpu_s": rc,
                "encode_mb_per_cpu_s": mb / min(wc),
                "decode_mb_per_cpu_s": mb / min(rc),
            }
        )
    # Parallel writers: 10 per-layer netCDF files in 1 vs 2 processes; zarr 1 vs 2 threads.
    par = {"nc_1proc": [], "nc_2proc": [], "zarr_1thread": [], "zarr_2threads": []}
    for rnd in range(args.rounds + 1):
        for key in par if rnd % 2 == 0 else list(par)[::-1]:
            folder = scratch / f"par_{key}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            if key.startswith("nc"):
                fn = lambda f=folder, k=key: nc_layers(f, 1 if k == "nc_1proc" else 2)  # noqa: E731
            else:
                fn = lambda f=folder, k=key: zarr_write(  # noqa: E731
                    f / "s.zarr", day, "zstd1+shuffle", (512, 512), 1 if "1" in k else 2
                )
            par[key].append(_timed(fn)[0])
            print(key, par[key][-1], flush=True)
    series = chunk_read_costs(
        day, [(1, 512, 512), (8, 256, 256), (32, 128, 128)], args.series_days, scratch, args.rounds
    )
    shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_at_end": os.getloadavg(),
        },
        "day": {
            "shape": list(day.shape),
            "raw_bytes": raw,
            "land_pixels": land,
            "build_s": build_s,
        },
        "rounds": args.rounds,
        "compression": table,
        "parallel_wall_s": par,
        "chunk_reads": series,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "storage.json").write_text(json.dumps(result, indent=2))
    (args.out / "storage.md").write_text(markdown(result))
    print(markdown(result))


def _rng(values) -> str:
    return f"{min(values):.2f}–{max(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def markdown(r: dict) -> str:
    d = r["day"]
    lines = [
        f"China day {d['shape']} int16, {d['raw_bytes'] / 1e6:.0f} MB raw, "
        f"{d['land_pixels']:,} land pixels per layer; {r['rounds']} interleaved rounds; "
        f"{r['machine']['cpus']} CPUs, load average at end {r['machine']['load_avg_at_end']}.",
        "",
        "| format | codec | chunk | MB per 10-layer day | ratio | encode MB/s per core | "
        "write wall s | decode MB/s per core | read wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["compression"]:
        lines.append(
            f"| {row['format']} | {row['codec']} | {row['chunk'][0]}×{row['chunk'][1]} | "
            f"{row['bytes_per_10_layer_day'] / 1e6:.0f} | {row['ratio']:.1f} | "
            f"{row['encode_mb_per_cpu_s']:.0f} | "
            f"{_rng(row['write_wall_s'])} | {row['decode_mb_per_cpu_s']:.0f} | "
            f"{_rng(row['read_wall_s'])} |"
        )
    lines += ["", "| parallel writers | wall s per round |", "|---|---|"]
    for key, values in r["parallel_wall_s"].items():
        lines.append(f"| {key} | {', '.join(f'{v:.1f}' for v in values)} |")
    lines += [
        "",
        "| zarr chunk (t, y, x) | store MB | map read CPU s (region) | "
        "China map CPU s (scaled) | point series CPU s | 7,670-day series CPU s (scaled) |",
        "|---|---|---|---|---|---|",
    ]
    for s in r["chunk_reads"]:
        lines.append(
            f"| {tuple(s['chunks'])} | {s['store_bytes'] / 1e6:.0f} | "
            f"{_rng(s['map_region_cpu_s'])} | {s['china_map_cpu_s_scaled']:.2f} | "
            f"{_rng(s['point_days_cpu_s'])} ({s['days']} days) | "
            f"{s['point_7670_days_cpu_s_scaled']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
