"""Static maps: any grid that covers the region is resampled; one that does not is refused."""

from __future__ import annotations

import numpy as np
import pytest

from smci_gpu.errors import InputDataError
from smci_gpu.grid import target_grid
from smci_gpu.io.geotiff import write_geotiff
from smci_gpu.io.rasters import read_static


def test_static_map_for_another_region_is_refused(tmp_path):
    region = target_grid(114.0, 40.0, 114.5, 40.5)
    elsewhere = target_grid(100.0, 30.0, 100.5, 30.5)
    write_geotiff(tmp_path / "dem.tif", np.full(elsewhere.shape, 900.0, np.float32), elsewhere)
    with pytest.raises(InputDataError, match=r"dem.tif has values on only 0% of the product"):
        read_static(tmp_path, region, ["dem"])


def test_coarser_static_map_covering_the_region_is_resampled(tmp_path):
    region = target_grid(114.0, 40.0, 114.5, 40.5)
    coarse = target_grid(113.9, 39.9, 114.6, 40.6, resolution_arcsec=60.0)
    values = np.arange(coarse.size, dtype=np.float32).reshape(coarse.shape)
    write_geotiff(tmp_path / "dem.tif", values, coarse)
    got = read_static(tmp_path, region, ["dem"])[0]
    assert got.shape == region.shape and np.isfinite(got).all()
    # Each 30″ pixel lies inside one 60″ cell: the value of the cell it falls in.
    rows = ((region.lat - coarse.south) // coarse.res).astype(int)
    cols = ((region.lon - coarse.west) // coarse.res).astype(int)
    np.testing.assert_array_equal(got, values[rows[:, None], cols[None, :]])


def test_finer_land_cover_is_aggregated_by_majority(tmp_path):
    # A 15″ (500 m) land-cover map aligned with the 30″ grid: each product pixel takes the
    # most frequent class of its 2 × 2 cells, fill (255) ignored, ties to the smaller.
    region = target_grid(114.0, 40.0, 114.5, 40.5)
    fine = target_grid(114.0, 40.0, 114.5, 40.5, resolution_arcsec=15.0)
    rng = np.random.default_rng(4)
    classes = rng.choice(np.array([1, 5, 10, 16, 255], np.uint8), fine.shape)
    write_geotiff(tmp_path / "landcover.tif", classes, fine, nodata=255)
    got = read_static(tmp_path, region, ["landcover"])[0]
    blocks = classes.reshape(region.ny, 2, region.nx, 2).transpose(0, 2, 1, 3).reshape(-1, 4)
    want = np.zeros(len(blocks), np.float32)  # no class in the block: 0 (nodata)
    for i, cells in enumerate(blocks):
        vals, counts = np.unique(cells[cells != 255], return_counts=True)
        if vals.size:
            want[i] = vals[np.argmax(counts)]  # first maximum: the smallest class
    np.testing.assert_array_equal(got, want.reshape(region.shape))


# ---------------------------------------------------------------- units and ranges (SoilGrids)
# SoilGrids 2.0 stores integers in "mapped units": clay/sand/silt g/kg, bdod cg/cm³,
# cfvo cm³/dm³ (ISRIC); the engine wants %, g/cm³ and % (variables.yaml).

REGION = target_grid(114.0, 40.0, 114.5, 40.5)


def _soilgrids_clay() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(145, 356, REGION.shape).astype(np.int16)  # g/kg, as SoilGrids


def test_clay_in_g_per_kg_is_refused_without_a_declared_unit(tmp_path):
    write_geotiff(tmp_path / "cl.tif", _soilgrids_clay(), REGION, nodata=-32768)
    with pytest.raises(InputDataError) as err:
        read_static(tmp_path, REGION, ["cl"])
    msg = str(err.value)
    assert "cl.tif" in msg and "outside 0..100 %" in msg and "[static] units" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("how", ["config", "file units", "file tag"])
def test_clay_in_g_per_kg_is_converted_when_its_unit_is_known(tmp_path, how):
    clay = _soilgrids_clay()
    kw = {"units": "g/kg"} if how == "file units" else {}
    kw |= {"tags": {"units": "g kg-1"}} if how == "file tag" else {}
    write_geotiff(tmp_path / "cl.tif", clay, REGION, nodata=-32768, **kw)
    declared = {"cl": "g/kg"} if how == "config" else None
    got = read_static(tmp_path, REGION, ["cl"], declared)[0]
    np.testing.assert_allclose(got, clay / 10.0, rtol=1e-6)  # 145 g/kg = 14.5 %


def test_soilgrids_bulk_density_and_coarse_fragments_are_converted(tmp_path):
    bdod = np.full(REGION.shape, 135, np.int16)  # cg/cm³ → 1.35 g/cm³
    cfvo = np.full(REGION.shape, 87, np.int16)  # cm³/dm³ (‰) → 8.7 %
    write_geotiff(tmp_path / "bd.tif", bdod, REGION, nodata=-32768)
    write_geotiff(tmp_path / "grav.tif", cfvo, REGION, nodata=-32768)
    got = read_static(tmp_path, REGION, ["bd", "grav"], {"bd": "cg/cm3", "grav": "cm3/dm3"})
    np.testing.assert_allclose(got[0], 1.35, rtol=1e-6)
    np.testing.assert_allclose(got[1], 8.7, rtol=1e-6)
    with pytest.raises(InputDataError, match=r"bd.tif: bd values 135..135 lie outside 0.1..2.7"):
        read_static(tmp_path, REGION, ["bd"])


def test_declared_unit_that_contradicts_the_file_is_refused(tmp_path):
    write_geotiff(tmp_path / "cl.tif", _soilgrids_clay(), REGION, units="g/kg")
    with pytest.raises(
        InputDataError, match=r"cl.tif says units 'g/kg' but the config declares '%'"
    ):
        read_static(tmp_path, REGION, ["cl"], {"cl": "%"})


def test_unknown_unit_is_refused_with_the_known_ones(tmp_path):
    write_geotiff(tmp_path / "por.tif", np.full(REGION.shape, 0.4, np.float32), REGION)
    with pytest.raises(InputDataError, match=r"por.tif is in 'furlongs'.*known units: m3 m-3, %"):
        read_static(tmp_path, REGION, ["por"], {"por": "furlongs"})


def test_undeclared_nodata_in_a_dem_is_refused(tmp_path):
    dem = np.full(REGION.shape, 1200.0, np.float32)
    dem[:5] = -9999.0  # a nodata value the file does not declare
    write_geotiff(tmp_path / "dem.tif", dem, REGION)
    with pytest.raises(
        InputDataError, match=r"dem.tif: dem values -9999..1200 lie outside -500..9000 m"
    ):
        read_static(tmp_path, REGION, ["dem"])
    write_geotiff(tmp_path / "dem.tif", dem, REGION, nodata=-9999.0)
    got = read_static(tmp_path, REGION, ["dem"])[0]
    assert np.isnan(got[:5]).all() and (got[5:] == 1200.0).all()


def test_land_cover_scheme_is_igbp_with_255_as_fill(tmp_path):
    # MCD12Q1 C6 LC_Type1: classes 1-17 (17 water), 255 unclassified; no nodata declared.
    lc = np.full(REGION.shape, 12, np.uint8)
    lc[:10] = 255
    write_geotiff(tmp_path / "landcover.tif", lc, REGION)
    got = read_static(tmp_path, REGION, ["landcover"])[0]
    assert (got[10:] == 12).all() and not (got[:10] == 255).any()
    lc[:10] = 0  # collection-5 water (0) is not an IGBP LC_Type1 class
    write_geotiff(tmp_path / "landcover.tif", lc, REGION)
    with pytest.raises(InputDataError, match=r"landcover.tif: land-cover classes \[0\] are not in"):
        read_static(tmp_path, REGION, ["landcover"])


def test_static_units_in_the_config(tmp_path):
    from smci_gpu.config import load_config
    from smci_gpu.errors import ConfigError

    (tmp_path / "smci.toml").write_text('[static]\nunits = { cl = "g/kg", bd = "cg/cm3" }\n')
    cfg = load_config(workdir=tmp_path, environ={})
    assert cfg.static.units == {"cl": "g/kg", "bd": "cg/cm3"}
    assert cfg.hash() != load_config(environ={}).hash()  # a declared unit changes the product
    (tmp_path / "smci.toml").write_text('[static]\nunits = { clay = "g/kg" }\n')
    with pytest.raises(ConfigError, match=r"unknown static maps \['clay'\]"):
        load_config(workdir=tmp_path, environ={})
