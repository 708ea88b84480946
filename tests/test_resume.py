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
