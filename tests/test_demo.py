"""The twin world: real formats, sensible values, determinism."""

import hashlib

import numpy as np
import pandas as pd
import pytest
import rioxarray
import xarray as xr

from smci_gpu import demo


def _digest(folder):
    h = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return h


def test_same_seed_same_bytes(tmp_path, tiny_world):
    demo.generate(tmp_path, demo.TINY)
    assert _digest(tmp_path / "inputs") == _digest(tiny_world / "inputs")
    assert _digest(tmp_path / "truth") == _digest(tiny_world / "truth")


def test_other_seed_other_world(tmp_path, tiny_world):
    from dataclasses import replace

    demo.generate(tmp_path, replace(demo.TINY, seed=7))
    a = pd.read_csv(tmp_path / "truth" / "stations.csv")
    b = pd.read_csv(tiny_world / "truth" / "stations.csv")
    assert not np.allclose(a.lat.values, b.lat.values)


def test_era5land_files_look_like_cds_downloads(tiny_world):
    files = sorted((tiny_world / "inputs" / "era5land").glob("*.nc"))
    assert files
    daily = xr.open_dataset(next(f for f in files if "daily_mean" in f.name))
    assert "valid_time" in daily.dims and "number" in daily.coords and "expver" in daily.coords
    assert daily.latitude.values[0] > daily.latitude.values[-1]  # descending, as the CDS
    assert daily.swvl1.attrs["units"] == "m3 m-3" and daily.t2m.attrs["units"] == "K"
    for v in ("swvl1", "swvl2", "swvl3", "swvl4", "stl1", "t2m", "lai_hv", "lai_lv"):
        assert v in daily
    acc = xr.open_dataset(next(f for f in files if "accum" in f.name))
    assert set(acc.data_vars) == {"tp", "e", "pev", "ssrd", "strd"}
    # Accumulations are stamped 00 UTC of the following day.
    assert pd.Timestamp(acc.valid_time.values[0]) == pd.Timestamp(
        daily.valid_time.values[0]
    ) + pd.Timedelta(days=1)
    assert float(acc.e.max()) <= 0.0  # evaporation negative upward
    sm = daily.swvl1.values
    assert np.isnan(sm).any() or np.nanmin(sm) > 0  # ocean / lake cells are NaN
    assert 0.02 < np.nanmean(sm) < 0.6


def test_geotiffs_have_crs_transform_nodata_scale(tiny_world):
    lai = rioxarray.open_rasterio(sorted((tiny_world / "inputs" / "lai").glob("*.tif"))[0])
    assert lai.rio.crs.to_epsg() == 4326
    assert lai.rio.nodata == demo.LAI_FILL and lai.attrs["scale_factor"] == demo.LAI_SCALE
    assert lai.rio.resolution()[0] == pytest.approx(1 / 240)  # 500 m (15″)
    for name in ("landcover", "dem", "grav", "por", "sa", "si", "cl", "bd"):
        da = rioxarray.open_rasterio(tiny_world / "inputs" / "static" / f"{name}.tif")
        assert da.rio.crs.to_epsg() == 4326
        assert da.rio.nodata is not None
        assert da.rio.bounds() == pytest.approx((114.0, 40.0, 114.5, 40.5))
    por = rioxarray.open_rasterio(tiny_world / "inputs" / "static" / "por.tif").values
    assert 0.3 < por.min() and por.max() < 0.6


def test_station_csv_parses_and_holds_faults(tiny_world):
    files = sorted((tiny_world / "inputs" / "stations").glob("*.csv"))
    assert len(files) == demo.TINY.n_stations
    df = pd.read_csv(files[0], parse_dates=["time"])
    assert list(df.columns) == ["station_id", "lat", "lon", "time", "depth_cm", "sm"]
    assert set(df.depth_cm.unique()) <= set(range(10, 101, 10))
    assert (df.groupby("depth_cm").time.diff().dropna() >= pd.Timedelta(hours=1)).all()
    faults = pd.read_csv(tiny_world / "truth" / "faults.csv")
    assert set(faults.fault) <= set(demo.FAULT_TYPES)
    assert len(faults) > 10
    # Two pairs of stations share a 1 km cell, so prepare has something to average.
    st = pd.read_csv(tiny_world / "truth" / "stations.csv")
    assert st.duplicated(["row", "col"]).sum() == 2


def test_truth_is_plausible_and_structured(tiny_world):
    t = xr.open_dataset(sorted((tiny_world / "truth").glob("truth_*.nc"))[0]).sm
    v = t.values
    assert np.isfinite(v).mean() > 0.9
    assert 0.0 < np.nanmin(v) and np.nanmax(v) < 0.6
    # 1 km structure inside each 0.1° cell (std within 12x12 blocks is not zero).
    top = v[0, 0, :48, :48].reshape(4, 12, 4, 12)
    assert np.nanmean(np.nanstd(top, axis=(1, 3))) > 1e-3


def test_hourly_layout_writes_cumulative_accumulations(tmp_path):
    from dataclasses import replace

    spec = replace(
        demo.TINY,
        era5_layout="hourly",
        start="2018-01-01",
        end="2018-01-20",
        n_stations=6,
        production_days=("2018-01-10",),
    )
    demo.generate(tmp_path, spec)
    ds = xr.open_dataset(sorted((tmp_path / "inputs" / "era5land").glob("*.nc"))[0])
    assert ds.longitude.values.min() >= 0  # 0..360, as older downloads
    tp = ds.tp.values[:, 3, 3]
    # Within a day the accumulation grows from 01 UTC and the next 00 UTC holds the total.
    day1 = tp[1:25]
    assert np.all(np.diff(day1) >= -1e-9)
    assert tp[24] == pytest.approx(24 * tp[1], rel=1e-5)
