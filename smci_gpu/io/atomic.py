"""Write to a temporary name in the same folder, rename when complete."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

_TEMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.tmp$")
_OLD_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)\.tmp$")


@functools.cache
def host_tag() -> str:
    """This host's name with every character but letters, digits and ``_`` as ``_``.

    Used in temporary file names and lock records, so a name splits back unambiguously.
    """
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "unknown_host"


def temp_name(path: Path) -> Path:
    """``.NAME.HOST-PID.tmp`` beside ``path``: the writer's host and pid are in the name."""
    return path.with_name(f".{path.name}.{host_tag()}-{os.getpid()}.tmp")


def parse_temp_name(name: str) -> tuple[str | None, int | None]:
    """``(host, pid)`` of a temporary's name; an older ``.NAME.PID.tmp`` gives no host."""
    m = _TEMP.match(name)
    if m:
        return m["host"], int(m["pid"])
    m = _OLD_TEMP.match(name)
    return (None, int(m["pid"])) if m else (None, None)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    A crash or exception leaves no file under the final name (the temporary file is
    removed on exceptions), so a file that exists under its final name is complete. The
    temporary's name carries this host and pid (:func:`temp_name`), so cleaning up after
    a crash removes only a dead writer's files, even on a file system shared by nodes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
