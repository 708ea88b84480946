"""Progress lines for batch jobs: format, interval, and the line at the end."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from smci_gpu import progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", c)
    monkeypatch.setattr(progress, "stamp", lambda: "T")
    monkeypatch.setattr(progress, "interval", 30.0)
    return c


def batch_console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=False, width=40), buf


def test_a_line_at_each_interval_and_at_the_end(clock):
    console, buf = batch_console()
    with progress.track(console, "produce on cpu", 4, "days") as bar:
        clock.now += 10
        bar.advance()  # 10 s: not yet 30 s since the start, no line
        clock.now += 30
        bar.advance()  # 40 s, 2 of 4: 0.05 days/s, 2 days left → ETA 40 s
        clock.now += 5
        bar.advance()  # 45 s: only 5 s since the last line
        clock.now += 35
        bar.advance()  # 80 s: the last step; the end line says it
    lines = buf.getvalue().splitlines()
    assert lines == [
        "T produce on cpu: 2/4 days (50 %), 0.05 days/s, ETA 0:00:40",
        "T produce on cpu: 4/4 days (100 %), 0.05 days/s, done in 0:01:20",
    ]  # one line each, however narrow the console


def test_interval_zero_logs_every_step(clock):
    progress.set_interval(0)
    console, buf = batch_console()
    for _ in progress.iterate(console, range(3), "prepare: QC", 3, "series"):
        clock.now += 2
    assert [ln.split("QC: ", 1)[1].split(" (")[0] for ln in buf.getvalue().splitlines()] == [
        "1/3 series",
        "2/3 series",
        "3/3 series",
    ]


def test_counted_calls_back_after_each_item_even_after_continue():
    done = []
    for item in progress.counted([1, 2, 3], lambda: done.append(len(done) + 1)):
        if item == 2:
            continue
    assert done == [1, 2, 3]


def test_a_terminal_gets_a_bar_not_lines(clock):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=80)
    with progress.track(console, "produce", 2, "days") as bar:
        bar.advance(2)
    assert "days/s" not in buf.getvalue()


def test_a_dask_worker_runs_numba_on_its_own_threads_only(monkeypatch):
    import types

    import distributed
    import numba

    from smci_gpu import produce

    before = numba.get_num_threads()
    worker = types.SimpleNamespace(state=types.SimpleNamespace(nthreads=1))
    monkeypatch.setattr(distributed, "get_worker", lambda: worker)
    try:
        produce._share_cores_with_other_workers()
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)
    monkeypatch.undo()
    produce._share_cores_with_other_workers()  # outside a worker: left alone
    assert numba.get_num_threads() == before
