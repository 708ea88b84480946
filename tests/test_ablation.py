"""`smci validate --ablation` on the tiny twin world: option tables and the one table."""

import shutil

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from smci_gpu.config import load_config
from smci_gpu.evaluate import ablation as A
from smci_gpu.insitu.matching import cdf_match
from smci_gpu.model.train import TARGET


@pytest.fixture
def world(trained, tmp_path):
    wd = tmp_path / "w"
    shutil.copytree(trained, wd, ignore=shutil.ignore_patterns("product", "ablation"))
    return wd


def _cfg(wd, **over):
    return load_config(workdir=wd, overrides={"device": "cpu", **over})


def test_resampling_with_the_tables_options_gives_the_table_back(world):
    cfg = _cfg(world)
    table = pd.read_parquet(world / "work" / "station_days.parquet")
    table = table[table.time.dt.month == 5].reset_index(drop=True)  # a month is enough
    again = A.resample_features(cfg, table)
    np.testing.assert_array_equal(again[cfg.features].to_numpy(), table[cfg.features].to_numpy())


def test_option_tables(world):
    base = _cfg(world)
    table = pd.read_parquet(world / "work" / "station_days.parquet")
    none = A.option_table(table, A.option_config(base, "nearest", "none", world), base)
    np.testing.assert_array_equal(none[TARGET], table.sm)  # the raw in-situ series
    assert none.attrs["method_options"]["matching_method"] == "none"
    cdf = A.option_table(table, A.option_config(base, "nearest", "cdf", world), base)
    g = table.groupby(A.KEYS).ngroup()
    first = (g == 0).to_numpy()
    np.testing.assert_allclose(
        cdf[TARGET][first], cdf_match(table.sm[first].to_numpy(), table.reference[first].to_numpy())
    )
    bil = A.option_table(table, A.option_config(base, "bilinear", "mean_std", world), base)
    np.testing.assert_array_equal(bil[TARGET], table[TARGET])
    era = [f for f in base.features if f.startswith("swvl")]
    assert not np.allclose(bil[era], table[era])
    np.testing.assert_array_equal(bil["dem"], table["dem"])


def test_ablation_writes_one_table_and_leaves_the_main_folder_alone(world):
    cfg = _cfg(world, layers=[10, 50], forest={"n_estimators": 5, "max_features": 4})
    before = {p: p.stat().st_mtime_ns for p in (world / "models").rglob("*") if p.is_file()}
    table_mtime = (world / "work" / "station_days.parquet").stat().st_mtime_ns
    out = A.ablation(cfg, Console(quiet=True))
    frame = pd.read_csv(out["path"])
    assert len(frame) == 6 * 2  # options × layers
    assert set(zip(frame.upsampling, frame.matching, strict=True)) == {
        (u, m) for u in A.UPSAMPLING for m in A.MATCHING
    }
    assert frame[["truth_rmse", "cell_std", "matched_r", "raw_rmse"]].notna().all().all()
    # ERA5-Land at its nearest cell has no spread inside a cell; the truth does
    assert (frame.era5land_cell_std == 0).all() and (frame.truth_cell_std > 0).all()
    # without matching, the target is the raw series: both station scores coincide
    none = frame[frame.matching == "none"]
    np.testing.assert_allclose(none.matched_rmse, none.raw_rmse)
    md = (world / "work" / "validation" / "ablation.md").read_text()
    assert md.count("\n| nearest |") == 3 and md.count("\n| bilinear |") == 3
    assert not (world / "product").exists()  # the main product folder is untouched
    after = {p: p.stat().st_mtime_ns for p in (world / "models").rglob("*") if p.is_file()}
    assert after == before
    assert (world / "work" / "station_days.parquet").stat().st_mtime_ns == table_mtime
    assert (world / "work" / "ablation" / "bilinear+cdf" / "product" / "1km").is_dir()
