"""The ``smci`` command line (Typer).

Every command works in one folder (``--workdir``, default the current folder) and reads
``smci.toml`` there when present. Errors the engine raises on purpose print as one line
and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
import sys
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

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
    verbose: bool = False

    def config(self, **overrides: Any):
        """The effective config for this invocation (file → env → CLI)."""
        from smci_gpu.config import load_config

        cli = {k: v for k, v in overrides.items() if v is not None}
        if self.device is not None:
            cli["device"] = self.device
        return load_config(self.config_file, workdir=self.workdir, overrides=cli)


state = State()

# The options every command takes. They are accepted before the subcommand (``smci
# --workdir DIR produce``) and after it (``smci produce --workdir DIR``); given in both
# places, the one after the subcommand wins (it comes later on the command line).
WorkdirOption = Annotated[
    Path | None,
    typer.Option("--workdir", "-w", help="working folder (default: .)"),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config (default: DIR/smci.toml)")
]
DeviceOption = Annotated[str | None, typer.Option("--device", help="auto | cpu | gpu")]
DebugOption = Annotated[bool, typer.Option("--debug", help="show tracebacks")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="log INFO")]
IntervalOption = Annotated[
    float | None,
    typer.Option(
        "--progress-interval",
        min=0,
        help="seconds between progress lines when no terminal is attached (default: 30)",
    ),
]
_SHARED: dict[str, Any] = {
    "workdir": (WorkdirOption, None),
    "config": (ConfigOption, None),
    "device": (DeviceOption, None),
    "debug": (DebugOption, False),
    "verbose": (VerboseOption, False),
    "progress_interval": (IntervalOption, None),
}
#: Whether the user set Dask's log level in the environment (then it is left alone).
_USER_DASK_LOGGING = "DASK_LOGGING__DISTRIBUTED" in os.environ
#: Loggers of the Dask cluster, kept at WARNING unless ``--verbose``.
QUIET_LOGGERS = ("distributed", "dask", "tornado", "bokeh", "asyncio", "numba")


def _apply_shared(
    workdir: Path | None = None,
    config: Path | None = None,
    device: str | None = None,
    debug: bool = False,
    verbose: bool = False,
    progress_interval: float | None = None,
) -> None:
    """Merge shared options into :data:`state` (a given value replaces the earlier one)."""
    from smci_gpu import progress

    if workdir is not None:
        state.workdir = workdir
    if config is not None:
        state.config_file = config
    if device is not None:
        state.device = device
    state.debug = state.debug or debug
    state.verbose = state.verbose or verbose
    if progress_interval is not None:
        progress.set_interval(progress_interval)
    level = logging.INFO if state.verbose else logging.WARNING
    # Dask reads its logging levels when it is imported, here and in worker processes
    # (which inherit the environment): INFO only with --verbose. A user's setting stays.
    if not _USER_DASK_LOGGING:
        os.environ["DASK_LOGGING__DISTRIBUTED"] = "info" if state.verbose else "warning"
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger().setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level)
    guard_warning_filters()


#: scikit-learn's complaint when a task starts while the process's warning filters are empty.
SKLEARN_DISPATCH_WARNING = "`sklearn.utils.parallel.delayed` should be used with"


def guard_warning_filters() -> None:
    """Keep scikit-learn's threaded fits from flooding the output (once per process).

    scikit-learn runs each forest task inside ``warnings.catch_warnings()`` with the filters
    reset; before Python 3.14 that is not thread-safe, so two of its threads restoring in
    the wrong order can leave the process with no filters at all. From then on every task
    warns that its filters could not be passed on (991 lines in one `make demo`'s
    validation). The tasks do run through scikit-learn's ``Parallel``, so the message says
    nothing here: this hook drops it and puts back the filters the process started with.
    A ``showwarning`` hook is used because the resets would remove a filter.
    """
    if getattr(warnings.showwarning, "_smci_guard", False):
        return
    startup_filters = list(warnings.filters)
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if SKLEARN_DISPATCH_WARNING in str(message):
            if not warnings.filters:
                warnings.filters[:] = startup_filters
            return
        original(message, category, filename, lineno, file, line)

    show._smci_guard = True
    warnings.showwarning = show


def shared_options(func=None, *, device: bool = True):
    """Give a command the shared options too, so they work after the subcommand.

    ``device=False`` leaves ``--device`` out (``bench`` has its own ``--device``).
    """
    if func is None:
        return functools.partial(shared_options, device=device)
    names = [n for n in _SHARED if device or n != "device"]
    sig = inspect.signature(func)
    hints = typing.get_type_hints(func, include_extras=True)
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
    ]
    for name in names:
        annotation, default = _SHARED[name]
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _apply_shared(**{n: kwargs.pop(n) for n in names})
        return func(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def _version(value: bool) -> None:
    if value:
        from smci_gpu import __version__

        typer.echo(f"smci-gpu {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    workdir: WorkdirOption = None,
    config: ConfigOption = None,
    device: DeviceOption = None,
    debug: DebugOption = False,
    verbose: VerboseOption = False,
    progress_interval: IntervalOption = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Options given here apply to the command that follows; each command takes them too."""
    _apply_shared(workdir, config, device, debug, verbose, progress_interval)


