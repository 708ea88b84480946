"""ERA5-Land reading: CDS NetCDF old/new layouts and GRIB give one canonical daily dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from smci_gpu.errors import InputDataError
from smci_gpu.io.cds import cds_dataset, write_cds_grib, write_cds_netcdf
from smci_gpu.io.era5land import Era5LandArchive, canonicalize

DAYS = pd.date_range("2018-07-01", "2018-07-03", freq="D")
# Hourly stamps of the three days and the 00 UTC that closes the last day's accumulation.
HOURS = pd.date_range("2018-07-01 00:00", "2018-07-04 00:00", freq="h")
LAT = np.array([40.8, 40.9, 41.0])  # ascending
LON = np.array([-0.2, -0.1, 0.0, 0.1])  # straddles 0°: 0–360 files hold 359.8 … 0.1


@pytest.fixture(scope="module")
def hourly():
    """Hourly swvl1 and hourly tp increments; tp as ERA5-Land stores it (00 UTC-based)."""
    rng = np.random.default_rng(7)
    shape = (HOURS.size, LAT.size, LON.size)
    swvl1 = (0.2 + 0.2 * rng.random(shape)).astype(np.float32)
    increments = (rng.random(shape) * 1e-3).astype(np.float64)  # m per hour
    # The value at hour h is the sum since 00 UTC of that day over hours 1..h; the 00 UTC
    # value holds the full previous day (24 increments: 01, 02, …, 00 of the next day).
    tp = np.empty(shape)
    for i, t in enumerate(HOURS):
        start = i - (t.hour if t.hour else 24) + 1
        tp[i] = increments[max(start, 0) : i + 1].sum(axis=0)
    return {"swvl1": swvl1, "tp": tp.astype(np.float32), "increments": increments}


def expected_daily(hourly):
    """By hand: swvl1 = mean of hours 00..23; tp = sum of the day's 24 increments."""
    sw = np.stack([hourly["swvl1"][24 * d : 24 * d + 24].mean(axis=0) for d in range(3)])
    tp = np.stack([hourly["increments"][24 * d + 1 : 24 * d + 25].sum(axis=0) for d in range(3)])
    return sw, tp


def _load(folder):
    return Era5LandArchive.from_folder(folder).load(DAYS[0], DAYS[-1], ["swvl1", "tp"])


def _write_netcdf(hourly, folder, layout, lon):
    ds = cds_dataset({k: hourly[k] for k in ("swvl1", "tp")}, HOURS, LAT, lon, layout)
    return write_cds_netcdf(ds, folder / f"era5land_{layout}.nc")


def test_accumulation_rule_by_hand(hourly):
    # Day 1, one cell: the 00 UTC value of day 2 is the sum of day 1's increments.
    assert hourly["tp"][24, 0, 0] == pytest.approx(hourly["increments"][1:25, 0, 0].sum())
    # 01 UTC holds one hour only, so a daily mean of the hourly tp would be wrong.
    assert hourly["tp"][1, 0, 0] == pytest.approx(hourly["increments"][1, 0, 0])


def test_new_layout_reads_to_the_hand_worked_daily_values(tmp_path, hourly):
    _write_netcdf(hourly, tmp_path, "new", LON)
    ds = _load(tmp_path)
    sw, tp = expected_daily(hourly)
    np.testing.assert_allclose(ds.swvl1.values, sw, rtol=1e-6)
    np.testing.assert_allclose(ds.tp.values, tp, rtol=1e-5)
    np.testing.assert_array_equal(ds.lat.values, LAT)
    np.testing.assert_allclose(ds.lon.values, LON)
    assert list(pd.DatetimeIndex(ds.time.values)) == list(DAYS)


