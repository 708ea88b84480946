"""SMCI1.0 layout: adding a day writes that day only; a SIGKILL never leaves a day that looks
complete, and resuming gives the files an uninterrupted run gives."""

from __future__ import annotations

import shutil
import textwrap

import netCDF4
import numpy as np
import pandas as pd
import pytest

from smci_gpu import layout
from smci_gpu.config import load_config
from smci_gpu.grid import RegularGrid
from smci_gpu.io.writer import FILL, day_file_name, product_dataset, write_day

from .conftest import run_killable_child

RES = 30.0 / 3600.0
GRID = RegularGrid(100.0, 30.0, RES, 24, 32)  # on the published 30″ grid
DEPTHS = [10, 20, 30]
START = pd.Timestamp("2019-12-29")  # days cross into 2020 (a leap year)


def _values(day: pd.Timestamp, shape=(3, 24, 32)) -> np.ndarray:
    rng = np.random.default_rng(day.day_of_year + 1000 * day.year)
    sm = rng.uniform(0.02, 0.55, shape).astype(np.float32)
    sm[:, :3, :5] = np.nan  # sea
    return sm


def _expected_counts(sm: np.ndarray) -> np.ndarray:
    """Hand-worked encoding: round(m³/m³ × 1000), −999 where there is no value."""
    return np.where(np.isnan(sm), -999, np.rint(sm.astype(np.float64) * 1000)).astype(np.int16)


def _daily(folder, day, grid=GRID, tag="a"):
    sm = _values(day, (len(DEPTHS), *grid.shape))
    attrs = {"config_hash": tag, "model_digests": "m", **grid.to_attrs()}
    write_day(folder / day_file_name(day), product_dataset(sm, day, DEPTHS, grid, attrs))


def _cfg(wd):
    return load_config(workdir=wd, overrides={"device": "cpu"})


def _year_file(wd, year, depth):
    return wd / "product" / "smci1_1km" / f"SMCI_1km_{year}_{depth}cm.nc"


def _read(path):
    with netCDF4.Dataset(path) as nc:
        v = nc["SMCI"]
        v.set_auto_maskandscale(False)
        r0 = round((GRID.south - 18.0) / RES)
        c0 = round((GRID.west - 73.0) / RES)
        region = v[:, r0 : r0 + GRID.ny, c0 : c0 + GRID.nx]
        return {
            "SMCI": np.asarray(region),
            "day_written": np.asarray(nc["day_written"][:]),
            "time": np.asarray(nc["time"][:]),
            "shape": v.shape,
        }


def test_adding_a_day_reads_and_writes_only_that_day(tmp_path, monkeypatch):
    src = tmp_path / "product" / "1km"
    src.mkdir(parents=True)
    days = pd.date_range(START, periods=3)
    for d in days:
        _daily(src, d)
    cfg = _cfg(tmp_path)
    first = layout.smci1_layout(cfg)
    assert first["days_added"] == 3 * len(DEPTHS)  # 2019: 3 days; 2020: none yet
    assert sorted(first["rebuilt"]) == sorted(first["written"])
    new = START + pd.Timedelta(days=3)  # 2020-01-01
    _daily(src, new)
    opened = []
    real_read = layout.read_day
    monkeypatch.setattr(layout, "read_day", lambda p: opened.append(p.name) or real_read(p))
    second = layout.smci1_layout(cfg)
    # The first day of each year (grid and depths) and the new day; nothing rebuilt.
    assert opened == [day_file_name(days[0]), day_file_name(new), day_file_name(new)]
    assert second["days_added"] == len(DEPTHS) and second["rebuilt"] == [
        f"SMCI_1km_2020_{d}cm.nc" for d in DEPTHS
    ]
    assert sorted(second["current"]) == sorted(f"SMCI_1km_2019_{d}cm.nc" for d in DEPTHS)
    _daily(src, new + pd.Timedelta(days=1))
    third = layout.smci1_layout(cfg)
    assert third["days_added"] == len(DEPTHS) and third["rebuilt"] == []
    for k, depth in enumerate(DEPTHS):
        got = _read(_year_file(tmp_path, 2020, depth))
        assert got["shape"] == (366, 4320, 7560)  # the leap year's whole time axis
        assert got["day_written"].tolist() == [1, 1] + [0] * 364
        for i in (0, 1):
            want = _expected_counts(_values(new + pd.Timedelta(days=i))[k])
            np.testing.assert_array_equal(got["SMCI"][i], want)
        assert (got["SMCI"][2:] == FILL).all()
        old = _read(_year_file(tmp_path, 2019, depth))
        assert old["day_written"][-3:].tolist() == [1, 1, 1] and old["day_written"].sum() == 3
        np.testing.assert_array_equal(old["time"][:2], [17897, 17898])  # 2019-01-01, -02
        np.testing.assert_array_equal(old["SMCI"][362], _expected_counts(_values(START)[k]))


