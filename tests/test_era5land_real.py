"""ERA5-Land in the layouts users really get: MARS GRIB soil layers, CDS daily statistics,
CDS zips, and the real sample files (checked against netCDF4/ecCodes raw decoding)."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pandas as pd
import pytest

from smci_gpu.errors import InputDataError
from smci_gpu.io.cds import cds_dataset, write_cds_grib, write_cds_netcdf, write_cds_zip
from smci_gpu.io.era5land import Era5LandArchive, read_file
from smci_gpu.variables import ERA5LAND_FEATURES

LAT = np.array([40.0, 40.1, 40.2])  # ascending
LON = np.array([114.0, 114.1, 114.2, 114.3])
DAY = pd.Timestamp("2018-06-01")


def _raw_grib(path, messages):
    """GRIB 1 written with ecCodes directly (not through the engine's writer), with the
    level keys MARS ERA5-Land messages carry: soil layers on depthBelowLandLayer (GRIB1
    level type 112), top/bottom in cm; 2t on surface. ``messages``: (paramId, (top, bottom)
    or None, value at every cell, north-first 2-D array or scalar)."""
    import eccodes

    with open(path, "wb") as f:
        for pid, layer, values in messages:
            h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib1")
            for key, value in (
                ("centre", "ecmf"),
                ("paramId", pid),
                ("dataDate", 20180601),
                ("dataTime", 1200),
                ("Ni", LON.size),
                ("Nj", LAT.size),
                ("latitudeOfFirstGridPointInDegrees", LAT[-1]),
                ("longitudeOfFirstGridPointInDegrees", LON[0]),
                ("latitudeOfLastGridPointInDegrees", LAT[0]),
                ("longitudeOfLastGridPointInDegrees", LON[-1]),
                ("iDirectionIncrementInDegrees", 0.1),
                ("jDirectionIncrementInDegrees", 0.1),
            ):
                eccodes.codes_set(h, key, value)
            if layer is not None:
                eccodes.codes_set(h, "typeOfLevel", "depthBelowLandLayer")
                eccodes.codes_set(h, "topLevel", layer[0])
                eccodes.codes_set(h, "bottomLevel", layer[1])
            eccodes.codes_set(h, "bitsPerValue", 24)
            grid = np.broadcast_to(np.asarray(values, np.float64), (LAT.size, LON.size))
            eccodes.codes_set_values(h, np.ascontiguousarray(grid).ravel())
            eccodes.codes_write(h, f)
            eccodes.codes_release(h)
    return path


# GRIB 1 levels are one octet each: layer 4 (100-289 cm) ends at 255.
LAYERS = {1: (0, 7), 2: (7, 28), 3: (28, 100), 4: (100, 255)}


# --------------------------------------------------------------------------- GRIB levels


def test_grib_soil_layers_on_depth_below_land_layer_keep_their_own_values(tmp_path):
    # The case: swvl2 = 0.39703 and swvl3 = 0.39265 at one cell, loaded together.
    sw2 = np.full((LAT.size, LON.size), 0.3)
    sw2[0, 1] = 0.39703  # north-first: row 0 is 40.2 N
    sw3 = np.full((LAT.size, LON.size), 0.3)
    sw3[0, 1] = 0.39265
    _raw_grib(tmp_path / "soil.grib", [(40, LAYERS[2], sw2), (41, LAYERS[3], sw3)])
    got = Era5LandArchive.from_folder(tmp_path).load(DAY, DAY, ["swvl2", "swvl3"])
    assert float(got.swvl2[0].sel(lat=40.2, lon=114.1)) == pytest.approx(0.39703, abs=1e-6)
    assert float(got.swvl3[0].sel(lat=40.2, lon=114.1)) == pytest.approx(0.39265, abs=1e-6)
    assert float(got.swvl2[0].sel(lat=40.0, lon=114.0)) == pytest.approx(0.3, abs=1e-6)


def test_every_layer_and_level_combination_of_a_mars_file(tmp_path):
    """All four swvl and stl layers (cfgrib: one hypercube per level, shared by swvlN and
    stlN) plus 2t on surface: each variable comes back with its own value."""
    messages, want = [], {}
    stl = {1: 139, 2: 170, 3: 183, 4: 236}
    for k, layer in LAYERS.items():
        messages += [(38 + k, layer, 0.1 * k), (stl[k], layer, 270 + k)]
        want |= {f"swvl{k}": 0.1 * k, f"stl{k}": 270.0 + k}
    messages.append((167, None, 290.0))
    want["t2m"] = 290.0
    _raw_grib(tmp_path / "all.grib", messages)
    got = Era5LandArchive.from_folder(tmp_path).load(DAY, DAY, list(want))
    for name, value in want.items():
        np.testing.assert_allclose(got[name].values, value, rtol=1e-6, err_msg=name)


def test_a_soil_variable_on_another_layers_depth_is_refused(tmp_path):
    _raw_grib(tmp_path / "wrong.grib", [(40, LAYERS[3], 0.3)])  # swvl2 at 28-100 cm
    with pytest.raises(InputDataError, match=r"wrong.grib.*'swvl2'.*depthBelowLandLayer 28"):
        Era5LandArchive.from_folder(tmp_path).load(DAY, DAY, ["swvl2"])


def test_engine_grib_writer_uses_the_mars_level_keys(tmp_path):
    import eccodes

    times = pd.date_range(DAY, periods=2, freq="h")
    fields = {v: np.ones((2, LAT.size, LON.size)) for v in ("swvl3", "stl4", "t2m", "tp")}
    path = write_cds_grib(fields, times, LAT, LON, tmp_path / "w.grib")
    seen = {}
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            keys = ("typeOfLevel", "topLevel", "bottomLevel", "stepType")
            seen[eccodes.codes_get(h, "shortName")] = tuple(
                eccodes.codes_get(h, k, str) for k in keys
            )
            assert eccodes.codes_get(h, "indicatorOfTypeOfLevel", int) in (1, 112)
            eccodes.codes_release(h)
    assert seen["swvl3"] == ("depthBelowLandLayer", "28", "100", "instant")
    # Layer 4's bottom (289 cm) does not fit GRIB 1's octet: 255, which ecCodes shows as
    # MISSING; its top identifies the layer.
    assert seen["stl4"][:2] == ("depthBelowLandLayer", "100")
    assert seen["2t"][0] == "surface" and seen["tp"][3] == "accum"


def test_full_engine_grib_month_reads_every_variable(tmp_path):
    """All 16 variables, hourly, through the engine's writer (several hypercubes per
    level type): each daily value equals the NetCDF reading of the same fields."""
    rng = np.random.default_rng(3)
    hours = pd.date_range(DAY, periods=49, freq="h")  # two days and the closing 00 UTC
    fields = {v: rng.random((hours.size, LAT.size, LON.size)) for v in ERA5LAND_FEATURES}
    write_cds_grib(fields, hours, LAT, LON, tmp_path / "g" / "a.grib")
    write_cds_netcdf(cds_dataset(fields, hours, LAT, LON), tmp_path / "n" / "a.nc")
    end = DAY + pd.Timedelta(days=1)
    grib = Era5LandArchive.from_folder(tmp_path / "g").load(DAY, end, list(ERA5LAND_FEATURES))
    nc = Era5LandArchive.from_folder(tmp_path / "n").load(DAY, end, list(ERA5LAND_FEATURES))
    for v in ERA5LAND_FEATURES:
        np.testing.assert_allclose(grib[v].values, nc[v].values, atol=2e-6, err_msg=v)


def test_reading_grib_leaves_no_index_file(tmp_path):
    _raw_grib(tmp_path / "soil.grib", [(40, LAYERS[2], 0.3)])
    before = sorted(os.listdir(tmp_path))
    read_file(tmp_path / "soil.grib")
    Era5LandArchive.from_folder(tmp_path).load(DAY, DAY, ["swvl2"])
    assert sorted(os.listdir(tmp_path)) == before == ["soil.grib"]


# --------------------------------------------------------------------------- daily statistics


def _daily_stats(tmp_path, fields, statistic="daily_mean", name="stats.nc"):
    days = pd.date_range(DAY, periods=4, freq="D")
    ds = cds_dataset(fields, days, LAT, LON, "new", statistic=statistic)
    return write_cds_netcdf(ds, tmp_path / name)


def test_daily_mean_states_are_taken_as_they_are(tmp_path):
    t2m = 280.0 + np.arange(4)[:, None, None] * np.ones((4, LAT.size, LON.size))
    _daily_stats(tmp_path, {"t2m": t2m})
    got = Era5LandArchive.from_folder(tmp_path).load(DAY, DAY + pd.Timedelta(days=3), ["t2m"])
    np.testing.assert_allclose(got.t2m.values[:, 0, 0], [280, 281, 282, 283])
    assert list(pd.DatetimeIndex(got.time.values)) == list(pd.date_range(DAY, periods=4))


@pytest.mark.parametrize("statistic", ["daily_mean", "daily_maximum", "daily_sum"])
def test_accumulations_from_the_daily_statistics_service_are_refused(tmp_path, statistic):
    """The issue's case (true totals 1, 2, 3, 4 mm on 06-01..04 read back as 1.0, 1.521,
    …): ERA5-Land daily statistics give no daily total, so the file is refused with what
    to download instead."""
    tp = np.array([1.0, 2.0, 3.0, 4.0])[:, None, None] * np.ones((4, LAT.size, LON.size)) / 1e3
    _daily_stats(tmp_path, {"t2m": np.full_like(tp, 280.0), "tp": tp}, statistic)
    with pytest.raises(InputDataError) as err:
        Era5LandArchive.from_folder(tmp_path).load(DAY, DAY + pd.Timedelta(days=3), ["tp"])
    msg = str(err.value)
    assert "stats.nc" in msg and "'tp'" in msg and "reanalysis-era5-land" in msg
    assert "00:00" in msg and "\n" not in msg


def test_daily_maximum_of_a_state_is_refused(tmp_path):
    _daily_stats(tmp_path, {"swvl1": np.full((4, LAT.size, LON.size), 0.3)}, "daily_maximum")
    with pytest.raises(InputDataError, match=r"stats.nc.*'swvl1'.*daily_maximum.*daily_mean"):
        Era5LandArchive.from_folder(tmp_path).load(DAY, DAY, ["swvl1"])


def test_states_from_daily_statistics_and_accumulations_at_00_utc_combine(tmp_path):
    """What the CDS delivers: states from the daily-statistics service, accumulations
    from the hourly dataset at 00:00 (day d's total stamped 00 UTC of day d+1)."""
    totals = np.array([1.0, 2.0, 3.0, 4.0]) / 1e3
    _daily_stats(tmp_path, {"t2m": np.full((4, LAT.size, LON.size), 280.0)})
    stamps = pd.date_range(DAY + pd.Timedelta(days=1), periods=4, freq="D")
    acc = totals[:, None, None] * np.ones((4, LAT.size, LON.size))
    write_cds_netcdf(cds_dataset({"tp": acc}, stamps, LAT, LON), tmp_path / "acc.nc")
    got = Era5LandArchive.from_folder(tmp_path).load(DAY, DAY + pd.Timedelta(days=3), ["t2m", "tp"])
    np.testing.assert_allclose(got.tp.values[:, 1, 1], totals, rtol=1e-6)


# --------------------------------------------------------------------------- CDS zips


def _zip_world(tmp_path, name):
    hours = pd.date_range(DAY, periods=25, freq="h")
    rng = np.random.default_rng(0)
    sw = rng.random((hours.size, LAT.size, LON.size)) * 0.4
    inc = rng.random((hours.size, LAT.size, LON.size)) * 1e-3
    hour = np.asarray(hours.hour)
    tp = np.stack([inc[max(i - (h or 24) + 1, 0) : i + 1].sum(0) for i, h in enumerate(hour)])
    members = {
        "data_stream-oper_stepType-instant.nc": cds_dataset({"swvl1": sw}, hours, LAT, LON),
        "data_stream-oper_stepType-accum.nc": cds_dataset({"tp": tp}, hours, LAT, LON),
    }
    path = write_cds_zip(members, tmp_path / name)
    return path, sw[:24].mean(0), inc[1:25].sum(0)


@pytest.mark.parametrize("name", ["download.zip", "era5land_201806.nc"])
def test_cds_zip_is_read_member_by_member_whatever_its_suffix(tmp_path, name):
    path, sw, tp = _zip_world(tmp_path, name)
    assert zipfile.is_zipfile(path)
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    got = Era5LandArchive.from_folder(tmp_path).load(DAY, DAY, ["swvl1", "tp"])
    np.testing.assert_allclose(got.swvl1.values[0], sw, rtol=1e-6)
    np.testing.assert_allclose(got.tp.values[0], tp, rtol=1e-5)
    after = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert after == before  # nothing extracted beside the download


def test_zip_without_data_members_says_what_it_is(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.nc", "w") as z:
        z.writestr("README.txt", "no data")
    with pytest.raises(InputDataError, match=r"x.nc is a zip archive without NetCDF or GRIB"):
        Era5LandArchive.from_folder(tmp_path).load(DAY, DAY, ["swvl1"])


def test_damaged_zip_member_is_named(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as z:
        z.writestr("data_stream-oper_stepType-instant.nc", b"CDF\x01" + b"\x00" * 40)
    with pytest.raises(InputDataError, match=r"x.zip \(zip member data_stream-oper_stepType"):
        Era5LandArchive.from_folder(tmp_path).load(DAY, DAY, ["swvl1"])


# --------------------------------------------------------------------------- real samples


def test_real_old_layout_cds_file_matches_raw_netcdf4_decoding(shared_data):
    import netCDF4

    path = shared_data / "era5" / "ERA5_example_downloaded_raw.nc"
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        v = nc["swvl1"]
        raw = v[:].astype(np.float64) * v.scale_factor + v.add_offset  # (time, lat, lon)
        raw[v[:] == v._FillValue] = np.nan
        lat, lon = np.asarray(nc["latitude"][:]), np.asarray(nc["longitude"][:])
        hours = np.asarray(nc["time"][:], np.int64)
    first = pd.Timestamp("1900-01-01") + pd.Timedelta(hours=int(hours[0]))
    assert first == pd.Timestamp("2010-01-01")
    daily = Era5LandArchive([path]).load("2010-01-01", "2010-01-01", ["swvl1"])
    # By hand: latitude reversed to ascending, longitude 0..355 → −180..175 rolled.
    order = np.argsort(((lon + 180.0) % 360.0) - 180.0)
    want = np.nanmean(raw, axis=0)[::-1][:, order]
    np.testing.assert_allclose(daily.swvl1.values[0], want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(daily.lat.values, lat[::-1])


def test_real_cfgrib_sample_matches_raw_eccodes_decoding(shared_data, tmp_path):
    import shutil

    import eccodes

    src = shared_data / "grib" / "era5-single-level-scalar-time.grib"
    path = shutil.copy(src, tmp_path / src.name)  # a private copy: the check below lists it
    with open(path, "rb") as f:
        h = eccodes.codes_grib_new_from_file(f)
        ni, nj = eccodes.codes_get(h, "Ni"), eccodes.codes_get(h, "Nj")
        raw = eccodes.codes_get_values(h).reshape(nj, ni)  # north first
        lat0 = eccodes.codes_get(h, "latitudeOfFirstGridPointInDegrees")
        date, time = eccodes.codes_get(h, "dataDate"), eccodes.codes_get(h, "dataTime")
        eccodes.codes_release(h)
    assert (date, time, lat0) == (20170101, 1200, 60.0)
    got = Era5LandArchive([path]).load("2017-01-01", "2017-01-01", ["t2m"])
    np.testing.assert_allclose(got.t2m.values[0], raw[::-1], rtol=1e-6)
    assert got.lat.values[-1] == lat0 and sorted(os.listdir(tmp_path)) == [src.name]
