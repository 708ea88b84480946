"""The output-folder lock on a shared file system (smci_gpu.io.lock).

Each test writes the lock file other runs would have left, in the documented format, and
checks what a new run does with it: refuse naming the holder, or take it over.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from smci_gpu.errors import OutputError
from smci_gpu.io import lock
from smci_gpu.io.atomic import host_tag, parse_temp_name, temp_name


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(folder, host: str, pid: int, heartbeat_age_s: float = 0.0) -> None:
    record = {
        "host": host,
        "pid": pid,
        "started": "2026-01-01T00:00:00Z",
        "heartbeat": time.time() - heartbeat_age_s,
        "heartbeat_s": 60,
        "flock": False,
        "token": "planted",
    }
    (folder / lock.LOCK_NAME).write_text(json.dumps(record))


def test_a_second_run_refuses_and_names_the_holder(tmp_path):
    with lock.output_lock(tmp_path):
        record = json.loads((tmp_path / lock.LOCK_NAME).read_text())
        assert (record["host"], record["pid"]) == (host_tag(), os.getpid())
        with pytest.raises(OutputError) as err:
            with lock.output_lock(tmp_path):
                pass
    message = str(err.value)
    assert f"pid {os.getpid()} on {host_tag()}" in message and "\n" not in message
    assert not (tmp_path / lock.LOCK_NAME).exists()  # released


def test_a_second_process_refuses_too(tmp_path):
    """Another process on this host (pid alive, flock held) is refused."""
    code = (
        "import sys\n"
        "from smci_gpu.io.lock import output_lock\n"
        "from smci_gpu.errors import OutputError\n"
        "try:\n"
        f"    with output_lock({str(tmp_path)!r}): pass\n"
        "except OutputError as e:\n"
        "    print(e); sys.exit(7)\n"
    )
    with lock.output_lock(tmp_path):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 7, run.stderr
    assert f"pid {os.getpid()} on {host_tag()}" in run.stdout


def test_a_lock_of_a_dead_pid_on_this_host_is_taken_over(tmp_path):
    _plant(tmp_path, host_tag(), _dead_pid())
    with lock.output_lock(tmp_path):
        assert json.loads((tmp_path / lock.LOCK_NAME).read_text())["pid"] == os.getpid()


def test_another_hosts_fresh_lock_is_respected_and_an_old_one_taken_over(tmp_path):
    _plant(tmp_path, "othernode", 4242, heartbeat_age_s=30)
    with pytest.raises(OutputError, match="pid 4242 on othernode"):
        with lock.output_lock(tmp_path, stale_after_s=600):
            pass
    _plant(tmp_path, "othernode", 4242, heartbeat_age_s=601)
    with lock.output_lock(tmp_path, stale_after_s=600):
        assert json.loads((tmp_path / lock.LOCK_NAME).read_text())["host"] == host_tag()


def test_force_takes_a_live_lock(tmp_path):
    _plant(tmp_path, "othernode", 4242)
    with lock.output_lock(tmp_path, force=True):
        assert json.loads((tmp_path / lock.LOCK_NAME).read_text())["pid"] == os.getpid()


def test_the_heartbeat_is_refreshed(tmp_path):
    with lock.output_lock(tmp_path, heartbeat_s=0.05):
        first = json.loads((tmp_path / lock.LOCK_NAME).read_text())["heartbeat"]
        deadline = time.time() + 5
        while time.time() < deadline:
            beat = (lock.read_holder(tmp_path / lock.LOCK_NAME) or {}).get("heartbeat", first)
            if beat > first:
                break
            time.sleep(0.05)
        assert beat > first


def test_cleanup_keeps_live_runs_temporaries(tmp_path):
    """Only dead (this host) or silent (other host) writers' temporaries are removed."""
    old = time.time() - 3600
    names = {
        "live_here": f".SMCI_1km_20180601.nc.{host_tag()}-{os.getppid()}.tmp",
        "dead_here": f".SMCI_1km_20180602.nc.{host_tag()}-{_dead_pid()}.tmp",
        "fresh_other": ".SMCI_1km_20180603.nc.othernode-4242.tmp",
        "old_other": ".SMCI_1km_20180604.nc.othernode-4243.tmp",
    }
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"partial")
        if key == "old_other":
            os.utime(tmp_path / name, (old, old))
    with lock.output_lock(tmp_path, stale_after_s=600):
        left = {p.name for p in tmp_path.glob("*.tmp")}
    assert left == {names["live_here"], names["fresh_other"]}


def test_temporary_names_carry_host_and_pid(tmp_path):
    tmp = temp_name(tmp_path / "SMCI_1km_20180601.nc")
    assert parse_temp_name(tmp.name) == (host_tag(), os.getpid())
    assert tmp.name.startswith(".SMCI_1km_20180601.nc.") and tmp.match(lock.TEMP_GLOB)
    assert parse_temp_name(".SMCI_1km_20180601.nc.123.tmp") == (None, 123)  # older name


def test_no_flock_on_the_file_system_does_not_crash(tmp_path, monkeypatch):
    """Lustre/GPFS without the flock mount option: flock raises OSError (ENOSYS)."""
    import errno
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with lock.output_lock(tmp_path):
        record = json.loads((tmp_path / lock.LOCK_NAME).read_text())
        assert record["flock"] is False
        with pytest.raises(OutputError, match="pid"):  # still exclusive: the file guards
            with lock.output_lock(tmp_path):
                pass


def test_an_unwritable_folder_is_one_clear_error(tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(OutputError, match="cannot create the lock"):
        with lock.output_lock(missing):
            pass
