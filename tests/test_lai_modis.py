"""MODIS LAI against its real conventions: special codes, packing attributes, names, tiles.

References used here, not the reader: MCD15A2H C6.1 Lai_500m is uint8 × 0.1, valid 0–100,
248–255 fill and class codes (LP DAAC product page, MOD15 file specification); the MODIS
land grid is a sinusoidal projection on a sphere of R = 6 371 007.181 m with 10° tiles
(1 111 950.5197 m, 2400 cells at 500 m) whose h00v00 corner is (−πR, πR/2).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import rasterio

from smci_gpu.errors import InputDataError
from smci_gpu.grid import RegularGrid, target_grid
from smci_gpu.io import modis
from smci_gpu.io.geotiff import write_geotiff
from smci_gpu.io.rasters import _has_hdf4, lai_files, read_lai

R = 6371007.181
DAY = pd.Timestamp("2018-01-01")


def _fine(region: RegularGrid) -> RegularGrid:
    return RegularGrid(region.west, region.south, region.res / 2, region.ny * 2, region.nx * 2)


def _blocks_to_fine(blocks: list[list], shape: tuple[int, int], dtype=np.uint8) -> np.ndarray:
    """Raw 500 m cells (lat ascending) whose 2 × 2 blocks are ``blocks`` in pixel order."""
    ny, nx = shape
    cells = np.array(blocks, dtype).reshape(ny, nx, 2, 2)
    return cells.transpose(0, 2, 1, 3).reshape(ny * 2, nx * 2)


def _read_one(folder, region):
    comps, dates = read_lai(folder, region, DAY, DAY, margin=0)
    assert len(dates) == 1
    return comps[0]


def test_modis_codes_are_nan_before_averaging(tmp_path):
    # Hand-worked 1 km values: the mean of the valid raw values × 0.1; codes never count.
    region = target_grid(114.0, 40.0, 114.0 + 3 / 120, 40.0 + 3 / 120)
    blocks = [
        [30, 30, 254, 254],  # half LAI 3.0, half water: 3.0 (the old reader gave 14.2)
        [30, 40, 250, 255],  # urban + fill: 3.5
        [250, 251, 252, 253],  # urban, wetland, snow, barren: no LAI
        [249, 248, 20, 20],  # unclassified, not computed: 2.0
        [100, 100, 100, 100],  # the top of the valid range: 10.0
        [0, 0, 10, 20],  # zero is valid LAI: 0.75
        [255, 255, 255, 255],  # fill
        [101, 200, 247, 5],  # outside 0-100 but not a listed code: still not LAI: 0.5
        [66, 67, 68, 69],  # 6.75
    ]
    raw = _blocks_to_fine(blocks, region.shape)
    write_geotiff(tmp_path / "LAI_2018001.tif", raw, _fine(region), nodata=255, scale=0.1)
    want = np.array([3.0, 3.5, np.nan, 2.0, 10.0, 0.75, np.nan, 0.5, 6.75], np.float32)
    np.testing.assert_allclose(_read_one(tmp_path, region), want.reshape(3, 3), rtol=1e-6)


@pytest.mark.parametrize("code", range(248, 256))
def test_every_modis_code_is_masked_even_without_nodata_or_scale_in_the_file(tmp_path, code):
    # A bare uint8 export (no nodata, no scale): the variable table's MCD15A2H defaults apply.
    region = target_grid(114.0, 40.0, 114.0 + 1 / 120, 40.0 + 1 / 120)
    raw = _blocks_to_fine([[42, code, code, code]], region.shape)
    write_geotiff(tmp_path / "LAI_2018001.tif", raw, _fine(region))
    assert _read_one(tmp_path, region)[0, 0] == pytest.approx(4.2)


def test_float_lai_in_m2_m2_is_not_scaled_again(tmp_path):
    region = target_grid(114.0, 40.0, 114.0 + 2 / 120, 40.0 + 1 / 120)
    blocks = [[3.0, 3.0, 4.0, np.nan], [25.4, 1.5, 1.5, 1.5]]
    lai = _blocks_to_fine(blocks, region.shape, np.float32)
    write_geotiff(tmp_path / "LAI_2018001.tif", lai, _fine(region), nodata=np.nan)
    # 25.4 is the water code scaled by a careless converter: outside 0-10 m2 m-2, dropped.
    np.testing.assert_allclose(_read_one(tmp_path, region), [[10 / 3, 1.5]], rtol=1e-6)


def test_float_file_holding_raw_counts_is_refused(tmp_path):
    region = target_grid(114.0, 40.0, 114.0 + 1 / 120, 40.0 + 1 / 120)
    counts = np.full(_fine(region).shape, 35.0, np.float32)
    write_geotiff(tmp_path / "LAI_2018001.tif", counts, _fine(region))
    with pytest.raises(InputDataError, match=r"LAI_2018001.tif: 4 of 4 values of lai lie outside"):
        _read_one(tmp_path, region)


def test_file_packing_attributes_win_over_the_table(tmp_path):
    # uint16 counts × 0.01 with valid_range 0-1000 and _FillValue 65535 as GDAL metadata
    # (what gdal_translate keeps from an HDF/NetCDF source): 300 → 3.0, 1001 → no LAI.
    region = target_grid(114.0, 40.0, 114.0 + 1 / 120, 40.0 + 1 / 120)
    raw = np.array([[300, 500], [1001, 65535]], np.uint16)
    tags = {"scale_factor": "0.01", "add_offset": "0", "valid_range": "0, 1000"}
    write_geotiff(
        tmp_path / "LAI_2018001.tif", raw, _fine(region), tags=tags | {"_FillValue": "65535"}
    )
    assert _read_one(tmp_path, region)[0, 0] == pytest.approx(4.0)


def test_netcdf_variable_with_cf_packing(tmp_path):
    # A CF NetCDF holding two variables, Lai_500m packed as counts (netCDF4, written raw).
    import netCDF4
    from pyproj import CRS

    region = target_grid(114.0, 40.0, 114.0 + 1 / 120, 40.0 + 1 / 120)
    fine = _fine(region)
    path = tmp_path / "LAI_2018001.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("lat", fine.ny)
        nc.createDimension("lon", fine.nx)
        nc.createVariable("lat", "f8", ("lat",))[:] = fine.lat[::-1]  # north first
        nc["lat"].setncatts({"units": "degrees_north", "standard_name": "latitude"})
        nc.createVariable("lon", "f8", ("lon",))[:] = fine.lon
        nc["lon"].setncatts({"units": "degrees_east", "standard_name": "longitude"})
        crs = nc.createVariable("crs", "i4")
        crs.setncatts(CRS.from_epsg(4326).to_cf())
        for name in ("FparLai_QC", "Lai_500m"):
            var = nc.createVariable(name, "u1", ("lat", "lon"), fill_value=255)
            var.set_auto_maskandscale(False)
            var[:] = np.array([[60, 254], [20, 255]], np.uint8)  # north-up
            var.setncatts({"scale_factor": 0.1, "add_offset": 0.0, "grid_mapping": "crs"})
            var.setncattr("valid_range", np.array([0, 100], np.uint8))
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        assert nc["Lai_500m"][0, 1] == 254  # the water code is stored as a count
    assert _read_one(tmp_path, region)[0, 0] == pytest.approx(4.0)


# --------------------------------------------------------------------------- names


def test_dates_and_tiles_from_names(tmp_path):
    g = modis.parse_name("MCD15A2H.A2018009.h26v05.061.2021350123456.hdf")
    assert (g.product, g.start, g.tile) == ("MCD15A2H", pd.Timestamp("2018-01-09"), "h26v05")
    g = modis.parse_name("MOD15A2H.A2020361.h27v05.061.2021004000000.tif")
    assert (g.start, g.h, g.v) == (pd.Timestamp("2020-12-26"), 27, 5)  # leap year: day 361
    g = modis.parse_name("LAI_2018177.tif")
    assert (g.product, g.start, g.tile) == (None, pd.Timestamp("2018-06-26"), None)
    with pytest.raises(InputDataError, match="day of year 366 does not exist in 2018"):
        modis.parse_name("LAI_2018366.tif")
    with pytest.raises(InputDataError, match=r"lai_june.tif: no date in the name"):
        modis.parse_name("lai_june.tif")
    for name in ("MCD15A2H.A2018009.h26v05.061.1.tif", "MCD15A2H.A2018009.h27v05.061.2.tif"):
        (tmp_path / name).write_bytes(b"")
    df = lai_files(tmp_path)
    assert df.tile.tolist() == ["h26v05", "h27v05"]
    assert (df.date == pd.Timestamp("2018-01-09") + pd.Timedelta(hours=84)).all()


def test_hdf4_without_driver_names_the_conversion(tmp_path):
    if _has_hdf4():
        pytest.skip("this GDAL reads HDF4: the conversion message is not used")
    path = tmp_path / "MCD15A2H.A2018001.h26v05.061.2021350123456.hdf"
    path.write_bytes(b"\x0e\x03\x13\x01" + bytes(64))  # HDF4 magic number, then nothing
    region = target_grid(114.0, 40.0, 114.5, 40.5)
    with pytest.raises(InputDataError) as err:
        read_lai(tmp_path, region, DAY, DAY)
    msg = str(err.value)
    assert "\n" not in msg and "no HDF4 driver" in msg
    assert f"gdal_translate 'HDF4_EOS:EOS_GRID:\"{path}\":MOD_Grid_MOD15A2H:Lai_500m'" in msg
    assert msg.endswith(f"'{path.with_suffix('.tif')}'")  # beside the .hdf, in inputs/lai


def test_converted_granule_is_read_instead_of_its_hdf4_original(tmp_path):
    # What the HDF4 message asks for: the GeoTIFF beside the .hdf; the two are one composite.
    region = target_grid(114.0, 40.0, 114.0 + 1 / 120, 40.0 + 1 / 120)
    name = "MCD15A2H.A2018001.h26v05.061.2021350123456"
    (tmp_path / f"{name}.hdf").write_bytes(b"\x0e\x03\x13\x01" + bytes(64))
    raw = np.array([[30, 50], [254, 255]], np.uint8)
    write_geotiff(tmp_path / f"{name}.tif", raw, _fine(region), nodata=255)
    assert [p.name for p in lai_files(tmp_path).path] == [f"{name}.tif"]
    assert _read_one(tmp_path, region)[0, 0] == pytest.approx(4.0)


def test_netcdf_with_cf_latitude_longitude_and_no_grid_mapping_is_wgs84(tmp_path):
    # CF: axes in degrees_north/degrees_east without a grid mapping are latitude_longitude.
    import netCDF4

    region = target_grid(114.0, 40.0, 114.0 + 1 / 120, 40.0 + 1 / 120)
    fine = _fine(region)
    with netCDF4.Dataset(tmp_path / "LAI_2018001.nc", "w") as nc:
        nc.createDimension("lat", fine.ny)
        nc.createDimension("lon", fine.nx)
        nc.createVariable("lat", "f8", ("lat",))[:] = fine.lat
        nc["lat"].units = "degrees_north"
        nc.createVariable("lon", "f8", ("lon",))[:] = fine.lon
        nc["lon"].units = "degrees_east"
        var = nc.createVariable("Lai_500m", "u1", ("lat", "lon"), fill_value=255)
        var.set_auto_maskandscale(False)
        var[:] = np.array([[20, 40], [254, 255]], np.uint8)
    assert _read_one(tmp_path, region)[0, 0] == pytest.approx(3.0)
    (tmp_path / "LAI_2018001.nc").unlink()
    with netCDF4.Dataset(tmp_path / "LAI_2018001.nc", "w") as nc:  # axes without units
        nc.createDimension("y", fine.ny)
        nc.createDimension("x", fine.nx)
        nc.createVariable("Lai_500m", "u1", ("y", "x"))[:] = np.full(fine.shape, 20, np.uint8)
    with pytest.raises(InputDataError, match="has no CRS"):
        _read_one(tmp_path, region)


# --------------------------------------------------------------------------- tiles


def test_tile_transform_matches_the_modis_land_grid():
    # h00v00's corner is (−πR, πR/2); h26v05's top is 40° N and its west edge 80° E at the
    # equator (x = 80° · πR/180); cells are 10°/2400 = 15″ of latitude.
    assert modis.tile_transform(0, 0)[0] == pytest.approx(-math.pi * R, abs=1e-2)
    assert modis.tile_transform(0, 0)[3] == pytest.approx(math.pi * R / 2, abs=1e-2)
    x0, dx, _, y0, _, dy = modis.tile_transform(26, 5)
    assert math.degrees(y0 / R) == pytest.approx(40.0, abs=1e-8)
    assert math.degrees(x0 / R) == pytest.approx(80.0, abs=1e-8)
    assert math.degrees(dx / R) * 3600 == pytest.approx(15.0, abs=1e-9) and dy == -dx


def _write_tile(path, h, v, raw):
    profile = dict(
        driver="GTiff", height=2400, width=2400, count=1, dtype="uint8", nodata=255,
        crs=modis.SINUSOIDAL_PROJ, transform=rasterio.Affine.from_gdal(*modis.tile_transform(h, v)),
        compress="deflate", tiled=True,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(raw, 1)
        dst.scales, dst.offsets = (0.1,), (0.0,)


def _x(lon, lat):
    return R * math.radians(lon) * math.cos(math.radians(lat))  # sinusoidal x on the sphere


def test_two_tiles_of_one_date_are_mosaicked(tmp_path):
    # h26v05 | h27v05 meet at x = πR/2, i.e. lon = 90°/cos(lat): 116.64° E at 39.5° N.
    # h26 holds LAI 3.0 with water (254) from tile row 121 down; h27 holds LAI 5.0.
    h26 = np.full((2400, 2400), 30, np.uint8)
    h26[121:] = 254
    h27 = np.full((2400, 2400), 50, np.uint8)
    _write_tile(tmp_path / "MCD15A2H.A2018001.h26v05.061.2021350123456.tif", 26, 5, h26)
    _write_tile(tmp_path / "MCD15A2H.A2018001.h27v05.061.2021350123457.tif", 27, 5, h27)
    _write_tile(tmp_path / "MCD15A2H.A2018009.h26v05.061.2021350123458.tif", 26, 5, h26 // 2)
    region = target_grid(116.5, 39.4, 116.8, 39.6)
    comps, dates = read_lai(tmp_path, region, "2018-01-01", "2018-01-12", margin=0)
    assert dates.tolist() == [
        np.datetime64(DAY + pd.Timedelta(hours=84)),
        np.datetime64(DAY + pd.Timedelta(days=8, hours=84)),
    ]
    got = comps[0][::-1]  # north-up: row i spans 39.6 − i/120 … 39.6 − (i + 1)/120
    x_edge = math.pi * R / 2
    seen = {"h26": 0, "h27": 0, "both": 0, "water": 0, "half water": 0}
    for i in range(region.ny):
        north, south = 39.6 - i / 120, 39.6 - (i + 1) / 120
        for j in range(region.nx):
            west, east = 116.5 + j / 120, 116.5 + (j + 1) / 120
            x_min, x_max = _x(west, north), _x(east, south)  # cos(lat) largest to the south
            # Tile rows are 15″ of latitude from 40° N: pixel row i holds rows 96 + 2i, 97 + 2i.
            water = 96 + 2 * i >= 121
            if x_max < x_edge - 500:  # wholly in h26
                key = "water" if water else ("half water" if 97 + 2 * i == 121 else "h26")
                want = np.nan if water else 3.0  # the old reader gave 14.2 for half water
            elif x_min > x_edge + 500:
                key, want = "h27", 5.0
            elif not water and 97 + 2 * i < 121 and x_min + 500 < x_edge < x_max - 500:
                key, want = "both", 4.0  # the mean of the two tiles' valid values
            else:
                continue
            seen[key] += 1
            np.testing.assert_allclose(got[i, j], want, rtol=1e-5, err_msg=f"{key} {i} {j}")
    assert min(seen.values()) > 0, seen
    assert np.nanmax(comps[1]) == pytest.approx(1.5)  # the second date: one tile, 15 → 1.5


def test_twin_world_lai_carries_modis_codes(tiny_world):
    # The demo's composites hold water/urban/snow codes and real fill, and none of them
    # reaches the 1 km LAI (all values within 0-10 m2 m-2).
    from smci_gpu import demo

    files = sorted((tiny_world / "inputs" / "lai").glob("*.tif"))
    with rasterio.open(files[0]) as src:
        raw = src.read(1)
        assert src.nodata == demo.LAI_FILL
    codes = set(np.unique(raw[raw > 100]).tolist())
    assert {demo.MODIS_URBAN, demo.MODIS_SNOW, demo.LAI_FILL} <= codes <= set(range(248, 256))
    region = target_grid(*demo.TINY.region)
    comps, _ = read_lai(tiny_world / "inputs" / "lai", region, "2018-06-01", "2018-06-01")
    assert np.nanmax(comps) <= 10.0 and np.isfinite(comps).mean() > 0.5


def test_tile_whose_far_corners_cross_the_antimeridian_is_not_dropped(tmp_path):
    # h29v03 (50-60° N) starts at x = 29 · 1111950.5197 − πR: lon 171.1° E at 50° N, and its
    # eastern corners map beyond 180°; a region at 172° E, 50° N lies inside it.
    _write_tile(
        tmp_path / "MCD15A2H.A2018001.h29v03.061.1.tif", 29, 3, np.full((2400,) * 2, 40, np.uint8)
    )
    x0 = modis.tile_transform(29, 3)[0]
    assert math.degrees(x0 / (R * math.cos(math.radians(50)))) == pytest.approx(171.13, abs=0.01)
    region = target_grid(172.0, 50.0, 172.25, 50.25)
    np.testing.assert_allclose(_read_one(tmp_path, region), 4.0, rtol=1e-6)