def test_a_killed_writers_file_with_a_damaged_day_is_rebuilt(tmp_path):
    src = tmp_path / "product" / "1km"
    src.mkdir(parents=True)
    for d in pd.date_range("2020-03-01", periods=2):
        _daily(src, d)
    cfg = _cfg(tmp_path)
    layout.smci1_layout(cfg)
    path = _year_file(tmp_path, 2020, 20)
    reference = _read(path)
    layout._journal(path).write_text("host 1\n")  # killed after its last flag: file sound
    assert layout.smci1_layout(cfg)["written"] == [] and not layout._journal(path).exists()
    with netCDF4.Dataset(path, "a") as nc:  # what a torn update can leave: a flagged day changed
        nc["SMCI"].set_auto_maskandscale(False)
        r0, c0 = round((GRID.south - 18.0) / RES), round((GRID.west - 73.0) / RES)
        nc["SMCI"][60, r0 + 10, c0 + 10] = 7
    assert layout.smci1_layout(cfg)["written"] == []  # no journal: the file is trusted
    layout._journal(path).write_text("host 1\n")  # a writer died while the file was open
    done = layout.smci1_layout(cfg)
    assert done["rebuilt"] == [path.name] and not layout._journal(path).exists()
    got = _read(path)
    for key in ("SMCI", "day_written"):
        np.testing.assert_array_equal(got[key], reference[key])


def test_a_file_of_other_provenance_is_rebuilt(tmp_path):
    src = tmp_path / "product" / "1km"
    src.mkdir(parents=True)
    day = pd.Timestamp("2020-03-01")
    _daily(src, day)
    cfg = _cfg(tmp_path)
    layout.smci1_layout(cfg)
    _daily(src, day, tag="b")  # the day produced again by another config
    assert len(layout.smci1_layout(cfg)["rebuilt"]) == len(DEPTHS)
    with netCDF4.Dataset(_year_file(tmp_path, 2020, 10)) as nc:
        assert nc.getncattr("config_hash") == "b"


CHILD = textwrap.dedent(
    """
    import shutil, sys
    from pathlib import Path
    import netCDF4, xarray
    from smci_gpu.config import load_config
    from smci_gpu.layout import smci1_layout
    wd, pool = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = load_config(workdir=wd, overrides={"device": "cpu"})
    dest = wd / "product" / "1km"
    dest.mkdir(parents=True, exist_ok=True)
    print("ready", flush=True)
    for f in sorted(pool.glob("*.nc")):
        if not (dest / f.name).exists():
            shutil.copy(f, dest / f.name)
        smci1_layout(cfg)
    """
)
KILL_GRID = RegularGrid(100.0, 30.0, RES, 160, 160)
KILL_DAYS = pd.date_range("2020-02-27", periods=4)


def _run_child(wd, pool, kill_after: float | None) -> float | None:
    """Run the layout child; SIGKILL it ``kill_after`` s after it is ready, or time it."""
    return run_killable_child(CHILD, str(wd), str(pool), kill_after=kill_after)


@pytest.fixture(scope="module")
def kill_pool(tmp_path_factory):
    """Daily files of 4 days on a 160 × 160 region, and the uninterrupted run's year files."""
    pool = tmp_path_factory.mktemp("pool")
    for d in KILL_DAYS:
        _daily_kill(pool, d)
    ref = tmp_path_factory.mktemp("ref")
    return pool, ref, _run_child(ref, pool, None)


def _daily_kill(folder, day):
    sm = _values(day, (len(DEPTHS), *KILL_GRID.shape))
    attrs = {"config_hash": "a", "model_digests": "m", **KILL_GRID.to_attrs()}
    write_day(folder / day_file_name(day), product_dataset(sm, day, DEPTHS, KILL_GRID, attrs))


def _read_region(path, grid):
    with netCDF4.Dataset(path) as nc:
        v = nc["SMCI"]
        v.set_auto_maskandscale(False)
        r0, c0 = round((grid.south - 18.0) / RES), round((grid.west - 73.0) / RES)
        flags = np.asarray(nc["day_written"][:])
        return np.asarray(v[:, r0 : r0 + grid.ny, c0 : c0 + grid.nx]), flags


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sigkill_during_layout_updates_then_resume_is_identical(kill_pool, tmp_path, seed):
    pool, ref, run_s = kill_pool
    wd = tmp_path / "w"
    _run_child(wd, pool, float(np.random.default_rng(seed).uniform(0.0, run_s * 0.8)))
    out = wd / "product" / "smci1_1km"
    # Right after the kill: every day flagged in a readable file holds its final values.
    for path in sorted(out.glob("SMCI_1km_*.nc")) if out.exists() else []:
        try:
            got, flags = _read_region(path, KILL_GRID)
        except Exception:  # noqa: BLE001 - a torn file is allowed; resume rebuilds it
            assert layout._journal(path).exists()
            continue
        want, _ = _read_region(ref / "product" / "smci1_1km" / path.name, KILL_GRID)
        for i in np.flatnonzero(flags == 1):
            np.testing.assert_array_equal(got[i], want[i])
    _run_child(wd, pool, None)
    assert not list(out.glob(".*"))  # no journal or temporary left
    for path in sorted((ref / "product" / "smci1_1km").glob("*.nc")):
        want, want_flags = _read_region(path, KILL_GRID)
        got, flags = _read_region(out / path.name, KILL_GRID)
        np.testing.assert_array_equal(flags, want_flags)
        np.testing.assert_array_equal(got, want)
    shutil.rmtree(wd)