def test_old_new_and_grib_layouts_read_alike(tmp_path, hourly):
    folders = {k: tmp_path / k for k in ("new", "old", "grib")}
    for f in folders.values():
        f.mkdir()
    _write_netcdf(hourly, folders["new"], "new", LON)
    _write_netcdf(hourly, folders["old"], "old", LON % 360.0)  # 0–360, packed int16
    write_cds_grib(
        {k: hourly[k] for k in ("swvl1", "tp")}, HOURS, LAT, LON % 360.0, folders["grib"] / "a.grib"
    )
    new, old, grib = (_load(f) for f in folders.values())
    for other, name in ((old, "old"), (grib, "grib")):
        assert other.swvl1.dims == new.swvl1.dims == ("time", "lat", "lon")
        np.testing.assert_allclose(other.lon.values, new.lon.values, atol=1e-9, err_msg=name)
        np.testing.assert_array_equal(other.lat.values, new.lat.values)
        np.testing.assert_array_equal(other.time.values, new.time.values)
    # The old layout stores int16 (scale ≈ range/65530), GRIB 24-bit packing: values agree
    # to the packing step, nothing more is lost or shifted.
    for var, span in (("swvl1", 0.2), ("tp", float(hourly["tp"].max()))):
        np.testing.assert_allclose(old[var].values, new[var].values, atol=span / 65530 + 1e-7)
        np.testing.assert_allclose(grib[var].values, new[var].values, atol=span / 2**23 + 1e-7)


def test_old_layout_expver_is_merged(tmp_path, hourly):
    ds = cds_dataset({"swvl1": hourly["swvl1"]}, HOURS, LAT, LON, "old")
    final = ds.swvl1.where(ds.time < np.datetime64("2018-07-02T12:00"))
    early = ds.swvl1.where(ds.time >= np.datetime64("2018-07-02T12:00"))
    mixed = xr.concat([final, early], dim=xr.DataArray([1, 5], dims="expver", name="expver"))
    ds = xr.Dataset({"swvl1": mixed.transpose("time", "expver", ...)}, attrs=ds.attrs)
    ds.swvl1.attrs = {"units": "m**3 m**-3"}
    ds.to_netcdf(tmp_path / "expver.nc", engine="netcdf4")
    got = Era5LandArchive.from_folder(tmp_path).load(DAYS[0], DAYS[-1], ["swvl1"])
    sw, _ = expected_daily(hourly)
    np.testing.assert_allclose(got.swvl1.values, sw, rtol=1e-6)


# --------------------------------------------------------------------------- real samples


def test_real_cds_download_old_layout(shared_data):
    import netCDF4

    path = shared_data / "era5" / "ERA5_example_downloaded_raw.nc"
    fields = canonicalize(xr.open_dataset(path, engine="netcdf4"), path)
    sw = fields["swvl1"]
    assert np.all(np.diff(sw.lat.values) > 0) and sw.lon.min() >= -180 and sw.lon.max() < 180
    # Unpack by hand from the raw int16 at 50° N, 10° E and at 40° N, 115° E.
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        v = nc["swvl1"]
        lat, lon = nc["latitude"][:], nc["longitude"][:]
        for la, lo in ((50.0, 10.0), (40.0, 115.0)):
            i, j = int(np.flatnonzero(lat == la)[0]), int(np.flatnonzero(lon == lo)[0])
            raw = v[:, i, j].astype(np.float64) * v.scale_factor + v.add_offset
            got = sw.sel(lat=la, lon=lo).values
            np.testing.assert_allclose(got, raw, rtol=1e-6)
    daily = Era5LandArchive([path]).load("2010-01-01", "2010-01-01", ["swvl1"])
    assert daily.swvl1.shape == (1, 37, 72)
    np.testing.assert_allclose(daily.swvl1.values[0], sw.mean("time").values, rtol=1e-6)


def test_real_grib_sample(shared_data):
    import eccodes

    path = shared_data / "grib" / "era5-single-level-scalar-time.grib"
    fields = canonicalize(
        xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""}), path
    )
    t2m = fields["t2m"]
    assert t2m.sizes["time"] == 1 and np.all(np.diff(t2m.lat.values) > 0)
    with open(path, "rb") as f:
        h = eccodes.codes_grib_new_from_file(f)
        ni, nj = eccodes.codes_get(h, "Ni"), eccodes.codes_get(h, "Nj")
        raw = eccodes.codes_get_values(h).reshape(nj, ni)  # north first
        eccodes.codes_release(h)
    np.testing.assert_allclose(t2m.values[0], raw[::-1], rtol=1e-6)
    assert t2m.attrs.get("units") == "K"


