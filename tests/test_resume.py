"""Production survives being killed: resume gives the same data, no truncated final file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from rich.console import Console

from smci_gpu.config import load_config
from smci_gpu.errors import OutputError
from smci_gpu.io.writer import verify_day

START, END = "2018-05-20", "2018-06-08"  # 20 days of the tiny world


def _product(folder):
    return {
        p.name: xr.open_dataset(p, mask_and_scale=False, engine="netcdf4").sm.values
        for p in sorted(folder.glob("SMCI_1km_*.nc"))
    }


def test_sigkill_then_resume_equals_an_uninterrupted_run(trained, tmp_path):
    from smci_gpu.produce import produce

    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for wd in (clean, killed):
        shutil.copytree(trained, wd, ignore=shutil.ignore_patterns("product"))
    console = Console(quiet=True)
    cfg_clean = load_config(workdir=clean, overrides={"device": "cpu"})
    produce(cfg_clean, console, START, END)
    reference = _product(clean / "product" / "1km")
    assert len(reference) == 20

    out = killed / "product" / "1km"
    cmd = [sys.executable, "-m", "smci_gpu.cli", "--workdir", str(killed), "--device", "cpu"]
    proc = subprocess.Popen(
        [*cmd, "produce", "--start", START, "--end", END],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("SMCI_1km_*.nc"))) < 3:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(out.glob("SMCI_1km_*.nc"))
    assert 3 <= len(done) < 20, "the kill should land mid-run"
    cfg_killed = load_config(workdir=killed, overrides={"device": "cpu"})
    # Every file under its final name is complete, even the one being written at the kill.
    for path in done:
        assert path.name in reference
        np.testing.assert_array_equal(
            xr.open_dataset(path, mask_and_scale=False, engine="netcdf4").sm.values,
            reference[path.name],
        )
    stats = produce(cfg_killed, console, START, END)
    assert stats["skipped_complete"] == len(done) and stats["written"] == 20 - len(done)
    assert not list(out.glob(".SMCI_*.tmp"))
    resumed = _product(out)
    assert resumed.keys() == reference.keys()
    for name, data in reference.items():
        np.testing.assert_array_equal(resumed[name], data)
        assert verify_day(out / name, {"date": f"{pd.Timestamp(name[9:17]):%Y-%m-%d}"}, data.shape)


def test_a_second_run_on_the_same_folder_refuses(trained, tmp_path):
    from smci_gpu.produce import output_lock

    folder = tmp_path / "product"
    folder.mkdir()
    (folder / ".SMCI_1km_20180601.nc.123.tmp").write_bytes(b"half a file")
    with output_lock(folder):
        assert not list(folder.glob("*.tmp"))  # a dead run's temp file is cleared
        with pytest.raises(OutputError, match="another `smci produce` is writing"):
            with output_lock(folder):
                pass
    with output_lock(folder):  # released after the first run
        pass


def test_missing_era5land_days_fail_alone(trained, tmp_path):
    from smci_gpu.produce import produce

    wd = tmp_path / "w"
    shutil.copytree(trained, wd, ignore=shutil.ignore_patterns("product"))
    cfg = load_config(workdir=wd, overrides={"device": "cpu"})
    # The tiny world's ERA5-Land ends with June 2018: the July days are missing.
    stats = produce(cfg, Console(quiet=True), "2018-06-29", "2018-07-02")
    assert stats["written"] == 2
    assert set(stats["failed"]) == {"2018-07-01", "2018-07-02"}
    for day in ("2018-07-01", "2018-07-02"):
        assert stats["failed"][day].startswith("ERA5-Land lacks this day for swvl1, swvl2")
    names = sorted(p.name for p in (wd / "product" / "1km").glob("SMCI_*"))
    assert names == ["SMCI_1km_20180629.nc", "SMCI_1km_20180630.nc"]


def test_a_full_disk_fails_the_day_and_leaves_no_final_file(trained, tmp_path, monkeypatch):
    import errno

    import xarray as xr

    from smci_gpu.produce import produce

    wd = tmp_path / "w"
    shutil.copytree(trained, wd, ignore=shutil.ignore_patterns("product"))
    cfg = load_config(workdir=wd, overrides={"device": "cpu"})
    real = xr.Dataset.to_netcdf

    def full_disk(self, path, *args, **kwargs):
        if "20180602" in str(path):
            with open(path, "wb") as f:  # part of the file gets written, then the disk is full
                f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 4096)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, "to_netcdf", full_disk)
    stats = produce(cfg, Console(quiet=True), "2018-06-01", "2018-06-03")
    assert list(stats["failed"]) == ["2018-06-02"]
    assert "could not write" in stats["failed"]["2018-06-02"]
    assert "No space left on device" in stats["failed"]["2018-06-02"]
    out = wd / "product" / "1km"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".smci")) == [
        "SMCI_1km_20180601.nc",
        "SMCI_1km_20180603.nc",
    ]


def test_dask_workers_write_the_same_product(trained, tmp_path):
    from smci_gpu.produce import produce

    serial, spread = tmp_path / "serial", tmp_path / "dask"
    for wd in (serial, spread):
        shutil.copytree(trained, wd, ignore=shutil.ignore_patterns("product"))
    console = Console(quiet=True)
    produce(load_config(workdir=serial, overrides={"device": "cpu"}), console, START, "2018-05-25")
    cfg = load_config(workdir=spread, overrides={"device": "cpu", "dask": {"n_workers": 2}})
    stats = produce(cfg, console, START, "2018-05-25")
    assert stats["written"] == 6 and not stats["failed"]
    a, b = _product(serial / "product" / "1km"), _product(spread / "product" / "1km")
    assert a.keys() == b.keys() and len(a) == 6
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_a_worker_killed_mid_task_is_replaced_and_the_run_finishes(trained, tmp_path):
    import threading

    from dask.distributed import Client, LocalCluster

    from smci_gpu.produce import produce

    wd = tmp_path / "w"
    shutil.copytree(trained, wd, ignore=shutil.ignore_patterns("product"))
    out = wd / "product" / "1km"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        with Client(cluster) as client:
            pids = list(client.run(os.getpid).values())

        def kill_one_worker():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not list(out.glob("SMCI_1km_*.nc")):
                time.sleep(0.01)
            os.kill(pids[0], signal.SIGKILL)  # mid-run: one worker dies with its task

        killer = threading.Thread(target=kill_one_worker)
        killer.start()
        cfg = load_config(
            workdir=wd,
            overrides={"device": "cpu", "dask": {"scheduler_address": cluster.scheduler_address}},
        )
        stats = produce(cfg, Console(quiet=True), START, END)
        killer.join()
    assert stats["written"] == 20 and not stats["failed"]
    reference = tmp_path / "ref"
    shutil.copytree(trained, reference, ignore=shutil.ignore_patterns("product"))
    produce(
        load_config(workdir=reference, overrides={"device": "cpu"}), Console(quiet=True), START, END
    )
    want, got = _product(reference / "product" / "1km"), _product(out)
    assert want.keys() == got.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
