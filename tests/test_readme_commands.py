"""Every command line the README quotes, and the Dockerfile's, runs and exits as documented.

Which lines are commands (the rule):

* every line of a fenced ``bash`` block (a trailing ``# comment`` is dropped);
* every inline code span of the "Quick tour" table; in a table cell, a span after ``/``
  that is a bare word (``tune``) is another ``smci`` subcommand, one that starts with
  ``--`` (``--scheduler-address ADDR``) is another option of the span before it;
* every inline code span elsewhere that starts with ``smci``, ``python -m``, ``make`` or
  ``bash``; a bare ``smci <subcommand>`` there (prose naming a stage) counts as covered
  when the table runs that subcommand.

How a command line becomes what runs:

* ``[...]`` is optional and left out; ``a|b|c`` takes ``a``; a left-out ``[--device gpu]``
  is also run on its own (the GPU check below);
* placeholders: ``DIR`` → the test's working folder, ``N`` → 2, ``Y`` → a year of the
  world, ``ADDR`` → a scheduler this test starts;
* ``smci demo`` gets ``--size tiny`` (the tiny twin world, so the test stays short);
  ``smci`` runs with the working folder as its current folder, as a user's shell would;
  ``make`` and ``.venv/bin/…`` lines run in the checkout, where the README runs them;
  lines reading ``../shared/`` (the real sample files beside the checkout) run only where
  that folder exists, as the other tests that read it;
* ``--device gpu`` and ``--inference nvforest`` must succeed where a GPU (nvForest)
  is present, else end in the engine's one-line "no usable CUDA device" (nvForest) error,
  exit 3;
* lines in :data:`SKIPPED` are not run; each has its reason, and a README command that is
  neither run nor skipped fails the test.

The Dockerfile's ``docker run … smci-gpu ARGS`` runs as ``smci ARGS`` with its ``/work``
volume → the working folder; its ``CMD`` (``--help``) runs too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from smci_gpu import backend

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCKERFILE = ROOT / "Dockerfile"

#: README command lines that are not run here, and why.
SKIPPED = {
    "make demo": "the full default demo (~4 min); CI runs it as its own job",
    "make test": "the whole test suite, which includes this test",
    "make bench": "the small benchmark suite (minutes); `smci bench --size tiny` runs here",
    "make clean": "deletes the checkout's demo-work/ and caches",
    "make check-cf": (
        "checks the files of `make demo`'s folder, which CI does not build; "
        "tests/test_cf.py runs the same checker on product files"
    ),
    "python -m smci_gpu.reliability --kills 20": "minutes; tests/test_reliability.py runs it",
    "python -m smci_gpu.bench kernels inference --device both": (
        "size small benchmarks (minutes); `smci bench --size tiny` runs the same suites here"
    ),
    "bash benchmarks/device_check.sh [folder]": "real-GPU parity tests: needs a CUDA device",
    "smci demo --size china": (
        "writes the China-size world (about 5 min, 1 GB); tests/test_china.py builds it on "
        "a few cells of the real grid and produces from it"
    ),
    "smci bench produce --size china": (
        "a real-size China day and month (tens of minutes on 2 cores); tests/test_china.py "
        "checks the projection and runs produce on a few cells of the real grid"
    ),
    (
        "gdal_translate 'HDF4_EOS:EOS_GRID:\"inputs/lai/MCD15A2H.A2018001.h26v05.061."
        "2021350123456.hdf\":MOD_Grid_MOD15A2H:Lai_500m' "
        "inputs/lai/MCD15A2H.A2018001.h26v05.061.2021350123456.tif"
    ): "needs a GDAL built with HDF4, which the rasterio wheels lack (the LAI reader's "
    "message says so; tests/test_lai_modis.py checks that message and the converted file)",
}

SPAN = re.compile(r"`([^`]+)`", re.S)
COMMAND_START = ("smci ", "python -m ", "make ", "bash ")


def _squash(text: str) -> str:
    return " ".join(text.replace("\\|", "|").split())


def _table_commands(text: str) -> list[str]:
    """Commands of the Quick tour table (first column, with the ``/`` continuation rule)."""
    section = text.split("## Quick tour", 1)[1].split("\n\n", 2)[1]
    found = []
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        cell = row[1:]
        # the first column ends at the first " | " outside a code span
        cell = re.split(r"(?<!\\)\| ", re.sub(r"`[^`]*`", lambda m: "x" * len(m[0]), cell))[0]
        cell = row[1 : 1 + len(cell)]
        last, end = None, 0
        for m in SPAN.finditer(cell):
            span, joined = _squash(m[1]), cell[end : m.start()] == " / "
            end = m.end()
            if span.startswith("smci "):
                last = span
            elif last and joined and span.startswith("--"):
                span = f"{last.split(' --')[0]} {span}"
            elif last and joined:
                span = f"smci {span}"
            else:
                continue  # a config key or file name beside the command, not a command
            found.append(span)
    return found


def readme_commands() -> list[str]:
    """The README's command lines, in order, by the module docstring's rule."""
    text = README.read_text()
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    table = _table_commands(text)
    commands += table
    run_subcommands = {c.split()[1] for c in table}
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in SPAN.findall(prose):
        span = _squash(span)
        if not span.startswith(COMMAND_START) or span in commands:
            continue
        words = span.split()
        if words[0] == "smci" and len(words) == 2 and words[1] in run_subcommands:
            continue  # prose naming a stage the table runs
        commands.append(span)
    return list(dict.fromkeys(commands))


def dockerfile_commands() -> list[str]:
    """``smci ARGS`` for the Dockerfile's documented ``docker run`` and its ``CMD``."""
    text = DOCKERFILE.read_text()
    runs = re.findall(r"docker run .*? smci-gpu (.+)$", text, re.M)
    cmd = re.search(r"^CMD \[(.*)\]$", text, re.M)
    args = [a.strip().strip('"') for a in cmd[1].split(",")] if cmd else []
    return [f"smci {r.strip()}" for r in runs] + ([f"smci {' '.join(args)}"] if args else [])


