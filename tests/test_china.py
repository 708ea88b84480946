"""China scale (issue #21): the China-size world on a few cells of the real grid, the
bounded-memory reads, the read/predict/write pipeline and the on-device int16 encoding."""

from __future__ import annotations

import shutil

import netCDF4
import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from smci_gpu import demo_china, features
from smci_gpu.config import load_config
from smci_gpu.encoding import encode_counts
from smci_gpu.errors import ConfigError
from smci_gpu.grid import target_grid
from smci_gpu.io import era5land, writer
from smci_gpu.io.cds import cds_dataset, write_cds_netcdf
from smci_gpu.io.rasters import LaiComposites
from smci_gpu.io.writer import encode_int16
from smci_gpu.produce import load_forests, memory_plan, predict_day, produce

#: A few cells of the real extent: 0.4° x 0.3° at 110 E, 30 N (48 x 36 pixels at 30″).
BOX = (110.0, 30.0, 110.4, 30.3)
DAYS = ("2019-07-30", "2019-08-02")  # crosses a month: two monthly ERA5-Land files each


def test_the_china_grid_is_the_published_one():
    assert target_grid(*demo_china.CHINA_BBOX, 30).shape == (4320, 7560)
    lat, lon = demo_china.era5_axes(demo_china.CHINA_BBOX)
    assert (lat.size, lon.size) == (361, 631)
    assert lat[0] == 18.0 and lat[-1] == 54.0 and lon[0] == 73.0 and lon[-1] == 136.0


def _landmask_file(path, land_rows):
    """A global 0.1° land mask as the shared file lays it out (lat 90 → -90, lon 0–359.9)
    with land at the given ``(lat, lon)`` cell centres only."""
    lat = np.round(np.arange(900, -901, -1) * 0.1, 1).astype(np.float32)
    lon = np.round(np.arange(3600) * 0.1, 1).astype(np.float32)
    land = np.zeros((lat.size, lon.size), np.float32)
    for la, lo in land_rows:
        land[np.argmin(abs(lat - la)), np.argmin(abs(lon - lo))] = 1.0
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("longitude", lon.size)
        nc.createDimension("latitude", lat.size)
        nc.createVariable("longitude", "f4", ("longitude",))[:] = lon
        nc.createVariable("latitude", "f4", ("latitude",))[:] = lat
        nc.createVariable("land", "f4", ("latitude", "longitude"), zlib=True)[:] = land


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("china")
    lat, lon = demo_china.era5_axes(BOX)
    sea = {(lat[0], lon[-1]), (lat[0], lon[-2])}  # a corner of sea: coast and water pixels
    cells = [(a, o) for a in lat for o in lon if (a, o) not in sea]
    _landmask_file(root / "landmask.nc", cells)
    wd = root / "world"
    summary = demo_china.generate_china(
        wd, *DAYS, trees=2, bbox=BOX, landmask=root / "landmask.nc", train_rows=1500
    )
    return wd, summary, lat, lon, sea


def test_the_world_takes_its_land_from_the_land_mask(world):
    wd, summary, lat, lon, sea = world
    assert summary["grid"] == [36, 48]
    assert summary["era5_land_cells"] == lat.size * lon.size - len(sea)
    mask = demo_china.read_landmask(wd.parent / "landmask.nc", lat, lon)
    assert not mask[0, -1] and not mask[0, -2] and mask[1:].all()
    assert sorted(p.name for p in (wd / "inputs" / "era5land").iterdir()) == [
        "era5land_accum_00utc_201907.nc",
        "era5land_accum_00utc_201908.nc",
        "era5land_daily_mean_201907.nc",
        "era5land_daily_mean_201908.nc",
    ]


