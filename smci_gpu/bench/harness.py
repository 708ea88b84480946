"""Timing, environment capture and result files shared by every benchmark.

A benchmark produces :class:`Record` rows (one per stage × implementation × device ×
size) measured side by side in one run; :func:`write_results` stores them as JSON (with
the environment) and a markdown table. The JSON layout is ``benchmarks/schema.json``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1


@dataclass
class Timing:
    """Wall-clock seconds of repeated calls (after warm-up)."""

    median: float
    min: float
    max: float
    repeats: int

    @classmethod
    def of(cls, seconds) -> Timing:
        """Median, min and max of measured durations."""
        values = sorted(float(v) for v in seconds)
        return cls(float(np.median(values)), values[0], values[-1], len(values))

    @property
    def spread(self) -> float:
        """(max − min) / median: the relative width of the repeats."""
        return (self.max - self.min) / self.median if self.median > 0 else 0.0


@dataclass
class Record:
    """One measured (suite, stage, implementation, device, size) cell."""

    suite: str
    stage: str
    impl: str
    device: str
    size: dict[str, Any]
    seconds: Timing
    bytes: int | None = None
    items: int | None = None
    item_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gbps(self) -> float | None:
        """Bytes read + written per second, in GB/s (1e9)."""
        return None if self.bytes is None else self.bytes / self.seconds.median / 1e9

    @property
    def rate(self) -> float | None:
        """Items (rows, pixels, predictions …) per second."""
        return None if self.items is None else self.items / self.seconds.median

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"]["spread"] = self.seconds.spread
        out["gbps"] = self.gbps
        out["rate"] = self.rate
        return out


def _sync_for(device: str) -> Callable[[], None]:
    if device != "gpu":
        return lambda: None
    from smci_gpu.backend import cupy_module

    cp = cupy_module()
    return lambda: cp.cuda.Device().synchronize()


def time_call(
    fn: Callable[[], Any],
    *,
    device: str = "cpu",
    warmup: int = 1,
    repeats: int = 5,
    min_seconds: float = 0.0,
) -> Timing:
    """Time ``fn()`` after ``warmup`` untimed calls (JIT compilation, caches, pools).

    On the GPU the device is synchronised before the clock stops. With ``min_seconds``,
    repeats continue past ``repeats`` until that much time has been spent in total.
    """
    sync = _sync_for(device)
    for _ in range(warmup):
        _seconds(fn, sync)
    times: list[float] = []
    while len(times) < repeats or sum(times) < min_seconds:
        times.append(_seconds(fn, sync))
        if len(times) >= 1000:
            break
    return Timing.of(times)


def _seconds(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    """Wall-clock seconds of one call, the device synchronised before the clock stops."""
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def time_interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    device: str = "cpu",
    warmup: int = 1,
    repeats: int = 5,
    before_each: Callable[[], Any] | None = None,
) -> dict[str, Timing]:
    """Time several calls in alternating rounds (``a, b, a, b, ...``), one of each per round.

    A ratio between them is then measured under the same conditions: on a shared machine
    the memory bandwidth drifts between runs by up to 2×, which would otherwise move the
    ratio of two back-to-back series as much as the code under test does. ``before_each``
    runs untimed before every call (e.g. to start each one with cold caches).
    """
    sync = _sync_for(device)
    prepare = before_each or (lambda: None)
    for fn in fns.values():
        for _ in range(warmup):
            prepare()
            _seconds(fn, sync)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            prepare()
            times[name].append(_seconds(fn, sync))
    return {name: Timing.of(t) for name, t in times.items()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions(names: list[str]) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def environment(devices: list[str]) -> dict[str, Any]:
    """Machine and library facts recorded beside every result."""
    import smci_gpu

    env: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "numba_threads": _numba_threads(),
        "smci_gpu": smci_gpu.__version__,
        "versions": _versions(
            ["numpy", "numba", "scikit-learn", "xarray", "pandas", "netCDF4", "cupy-cuda12x"]
            + ["cupy-cuda13x", "numba-cuda", "nvforest-cu12", "nvforest-cu13", "cuml-cu12"]
        ),
        "devices": devices,
    }
    if "gpu" in devices:
        from smci_gpu.backend import describe

        env["gpu"] = describe("gpu")
    return env


def _numba_threads() -> int:
    import numba

    return int(numba.get_num_threads())


def write_results(
    records: list[Record],
    env: dict[str, Any],
    json_path: Path,
    md_path: Path | None = None,
    title: str = "Benchmark",
    notes: list[str] | None = None,
    tables: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write records + environment as JSON and (optionally) markdown.

    ``tables`` are derived summaries (roofline, extrapolation …), each
    ``{"title", "columns", "rows"}``; they are rendered after the per-suite tables.
    """
    doc = {
        "schema_version": SCHEMA_VERSION,
        "title": title,
        "environment": env,
        "records": [r.to_json() for r in records],
        "tables": tables or [],
        "notes": notes or [],
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    if md_path is not None:
        md_path.write_text(markdown(doc))
    return doc


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def _size_text(size: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in size.items())


def markdown(doc: dict[str, Any]) -> str:
    """Render a results document as markdown: environment, then one table per suite."""
    env = doc["environment"]
    lines = [f"## {doc['title']}", ""]
    lines.append(
        f"Measured {env['date']} on `{env['host']}`: {env['cpu']}, {env['cores']} cores "
        f"({env['numba_threads']} Numba threads), Python {env['python']}"
        + (f", GPU {env['gpu'].get('gpu')}" if "gpu" in env else ", no GPU")
        + "."
    )
    lines.append("")
    suites: dict[str, list[dict]] = {}
    for r in doc["records"]:
        suites.setdefault(r["suite"], []).append(r)
    for suite, rows in suites.items():
        lines += [f"### {suite}", ""]
        lines.append("| stage | impl | device | size | median s | spread | GB/s | rate | extra |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            rate = None if r["rate"] is None else f"{_fmt(r['rate'])} {r['item_name']}/s"
            extra = ", ".join(
                f"{k}={_fmt(v) if isinstance(v, float) else v}" for k, v in r["extra"].items()
            )
            lines.append(
                f"| {r['stage']} | {r['impl']} | {r['device']} | {_size_text(r['size'])} | "
                f"{_fmt(r['seconds']['median'])} | {r['seconds']['spread'] * 100:.0f} % | "
                f"{_fmt(r['gbps'])} | {rate or '–'} | {extra} |"
            )
        lines.append("")
    for table in doc.get("tables", []):
        lines += [f"### {table['title']}", ""]
        lines.append("| " + " | ".join(table["columns"]) + " |")
        lines.append("|" + "---|" * len(table["columns"]))
        for row in table["rows"]:
            cells = [_fmt(v) if isinstance(v, float) else str(v) for v in row]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for note in doc.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


def plot_throughput(doc: dict[str, Any], suite: str, path: Path) -> Path | None:
    """Bar chart of GB/s per stage and implementation (log scale), one panel per device."""
    rows = [r for r in doc["records"] if r["suite"] == suite and r["gbps"]]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = sorted({r["device"] for r in rows})
    fig, axes = plt.subplots(1, len(devices), figsize=(7 * len(devices), 4), squeeze=False)
    for ax, device in zip(axes[0], devices, strict=True):
        mine = [r for r in rows if r["device"] == device]
        stages = list(dict.fromkeys(r["stage"] for r in mine))
        kinds = {"twin": "twin", "copy": "copy ceiling"}
        groups: dict[str, list[float]] = {"twin": [], "reference": [], "copy": []}
        for stage in stages:
            cells = {r["impl"]: r["gbps"] for r in mine if r["stage"] == stage}
            groups["twin"].append(cells.get("twin", np.nan))
            groups["copy"].append(max(v for k, v in cells.items() if k.startswith("copy")))
            refs = [v for k, v in cells.items() if k != "twin" and not k.startswith("copy")]
            groups["reference"].append(refs[0] if refs else np.nan)
        x = np.arange(len(stages))
        for i, (name, vals) in enumerate(groups.items()):
            ax.bar(x + (i - 1) * 0.27, vals, 0.27, label=kinds.get(name, "NumPy/xarray reference"))
        ax.set_xticks(x, stages, rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("GB/s (bytes read + written)")
        ax.set_title(f"{suite} on {device}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_rates(doc: dict[str, Any], suite: str, path: Path) -> Path | None:
    """Horizontal bars of items/s (log scale), one bar per stage · impl · device."""
    rows = [r for r in doc["records"] if r["suite"] == suite and r["rate"]]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['stage']} · {r['impl']} · {r['device']}" for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    colors = ["tab:orange" if r["device"] == "gpu" else "tab:blue" for r in rows]
    ax.barh(np.arange(len(rows)), [r["rate"] for r in rows], color=colors)
    ax.set_yticks(np.arange(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    units = sorted({r["item_name"] for r in rows})
    ax.set_xlabel(f"{' / '.join(units)} per second (blue CPU, orange GPU)")
    ax.set_title(suite)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
