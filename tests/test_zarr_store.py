"""The Zarr v3 product store: CF decoding equal to the daily NetCDF files, staged T-day
blocks, refusal of another product's store, SIGKILL + resume identical to one run, and
``smci produce`` with ``produce.format = "zarr"``."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from smci_gpu.errors import OutputError
from smci_gpu.grid import RegularGrid
from smci_gpu.io.writer import encode_int16, product_dataset, write_day
from smci_gpu.io.zarr_store import ZarrProduct, open_product, store_path

from .conftest import run_killable_child

GRID = RegularGrid(100.0, 30.0, 30.0 / 3600.0, 20, 24)
LAYERS = [10, 20]
DAYS = pd.date_range("2020-02-27", periods=7)
ATTRS = {"config_hash": "a", "model_digests": "m", **GRID.to_attrs()}


def _sm(day, grid=GRID) -> np.ndarray:
    rng = np.random.default_rng(pd.Timestamp(day).day_of_year)
    sm = rng.uniform(0.01, 0.58, (len(LAYERS), *grid.shape)).astype(np.float32)
    sm[:, :2, :3] = np.nan
    return sm


def _counts_by_hand(sm) -> np.ndarray:
    return np.where(np.isnan(sm), -999, np.rint(sm.astype(np.float64) * 1000)).astype(np.int16)


def test_open_zarr_decodes_as_the_daily_netcdf_files(tmp_path):
    store = open_product(tmp_path, "1km", GRID, LAYERS, DAYS, ATTRS, (1, 8, 8))
    day = DAYS[2]
    store.write_day(day, encode_int16(_sm(day)))
    nc_path = tmp_path / "day.nc"
    write_day(nc_path, product_dataset(_sm(day), day, LAYERS, GRID, ATTRS))
    z = xr.open_zarr(store_path(tmp_path, "1km"))
    n = xr.open_dataset(nc_path, engine="netcdf4")
    got = z.sm.sel(time=day).values
    # float64 from Zarr (JSON has no float32 scale factor), float32 from NetCDF: equal once cast
    np.testing.assert_array_equal(got.astype(np.float32), n.sm.values[0])
    counts = _counts_by_hand(_sm(day))
    want = np.where(counts == -999, np.nan, counts * np.float64(np.float32(0.001)))
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[:, :2, :3]).all()
    assert np.isnan(z.sm.sel(time=DAYS[3]).values).all()  # not written: fill, decoded NaN
    for name in ("sm", "lat", "lon", "depth", "time", "crs", "depth_bnds"):
        assert z[name].attrs == n[name].attrs, name
    for name in ("lat", "lon", "depth", "lat_bnds", "lon_bnds", "depth_bnds"):
        np.testing.assert_array_equal(z[name].values, n[name].values)
    np.testing.assert_array_equal(z.time_bnds.sel(time=day).values, n.time_bnds.values[0])
    assert z.time.encoding["units"] == "days since 1970-01-01"
    assert z.sm.encoding["scale_factor"] == np.float32(0.001)
    assert z.day_written.values.tolist() == [0, 0, 1, 0, 0, 0, 0]
    for key in ("Conventions", "config_hash", "model_digests", "geospatial_lat_min"):
        assert z.attrs[key] == n.attrs[key]
    assert z.attrs["time_coverage_start"] == "2020-02-27T00:00:00Z"
    assert z.attrs["time_coverage_end"] == "2020-03-05T00:00:00Z"
    root = json.loads((store_path(tmp_path, "1km") / "zarr.json").read_text())
    assert root["zarr_format"] == 3 and "sm" in root["consolidated_metadata"]["metadata"]
    # Only codecs of the Zarr v3 specification (core "bytes", "blosc"), so other
    # implementations read the store; numcodecs' own codecs are not in it.
    sm_meta = json.loads((store_path(tmp_path, "1km") / "sm" / "zarr.json").read_text())
    assert {c["name"] for c in sm_meta["codecs"]} <= {"bytes", "blosc", "transpose"}


def test_days_are_staged_until_their_block_is_complete(tmp_path):
    store = open_product(tmp_path, "1km", GRID, LAYERS, DAYS, ATTRS, (3, 8, 16))
    assert store.sm.chunks == (3, 1, 8, 16)
    for day in (DAYS[1], DAYS[0], DAYS[4]):
        store.write_day(day, encode_int16(_sm(day)))
    assert store.done().tolist() == [1, 1, 0, 0, 1, 0, 0]
    assert np.asarray(store.written[:]).tolist() == [0] * 7  # block 0 lacks day 2
    raw = store.sm[:]
    assert (raw == -999).all()
    store.write_day(DAYS[2], encode_int16(_sm(DAYS[2])))
    assert np.asarray(store.written[:]).tolist() == [1, 1, 1, 0, 0, 0, 0]
    for i in range(3):
        np.testing.assert_array_equal(store.sm[i], _counts_by_hand(_sm(DAYS[i])))
    assert not (store.staging_path / "sm" / "c" / "0").exists()  # block 0's staging removed
    store.write_day(DAYS[6], encode_int16(_sm(DAYS[6])))  # the last block has one day
    assert np.asarray(store.written[:]).tolist() == [1, 1, 1, 0, 0, 0, 1]


def test_a_block_being_copied_by_another_writer_is_left_to_it(tmp_path):
    store = open_product(tmp_path, "1km", GRID, LAYERS, DAYS, ATTRS, (3, 8, 16))
    store.write_day(DAYS[0], encode_int16(_sm(DAYS[0])))
    (store.staging_path / ".block-0.copying").touch()  # another Dask worker copies block 0
    for day in DAYS[1:3]:
        store.write_day(day, encode_int16(_sm(day)))
    assert np.asarray(store.written[:3]).tolist() == [0, 0, 0]
    # The next run's open (no writer alive): the stale lock goes and the block is copied.
    store = open_product(tmp_path, "1km", GRID, LAYERS, DAYS, ATTRS, (3, 8, 16))
    assert np.asarray(store.written[:3]).tolist() == [1, 1, 1]
    assert not (store.staging_path / ".block-0.copying").exists()
    for i in range(3):
        np.testing.assert_array_equal(store.sm[i], _counts_by_hand(_sm(DAYS[i])))


def test_a_store_of_another_product_is_refused(tmp_path):
    open_product(tmp_path, "1km", GRID, LAYERS, DAYS, ATTRS, (1, 8, 8))
    with pytest.raises(OutputError, match="config_hash a .run: b."):
        open_product(tmp_path, "1km", GRID, LAYERS, DAYS, {**ATTRS, "config_hash": "b"}, (1, 8, 8))
    with pytest.raises(OutputError, match="layers × lat × lon"):
        open_product(tmp_path, "1km", GRID, [10], DAYS, ATTRS, (1, 8, 8))
    with pytest.raises(OutputError, match="starts on 2020-02-27"):
        open_product(tmp_path, "1km", GRID, LAYERS, DAYS - pd.Timedelta(days=1), ATTRS, (1, 8, 8))
    store = ZarrProduct(store_path(tmp_path, "1km"))
    with pytest.raises(OutputError, match="2021-01-01 is outside"):
        store.write_day("2021-01-01", encode_int16(_sm(DAYS[0])))
    with pytest.raises(OutputError, match="expects int16"):
        store.write_day(DAYS[0], _sm(DAYS[0]))


def test_a_later_period_lengthens_the_store(tmp_path):
    store = open_product(tmp_path, "1km", GRID, LAYERS, DAYS[:4], ATTRS, (3, 8, 8))
    for day in DAYS[:4]:
        store.write_day(day, encode_int16(_sm(day)))
    assert np.asarray(store.written[:]).tolist() == [1, 1, 1, 1]  # the last block: one day
    store = open_product(tmp_path, "1km", GRID, LAYERS, DAYS[3:], ATTRS, (3, 8, 8))
    assert store.sm.shape[0] == 7 and store.done().tolist() == [1, 1, 1, 1, 0, 0, 0]
    for day in DAYS[4:]:
        store.write_day(day, encode_int16(_sm(day)))
    z = xr.open_zarr(store_path(tmp_path, "1km"))
    assert list(z.time.values) == list(DAYS.values) and z.day_written.values.all()
    for day in DAYS:
        want = np.where(np.isnan(_sm(day)), np.nan, _counts_by_hand(_sm(day)) * 0.001)
        np.testing.assert_allclose(z.sm.sel(time=day).values, want, rtol=1e-6)
    assert z.attrs["time_coverage_end"] == "2020-03-05T00:00:00Z"
    end = (DAYS[-1] + pd.to_timedelta([0, 1], unit="D")).values
    np.testing.assert_array_equal(z.time_bnds.values[-1], end)


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np, pandas as pd
    from smci_gpu.grid import RegularGrid
    from smci_gpu.io.writer import encode_int16
    from smci_gpu.io.zarr_store import open_product
    out = Path(sys.argv[1])
    grid = RegularGrid(100.0, 30.0, 30.0 / 3600.0, 240, 240)
    days = pd.date_range("2020-02-27", periods=10)
    attrs = {"config_hash": "a", "model_digests": "m", **grid.to_attrs()}
    store = open_product(out, "1km", grid, [10, 20], days, attrs, (4, 64, 64))
    print("ready", flush=True)
    done = store.done()
    for i, day in enumerate(days):
        if not done[i]:
            rng = np.random.default_rng(i)
            sm = rng.uniform(0.01, 0.58, (2, 240, 240)).astype(np.float32)
            sm[:, :5] = np.nan
            store.write_day(day, encode_int16(sm))
    """
)


