"""The command line: one-line errors, exit codes, config show."""

import os
import subprocess
import sys
import tomllib

import pytest


def smci(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "smci_gpu.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )


def test_config_show_prints_valid_toml(tmp_path):
    (tmp_path / "smci.toml").write_text("[forest]\nn_estimators = 1000\n")
    r = smci("--workdir", str(tmp_path), "config", "show")
    assert r.returncode == 0, r.stderr
    data = tomllib.loads(r.stdout)
    assert data["forest"]["n_estimators"] == 1000
    assert r.stdout.startswith("# config hash ")


def test_bad_config_is_one_line_and_nonzero(tmp_path):
    (tmp_path / "smci.toml").write_text("[forest]\nmax_depht = 3\n")
    r = smci("--workdir", str(tmp_path), "config", "show")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unknown key 'forest.max_depht'" in lines[0]
    assert "Traceback" not in r.stderr


def test_debug_shows_the_traceback(tmp_path):
    r = smci("--debug", "--config", str(tmp_path / "missing.toml"), "config", "show")
    assert r.returncode == 2
    assert "Traceback" in r.stderr and "does not exist" in r.stderr


def test_error_text_with_brackets_is_printed_as_written(tmp_path):
    # Error lines are text, not console markup: "[/b]" once raised a markup error and
    # "[v2]" vanished from the path shown.
    for folder in ("a[/b]", "data[v2]"):
        missing = tmp_path / folder / "missing.toml"
        r = smci("--config", str(missing), "config", "show")
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr
        assert str(missing) in " ".join(r.stderr.split()), r.stderr


def test_usage_error_is_not_a_traceback():
    r = smci("demo", "--no-such-option")
    assert r.returncode == 2
    assert "No such option" in r.stderr and "Traceback" not in r.stderr


def test_produce_exits_non_zero_when_a_day_fails(trained, tmp_path):
    import shutil

    wd = tmp_path / "w"
    shutil.copytree(trained, wd, ignore=shutil.ignore_patterns("product"))
    result = smci(
        "--workdir",
        str(wd),
        "--device",
        "cpu",
        "produce",
        "--start",
        "2018-06-30",
        "--end",
        "2018-07-01",
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 1
    assert "failed 2018-07-01: ERA5-Land lacks this day" in result.stdout.replace("\n", " ")
    assert (wd / "product" / "1km" / "SMCI_1km_20180630.nc").exists()


def one_error_line(r) -> str:
    """The single non-empty stderr line of a failed command (no traceback)."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_shared_options_work_after_the_subcommand(tmp_path):
    (tmp_path / "smci.toml").write_text("[forest]\nn_estimators = 7\n")
    before = smci("--workdir", str(tmp_path), "config", "show")
    after = smci("config", "show", "--workdir", str(tmp_path))
    assert before.returncode == after.returncode == 0, after.stderr
    assert tomllib.loads(after.stdout)["forest"]["n_estimators"] == 7
    assert before.stdout == after.stdout


def test_an_option_given_before_and_after_the_subcommand_takes_the_later(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, trees in ((a, 3), (b, 5)):
        folder.mkdir()
        (folder / "smci.toml").write_text(f"[forest]\nn_estimators = {trees}\n")
    r = smci("--workdir", str(a), "config", "show", "--workdir", str(b))
    assert r.returncode == 0, r.stderr
    assert tomllib.loads(r.stdout)["forest"]["n_estimators"] == 5


def test_device_after_the_subcommand_is_accepted():
    r = smci("config", "show", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert tomllib.loads(r.stdout)["device"] == "cpu"


def test_version():
    from smci_gpu import __version__

    r = smci("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"smci-gpu {__version__}"


def test_config_check_says_ok_or_what_is_wrong(tmp_path):
    (tmp_path / "smci.toml").write_text("[forest]\nn_estimators = 10\n")
    r = smci("config", "check", "--workdir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"config OK: {tmp_path / 'smci.toml'}, hash ")
    (tmp_path / "smci.toml").write_text("[forest]\nn_estimators = -1\n")
    r = smci("config", "check", "--workdir", str(tmp_path))
    assert r.returncode == 2
    assert "'forest.n_estimators'" in one_error_line(r)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["produce", "--start", "2018-07-12", "--end", "2018-07-10"],
            2,
            "produce: start 2018-07-12 is after end 2018-07-10; nothing to produce",
        ),
        (["produce", "--start", "20180710"], 2, "--start '20180710': expected a day as YYYY-MM-DD"),
        (["produce", "--end", "2018-02-30"], 2, "--end '2018-02-30': expected a day as YYYY-MM-DD"),
        (["aggregate", "--start", "1/7/2018"], 2, "--start '1/7/2018': expected a day"),
        (["train", "--trees", "0"], 2, "'forest.n_estimators': Input should be greater than"),
        (["train", "--layer", "15"], 2, "--layer 15: not a layer of this config; layers are [10,"),
        (["tune", "--layer", "15"], 2, "--layer 15: not a layer of this config"),
        (["bench", "nosuch"], 2, "bench: unknown suite(s) nosuch; choose from all, kernels"),
        (["layout", "--resolution", "5km"], 2, "--resolution '5km': expected 1km or 9km"),
    ],
)
def test_a_request_that_would_do_nothing_is_one_clear_error(tmp_path, args, code, message):
    r = smci(*args, "--workdir", str(tmp_path), env={**os.environ, "COLUMNS": "300"})
    assert r.returncode == code, r.stderr
    assert message in one_error_line(r)
    assert not (tmp_path / "product").exists() and not (tmp_path / "models").exists()


def test_layout_for_a_year_without_daily_files_is_an_error(tmp_path):
    folder = tmp_path / "product" / "1km"
    folder.mkdir(parents=True)
    (folder / "SMCI_1km_20180601.nc").write_bytes(b"")  # the check reads names only
    r = smci("layout", "--year", "2017", "--workdir", str(tmp_path))
    assert r.returncode == 4
    assert "no daily SMCI_1km_YYYYMMDD.nc files for year(s) 2017" in one_error_line(r)
    assert "(years there: [2018])" in r.stderr
    assert not (tmp_path / "product" / "smci1_1km").exists()


def test_produce_outside_the_era5land_files_names_their_period(trained, tmp_path):
    import shutil

    wd = tmp_path / "w"
    shutil.copytree(trained, wd, ignore=shutil.ignore_patterns("product"))
    r = smci(
        "produce",
        "--workdir",
        str(wd),
        "--device",
        "cpu",
        "--start",
        "2019-01-01",
        "--end",
        "2019-01-02",
    )
    assert r.returncode == 4
    line = one_error_line(r)
    # the tiny world's ERA5-Land files run from its spin-up to the day after its last day
    assert "produce: 2019-01-01..2019-01-02 lies outside the ERA5-Land files in" in line
    assert "time stamps run from 2018-03-01 00:00 to 2018-07-01 00:00 UTC" in line
    assert not list((wd / "product" / "1km").glob("*.nc"))


def test_produce_logs_progress_lines_without_a_terminal(trained, tmp_path):
    import re
    import shutil

    wd = tmp_path / "w"
    shutil.copytree(trained, wd, ignore=shutil.ignore_patterns("product"))
    r = smci(
        "produce",
        "--workdir",
        str(wd),
        "--device",
        "cpu",
        "--start",
        "2018-06-01",
        "--end",
        "2018-06-03",
        "--progress-interval",
        "0",
    )
    assert r.returncode == 0, r.stderr
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    lines = re.findall(
        rf"^{stamp} produce on cpu: (\d)/3 days \((\d+) %\), [\d.]+ days/s, "
        r"(ETA \d+:\d\d:\d\d|done in \d+:\d\d:\d\d)$",
        r.stdout,
        re.M,
    )
    assert [(d, p) for d, p, _ in lines] == [("1", "33"), ("2", "67"), ("3", "100")], r.stdout
    assert lines[-1][2].startswith("done in") and lines[0][2].startswith("ETA")
    assert "\x1b[" not in r.stdout  # no terminal control codes in a batch log


def test_sklearn_dispatch_warning_is_dropped_and_the_filters_come_back(tmp_path):
    # In a fresh interpreter: pytest's own warning capture would replace the hook.
    import textwrap

    script = textwrap.dedent(
        """
        import warnings
        from smci_gpu.cli import SKLEARN_DISPATCH_WARNING, guard_warning_filters
        guard_warning_filters()
        guard_warning_filters()  # installed once
        warnings.resetwarnings()  # what scikit-learn's thread race leaves: no filters
        warnings.warn(SKLEARN_DISPATCH_WARNING + " ...Parallel", UserWarning)
        print(len(warnings.filters) > 0)
        warnings.warn("another warning", UserWarning)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
    assert "another warning" in proc.stderr and "sklearn.utils.parallel" not in proc.stderr