@config_app.command("show")
@shared_options
def config_show() -> None:
    """Print the effective configuration as TOML (with its hash)."""
    from smci_gpu.config import to_toml

    cfg = state.config()
    typer.echo(f"# config hash {cfg.hash()}\n{to_toml(cfg)}", nl=False)


@config_app.command("check")
@shared_options
def config_check() -> None:
    """Validate the effective configuration; print OK or what is wrong (exit 2)."""
    from smci_gpu.config import DEFAULT_CONFIG_NAME

    cfg = state.config()  # a ConfigError names the key and where it came from
    source = state.config_file or state.workdir / DEFAULT_CONFIG_NAME
    where = str(source) if Path(source).exists() else "defaults (no config file)"
    typer.echo(f"config OK: {where}, hash {cfg.hash()}")


def _print_china_world(workdir: Path, summary: dict) -> None:
    """What `smci demo --size china` wrote, and what to run next."""
    ny, nx = summary["grid"]
    sizes = ", ".join(f"{k} {v / 1e6:,.0f} MB" for k, v in summary["bytes"].items())
    seconds = sum(summary["seconds"].values())
    out.print(
        f'China-size world in {workdir}: {ny} x {nx} cells at 30", '
        f"{summary['land_pixels']:,} land pixels ({summary['era5_land_cells']:,} ERA5-Land land "
        f"cells), {summary['days']} days, {summary['trees']} tree(s) per layer; "
        f"inputs: {sizes}; {seconds:.0f} s."
    )
    out.print("Next, either of:")
    for command in ("produce", "bench produce --size china"):
        out.print(f"  smci -w {workdir} {command}", soft_wrap=True)


@app.command()
@shared_options
def demo(
    size: Annotated[str, typer.Option(help="default | tiny | china")] = "default",
    seed: Annotated[int, typer.Option(help="world seed")] = 42,
    stages: Annotated[str, typer.Option(help="comma list or 'all'")] = "all",
    # --size china (issue #21): the real extent for a short period, no truth, no stations.
    start: Annotated[str, typer.Option(help="china: first day")] = "2019-07-01",
    end: Annotated[str, typer.Option(help="china: last day")] = "2019-07-31",
    trees: Annotated[int, typer.Option(help="china: trees per layer")] = 1,
    landmask: Annotated[
        Path | None, typer.Option(help="china: ERA5-Land land mask NetCDF (default: shared copy)")
    ] = None,
) -> None:
    """Generate the twin world into the workdir, then run every pipeline stage on it.

    ``--size china`` writes the China-size world (inputs and small forests, no truth) and
    runs nothing: then `smci produce` or `smci bench produce --size china`.
    """
    from smci_gpu import pipeline

    if size == "china":
        from smci_gpu.demo_china import generate_china
        from smci_gpu.errors import ConfigError

        start, end = _day(start, "--start"), _day(end, "--end")
        if trees < 1:
            raise ConfigError(f"--trees must be at least 1, got {trees}")
        summary = generate_china(state.workdir, start, end, trees, seed, landmask=landmask)
        _print_china_world(state.workdir, summary)
        return

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


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day(value: str | None, option: str) -> str | None:
    """``value`` checked as a calendar day written YYYY-MM-DD (None passes through)."""
    from datetime import date

    from smci_gpu.errors import ConfigError

    if value is None:
        return None
    try:
        if not _DAY.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ConfigError(f"{option} {value!r}: expected a day as YYYY-MM-DD") from None