def expand(command: str, workdir: Path, address: str) -> list[str]:
    """The command lines that run for one README command (see the module docstring)."""
    optional = re.findall(r"\[([^\]]*)\]", command)
    base = re.sub(r"\s*\[[^\]]*\]", "", command)
    variants = [base]
    if any("--device gpu" in o for o in optional):
        variants.append(f"{base} --device gpu")
    out = []
    for line in variants:
        words = [w.split("|")[0] for w in line.split()]
        subst = {"DIR": str(workdir), "N": "2", "Y": "2018", "ADDR": address, "/work": str(workdir)}
        words = [subst.get(w, w) for w in words]
        if words[:2] == ["smci", "demo"]:
            words.append("--size=tiny")
        out.append(shlex.join(words))
    return out


def _gpu_or_nvforest_missing(line: str) -> str | None:
    """The one-line error a CPU-only machine must give for this line (None: must pass)."""
    if "--device gpu" in line and not backend.gpu_available():
        return "no usable CUDA device"
    if "--inference nvforest" in line:
        try:
            import nvforest  # noqa: F401
        except ImportError:
            return "nvForest inference needs the nvforest"
    return None


def test_the_rule_finds_the_documented_commands():
    commands = readme_commands()
    for expected in (
        "make demo",
        "smci demo --workdir DIR",
        "smci produce --scheduler-address ADDR",
        "smci selftest [--device gpu] [--quick]",
        "smci produce --inference nvforest",
        "bash benchmarks/device_check.sh [folder]",
    ):
        assert any(c.startswith(expected) for c in commands), (expected, commands)
    assert "smci tune [--groups random|station|both]" in commands
    assert dockerfile_commands() == ["smci --workdir /work produce --device gpu", "smci --help"]
    line = expand("smci bench [all|kernels] --device cpu|gpu --size tiny|small", Path("/w"), "")
    assert line == ["smci bench --device cpu --size tiny"]


@pytest.fixture(scope="module")
def scheduler():
    """A local Dask scheduler with one worker process, for ``--scheduler-address``."""
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def test_every_readme_and_dockerfile_command_runs(tiny_world, tmp_path, scheduler):
    wd = tmp_path / "w"
    shutil.copytree(tiny_world, wd, ignore=shutil.ignore_patterns("product", "models", "work"))
    env = {**os.environ, "COLUMNS": "200"}
    bindir = Path(sys.executable).parent
    ran, failures = [], []
    for command in readme_commands() + dockerfile_commands():
        if command in SKIPPED:
            continue
        for line in expand(command, wd, scheduler):
            if "../shared/" in line and not (ROOT.parent / "shared").is_dir():
                continue  # the real sample files, beside the checkout (as in tests/conftest.py)
            words = shlex.split(line)
            if words[0] == "smci":
                words[0] = str(bindir / "smci")
                cwd = wd
            elif words[0].startswith(".venv/bin/"):  # run from the checkout, as written
                words[0] = str(bindir / Path(words[0]).name)
                cwd = ROOT
            elif words[0] == "make":
                if not (ROOT / ".venv" / "bin" / "ruff").exists():
                    pytest.skip("`make lint` needs the checkout's .venv (make install-test)")
                cwd = ROOT
            else:
                words[0] = sys.executable if words[0] == "python" else words[0]
                cwd = wd
            r = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True)
            ran.append(line)
            expected_error = _gpu_or_nvforest_missing(line)
            if expected_error is None:
                if r.returncode != 0:
                    failures.append(f"{line}: exit {r.returncode}\n{r.stderr[-2000:]}")
            else:
                lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
                if r.returncode != 3 or len(lines) != 1 or expected_error not in lines[0]:
                    failures.append(f"{line}: expected exit 3, '{expected_error}'\n{r.stderr}")
    assert not failures, "\n\n".join(failures)
    assert any(line.startswith("smci demo") for line in ran) and len(ran) >= 15, ran