# --------------------------------------------------------------------------- bad input


def test_missing_variable_names_it(tmp_path, hourly):
    _write_netcdf(hourly, tmp_path, "new", LON)
    with pytest.raises(InputDataError, match="variable 'swvl2' not found"):
        Era5LandArchive.from_folder(tmp_path).load(DAYS[0], DAYS[-1], ["swvl2"])


def test_percent_soil_moisture_is_refused(tmp_path, hourly):
    ds = cds_dataset({"swvl1": hourly["swvl1"] * 100}, HOURS, LAT, LON, "new")
    ds.swvl1.attrs["units"] = "%"
    write_cds_netcdf(ds, tmp_path / "pct.nc")
    with pytest.raises(InputDataError, match=r"swvl1 has units '%', expected m3 m-3"):
        _load_one(tmp_path, "swvl1")


def test_duplicated_time_is_refused(tmp_path, hourly):
    stamps = HOURS.insert(5, HOURS[5])
    values = np.concatenate([hourly["swvl1"][:6], hourly["swvl1"][5:]])
    write_cds_netcdf(cds_dataset({"swvl1": values}, stamps, LAT, LON, "new"), tmp_path / "d.nc")
    with pytest.raises(InputDataError, match="repeats time stamps"):
        _load_one(tmp_path, "swvl1")


def test_unsorted_time_is_read_in_order(tmp_path, hourly):
    order = np.random.default_rng(1).permutation(HOURS.size)
    ds = cds_dataset({"swvl1": hourly["swvl1"][order]}, HOURS[order], LAT, LON, "new")
    write_cds_netcdf(ds, tmp_path / "u.nc")
    sw, _ = expected_daily(hourly)
    np.testing.assert_allclose(_load_one(tmp_path, "swvl1").swvl1.values, sw, rtol=1e-6)


@pytest.mark.parametrize("content", [b"", b"CDF\x01\x00\x00truncated"])
def test_empty_or_corrupt_file_is_named(tmp_path, content):
    (tmp_path / "bad.nc").write_bytes(content)
    what = "is empty" if not content else "is not a readable NetCDF/GRIB file"
    with pytest.raises(InputDataError, match=f"bad.nc {what}"):
        _load_one(tmp_path, "swvl1")


def test_truncated_real_download_is_named(tmp_path, hourly):
    path = _write_netcdf(hourly, tmp_path, "new", LON)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match="era5land_new.nc"):
        _load_one(tmp_path, "swvl1")


def _load_one(folder, var):
    return Era5LandArchive.from_folder(folder).load(DAYS[0], DAYS[-1], [var])


@pytest.mark.parametrize("lat_order", [1, -1])
def test_canonical_axes_are_ascending_as_sortby_makes_them(lat_order):
    # Latitudes as CDS writes them (descending) or ascending, longitudes 0–360 across 0°,
    # times out of order: each axis comes out ascending with the values sortby gives.
    rng = np.random.default_rng(0)
    times = pd.to_datetime(["2018-07-10T02", "2018-07-10T00", "2018-07-10T01"])
    lat, lon = LAT[::lat_order], LON % 360.0
    ds = xr.Dataset(
        {"t2m": (("valid_time", "latitude", "longitude"), rng.random((3, lat.size, lon.size)))},
        coords={"valid_time": times, "latitude": lat, "longitude": lon},
    )
    got = canonicalize(ds, Path("test.nc"))["t2m"]
    want = (
        ds.rename(valid_time="time", latitude="lat", longitude="lon")
        .assign_coords(lon=((lon + 180.0) % 360.0) - 180.0)
        .sortby(["time", "lat", "lon"])["t2m"]
    )
    for dim in ("time", "lat", "lon"):
        np.testing.assert_array_equal(got[dim].values, want[dim].values)
        assert got.indexes[dim].is_monotonic_increasing
    np.testing.assert_array_equal(got.values, want.values)
