"""Progress of long stages: a rich bar on a terminal, timed log lines in batch jobs.

A batch job (SLURM, PBS, cron, ``nohup``, a pipe) has no terminal, so a progress bar
either prints nothing until the stage ends or floods the log with control codes. Without
a terminal, :func:`track` prints one plain line every :data:`interval` seconds and always
one at the end::

    2026-12-06T03:41:10Z produce: 3/10 days (30 %), 0.52 days/s, ETA 0:00:13

The interval is set with ``smci --progress-interval SECONDS`` (default 30; 0 = a line
for every step).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

#: Seconds between two progress lines when no terminal is attached (the CLI sets it).
interval: float = 30.0


def set_interval(seconds: float) -> None:
    """Set the seconds between batch-log progress lines (``>= 0``; 0 logs every step)."""
    global interval
    interval = max(0.0, float(seconds))


def stamp() -> str:
    """The current UTC time, ISO 8601 to the second (what every progress line starts with)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class Tracker:
    """Counts done steps of one stage and reports them (see :func:`track`)."""

    def __init__(self, console: Console, description: str, total: int, unit: str) -> None:
        self.console, self.description, self.total, self.unit = console, description, total, unit
        self.done = 0
        self.t0 = self._last = time.perf_counter()
        self._bar: Progress | None = None
        self._task = None

    def line(self) -> str:
        """The progress line: done/total, percent, rate and ETA (or the elapsed time)."""
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rate = self.done / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = (
            f"{stamp()} {self.description}: {self.done}/{self.total} {self.unit} "
            f"({pct:.0f} %), {rate:.2f} {self.unit}/s"
        )
        if self.done >= self.total:
            return f"{text}, done in {_clock(elapsed)}"
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        return f"{text}, ETA {_clock(eta) if eta == eta else 'unknown'}"

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more done steps."""
        self.update(self.done + steps)

    def update(self, done: int) -> None:
        """Set the number of done steps (a line is logged when the interval has passed)."""
        self.done = min(int(done), self.total) if self.total else int(done)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            return
        now = time.perf_counter()
        if self.done < self.total and now - self._last >= interval:
            self._last = now
            self._print(self.line())

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def track(console: Console, description: str, total: int, unit: str = "steps") -> Iterator[Tracker]:
    """Report the progress of ``total`` steps of one stage.

    On a terminal: a transient rich bar (done/total, elapsed, ETA). Otherwise: a plain
    line (UTC time, ``description``, done/total ``unit``, percent, rate, ETA) whenever
    :data:`interval` seconds have passed at a step, and always one when the block ends.

    Parameters
    ----------
    console
        Where to report (``console.is_terminal`` picks the bar or the lines).
    description
        The stage, e.g. ``"produce"``.
    total
        Number of steps expected (``>= 0``).
    unit
        What a step is, e.g. ``"days"``.

    Yields
    ------
    Tracker
        Call ``advance()`` or ``update(done)`` as steps finish.
    """
    tracker = Tracker(console, description, total, unit)
    if console.is_terminal:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            tracker._bar, tracker._task = bar, bar.add_task(description, total=total)
            yield tracker
        return
    yield tracker
    tracker._print(tracker.line())


def iterate(
    console: Console, items: Iterable[T], description: str, total: int, unit: str = "steps"
) -> Iterator[T]:
    """Yield ``items`` while reporting them as steps of :func:`track` (one per item)."""
    with track(console, description, total, unit) as tracker:
        for item in items:
            yield item
            tracker.advance()


def counted(items: Iterable[T], on_done: Callable[[], Any] | None) -> Iterator[T]:
    """Yield ``items`` and call ``on_done()`` after each (also after a ``continue``)."""
    for item in items:
        yield item
        if on_done is not None:
            on_done()