def _check_layers(layers: list[int] | None, cfg: Any) -> None:
    """Every ``--layer`` must be one of the config's layers (an unknown one is an error)."""
    from smci_gpu.errors import ConfigError

    bad = [d for d in layers or () if d not in cfg.layers]
    if bad:
        raise ConfigError(
            f"--layer {', '.join(map(str, bad))}: not a layer of this config; "
            f"layers are {cfg.layers} (cm)"
        )


def _check_period(cfg: Any) -> None:
    """The produce period must run forwards (an empty period is an error, not a no-op)."""
    from smci_gpu.errors import ConfigError

    start, end = cfg.produce.start, cfg.produce.end
    if start > end:
        raise ConfigError(f"produce: start {start} is after end {end}; nothing to produce")


def _era5land_period(folder: Path) -> tuple[Any, Any] | None:
    """First and last time stamp in the ERA5-Land files of ``folder`` (None if unreadable)."""
    from smci_gpu.io.era5land import Era5LandArchive

    try:
        first, last = Era5LandArchive.from_folder(folder).period()
    except SmciError:
        return None
    return first, last


def _outside_inputs(exc: SmciError, cfg: Any) -> SmciError:
    """A clearer error when the period misses the ERA5-Land files altogether."""
    from smci_gpu.errors import InputDataError

    folder = cfg.path("inputs", "era5land")
    period = _era5land_period(folder) if "not found in the ERA5-Land files" in str(exc) else None
    if period is None:
        return exc
    return InputDataError(
        f"produce: {cfg.produce.start}..{cfg.produce.end} lies outside the ERA5-Land files in "
        f"{folder}, whose time stamps run from {period[0]:%Y-%m-%d %H:%M} to "
        f"{period[1]:%Y-%m-%d %H:%M} UTC (a day needs its own hours and the next day's "
        f"00 UTC accumulations); choose days inside, or add files"
    )


@app.command()
@shared_options
def prepare() -> None:
    """Stations → QC → daily → matching → station-day table (work/station_days.parquet)."""
    _run_stage("prepare")


# Training backend (forest.backend) of train, tune and validate.
BackendOption = Annotated[
    str | None,
    typer.Option("--backend", help="forest trainer: auto | sklearn | sklearnex | cuml"),
]


def _forest_overrides(**forest: Any) -> dict[str, Any]:
    forest = {k: v for k, v in forest.items() if v is not None}
    return {"forest": forest} if forest else {}


@app.command()
@shared_options
def tune(
    groups: Annotated[str | None, typer.Option(help="random | station | both")] = None,
    layer: Annotated[list[int] | None, typer.Option(help="layer (cm) to tune; repeatable")] = None,
    folds: Annotated[int | None, typer.Option(help="number of CV folds")] = None,
    backend: BackendOption = None,
) -> None:
    """Cross-validated grid over max_features × min_samples_leaf (work/tune/)."""
    section = {"groups": groups, "layers": layer, "folds": folds}
    section = {k: v for k, v in section.items() if v is not None}
    overrides = {"tune": section} if section else {}
    overrides |= _forest_overrides(backend=backend)
    _check_layers(layer, state.config(**overrides))
    _run_stage("tune", **overrides)


