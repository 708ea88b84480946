"""An output-folder lock that works across the nodes of a shared (cluster) file system.

``fcntl.flock`` is not enough on a cluster: Lustre and GPFS mounts without the ``flock``
option raise ``OSError`` (ENOSYS/EOPNOTSUPP), and node-local locks let a job on a second
node believe the folder is free. The lock here is a file created with ``O_CREAT | O_EXCL``
(atomic on POSIX file systems, NFSv3+, Lustre and GPFS) holding who owns it::

    {"host": "node17", "pid": 4242, "started": "2026-12-06T03:00:00Z",
     "heartbeat": 1796526000.0, "heartbeat_s": 60, "flock": true}

The owner refreshes ``heartbeat`` (seconds since the epoch) every ``heartbeat_s`` seconds
from a daemon thread. A lock is stale, and is taken over, when

* it was taken on this host and its pid is no longer alive (or, where ``flock`` works, the
  owner's ``flock`` on the file is gone: a reused pid does not keep a dead run's lock), or
* it was taken on another host and its heartbeat is older than ``stale_after_s``
  (a process on another node cannot be asked whether it lives; clocks of the nodes are
  assumed to agree to well within ``stale_after_s``).

Otherwise the run refuses with one line naming the holder. To clear a lock by hand after
making sure that no run is alive: remove ``.smci-produce.lock`` in the output folder.

Temporary files (``io.atomic``) carry their writer's host and pid in the name; on taking
the lock, only temporaries of dead owners (this host) or of old ones (another host, not
modified for ``stale_after_s``) are removed, so a live run's files are never deleted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smci_gpu.errors import OutputError
from smci_gpu.io.atomic import host_tag, parse_temp_name

log = logging.getLogger(__name__)

LOCK_NAME = ".smci-produce.lock"
#: A lock from another host whose heartbeat is older than this is stale (seconds).
STALE_AFTER_S = 15 * 60.0
#: How often the owner refreshes its heartbeat (seconds).
HEARTBEAT_S = 60.0
#: Temporary files of the product (``io.atomic`` names them ``.NAME.HOST-PID.tmp``).
TEMP_GLOB = ".SMCI_*.tmp"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 probes, sends nothing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _try_flock(fd: int) -> bool | None:
    """Take an exclusive ``flock`` on ``fd`` without waiting.

    Returns True when taken, False when another process holds it and None when the file
    system has no ``flock`` (Lustre/GPFS without the mount option: OSError).
    """
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        log.debug("flock unavailable (%s); the lock file alone guards the folder", exc)
        return None
    return True


def read_holder(path: Path) -> dict[str, Any] | None:
    """The lock file's owner record; None when it is gone; ``{}`` when it cannot be parsed."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


def describe(holder: dict[str, Any]) -> str:
    """``pid 4242 on node17 since 2026-… (heartbeat 12 s ago)`` for messages."""
    if not holder:
        return "an unknown run (unreadable lock file)"
    age = time.time() - float(holder.get("heartbeat", 0.0))
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since "
        f"{holder.get('started', '?')} (heartbeat {age:.0f} s ago)"
    )


def is_stale(path: Path, holder: dict[str, Any], stale_after_s: float) -> bool:
    """Whether ``holder`` (the record read from the lock at ``path``) no longer runs.

    Same host: its pid is dead, or it held a ``flock`` that we can now take. Other host
    (or an unreadable record): its heartbeat (or the file's mtime) is older than
    ``stale_after_s``.
    """
    if holder and holder.get("host") == host_tag():
        if not pid_alive(int(holder.get("pid", -1))):
            return True
        return bool(holder.get("flock")) and _flock_free(path)
    try:
        beat = float(holder.get("heartbeat", 0.0)) if holder else path.stat().st_mtime
    except (OSError, ValueError, TypeError):
        return False
    return time.time() - beat > stale_after_s


