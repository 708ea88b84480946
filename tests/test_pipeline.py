"""prepare → train → produce on the tiny twin world."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from smci_gpu import pipeline
from smci_gpu.config import load_config
from smci_gpu.errors import ModelError
from smci_gpu.features import Predictors
from smci_gpu.io.writer import FILL, SCALE


@pytest.fixture(scope="module")
def world(tiny_world):
    pipeline._load_stages()
    cfg = load_config(workdir=tiny_world, overrides={"device": "cpu"})
    console = Console(quiet=True)
    for name in ("prepare", "train", "produce"):
        pipeline.STAGES[name](cfg, console)
    return cfg


def test_station_table_rows_equal_production_feature_rows(world):
    cfg = world
    table = pd.read_parquet(cfg.path("work", "station_days.parquet"))
    sample = table.sample(20, random_state=0)
    for _, row in sample.iterrows():
        pred = Predictors.load(cfg, row.time, row.time)
        # The production builder for the whole land mask of that day...
        land = pred.land_mask()
        rows, cols = np.nonzero(land)
        x = pred.features(row.time, rows, cols)
        k = np.flatnonzero((rows == row.row) & (cols == row.col))
        assert k.size == 1
        # ...has exactly the station-day table's predictors at the station pixel.
        np.testing.assert_array_equal(x[k[0]], row[cfg.features].to_numpy(np.float32))


def test_matched_series_keep_the_reference_mean_and_std(world):
    table = pd.read_parquet(world.path("work", "station_days.parquet"))
    for _, g in table.groupby(["row", "col", "depth_cm"]):
        if len(g) < 10:
            continue
        assert g.sm_matched.mean() == pytest.approx(g.reference.mean(), abs=1e-9)
        assert g.sm_matched.std(ddof=0) == pytest.approx(g.reference.std(ddof=0), abs=1e-9)
        assert np.corrcoef(g.sm_matched, g.sm)[0, 1] == pytest.approx(1.0, abs=1e-9)


def test_model_cards_describe_the_forests(world):
    card = json.loads((world.path("models", "layer_010cm", "card.json")).read_text())
    assert card["features"] == list(world.features)
    assert card["forest"] == world.forest.model_dump()
    assert card["rows"] > 100 and card["stations"] >= 1


def test_models_older_than_the_station_table_are_named(world, tmp_path):
    # A card whose rows hash differs from the table beside it (a later `smci prepare`)
    # is named with the fix; fresh cards, or no table at all, give no message.
    from smci_gpu.model.train import stale_layers
    from smci_gpu.produce import load_forests

    _, cards = load_forests(world)
    assert stale_layers(world, cards) == []
    old = {**cards[10], "data_hash": "0123456789abcdef"}
    (message,) = stale_layers(world, {**cards, 10: old})
    assert "layer 10 cm" in message and "0123456789abcdef" in message
    assert "re-run `smci train`" in message
    assert stale_layers(world.model_copy(update={"workdir": tmp_path}), {10: old}) == []


def test_product_values_equal_rounded_forest_predictions(world):
    from smci_gpu.model.train import load_layer

    cfg = world
    day = pd.Timestamp(cfg.produce.start)
    path = cfg.path("product", "1km", f"SMCI_1km_{day:%Y%m%d}.nc")
    raw = xr.open_dataset(path, mask_and_scale=False, engine="netcdf4")
    assert raw.sm.dtype == np.int16 and raw.sm.attrs["scale_factor"] == np.float32(SCALE)
    assert raw.sm.attrs["_FillValue"] == FILL and raw.attrs["Conventions"] == "CF-1.8, ACDD-1.3"
    assert raw.attrs["config_hash"] == cfg.hash()
    pred = Predictors.load(cfg, day, day)
    land = pred.land_mask()
    rng = np.random.default_rng(1)
    rows, cols = np.nonzero(land)
    pick = rng.choice(rows.size, 25, replace=False)
    x = pred.features(day, rows[pick], cols[pick])
    for k, depth in enumerate(cfg.layers):
        forest, _ = load_layer(cfg, depth)
        want = np.round(np.clip(forest.predict(x), 0.0, 0.6) / SCALE).astype(np.int16)
        got = raw.sm.values[0, k, rows[pick], cols[pick]]
        np.testing.assert_array_equal(got, want)
    # Off land: the fill value.
    assert (raw.sm.values[0, :, ~land] == FILL).all()
    decoded = xr.open_dataset(path, engine="netcdf4").sm
    assert float(decoded.max()) <= 0.6 and decoded.depth.attrs["positive"] == "down"


def test_rerun_skips_complete_days_and_redoes_corrupt_ones(world):
    from smci_gpu.produce import produce

    console = Console(quiet=True)
    again = produce(world, console)
    assert again["written"] == 0 and again["skipped_complete"] == again["days"]
    day = pd.Timestamp(world.produce.start)
    path = world.path("product", "1km", f"SMCI_1km_{day:%Y%m%d}.nc")
    good = xr.open_dataset(path, engine="netcdf4").sm.values
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    redo = produce(world, console)
    assert redo["written"] == 1
    np.testing.assert_array_equal(xr.open_dataset(path, engine="netcdf4").sm.values, good)


def test_model_features_must_match_the_config(world):
    from smci_gpu.model.train import load_layer

    other = world.model_copy(update={"features": list(reversed(world.features))})
    with pytest.raises(ModelError, match="trained on features"):
        load_layer(other, 10)


def test_produce_with_nvforest_inference_matches_packed(world, tmp_path, monkeypatch):
    import shutil

    from smci_gpu import backend
    from smci_gpu.config import load_config
    from smci_gpu.produce import produce

    from .test_forest import GtilStandIn

    pytest.importorskip("treelite")
    monkeypatch.setattr(backend, "nvforest_module", GtilStandIn)
    wd = tmp_path / "nv"
    shutil.copytree(world.workdir, wd, ignore=shutil.ignore_patterns("product"))
    cfg = load_config(workdir=wd, overrides={"device": "cpu", "produce": {"inference": "nvforest"}})
    assert produce(cfg, Console(quiet=True))["written"] >= 1
    day = pd.Timestamp(world.produce.start)
    name = f"SMCI_1km_{day:%Y%m%d}.nc"
    open_raw = lambda p: xr.open_dataset(p, mask_and_scale=False, engine="netcdf4").sm.values  # noqa: E731
    packed = open_raw(world.path("product", "1km", name)).astype(int)
    served = open_raw(cfg.path("product", "1km", name)).astype(int)
    # float32 serving moves a value by one 0.001 step only where it sits on a rounding edge.
    assert np.abs(served - packed).max() <= 1
    assert (served == packed).mean() > 0.999


def test_aggregate_to_9km_is_the_block_mean_of_land_pixels(world):
    from smci_gpu.layout import aggregate

    done = aggregate(world)
    assert done["written"] >= 1
    day = pd.Timestamp(world.produce.start)
    fine = xr.open_dataset(
        world.path("product", "1km", f"SMCI_1km_{day:%Y%m%d}.nc"), engine="netcdf4"
    ).sm.values[0]
    coarse = xr.open_dataset(
        world.path("product", "9km_from_1km", f"SMCI_9km_{day:%Y%m%d}.nc"), engine="netcdf4"
    )
    k, ny, nx = fine.shape
    blocks = fine.reshape(k, ny // 12, 12, nx // 12, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-water blocks: NaN
        want = np.nanmean(blocks, axis=(2, 4))
    # Stored as int16 counts of 0.001: equal to the rounded block mean; a mean exactly half
    # way between two counts (e.g. 285.5) may go either way in float arithmetic.
    counts, got = want / SCALE, coarse.sm.values[0] / SCALE
    tie = np.isclose(counts % 1, 0.5, atol=1e-3)
    np.testing.assert_allclose(got[~tie], np.round(counts[~tie]), atol=1e-6)
    assert (np.abs(got[tie] - counts[tie]) < 0.5 + 1e-3).all()
    assert coarse.attrs["grid_res"] == pytest.approx(0.1)
    assert aggregate(world)["written"] == 0  # current files are kept


def test_smci1_layout_places_days_on_the_published_grid(world):
    from smci_gpu.layout import PUBLISHED, smci1_layout

    done = smci1_layout(world)
    assert len(done["written"]) == len(world.layers)
    day = pd.Timestamp(world.produce.start)
    daily = xr.open_dataset(
        world.path("product", "1km", f"SMCI_1km_{day:%Y%m%d}.nc"),
        engine="netcdf4",
        mask_and_scale=False,
    )
    grid = PUBLISHED["1km"]
    year = xr.open_dataset(
        world.path("product", "smci1_1km", f"SMCI_1km_{day.year}_30cm.nc"),
        engine="netcdf4",
        mask_and_scale=False,
    )
    assert year.SMCI.shape[1:] == (4320, 7560) and year.SMCI.dtype == np.int16
    assert year.SMCI.attrs["units"] == "0.001 m3/m3" and year.SMCI.attrs["_FillValue"] == FILL
    r0 = round((daily.attrs["grid_south"] - grid.south) / grid.res)
    c0 = round((daily.attrs["grid_west"] - grid.west) / grid.res)
    ny, nx = daily.sizes["lat"], daily.sizes["lon"]
    assert year.sizes["time"] == (366 if day.is_leap_year else 365)
    slot = day.day_of_year - 1
    assert year.day_written.values[slot] == 1
    got = year.SMCI[slot].values  # one day: the whole year is 24 GB at 30″
    np.testing.assert_array_equal(got[r0 : r0 + ny, c0 : c0 + nx], daily.sm.values[0, 2])
    got[r0 : r0 + ny, c0 : c0 + nx] = FILL
    assert (got == FILL).all()  # nothing outside the region
    np.testing.assert_allclose(year.lat.values[r0 : r0 + ny], daily.lat.values)
    assert smci1_layout(world)["written"] == []  # the year file already holds these days


def test_a_days_predictors_do_not_depend_on_the_period_loaded(world):
    day = pd.Timestamp("2018-05-10")
    alone = Predictors.load(world, day, day)
    wide = Predictors.load(world, day - pd.Timedelta(days=60), day + pd.Timedelta(days=40))
    np.testing.assert_array_equal(alone.fine_stack(day), wide.fine_stack(day))
    rows, cols = np.nonzero(alone.land_mask())
    np.testing.assert_array_equal(alone.features(day, rows, cols), wide.features(day, rows, cols))


def _lai_by_np_interp(pred, day, rows, cols):
    """Daily LAI at pixels by ``np.interp`` over each pixel's valid composites (ends held,
    no valid composite: 0), on the window of composites a day uses (LAI_SEARCH)."""
    from smci_gpu.features import LAI_SEARCH

    target = np.datetime64(day, "s")
    i = int(np.searchsorted(pred.lai_dates, target, "right"))
    lo, hi = max(i - 1 - LAI_SEARCH, 0), min(i + 1 + LAI_SEARCH, len(pred.lai_dates))
    t = (pred.lai_dates[lo:hi] - target) / np.timedelta64(1, "D")
    comps = np.stack(pred.lai_comp[lo:hi])[:, rows, cols].astype(np.float64)
    out = np.zeros(len(rows))
    for p in range(len(rows)):
        ok = np.isfinite(comps[:, p])
        out[p] = np.interp(0.0, t[ok], comps[ok, p]) if ok.any() else 0.0
    return out


def test_a_fine_buffer_rewrites_only_the_days_lai_and_gives_each_days_values(world):
    import dataclasses

    from smci_gpu.features import FineBuffer

    days = [pd.Timestamp("2018-05-10"), pd.Timestamp("2018-05-23"), pd.Timestamp("2018-05-10")]
    pred = Predictors.load(world, days[0], days[1])
    rng = np.random.default_rng(0)
    rows = rng.integers(0, pred.grid.shape[0], 300)
    cols = rng.integers(0, pred.grid.shape[1], 300)
    buffer, first = FineBuffer(), None
    for day in days:
        got = pred.fine_stack(day, buffer)
        first = got if first is None else first
        assert np.shares_memory(got, first)  # one stack for the run of days
        np.testing.assert_array_equal(got, pred.fine_stack(day))  # a new array: the same
        np.testing.assert_array_equal(got[1:], pred.static)
        want = _lai_by_np_interp(pred, day, rows, cols)
        np.testing.assert_allclose(got[0, rows, cols], want, rtol=1e-6, atol=1e-6)
    assert not np.array_equal(
        pred.fine_stack(days[0])[0], pred.fine_stack(days[1])[0]
    )  # the days differ, so the rewrite is seen
    np.testing.assert_array_equal(buffer.land_mask(pred), pred.land_mask())
    other = dataclasses.replace(pred, static=pred.static * np.float32(2))  # new statics
    np.testing.assert_array_equal(other.fine_stack(days[0], buffer)[1:], other.static)
    np.testing.assert_array_equal(buffer.land_mask(other), other.land_mask())


def test_9km_version_predicts_from_block_aggregated_predictors(world, tmp_path):
    import shutil

    from smci_gpu.config import load_config
    from smci_gpu.model.train import load_layer
    from smci_gpu.produce import produce

    wd = tmp_path / "w9"
    shutil.copytree(world.workdir, wd, ignore=shutil.ignore_patterns("product"))
    cfg = load_config(workdir=wd, overrides={"device": "cpu", "produce": {"resolution": "9km"}})
    day = pd.Timestamp(cfg.produce.start)
    assert produce(cfg, Console(quiet=True), day, day)["written"] == 1
    path = cfg.path("product", "9km", f"SMCI_9km_{day:%Y%m%d}.nc")
    got = xr.open_dataset(path, mask_and_scale=False, engine="netcdf4")
    assert got.sm.shape[2:] == (5, 5) and got.attrs["grid_res"] == pytest.approx(0.1)
    # Independent aggregation: NumPy means over each block's land pixels, majority class.
    pred = Predictors.load(cfg, day, day)
    land = pred.land_mask()
    rows, cols = np.nonzero(land)
    x = pred.features(day, rows, cols)
    lc = cfg.features.index("landcover")
    forest, _ = load_layer(cfg, 30)
    k = cfg.layers.index(30)
    for by, bx in [(0, 0), (2, 3), (4, 4)]:
        inside = (rows // 12 == by) & (cols // 12 == bx)
        if not inside.any():
            continue
        feats = x[inside].astype(np.float64).mean(axis=0).astype(np.float32)
        feats[lc] = np.bincount(x[inside, lc].astype(int)).argmax()
        want = np.round(np.clip(forest.predict(feats[None]), 0, 0.6) / SCALE).astype(np.int16)
        # The kernel sums in another order than NumPy's mean: the float32 features may
        # differ in the last bit, which can move a stored value by one 0.001 step, no more.
        assert abs(int(got.sm.values[0, k, by, bx]) - int(want[0])) <= 1


def test_models_trained_on_another_grid_are_refused(world):
    from smci_gpu.model.train import load_layer

    other = world.model_copy(
        update={"grid": world.grid.model_copy(update={"resolution_arcsec": 60.0})}
    )
    with pytest.raises(ModelError, match="trained on predictors at 30.0″"):
        load_layer(other, 10)


def test_land_pixels_with_nan_predictors_are_counted_and_left_empty(world, tmp_path, monkeypatch):
    import shutil

    from smci_gpu.config import load_config
    from smci_gpu.produce import produce

    wd = tmp_path / "nan"
    shutil.copytree(world.workdir, wd, ignore=shutil.ignore_patterns("product"))
    cfg = load_config(workdir=wd, overrides={"device": "cpu"})
    real = Predictors.features

    def holes(self, day, rows, cols, fine=None, out=None):
        x = real(self, day, rows, cols, fine=fine, out=out)
        x[::50, 3] = np.nan  # every 50th pixel of each tile loses a predictor
        return x

    monkeypatch.setattr(Predictors, "features", holes)
    day = pd.Timestamp(cfg.produce.start)
    stats = produce(cfg, Console(quiet=True), day, day)
    raw = xr.open_dataset(
        cfg.path("product", "1km", f"SMCI_1km_{day:%Y%m%d}.nc"),
        mask_and_scale=False,
        engine="netcdf4",
    )
    land = int(Predictors.load(cfg, day, day).land_mask().sum())
    empty_land = int((raw.sm.values[0, 0] == FILL).sum()) - (
        raw.sm.shape[2] * raw.sm.shape[3] - land
    )
    assert stats["nan_feature_pixels"] == empty_land > 0
    assert raw.attrs["nan_feature_pixels"] == empty_land


@settings(max_examples=25, deadline=None)
@given(
    ny=st.integers(1, 20),
    nx=st.integers(1, 20),
    seed=st.integers(0, 10_000),
    dtype=st.sampled_from(["int16", "float32"]),
)
def test_writer_round_trip(tmp_path_factory, ny, nx, seed, dtype):
    from smci_gpu.grid import RegularGrid
    from smci_gpu.io.writer import encode_int16, product_dataset, write_day

    rng = np.random.default_rng(seed)
    sm = rng.uniform(0, 0.6, (2, ny, nx)).astype(np.float32)
    sm[rng.random(sm.shape) < 0.2] = np.nan
    grid = RegularGrid(114.0, 40.0, 1 / 120, ny, nx)
    path = tmp_path_factory.mktemp("rt") / "day.nc"
    write_day(path, product_dataset(sm, "2018-07-10", [10, 20], grid, {}, dtype), dtype)
    raw = xr.open_dataset(path, mask_and_scale=False, engine="netcdf4").sm.values[0]
    if dtype == "int16":
        np.testing.assert_array_equal(raw, encode_int16(sm))
    else:
        np.testing.assert_array_equal(np.where(np.isnan(sm), FILL, sm), raw)
    decoded = xr.open_dataset(path, engine="netcdf4").sm.values[0]
    np.testing.assert_allclose(decoded, sm, atol=SCALE / 2 + 1e-9 if dtype == "int16" else 0)
