"""Run the stages in order on one working folder (what `smci demo` does)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from smci_gpu.config import DEFAULT_CONFIG_NAME, Config, load_config
from smci_gpu.errors import ConfigError

#: Pipeline stages after the world is generated, by name (filled by :func:`stage`).
STAGES: dict[str, Callable[[Config, Console], dict[str, Any]]] = {}
#: The order `smci demo` runs them in.
ORDER = ("prepare", "tune", "train", "produce", "validate", "compare", "report")


def stage(name: str):
    """Register a pipeline stage ``f(config, console) -> summary dict``."""

    def wrap(func):
        STAGES[name] = func
        return func

    return wrap


def _load_stages() -> None:
    """Import the modules that register stages (kept lazy: they pull in heavy libraries)."""
    import importlib

    for module in (
        "smci_gpu.prepare",
        "smci_gpu.model.tune",
        "smci_gpu.model.train",
        "smci_gpu.produce",
        "smci_gpu.evaluate.experiments",
        "smci_gpu.evaluate.compare",
        "smci_gpu.evaluate.report",
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def _write_demo_config(path: Path, text: str, console: Console) -> None:
    """Write the demo's config; an older demo-written one is kept as ``.bak``, a user's is kept."""
    if path.exists():
        old = path.read_text()
        if old == text:
            return
        if not old.startswith(text.splitlines()[0]):
            console.print(f"[yellow]note:[/] keeping your {path} (not written by `smci demo`)")
            return
        path.with_name(path.name + ".bak").write_text(old)
    path.write_text(text)


def _generate_world(workdir: Path, spec: Any, console: Console) -> dict[str, Any]:
    """``demo.generate`` with its steps on a status line, or as log lines without a terminal."""
    from smci_gpu import demo
    from smci_gpu.progress import stamp

    if not console.is_terminal:
        t0 = time.perf_counter()

        def note(message: str) -> None:
            elapsed = time.perf_counter() - t0
            console.print(
                f"{stamp()} world: {message} ({elapsed:.0f} s)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

        world = demo.generate(workdir, spec, progress=note)
        note("done")
        return world
    with console.status("generating the twin world") as status:
        return demo.generate(workdir, spec, progress=lambda m: status.update(f"world: {m}"))


def run_demo(
    workdir: str | Path,
    size: str = "default",
    seed: int = 42,
    stages: str = "all",
    device: str = "cpu",
    console: Console | None = None,
) -> dict[str, Any]:
    """Generate (or reuse) the twin world in ``workdir`` and run the stages on it."""
    from smci_gpu import demo

    console = console or Console()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    spec = demo.TINY if size == "tiny" else demo.DemoSpec()
    if seed != spec.seed:
        from dataclasses import replace

        spec = replace(spec, seed=seed)
    t0 = time.perf_counter()
    world = _generate_world(workdir, spec, console)
    _write_demo_config(workdir / DEFAULT_CONFIG_NAME, demo.demo_config_toml(spec), console)
    summary: dict[str, Any] = {
        "workdir": str(workdir.resolve()),
        "world": world,
        "timings_s": {"world": round(time.perf_counter() - t0, 1)},
    }
    cfg = load_config(workdir=workdir, overrides={"device": device})
    _load_stages()
    wanted = list(ORDER) if stages == "all" else [s.strip() for s in stages.split(",")]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; stages are {list(ORDER)}")
    for name in wanted:
        t = time.perf_counter()
        console.rule(f"[bold]{name}")
        summary[name] = STAGES[name](cfg, console)
        summary["timings_s"][name] = round(time.perf_counter() - t, 1)
    return summary


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """Say where things are."""
    wd = Path(summary["workdir"])
    table = Table(title="smci demo: where things are", show_header=True)
    table.add_column("what")
    table.add_column("path")
    rows = [
        ("inputs (real formats)", wd / "inputs"),
        ("hidden truth", wd / "truth"),
        ("config", wd / DEFAULT_CONFIG_NAME),
    ]
    for name, key in (
        ("station-day table", "prepare"),
        ("models", "train"),
        ("validation", "validate"),
        ("product", "produce"),
        ("report", "report"),
    ):
        if key in summary and summary[key].get("path"):
            rows.append((name, Path(summary[key]["path"])))
    for name, path in rows:
        table.add_row(name, str(path))
    console.print(table)
    times = ", ".join(f"{k} {v}s" for k, v in summary["timings_s"].items())
    console.print(f"timings: {times}")