def _flock_free(path: Path) -> bool:
    """True when nobody holds a ``flock`` on ``path`` (the owner's lock died with it)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        taken = _try_flock(fd)
        if taken:
            fcntl.flock(fd, fcntl.LOCK_UN)
        return bool(taken)
    finally:
        os.close(fd)


class _Owner:
    """The lock file we created: its descriptor and the heartbeat thread."""

    def __init__(self, path: Path, fd: int, record: dict[str, Any], heartbeat_s: float):
        self.path, self.fd, self.record = path, fd, record
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(heartbeat_s,), name="smci-lock-heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            self.record["heartbeat"] = time.time()
            with contextlib.suppress(OSError):  # a missed beat is retried at the next one
                _write_record(self.fd, self.record)

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        # Remove the file only if it is still ours (a forced takeover may have replaced it).
        if (read_holder(self.path) or {}).get("token") == self.record["token"]:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)


def _write_record(fd: int, record: dict[str, Any]) -> None:
    data = json.dumps(record).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _create(path: Path, heartbeat_s: float) -> _Owner | None:
    """Create the lock file exclusively; None when it already exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    except FileExistsError:
        return None
    record = {
        "host": host_tag(),
        "pid": os.getpid(),
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "heartbeat": time.time(),
        "heartbeat_s": heartbeat_s,
        "flock": _try_flock(fd) is True,
        "token": os.urandom(8).hex(),
    }
    _write_record(fd, record)
    return _Owner(path, fd, record, heartbeat_s)


def _take_over(path: Path, holder: dict[str, Any]) -> bool:
    """Move a stale lock aside; False when someone else changed it meanwhile.

    The rename is atomic, so of two runs taking over the same stale lock only one moves
    it; a lock that turned out to be fresh (another run re-created it between our read and
    the rename) is put back.
    """
    aside = path.with_name(f"{path.name}.stale.{host_tag()}-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True  # already gone: try to create it again
    moved = read_holder(aside)
    if moved != holder:
        with contextlib.suppress(OSError):
            os.link(aside, path)  # not the lock we judged: restore it (fails if re-created)
        with contextlib.suppress(OSError):
            aside.unlink()
        return False
    with contextlib.suppress(OSError):
        aside.unlink()
    return True


def clean_temporaries(folder: Path, stale_after_s: float = STALE_AFTER_S) -> list[str]:
    """Remove temporaries of dead (this host) or silent (other host) writers only.

    A temporary named by :func:`smci_gpu.io.atomic.atomic_path` carries host and pid: one
    of a live process on this host is kept; one from another host is removed only when it
    has not been modified for ``stale_after_s`` seconds. Returns the removed names.
    """
    removed = []
    now = time.time()
    for tmp in folder.glob(TEMP_GLOB):
        host, pid = parse_temp_name(tmp.name)
        try:
            age = now - tmp.stat().st_mtime
        except FileNotFoundError:
            continue
        # Names without a host come from versions whose lock was node-local: this host's.
        if host in (host_tag(), None) and pid is not None:
            dead = pid != os.getpid() and not pid_alive(pid)
        else:
            dead = age > stale_after_s
        if dead:
            log.warning("removing %s left by an interrupted run", tmp.name)
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            removed.append(tmp.name)
    return removed


@contextlib.contextmanager
def output_lock(
    folder: str | Path,
    stale_after_s: float = STALE_AFTER_S,
    heartbeat_s: float = HEARTBEAT_S,
    force: bool = False,
) -> Iterator[Path]:
    """Hold the exclusive lock on an output folder for one run; clean stale temporaries.

    Parameters
    ----------
    folder : path
        The output folder (created beforehand); the lock is ``folder/.smci-produce.lock``.
    stale_after_s : float
        A lock from another host whose heartbeat is older than this is taken over.
    heartbeat_s : float
        How often this run refreshes its heartbeat; keep it well below ``stale_after_s``.
    force : bool
        Take the lock whoever holds it (after making sure by hand that no run is alive).

    Yields
    ------
    Path
        The lock file.

    Raises
    ------
    OutputError
        Another live run holds the lock (the message names its host, pid and start), or
        the lock file cannot be created (read-only folder).
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    owner = None
    for _ in range(5):  # a takeover may race another run's: look again, a few times
        try:
            owner = _create(path, heartbeat_s)
        except OSError as exc:
            if exc.errno in (errno.EEXIST,):
                continue
            raise OutputError(f"cannot create the lock {path}: {exc}") from exc
        if owner is not None:
            break
        holder = read_holder(path)
        if holder is None:
            continue  # released meanwhile
        if not (force or is_stale(path, holder, stale_after_s)):
            raise OutputError(
                f"another `smci produce` is writing to {folder}: {describe(holder)}; wait "
                f"for it, or if that run is dead remove {path}"
            )
        log.warning("taking over the stale lock of %s", describe(holder))
        _take_over(path, holder)
    if owner is None:
        raise OutputError(f"could not take the lock {path}: other runs keep re-creating it")
    try:
        clean_temporaries(folder, stale_after_s)
        yield path
    finally:
        owner.release()
