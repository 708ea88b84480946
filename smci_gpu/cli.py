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


def main() -> None:
    """Console-script entry point: run the app, turning engine errors into one line."""
    try:
        app(standalone_mode=False)
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