def test_encode_counts_matches_hand_worked_values_and_the_writer():
    assert (writer.SCALE, writer.FILL) == (0.001, -999)  # encoding's copy of the packing
    v = np.array([0.1, 0.2346, -0.05, 0.75, np.nan, 0.0004, 0.6], np.float32)
    assert encode_counts(v, 0.0, 0.6).tolist() == [100, 235, 0, 600, -999, 0, 600]
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.1, 0.7, 20_000).astype(np.float32)
    x[::97] = np.nan
    ref = encode_int16(np.clip(x, 0.0, 0.6))
    assert encode_counts(x, 0.0, 0.6).dtype == np.int16
    np.testing.assert_array_equal(encode_counts(x, 0.0, 0.6), ref)
    # Forests predict float64; the float32 product stores the clipped values as float32.
    x64 = rng.uniform(-0.1, 0.7, 20_000)
    ref64 = encode_int16(np.clip(x64, 0.0, 0.6).astype(np.float32))
    np.testing.assert_array_equal(encode_counts(x64, 0.0, 0.6), ref64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_encode_scatter_writes_the_writers_counts_and_counts_the_clipped(dtype):
    from smci_gpu.encoding import encode_scatter

    rng = np.random.default_rng(1)
    n = 30_000
    x = rng.uniform(-0.1, 0.7, n).astype(dtype)
    x[::97] = np.nan
    x[:4] = [np.inf, -np.inf, 0.6000000238, -0.0]
    x[4:604] = (np.arange(600) + 0.5).astype(np.float32) * np.float32(0.001)  # halves
    out = np.full((300, 200), 7, np.int16)
    rows, cols = np.divmod(rng.permutation(60_000)[:n], 200)
    clipped = encode_scatter(out, rows, cols, x, 0.0, 0.6)
    want = np.full_like(out, 7)
    with np.errstate(invalid="ignore"):  # the writer's encoding of the clipped float32
        # values; a non-finite prediction is no value (fill), as encode_counts documents
        kept = np.where(np.isfinite(x), np.clip(x, 0.0, 0.6), np.nan).astype(np.float32)
        want[rows, cols] = encode_int16(kept)
        assert clipped == int(((x < 0.0) | (x > 0.6)).sum())  # NaN: not clipped
    np.testing.assert_array_equal(out, want)
    assert out[rows[0], cols[0]] == -999 and out[rows[1], cols[1]] == -999  # ±inf: fill


def test_memory_plan_counts_a_china_day_and_refuses_a_small_budget():
    px = 4320 * 7560
    plan = memory_plan((4320, 7560), 24, 8, 10, 12.0, 512)
    fixed = plan["fixed_bytes"]
    assert fixed["static maps"] == 8 * px * 4
    assert fixed["outputs (2 days + compressed chunks)"] == 3 * 10 * px * 2  # int16
    assert fixed["LAI window"] == 2 * 12 * px * 4  # 2 + 2 * (LAI_SEARCH + 1) composites
    assert sum(fixed.values()) < 12 * 2**30
    assert plan["tile_size"] == 512
    with pytest.raises(ConfigError, match="produce.memory_gb = 4 is too small"):
        memory_plan((4320, 7560), 24, 8, 10, 4.0, 512)


def test_a_days_era5_read_touches_only_its_files_and_stamps(world, monkeypatch):
    wd = world[0]
    opened = []
    real = era5land.read_file
    monkeypatch.setattr(era5land, "read_file", lambda p: opened.append(p.name) or real(p))
    archive = era5land.Era5LandArchive.from_folder(wd / "inputs" / "era5land")
    ds = archive.load("2019-08-01", "2019-08-01", ["swvl1", "tp"])
    # July's states are skipped; July's accumulations end at 1 August 00 UTC (31 July's
    # total), a stamp inside the day, so that file is opened (and its stamp not used).
    assert sorted(opened) == [
        "era5land_accum_00utc_201907.nc",
        "era5land_accum_00utc_201908.nc",
        "era5land_daily_mean_201908.nc",
    ]
    with netCDF4.Dataset(wd / "inputs" / "era5land" / "era5land_daily_mean_201908.nc") as nc:
        want = nc["swvl1"][0][::-1]  # stored north to south; 2019-08-01 is the first day
    np.testing.assert_array_equal(ds["swvl1"].values[0], np.ma.filled(want, np.nan))


def test_an_hourly_day_is_reduced_from_its_own_hours(tmp_path):
    """States: the mean of the day's 24 hours; accumulations: the next day's 00 UTC value,
    computed here with NumPy from the array written."""
    rng = np.random.default_rng(3)
    hours = pd.date_range("2019-07-01", periods=72, freq="h")
    lat, lon = np.array([30.0, 30.1, 30.2]), np.array([110.0, 110.1])
    swvl1 = rng.uniform(0.1, 0.4, (72, 3, 2)).astype(np.float32)
    tp = rng.uniform(0.0, 0.02, (72, 3, 2)).astype(np.float32)
    ds = cds_dataset({"swvl1": swvl1, "tp": tp}, hours, lat, lon, layout="new")
    write_cds_netcdf(ds, tmp_path / "hourly.nc")
    got = era5land.Era5LandArchive([tmp_path / "hourly.nc"]).load(
        "2019-07-02", "2019-07-02", ["swvl1", "tp"]
    )
    np.testing.assert_allclose(got["swvl1"].values[0], swvl1[24:48].mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(got["tp"].values[0], tp[48])


def test_lai_composites_are_read_once_and_dropped_after_their_window(world):
    wd = world[0]
    cfg = load_config(workdir=wd, overrides={"device": "cpu"})
    cache = LaiComposites()
    folder, grid = wd / "inputs" / "lai", cfg.product_grid()
    seen = set()
    for day in pd.date_range("2019-07-01", "2019-08-08", freq="4D"):
        comps, dates = cache.window(folder, grid, day, day, margin=1)
        assert len(comps) == len(dates) == len(cache._held) <= 4
        seen.update(dates.tolist())
    assert cache.reads == len(seen)  # never the same composite twice


@pytest.mark.parametrize("pipeline", [True, False])
def test_pipelined_days_equal_an_independent_prediction(world, tmp_path, pipeline):
    """Each day's stored int16 = the writer's encoding of the clipped float32 prediction
    from inputs loaded for the whole period at once (the former, non-streaming load)."""
    src = world[0]
    wd = tmp_path / "w"
    shutil.copytree(src, wd, ignore=shutil.ignore_patterns("product", "runs"))
    cfg = load_config(workdir=wd, overrides={"device": "cpu", "produce": {"pipeline": pipeline}})
    stats = produce(cfg, Console(quiet=True))
    assert stats["written"] == 4 and not stats["failed"]
    forests, _ = load_forests(cfg)
    features._LAI = LaiComposites()  # a cold cache: nothing shared with the run above
    whole = features.Predictors.load(cfg, DAYS[0], DAYS[1])
    for day in pd.date_range(*DAYS):
        sm, t, _, _ = predict_day(whole, forests, day, 16)
        want = encode_int16(np.clip(sm, 0.0, 0.6))
        path = wd / "product" / "1km" / f"SMCI_1km_{day:%Y%m%d}.nc"
        with netCDF4.Dataset(path) as nc:
            nc.set_auto_maskandscale(False)
            got = nc["sm"][0]
        np.testing.assert_array_equal(got, want)
        assert (got[:, ~whole.land_mask()] == -999).all()
        assert (got[:, whole.land_mask()] > 0).all()
    assert set(stats["seconds"]) >= {"read", "lai", "assemble", "infer", "encode", "write"}


def test_projection_scales_inference_by_trees_and_takes_the_slowest_thread():
    from smci_gpu.bench.produce import PRODUCT_DAYS, projection, stage_table

    day = {"read": 1.0, "lai_read": 0.5, "lai": 1.0, "assemble": 2.0, "infer": 4.0}
    day.update(encode=0.5, write=3.0)  # static and to_host absent: count 0
    day.update(read_wait=9.0)  # the reader idle on the NetCDF lock: shown, never summed
    stages = stage_table([day, {**day, "infer": 2.0}, {**day, "infer": 6.0}])
    assert stages["infer"] == 4.0 and stages["static"] == 0.0 and stages["read_wait"] == 9.0
    p = projection(stages, trees=4, layers=10, land_pixels=1000)
    cpu = p["cpu"]
    assert cpu["infer_s_per_day"] == 100.0  # 4 s at 4 trees -> 100 trees
    assert cpu["serial_s_per_day"] == 1 + 0.5 + 1 + 2 + 100 + 0.5 + 3
    assert cpu["pipelined_s_per_day"] == 1 + 2 + 100 + 0.5  # the predictor thread
    assert (cpu["bounding_thread"], cpu["bounding_stage"]) == ("predictor", "infer")
    assert cpu["hours_pipelined"] == pytest.approx(103.5 * PRODUCT_DAYS / 3600)
    gpu = p["gpu_h200_tile"]
    assert gpu["infer_s_per_day"] == pytest.approx(1000 * 10 / 45.5e6)
    assert gpu["bounding_stage"] == "write"  # the largest single stage once inference is fast
    assert p["per_tree_pixel_layer_s"] == pytest.approx(4.0 / (4 * 1000 * 10))
    assert p["cpu_recorded_rate"]["infer_s_per_day"] == pytest.approx(1000 / 1.31e5)
    eight = projection(stages, trees=4, layers=10, land_pixels=1000, n=8)
    assert eight["cpu"]["hours_pipelined"] == pytest.approx(cpu["hours_pipelined"] / 8)


def test_textured_day_has_fill_off_land_and_the_stated_texture():
    from smci_gpu.bench.produce import textured_counts

    rng = np.random.default_rng(0)
    land = rng.random((48, 60)) < 0.7
    counts = textured_counts(land, layers=3, seed=4)
    assert counts.dtype == np.int16 and counts.shape == (3, 48, 60)
    assert (counts[:, ~land] == writer.FILL).all()
    assert ((counts[:, land] >= 0) & (counts[:, land] <= 600)).all()
    # layers differ by 10 counts of offset plus independent per-pixel noise of s.d. 2:
    # the difference of two layers has mean 10 and s.d. 2 * sqrt(2) (rounding adds ~0.4)
    diff = (counts[1].astype(float) - counts[0])[land]
    assert abs(diff.mean() - 10.0) < 0.3 and 2.6 < diff.std() < 3.2