def _child(out, kill_after: float | None) -> float | None:
    """Run the writer child; SIGKILL it ``kill_after`` s after it is ready, or time it."""
    return run_killable_child(CHILD, str(out), kill_after=kill_after)


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("zref")
    run_s = _child(out, None)
    return ZarrProduct(store_path(out, "1km")), run_s


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sigkill_during_zarr_writes_then_resume_is_identical(reference_store, tmp_path, seed):
    ref, run_s = reference_store
    _child(tmp_path, float(np.random.default_rng(seed).uniform(0.0, run_s * 0.8)))
    path = store_path(tmp_path, "1km")
    if path.exists():  # right after the kill: every day flagged written holds its values
        killed = ZarrProduct(path)
        for i in np.flatnonzero(np.asarray(killed.written[:]) == 1):
            np.testing.assert_array_equal(killed.sm[i], ref.sm[i])
    _child(tmp_path, None)
    got = ZarrProduct(path)
    np.testing.assert_array_equal(np.asarray(got.written[:]), np.ones(10))
    np.testing.assert_array_equal(got.sm[:], ref.sm[:])
    decoded = xr.open_zarr(path).sm.values
    np.testing.assert_array_equal(decoded, xr.open_zarr(ref.path).sm.values)


def test_produce_writes_the_zarr_store_the_netcdf_days_decode_to(trained, tmp_path):
    import shutil

    from rich.console import Console

    from smci_gpu.config import load_config
    from smci_gpu.produce import produce

    wd = tmp_path / "w"
    shutil.copytree(trained, wd, ignore=shutil.ignore_patterns("product"))
    days = ("2018-06-01", "2018-06-02")
    base = {"device": "cpu", "produce": {"start": days[0], "end": days[1]}}
    nc_cfg = load_config(workdir=wd, overrides=base)
    produce(nc_cfg, Console(quiet=True))
    zarr_over = {
        **base,
        "produce": {**base["produce"], "format": "zarr", "zarr_chunks": [2, 64, 64]},
    }
    z_cfg = load_config(workdir=wd, overrides=zarr_over)
    first = produce(z_cfg, Console(quiet=True))
    assert first["written"] == 2 and not first["failed"]
    again = produce(z_cfg, Console(quiet=True))
    assert again["written"] == 0 and again["skipped_complete"] == 2
    z = xr.open_zarr(store_path(z_cfg.path("product", "1km"), "1km"))
    for day in days:
        n = xr.open_dataset(nc_cfg.path("product", "1km", f"SMCI_1km_{day.replace('-', '')}.nc"))
        got = z.sm.sel(time=day).values.astype(np.float32)
        np.testing.assert_array_equal(got, n.sm.values[0])
        assert z.attrs["config_hash"] == n.attrs["config_hash"]
