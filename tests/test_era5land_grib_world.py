"""The whole pipeline on ERA5-Land GRIB inputs, and what the twin world's ERA5-Land files
hold (only layouts the real CDS delivers)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import xarray as xr
from rich.console import Console

from smci_gpu import demo

# A month of the tiny world with ERA5-Land as MARS GRIB (about 20 s for all stages).
GRIB_SPEC = replace(
    demo.TINY,
    era5_layout="grib",
    start="2018-05-01",
    end="2018-06-03",
    production_days=("2018-06-02",),
)


def _snapshot(folder):
    """Every file and folder below ``folder``: name → (size, mtime in ns)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def grib_world(tmp_path_factory):
    wd = tmp_path_factory.mktemp("gribworld")
    demo.generate(wd, GRIB_SPEC)
    (wd / "smci.toml").write_text(demo.demo_config_toml(GRIB_SPEC))
    return wd


def test_grib_world_is_written_in_the_mars_layout(grib_world):
    import eccodes

    files = sorted((grib_world / "inputs" / "era5land").iterdir())
    assert files and all(f.suffix == ".grib" for f in files)
    levels = {}
    for path in files:
        with open(path, "rb") as f:
            while (h := eccodes.codes_grib_new_from_file(f)) is not None:
                name = eccodes.codes_get(h, "shortName")
                levels[name] = (
                    eccodes.codes_get(h, "typeOfLevel"),
                    eccodes.codes_get(h, "level", int),
                    eccodes.codes_get(h, "stepType"),
                )
                eccodes.codes_release(h)
    for k, top in enumerate((0, 7, 28, 100), start=1):
        assert levels[f"swvl{k}"] == ("depthBelowLandLayer", top, "instant")
        assert levels[f"stl{k}"] == ("depthBelowLandLayer", top, "instant")
    assert levels["2t"][0] == levels["lai_hv"][0] == "surface"
    assert {levels[v][2] for v in ("tp", "e", "pev", "ssrd", "strd")} == {"accum"}


def test_prepare_train_produce_on_grib_inputs_write_nothing_into_inputs(grib_world):
    from smci_gpu import pipeline
    from smci_gpu.config import load_config

    inputs = grib_world / "inputs"
    before = _snapshot(inputs)
    pipeline._load_stages()
    cfg = load_config(workdir=grib_world, overrides={"device": "cpu"})
    for name in ("prepare", "train", "produce"):
        pipeline.STAGES[name](cfg, Console(quiet=True))
    assert _snapshot(inputs) == before  # names, sizes and mtimes: no .idx, no extraction
    day = xr.open_dataset(grib_world / "product" / "1km" / "SMCI_1km_20180602.nc").sm
    assert day.sizes["depth"] == 10 and np.isfinite(day.values).mean() > 0.5


def test_daily_layout_states_are_daily_statistics_and_accumulations_hourly_at_00utc(tiny_world):
    from smci_gpu.io.era5land import daily_statistic

    files = sorted((tiny_world / "inputs" / "era5land").glob("*.nc"))
    for path in files:
        with xr.open_dataset(path) as ds:
            accumulated = set(ds.data_vars) & {"tp", "e", "pev", "ssrd", "strd"}
            if accumulated:  # the hourly dataset: no statistic, stamps at 00 UTC
                assert daily_statistic(ds) is None, path.name
                assert (ds.valid_time.dt.hour == 0).all()
            else:
                assert daily_statistic(ds) == "daily_mean", path.name