@app.command()
@shared_options
def train(
    layer: Annotated[list[int] | None, typer.Option(help="layer (cm) to train; repeatable")] = None,
    trees: Annotated[
        int | None, typer.Option(help="trees per forest (forest.n_estimators)")
    ] = None,
    backend: BackendOption = None,
) -> None:
    """Train one random forest per layer from the station-day table (models/)."""
    overrides = _forest_overrides(n_estimators=trees, backend=backend)
    _check_layers(layer, state.config(**overrides))  # --trees 0 is a ConfigError here
    _run_stage("train", {"layers": layer}, **overrides)


@app.command()
@shared_options
def produce(
    start: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD")] = None,
    inference: Annotated[str | None, typer.Option(help="packed | nvforest")] = None,
    layout: Annotated[str | None, typer.Option(help="daily | smci1")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="netcdf (daily files) | zarr (one store)")
    ] = None,
    resolution: Annotated[str | None, typer.Option(help="1km | 9km (predicted at 9 km)")] = None,
    workers: Annotated[int | None, typer.Option(help="local Dask workers (GPUs on GPU)")] = None,
    scheduler_address: Annotated[
        str | None, typer.Option(help="an existing Dask scheduler, e.g. tcp://host:8786")
    ] = None,
) -> None:
    """Predict every land pixel, day and layer; write one CF NetCDF per day (product/)."""
    chosen = (
        ("start", _day(start, "--start")),
        ("end", _day(end, "--end")),
        ("inference", inference),
        ("layout", layout),
        ("format", fmt),
        ("resolution", resolution),
    )
    section = {k: v for k, v in chosen if v is not None}
    cluster = {"n_workers": workers, "scheduler_address": scheduler_address}
    cluster = {k: v for k, v in cluster.items() if v is not None}
    overrides = {"produce": section} if section else {}
    if cluster:
        overrides["dask"] = cluster
    cfg = state.config(**overrides)
    _check_period(cfg)
    try:
        stats = _run_stage("produce", **overrides)
    except SmciError as exc:
        raise _outside_inputs(exc, cfg) from exc
    if stats["failed"]:  # the other days are written; the job still reports the failure
        raise typer.Exit(code=1)


@app.command()
@shared_options
def aggregate(
    start: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD")] = None,
) -> None:
    """Average the 1 km daily product to 9 km (product/9km_from_1km/)."""
    from smci_gpu.layout import aggregate as run

    done = run(state.config(), _day(start, "--start"), _day(end, "--end"))
    out.print(
        f"aggregate: {done['written']} day(s) written, {done['skipped']} current → {done['path']}"
    )


@app.command()
@shared_options
def layout(
    resolution: Annotated[str, typer.Option(help="1km | 9km")] = "1km",
    year: Annotated[list[int] | None, typer.Option(help="year to assemble; repeatable")] = None,
) -> None:
    """Assemble SMCI1.0-layout year/layer files from the daily files (product/smci1_1km/)."""
    from smci_gpu.errors import ConfigError, InputDataError
    from smci_gpu.layout import smci1_layout

    if resolution not in ("1km", "9km"):
        raise ConfigError(f"--resolution {resolution!r}: expected 1km or 9km")
    cfg = state.config()
    folder = cfg.path("product", resolution)
    have = sorted({int(f.stem[-8:-4]) for f in folder.glob(f"SMCI_{resolution}_????????.nc")})
    missing = [y for y in year or () if y not in have]
    if missing:
        raise InputDataError(
            f"layout: no daily SMCI_{resolution}_YYYYMMDD.nc files for year(s) "
            f"{', '.join(map(str, missing))} in {folder} (years there: {have or 'none'})"
        )
    done = smci1_layout(cfg, resolution, year)
    out.print(
        f"layout: {len(done['written'])} file(s) written, {len(done['current'])} current "
        f"→ {done['path']}"
    )


