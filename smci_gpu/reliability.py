"""Reliability run: a generated bad-input corpus and injected faults against a trained world.

Every corpus case damages one input of a copy of a trained world (ERA5-Land, stations, ISMN,
static maps, config, models), runs what reads it, and passes when the engine answers with
its own error naming the input (or drops and counts the record, where that is the
documented behaviour) and the product folder is byte-for-byte unchanged. Fault injection
kills ``smci produce`` with SIGKILL at seeded moments and resumes, and fails a write as a
full disk would; the product must end identical in data to a clean run.

``python -m smci_gpu.reliability --kills 20`` writes ``reliability.json`` and the markdown
table the README shows.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smci_gpu.errors import SmciError

DAY = "2018-06-01"


@dataclass
class Case:
    """One damaged input: how to damage it, what to run, what the message must name."""

    name: str
    area: str
    damage: Callable[[Path], None]
    run: Callable[[Path], Any]
    names: str  # a substring the error message must contain
    outcome: str = "error"  # or "counted": the record is dropped and counted


# --------------------------------------------------------------------------- helpers


def _cfg(wd: Path, **overrides):
    from smci_gpu.config import load_config

    return load_config(workdir=wd, overrides={"device": "cpu", **overrides}, environ={})


def _era5_files(wd: Path) -> list[Path]:
    return sorted((wd / "inputs" / "era5land").glob("*.nc"))


def _state(wd: Path) -> Path:
    """The file with the daily states of the month the ERA5-Land cases read."""
    return next(p for p in _era5_files(wd) if "mean" in p.name and "201804" in p.name)


def _rewrite_era5(wd: Path, edit: Callable) -> None:
    import xarray as xr

    path = _state(wd)
    with xr.open_dataset(path, engine="netcdf4") as ds:
        new = edit(ds.load())
    path.unlink()
    new.to_netcdf(path, engine="netcdf4")


def _load_era5(wd: Path):
    from smci_gpu.io.era5land import Era5LandArchive

    return Era5LandArchive.from_folder(wd / "inputs" / "era5land").load(
        "2018-04-01", "2018-04-03", ["swvl1", "t2m", "tp"]
    )


def _station_csv(wd: Path) -> Path:
    return sorted((wd / "inputs" / "stations").glob("*.csv"))[0]


def _read_stations(wd: Path):
    from smci_gpu.io.stations import read_stations

    return read_stations(wd / "inputs" / "stations", list(range(10, 101, 10)))


def _edit_csv(wd: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    path = _station_csv(wd)
    edit(pd.read_csv(path, dtype={"station_id": str})).to_csv(path, index=False)


def _read_static(wd: Path):
    from smci_gpu.features import Predictors

    return Predictors.load(_cfg(wd), DAY, DAY)


def _produce(wd: Path, days=(DAY, "2018-06-02")):
    from rich.console import Console

    from smci_gpu.produce import produce

    stats = produce(_cfg(wd), Console(quiet=True), *days)
    if stats["failed"]:
        raise SmciError("; ".join(f"{d}: {e}" for d, e in stats["failed"].items()))
    return stats


def _write_toml(wd: Path, text: str) -> None:
    (wd / "smci.toml").write_text((wd / "smci.toml").read_text() + "\n" + text + "\n")


def _static(wd: Path, name: str) -> Path:
    return wd / "inputs" / "static" / f"{name}.tif"


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _rewrite_geotiff(path: Path, crs: str | None, shift: float = 0.0, nodata=True) -> None:
    import rasterio

    with rasterio.open(path) as src:
        data = src.read(1)
        t = src.transform
        profile = src.profile
    from rasterio.transform import Affine

    profile.update(transform=Affine(t.a, t.b, t.c + shift, t.d, t.e, t.f + shift), crs=crs)
    if not nodata:
        profile.pop("nodata", None)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _ismn(wd: Path, text: str, name="NET_NET_S1_sm_0.100000_0.100000_P_2018_2018.stm"):
    (wd / "inputs" / "stations" / name).write_text(text)


HEADER = "NET NET S1 40.1 114.1 900 0.10 0.10 probe\n"


def _card(wd: Path) -> Path:
    return wd / "models" / "layer_010cm" / "card.json"


def _edit_card(wd: Path, **changes) -> None:
    card = json.loads(_card(wd).read_text())
    card.update(changes)
    _card(wd).write_text(json.dumps(card))


def _edit_forest(wd: Path, threshold_shift: float = 0.0, **header_changes) -> None:
    path = wd / "models" / "layer_010cm" / "forest.npz"
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays["header"]).decode())
    header.update(header_changes)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    arrays["threshold"] = arrays["threshold"] + np.float32(threshold_shift)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


# --------------------------------------------------------------------------- the corpus


def corpus() -> list[Case]:
    """The bad-input cases (at least 30), each built from a trained world."""
    era, st, ras, cfg, mod = "ERA5-Land", "stations", "rasters", "config", "models"
    c = [
        Case("truncated NetCDF", era, lambda w: _truncate(_state(w)), _load_era5, "daily_mean_201804.nc"),
        Case("empty NetCDF", era, lambda w: _state(w).write_bytes(b""), _load_era5, "is empty"),
        Case("NetCDF with garbage bytes", era, lambda w: _state(w).write_bytes(b"CDF\x01" + os.urandom(64)), _load_era5, "daily_mean_201804.nc"),
        Case("variable missing", era, lambda w: _rewrite_era5(w, lambda d: d.drop_vars("swvl1")), _load_era5, "swvl1"),
        Case("soil moisture in %", era, lambda w: _rewrite_era5(w, lambda d: d.assign(swvl1=(d.swvl1 * 100).assign_attrs(units="%"))), _load_era5, "units '%'"),
        Case("temperature in °C", era, lambda w: _rewrite_era5(w, lambda d: d.assign(t2m=(d.t2m - 273.15).assign_attrs(units="degC"))), _load_era5, "expected K"),
        Case("duplicate timestamps", era, lambda w: _rewrite_era5(w, lambda d: d.isel({_tdim(d): [0, 0, *range(1, d.sizes[_tdim(d)])]})), _load_era5, "repeats time stamps"),
        Case("no latitude axis", era, lambda w: _rewrite_era5(w, lambda d: d.rename(latitude="y")), _load_era5, "latitude"),
        Case("day in two files", era, lambda w: shutil.copy(_state(w), _state(w).with_name("copy.nc")), _load_era5, "appears in two files"),
        Case("GRIB that is not GRIB", era, lambda w: (w / "inputs" / "era5land" / "x.grib").write_bytes(b"GRIB" + os.urandom(100)), _load_era5, "x.grib"),
        Case("missing ERA5-Land month", era, lambda w: [p.unlink() for p in _era5_files(w) if "201806" in p.name], lambda w: _produce(w, days=("2018-06-03", "2018-06-04")), "swvl1"),
        Case("station CSV bad date", st, lambda w: _edit_csv(w, lambda d: d.assign(time=d.time.where(d.index != 3, "2018-02-30T00:00"))), _read_stations, "bad time"),
        Case("station CSV in %", st, lambda w: _edit_csv(w, lambda d: d.assign(sm=d.sm * 100)), _read_stations, "looks like percent"),
        Case("station CSV missing column", st, lambda w: _edit_csv(w, lambda d: d.drop(columns="sm")), _read_stations, "lacks column"),
        Case("station CSV empty", st, lambda w: _station_csv(w).write_text(""), _read_stations, "is empty"),
        Case("station moves", st, lambda w: _edit_csv(w, lambda d: d.assign(lat=d.lat.where(d.index != 5, d.lat + 1))), _read_stations, "changes lat/lon"),
        Case("depth not in the layer table", st, lambda w: _edit_csv(w, lambda d: d.assign(depth_cm=d.depth_cm.where(d.index != 2, 15))), _read_stations, "unknown_depth", "counted"),
        Case("duplicate station timestamps", st, lambda w: _edit_csv(w, lambda d: pd.concat([d, d.iloc[:3]])), _read_stations, "duplicate_time", "counted"),
        Case("ISMN zip corrupt", st, lambda w: (w / "inputs" / "stations" / "ismn.zip").write_bytes(b"PK\x03\x04junk"), _read_stations, "ismn.zip"),
        Case("ISMN file in neither format", st, lambda w: _ismn(w, "2018/06/01 00:00 0.2 G M\n"), _read_stations, "neither header+values nor CEOP"),
        Case("ISMN bad date", st, lambda w: _ismn(w, HEADER + "2018/13/01 00:00 0.2 G M\n"), _read_stations, "bad date"),
        Case("GeoTIFF for another region", ras, lambda w: _rewrite_geotiff(_static(w, "dem"), "EPSG:4326", shift=20.0), _read_static, "dem.tif has values on only"),
        Case("GeoTIFF without CRS", ras, lambda w: _rewrite_geotiff(_static(w, "clay" if _static(w, "clay").exists() else "cl"), None), _read_static, "has no CRS"),
        Case("GeoTIFF truncated", ras, lambda w: _truncate(_static(w, "por")), _read_static, "por.tif"),
        Case("GeoTIFF missing", ras, lambda w: _static(w, "bd").unlink(), _read_static, "bd.tif"),
        Case("GeoTIFF empty", ras, lambda w: _static(w, "grav").write_bytes(b""), _read_static, "grav.tif is empty"),
        Case("config unknown key", cfg, lambda w: _write_toml(w, "[qc]\nspike_ratoi = 3"), _cfg, "unknown key 'qc.spike_ratoi'"),
        Case("config wrong type", cfg, lambda w: _write_toml(w, "[dask]\nn_workers = 'many'"), _cfg, "dask.n_workers"),
        Case("config factor out of range", cfg, lambda w: _write_toml(w, "[grid]\ncoarse_factor = 0"), _cfg, "grid.coarse_factor"),
        Case("config unknown layer", cfg, lambda w: (w / "smci.toml").write_text("layers = [15]\n" + (w / "smci.toml").read_text()), _cfg, "layers"),
        Case("config not TOML", cfg, lambda w: (w / "smci.toml").write_text("[forest\n"), _cfg, "not valid TOML"),
        Case("model card features differ", mod, lambda w: _edit_card(w, features=["dem"]), lambda w: _produce(w), "trained on features"),
        Case("model from another grid", mod, lambda w: _edit_card(w, grid_resolution_arcsec=60.0), lambda w: _produce(w), "trained on predictors at 60.0"),
        Case("model file tampered", mod, lambda w: _edit_forest(w, threshold_shift=0.5), lambda w: _produce(w), "digest mismatch"),
        Case("model file of another version", mod, lambda w: _edit_forest(w, version=99), lambda w: _produce(w), "version 99"),
        Case("model card missing", mod, lambda w: _card(w).unlink(), lambda w: _produce(w), "card.json"),
    ]  # fmt: skip
    return c


def _tdim(ds) -> str:
    return "valid_time" if "valid_time" in ds.dims else "time"


# --------------------------------------------------------------------------- running


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def run_case(case: Case, world: Path, scratch: Path) -> dict[str, Any]:
    """Damage a copy of ``world``, run, and judge the answer and the product folder."""
    wd = scratch / "case"
    if wd.exists():
        shutil.rmtree(wd)
    shutil.copytree(world, wd)
    before = _digest(wd / "product")
    message, outcome = "", "no error"
    try:
        case.damage(wd)
        result = case.run(wd)
        if case.outcome == "counted" and isinstance(result, tuple):
            message, outcome = json.dumps(result[1]), "counted"
    except SmciError as exc:
        message, outcome = str(exc), "error"
    except Exception as exc:  # noqa: BLE001 - a bare exception is what this run looks for
        message, outcome = f"{type(exc).__name__}: {exc}", "crash"
    counted = outcome == "counted" and json.loads(message).get(case.names, 0) > 0
    named = outcome == "error" and case.names in message
    unchanged = _digest(wd / "product") == before
    return {
        "case": case.name,
        "area": case.area,
        "outcome": outcome,
        "passed": bool((named or counted) and unchanged and outcome == case.outcome),
        "product_unchanged": unchanged,
        "message": message.splitlines()[0][:200] if message else "",
    }


def kill_and_resume(world: Path, scratch: Path, kills: int, seed: int) -> dict[str, Any]:
    """SIGKILL `smci produce` at seeded moments, resume each time; compare with a clean run."""
    import xarray as xr
    from rich.console import Console

    from smci_gpu.produce import produce

    start, end = "2018-05-20", "2018-06-08"
    clean = scratch / "clean"
    shutil.copytree(world, clean, ignore=shutil.ignore_patterns("product"))
    produce(_cfg(clean), Console(quiet=True), start, end)

    def data(folder: Path) -> dict[str, np.ndarray]:
        return {
            p.name: xr.open_dataset(p, mask_and_scale=False, engine="netcdf4").sm.values
            for p in sorted(folder.glob("SMCI_1km_*.nc"))
        }

    want = data(clean / "product" / "1km")
    rng = np.random.default_rng(seed)
    survived, lost, truncated, mid_run = 0, 0, 0, 0
    for _ in range(kills):
        wd = scratch / "killed"
        if wd.exists():
            shutil.rmtree(wd)
        shutil.copytree(world, wd, ignore=shutil.ignore_patterns("product"))
        cmd = [sys.executable, "-m", "smci_gpu.cli", "-w", str(wd), "--device", "cpu"]
        proc = subprocess.Popen(
            [*cmd, "produce", "--start", start, "--end", end],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Wait for a seeded number of finished days, then kill a seeded moment later (often
        # while the next file is being written).
        target, out = int(rng.integers(1, len(want))), wd / "product" / "1km"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(out.glob("SMCI_1km_*.nc"))) >= target:
                break
            time.sleep(0.01)
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at_kill = data(out) if out.exists() else {}
        mid_run += int(0 < len(at_kill) < len(want))
        for name, values in at_kill.items():
            truncated += int(not np.array_equal(values, want[name]))
        produce(_cfg(wd), Console(quiet=True), start, end)
        got = data(out)
        same = got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)
        survived += int(same)
        lost += sum(int(k not in got or not np.array_equal(got[k], want[k])) for k in want)
    return {
        "kills": kills,
        "mid_run": mid_run,  # kills that found some, not all, days written
        "survived": survived,
        "days_lost": lost,
        "bad_final_files": truncated,
    }


def full_disk(world: Path, scratch: Path) -> dict[str, Any]:
    """A write that fails as a full disk does: the day fails, no final file, others written."""
    import xarray as xr
    from rich.console import Console

    from smci_gpu.produce import produce

    wd = scratch / "disk"
    shutil.copytree(world, wd, ignore=shutil.ignore_patterns("product"))
    real = xr.Dataset.to_netcdf

    def failing(self, path, *args, **kwargs):
        if "20180602" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, path, *args, **kwargs)

    xr.Dataset.to_netcdf = failing
    try:
        stats = produce(_cfg(wd), Console(quiet=True), "2018-06-01", "2018-06-03")
    finally:
        xr.Dataset.to_netcdf = real
    names = sorted(p.name for p in (wd / "product" / "1km").glob("SMCI_*"))
    ok = list(stats["failed"]) == ["2018-06-02"] and "20180602" not in "".join(names)
    return {"passed": ok and len(names) == 2, "files": names}


def run_all(world: Path, scratch: Path, kills: int = 20, seed: int = 0) -> dict[str, Any]:
    cases = [run_case(c, world, scratch) for c in corpus()]
    return {
        "date": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d"),
        "cases": cases,
        "kill_resume": kill_and_resume(world, scratch, kills, seed) if kills else None,
        "full_disk": full_disk(world, scratch),
    }


def markdown(result: dict[str, Any]) -> str:
    cases = result["cases"]
    passed = sum(c["passed"] for c in cases)
    kr = result["kill_resume"] or dict.fromkeys(
        ("kills", "mid_run", "survived", "days_lost", "bad_final_files"), 0
    )
    lines = [
        f"Reliability run of {result['date']} (`python -m smci_gpu.reliability`):",
        "",
        "| what | tried | survived | data lost |",
        "|---|---|---|---|",
        f"| bad-input cases (clear error naming the input, or dropped and counted; product "
        f"folder unchanged) | {len(cases)} | {passed} | 0 |",
        f"| SIGKILL of `smci produce` at seeded moments ({kr['mid_run']} mid-run), then resume "
        f"| {kr['kills']} | "
        f"{kr['survived']} | {kr['days_lost']} days ({kr['bad_final_files']} bad final files) |",
        f"| failed write (disk full) | 1 | {int(result['full_disk']['passed'])} | 0 |",
        "",
        "| case | area | outcome | passed |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {c['case']} | {c['area']} | {c['outcome']} | {'yes' if c['passed'] else '**no**'} |"
        for c in cases
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, help="a trained world (default: tiny, built)")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reliability"))
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="smci-reliability-"))
    world = args.world or _tiny_trained_world()
    result = run_all(world, scratch, args.kills, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reliability.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (args.out / "reliability.md").write_text(text)
    print(text)


def _tiny_trained_world() -> Path:
    from smci_gpu.bench.produce import trained_world

    world = trained_world(None)
    _produce(world)  # a product folder that the cases must leave unchanged
    return world


if __name__ == "__main__":
    main()
