"""The ``smci`` command line (Typer).

Every command works in one folder (``--workdir``, default the current folder) and reads
``smci.toml`` there when present. Errors the engine raises on purpose print as one line
and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from smci_gpu.errors import SmciError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="smci-gpu: SMCI1.0-style 1 km daily soil moisture, CPU or GPU.",
)
config_app = typer.Typer(no_args_is_help=True, help="Show or check the effective config.")
app.add_typer(config_app, name="config")
console = Console(stderr=True, soft_wrap=True)
out = Console()


@dataclass
class State:
    workdir: Path = Path(".")
    config_file: Path | None = None
    device: str | None = None
    debug: bool = False

    def config(self, **overrides: Any):
        """The effective config for this invocation (file → env → CLI)."""
        from smci_gpu.config import load_config

        cli = {k: v for k, v in overrides.items() if v is not None}
        if self.device is not None:
            cli["device"] = self.device
        return load_config(self.config_file, workdir=self.workdir, overrides=cli)


state = State()


@app.callback()
def _global(
    workdir: Annotated[Path, typer.Option("--workdir", "-w", help="working folder")] = Path("."),
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | gpu")] = None,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log INFO")] = False,
) -> None:
    state.workdir, state.config_file, state.device, state.debug = workdir, config, device, debug
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@config_app.command("show")
def config_show() -> None:
    """Print the effective configuration as TOML (with its hash)."""
    from smci_gpu.config import to_toml

    cfg = state.config()
    typer.echo(f"# config hash {cfg.hash()}\n{to_toml(cfg)}", nl=False)


@app.command()
def demo(
    size: Annotated[str, typer.Option(help="default | tiny")] = "default",
    seed: Annotated[int, typer.Option(help="world seed")] = 42,
    stages: Annotated[str, typer.Option(help="comma list or 'all'")] = "all",
) -> None:
    """Generate the twin world into the workdir, then run every pipeline stage on it."""
    from smci_gpu import pipeline

    summary = pipeline.run_demo(
        state.workdir,
        size=size,
        seed=seed,
        stages=stages,
        device=state.device or "cpu",
        console=out,
    )
    pipeline.print_summary(summary, out)


def _run_stage(name: str, stage_args: dict[str, Any] | None = None, **overrides: Any) -> Any:
    """Run one registered pipeline stage with the effective config (``overrides`` are config
    sections from options; ``stage_args`` go to the stage itself)."""
    from smci_gpu import pipeline

    pipeline._load_stages()
    cfg = state.config(**overrides)
    out.rule(f"[bold]{name}")
    return pipeline.STAGES[name](cfg, out, **(stage_args or {}))


@app.command()
def prepare() -> None:
    """Stations → QC → daily → matching → station-day table (work/station_days.parquet)."""
    _run_stage("prepare")


@app.command()
def tune(
    groups: Annotated[str | None, typer.Option(help="random | station | both")] = None,
    layer: Annotated[list[int] | None, typer.Option(help="layer (cm) to tune; repeatable")] = None,
    folds: Annotated[int | None, typer.Option(help="number of CV folds")] = None,
) -> None:
    """Cross-validated grid over max_features × min_samples_leaf (work/tune/)."""
    section = {"groups": groups, "layers": layer, "folds": folds}
    section = {k: v for k, v in section.items() if v is not None}
    _run_stage("tune", **({"tune": section} if section else {}))


@app.command()
def train(
    layer: Annotated[list[int] | None, typer.Option(help="layer (cm) to train; repeatable")] = None,
    trees: Annotated[
        int | None, typer.Option(help="trees per forest (forest.n_estimators)")
    ] = None,
) -> None:
    """Train one random forest per layer from the station-day table (models/)."""
    overrides = {"forest": {"n_estimators": trees}} if trees else {}
    _run_stage("train", {"layers": layer}, **overrides)


@app.command()
def produce(
    start: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD")] = None,
    inference: Annotated[str | None, typer.Option(help="packed | nvforest")] = None,
    layout: Annotated[str | None, typer.Option(help="daily | smci1")] = None,
    resolution: Annotated[str | None, typer.Option(help="1km | 9km (predicted at 9 km)")] = None,
    workers: Annotated[int | None, typer.Option(help="local Dask workers (GPUs on GPU)")] = None,
    scheduler_address: Annotated[
        str | None, typer.Option(help="an existing Dask scheduler, e.g. tcp://host:8786")
    ] = None,
) -> None:
    """Predict every land pixel, day and layer; write one CF NetCDF per day (product/)."""
    chosen = (
        ("start", start),
        ("end", end),
        ("inference", inference),
        ("layout", layout),
        ("resolution", resolution),
    )
    section = {k: v for k, v in chosen if v is not None}
    cluster = {"n_workers": workers, "scheduler_address": scheduler_address}
    cluster = {k: v for k, v in cluster.items() if v is not None}
    overrides = {"produce": section} if section else {}
    if cluster:
        overrides["dask"] = cluster
    stats = _run_stage("produce", **overrides)
    if stats["failed"]:  # the other days are written; the job still reports the failure
        raise typer.Exit(code=1)


@app.command()
def aggregate(
    start: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD")] = None,
) -> None:
    """Average the 1 km daily product to 9 km (product/9km_from_1km/)."""
    from smci_gpu.layout import aggregate as run

    done = run(state.config(), start, end)
    out.print(
        f"aggregate: {done['written']} day(s) written, {done['skipped']} current → {done['path']}"
    )


@app.command()
def layout(
    resolution: Annotated[str, typer.Option(help="1km | 9km")] = "1km",
    year: Annotated[list[int] | None, typer.Option(help="year to assemble; repeatable")] = None,
) -> None:
    """Assemble SMCI1.0-layout year/layer files from the daily files (product/smci1_1km/)."""
    from smci_gpu.layout import smci1_layout

    done = smci1_layout(state.config(), resolution, year)
    out.print(
        f"layout: {len(done['written'])} file(s) written, {len(done['current'])} current "
        f"→ {done['path']}"
    )


@app.command()
def validate() -> None:
    """Year-to-year and station-to-station experiments vs ERA5-Land (work/validation/)."""
    _run_stage("validate")


@app.command()
def report() -> None:
    """HTML report of validation, importance, maps and QC (report/index.html)."""
    _run_stage("report")


@app.command()
def selftest(
    quick: Annotated[bool, typer.Option(help="kernels and forests only (no demo day)")] = False,
) -> None:
    """Check this install: kernel and forest parity, one demo day (--device gpu: also the GPU)."""
    from rich.table import Table

    from smci_gpu import selftest as st

    checks, info = st.run(state.device or "cpu", quick=quick)
    table = Table(title="smci selftest: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    for col in ("check", "device", "result", "detail", "s"):
        table.add_column(col, justify="right" if col == "s" else "left")
    for c in checks:
        verdict = "[green]pass[/]" if c.passed else "[bold red]FAIL[/]"
        table.add_row(c.name, c.device, verdict, c.detail, f"{c.seconds:.1f}")
    out.print(table)
    failed = sum(not c.passed for c in checks)
    out.print(f"{len(checks) - failed} passed, {failed} failed")
    if failed:
        raise typer.Exit(code=1)


@app.command()
def bench(
    suites: Annotated[
        list[str] | None,
        typer.Argument(help="all | kernels | inference | train | produce | io | scaling"),
    ] = None,
    bench_device: Annotated[
        str, typer.Option("--device", "--on", help="cpu | gpu | both (both = every one found)")
    ] = "both",
    size: Annotated[str, typer.Option(help="tiny | small | medium | large")] = "small",
    repeats: Annotated[int, typer.Option(help="timed repeats per cell")] = 5,
    out_dir: Annotated[Path, typer.Option("--out", help="result folder (JSON, md, PNG)")] = Path(
        "bench"
    ),
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the JSON results here")
    ] = None,
) -> None:
    """Measure each stage's implementations side by side; write bench.json, bench.md, PNGs."""
    import json

    from smci_gpu.bench.suite import SUITES, available_devices, run_suite

    names = list(SUITES) if not suites or suites == ["all"] else suites
    devices = available_devices(bench_device)
    folder = state.workdir / out_dir
    doc = run_suite(names, devices, size, folder, repeats, log=out.print, workdir=state.workdir)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text((folder / "bench.json").read_text())
    typer.echo((folder / "bench.md").read_text())
    out.print(f"{len(doc['records'])} records → {folder} " + json.dumps(sorted(names)))


def main() -> None:
    """Console-script entry point: run the app, turning engine errors into one line."""
    try:
        code = app(standalone_mode=False)  # click hands back typer.Exit codes as the result
        if isinstance(code, int) and code:
            sys.exit(code)
    except SmciError as exc:
        if state.debug or "--debug" in sys.argv:
            console.print_exception()
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # usage errors (click, or Typer's vendored click) show themselves
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"):
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