@app.command()
@shared_options
def validate(
    ablation: Annotated[
        bool,
        typer.Option(
            help="instead: every era5_upsampling × matching.method option on the twin world, "
            "in work/ablation/ → work/validation/ablation.{csv,md}"
        ),
    ] = False,
    backend: BackendOption = None,
) -> None:
    """Year-to-year and station-to-station experiments vs ERA5-Land (work/validation/)."""
    overrides = _forest_overrides(backend=backend)
    if ablation:
        from smci_gpu.evaluate.ablation import ablation as run_ablation

        out.rule("[bold]validate --ablation")
        run_ablation(state.config(**overrides), out)
        return
    _run_stage("validate", **overrides)


@app.command()
@shared_options
def compare(
    products: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PRODUCT", help="CF NetCDF file, folder or glob, or SMCI1.0 year-layer files"
        ),
    ] = None,
    name: Annotated[
        list[str] | None, typer.Option(help="a name per product, in order; repeatable")
    ] = None,
    layers: Annotated[
        list[str] | None,
        typer.Option(
            help="per product, in order: LAYER_CM:VARIABLE or LAYER_CM:DEPTH_CM, comma "
            "separated (e.g. 10:swvl1,20:swvl2), or 'auto'; repeatable"
        ),
    ] = None,
) -> None:
    """Other products at the stations beside the model, raw and matched (work/compare/).

    Without PRODUCT: the working folder's own daily product, its SMCI1.0 layout and its
    ERA5-Land daily-mean inputs.
    """
    from smci_gpu.errors import ConfigError
    from smci_gpu.evaluate.compare import ProductSpec, parse_layers

    products, name, layers = products or [], name or [], layers or []
    if len(name) > len(products) or len(layers) > len(products):
        raise ConfigError("compare: more --name/--layers than products")
    specs = [
        ProductSpec(
            p,
            name[i] if i < len(name) else "",
            parse_layers(layers[i] if i < len(layers) else None, f"--layers for {p}"),
        )
        for i, p in enumerate(products)
    ]
    _run_stage("compare", {"products": specs})


@app.command()
@shared_options
def report() -> None:
    """HTML report of validation, importance, maps and QC (report/index.html)."""
    _run_stage("report")


@app.command()
@shared_options
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
@shared_options(device=False)
def bench(
    suites: Annotated[
        list[str] | None,
        typer.Argument(help="all | kernels | inference | train | produce | io | scaling"),
    ] = None,
    bench_device: Annotated[
        str, typer.Option("--device", "--on", help="cpu | gpu | both (both = every one found)")
    ] = "both",
    size: Annotated[str, typer.Option(help="tiny | small | medium | large | china")] = "small",
    repeats: Annotated[int, typer.Option(help="timed repeats per cell")] = 5,
    out_dir: Annotated[Path, typer.Option("--out", help="result folder (JSON, md, PNG)")] = Path(
        "bench"
    ),
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the JSON results here")
    ] = None,
    days: Annotated[
        int | None, typer.Option(help="china: the period's first N days only (default: all)")
    ] = None,
) -> None:
    """Measure each stage's implementations side by side; write bench.json, bench.md, PNGs."""
    import json

    from smci_gpu.bench.suite import SUITES, available_devices, run_suite
    from smci_gpu.errors import ConfigError

    names = list(SUITES) if not suites or suites == ["all"] else suites
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise ConfigError(
            f"bench: unknown suite(s) {', '.join(unknown)}; choose from all, {', '.join(SUITES)}"
        )
    devices = available_devices(bench_device)
    folder = state.workdir / out_dir
    if size == "china":  # issue #21: a real-size day and month through produce's runner
        from smci_gpu.bench.produce import run_china

        if names != ["produce"] or "cpu" not in devices:
            raise ConfigError("bench --size china runs the produce suite on the CPU only")
        run_china(state.workdir, folder, days=days, log=out.print)
        typer.echo((folder / "china.md").read_text())
        return
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
        # The message is text, not markup: "[sklearnex]" or a path with brackets stays.
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
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
