"""The command line: one-line errors, exit codes, config show."""

import os
import subprocess
import sys
import tomllib


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
