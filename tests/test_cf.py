"""CF-1.8 / ACDD-1.3 conformance of the product files.

Checked three ways, none of them our own writer: rule by rule on the raw NetCDF, by the
IOOS compliance checker (CF 1.8 and ACDD 1.3, zero errors) and by the readers users have
(GDAL through rasterio, rioxarray, pyproj, xarray) against EPSG:4326 and WGS 84's
published ellipsoid.
"""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
from rich.console import Console

from smci_gpu.config import load_config

pytestmark = [
    pytest.mark.filterwarnings("ignore:The ioos_sos checker is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Passing the dataset to every single check"),
]

#: CF standard names the product uses (each is in the CF standard name table, v93:
#: test_standard_names_are_in_the_cf_table checks them against the table itself).
STANDARD_NAMES = {
    "volume_fraction_of_condensed_water_in_soil",
    "time",
    "depth",
    "latitude",
    "longitude",
}
UNITS = {"latitude": "degrees_north", "longitude": "degrees_east", "depth": "cm"}
#: WGS 84 as published (NGA TR8350.2): semi-major axis in m and inverse flattening.
WGS84_A, WGS84_RF = 6378137.0, 298.257223563


def cf_problems(path) -> list[str]:
    """Every CF rule the file breaks (an empty list: conformant for these rules)."""
    bad = []
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        if not str(getattr(nc, "Conventions", "")).startswith("CF-1."):
            bad.append("global Conventions is not CF-1.x")
        for name, var in nc.variables.items():
            attrs = var.ncattrs()
            sn = getattr(var, "standard_name", None)
            if sn is not None and sn not in STANDARD_NAMES:
                bad.append(f"{name}: unknown standard_name {sn}")
            if sn in UNITS and getattr(var, "units", None) != UNITS[sn]:
                bad.append(f"{name}: units {getattr(var, 'units', None)} for {sn}")
            if sn == "time" and " since " not in getattr(var, "units", ""):
                bad.append(f"{name}: time units without a reference date")
            if "_FillValue" in attrs and np.asarray(var._FillValue).dtype != var.dtype:
                bad.append(f"{name}: _FillValue type differs from the variable's")
            if "scale_factor" in attrs and not np.issubdtype(
                np.asarray(var.scale_factor).dtype, np.floating
            ):
                bad.append(f"{name}: scale_factor is not floating point")
            if var.dimensions == (name,):  # a coordinate variable
                values = var[:]
                if values.size > 1 and not (
                    np.all(np.diff(values) > 0) or np.all(np.diff(values) < 0)
                ):
                    bad.append(f"{name}: coordinate not strictly monotonic")
                if "bounds" in attrs:
                    bad += _bounds_problems(nc, name, values)
            if "grid_mapping" in attrs:
                gm = var.grid_mapping
                if gm not in nc.variables or "grid_mapping_name" not in nc[gm].ncattrs():
                    bad.append(f"{name}: grid_mapping {gm} missing or without grid_mapping_name")
            if "positive" in attrs and var.positive not in ("up", "down"):
                bad.append(f"{name}: positive must be up or down")
            if "axis" in attrs and var.axis not in ("X", "Y", "Z", "T"):
                bad.append(f"{name}: axis {var.axis}")
            for coord in str(getattr(var, "coordinates", "")).split():
                if coord not in nc.variables:
                    bad.append(f"{name}: coordinates names a missing variable {coord}")
    return bad


def _bounds_problems(nc, name, values) -> list[str]:
    b = nc[name].bounds
    if b not in nc.variables:
        return [f"{name}: bounds variable {b} missing"]
    bounds = nc[b][:]
    if bounds.shape != (values.size, 2):
        return [f"{name}: bounds shape {bounds.shape}, expected ({values.size}, 2)"]
    lo, hi = bounds.min(axis=1), bounds.max(axis=1)
    out = []
    if not np.all((lo <= values) & (values <= hi)):
        out.append(f"{name}: values outside their bounds")
    if values.size > 1 and not np.allclose(bounds[1:, 0], bounds[:-1, 1]):
        out.append(f"{name}: cells not contiguous")
    return out


@pytest.fixture(scope="module")
def products(trained, tmp_path_factory):
    import shutil

    from smci_gpu.layout import aggregate, smci1_layout
    from smci_gpu.produce import produce

    paths = []
    for res in ("1km", "9km"):
        wd = tmp_path_factory.mktemp(f"cf{res}") / "w"
        shutil.copytree(trained, wd, ignore=shutil.ignore_patterns("product"))
        cfg = load_config(workdir=wd, overrides={"device": "cpu", "produce": {"resolution": res}})
        produce(cfg, Console(quiet=True), "2018-06-01", "2018-06-01")
        paths.append(cfg.path("product", res, f"SMCI_{res}_20180601.nc"))
        if res == "1km":
            aggregate(cfg)
            smci1_layout(cfg)
            paths.append(cfg.path("product", "9km_from_1km", "SMCI_9km_20180601.nc"))
            paths.append(cfg.path("product", "smci1_1km", "SMCI_1km_2018_10cm.nc"))
    return paths


def _data_var(path) -> str:
    return "SMCI" if "smci1_" in str(path) else "sm"


def test_every_product_file_is_cf_conformant(products):
    for path in products:
        assert cf_problems(path) == [], path


def test_the_check_catches_broken_files(products, tmp_path):
    import shutil

    broken = tmp_path / "broken.nc"
    shutil.copyfile(products[0], broken)
    with netCDF4.Dataset(broken, "a") as nc:
        nc["lat"].bounds = "no_such_variable"
        nc["sm"].grid_mapping = "nothing"
        nc["depth"].positive = "sideways"
        nc.Conventions = "none"
    problems = cf_problems(broken)
    assert len(problems) == 4 and "lat: bounds variable no_such_variable missing" in problems


def test_standard_names_are_in_the_cf_table():
    """Our names against CF's own table (the copy compliance-checker ships)."""
    from importlib.resources import files
    from xml.etree import ElementTree

    table = files("compliance_checker") / "data" / "cf-standard-name-table.xml"
    root = ElementTree.fromstring(table.read_bytes())
    names = {e.get("id") for e in root.iter("entry")}
    assert STANDARD_NAMES <= names
    depth = next(e for e in root.iter("entry") if e.get("id") == "depth")
    assert depth.findtext("description").startswith("Depth is the vertical distance below")


def test_gdal_rioxarray_and_pyproj_read_epsg4326(products):
    """Daily, aggregated and SMCI1.0-layout files: every reader finds EPSG:4326."""
    import pyproj
    import rasterio
    import rioxarray
    import xarray as xr

    for path in products:
        var = _data_var(path)
        with rasterio.open(f"netcdf:{path}:{var}") as src:  # GDAL's netCDF driver
            assert src.crs is not None and src.crs.to_epsg() == 4326, path
        with xr.open_dataset(path, decode_coords="all") as ds:
            assert ds[var].rio.crs.to_epsg() == 4326, path
        # GDAL sees time x depth as bands; rioxarray names them only one per variable
        opened = rioxarray.open_rasterio(f"netcdf:{path}:{var}", band_as_variable=True)
        assert opened.rio.crs.to_epsg() == 4326, path
        opened.close()
        with netCDF4.Dataset(path) as nc:
            crs = nc["crs"]
            assert crs.grid_mapping_name == "latitude_longitude"
            assert crs.semi_major_axis == WGS84_A and crs.inverse_flattening == WGS84_RF
            assert pyproj.CRS.from_wkt(crs.crs_wkt).to_epsg() == 4326
            assert pyproj.CRS.from_cf({k: crs.getncattr(k) for k in crs.ncattrs()}) == (
                pyproj.CRS.from_epsg(4326)
            )


def test_the_old_bare_wkt_is_what_readers_reject():
    """The check can fail: the WKT the files used to carry is not a CRS to pyproj."""
    import pyproj

    with pytest.raises(pyproj.exceptions.CRSError):
        pyproj.CRS.from_wkt('GEOGCS["WGS 84"]')


def test_packed_soil_moisture_decodes_to_float32(products):
    """xarray unpacks to scale_factor's type: float32 halves every read's memory."""
    import xarray as xr

    for path in products:
        if "smci1_" in str(path):
            continue  # the published layout stores integer counts without scale_factor
        with netCDF4.Dataset(path) as nc:
            assert nc["sm"].scale_factor.dtype == np.float32, path
            raw = nc["sm"][:]
        with xr.open_dataset(path) as ds:
            assert ds["sm"].dtype == np.float32, path
            # 0.001 × count, within float32 rounding of the stored value
            np.testing.assert_allclose(ds["sm"].values, raw.filled(np.nan), rtol=1e-6)


def test_daily_mean_time_bounds_and_depth_axis(products):
    with netCDF4.Dataset(products[0]) as nc:
        assert nc["sm"].cell_methods == "time: mean"
        assert nc["time"].bounds == "time_bnds"
        t, b = nc["time"][:], nc["time_bnds"][:]
        assert nc["time_bnds"].dtype == nc["time"].dtype
        np.testing.assert_array_equal(b, [[t[0], t[0] + 1]])  # days since 1970: one day
        depth = nc["depth"]
        # CDO reads the axis as depth_below_land only for this exact long_name (cdi
        # is_DBL_axis); with standard_name depth alone it would say depth_below_sea.
        assert depth.long_name == "depth below land"
        assert (depth.positive, depth.axis, depth.units) == ("down", "Z", "cm")


def test_discovery_metadata(products):
    """What a data centre asks for: the paper's and the dataset's DOIs, ACDD coverage."""
    for path in products:
        with netCDF4.Dataset(path) as nc:
            g = nc.__dict__
            assert "10.5194/essd-14-5267-2022" in g["references"], path
            assert "10.11888/Terre.tpdc.272415" in g["references"], path
            for key in ("history", "institution", "license", "summary", "keywords"):
                assert g.get(key), (path, key)
            assert g["Conventions"] == "CF-1.8, ACDD-1.3"
            lat = nc["lat"][:]
            assert g["geospatial_lat_min"] < lat.min() < lat.max() < g["geospatial_lat_max"]
            assert g["time_coverage_start"].startswith("2018-")


def compliance(path) -> dict[str, list[str]]:
    """The IOOS compliance checker's failures on ``path`` (CF 1.8 and ACDD 1.3).

    ``errors``: failed high-priority checks (CF requirements, ACDD "highly recommended");
    ``warnings``: failed medium-priority ones (ACDD "recommended", CF "should").
    """
    from compliance_checker.runner import CheckSuite

    suite = CheckSuite()
    suite.load_all_available_checkers()
    ds = suite.load_dataset(str(path))
    out: dict[str, list[str]] = {"errors": [], "warnings": []}
    for name, (groups, exceptions) in suite.run_all(ds, ["cf:1.8", "acdd:1.3"], []).items():
        out["errors"] += [f"{name}: exception {e}" for e in exceptions]
        report = suite.build_structure(name, groups, str(path))
        for kind, key in (("errors", "high_priorities"), ("warnings", "medium_priorities")):
            for result in report[key]:
                passed, total = result.value
                if passed < total:
                    out[kind].append(f"{name}: {result.name}: {'; '.join(result.msgs)}")
    return out


def test_compliance_checker_finds_no_errors(products, capsys):
    for path in products:
        found = compliance(path)
        assert found["errors"] == [], path
        with capsys.disabled():
            print(f"\n{path.name}: 0 errors, {len(found['warnings'])} warnings")


def test_compliance_checker_catches_a_broken_file(products, tmp_path):
    """The check can fail: no grid-mapping name and no summary are errors to it."""
    import shutil

    broken = tmp_path / "broken.nc"
    shutil.copyfile(products[0], broken)
    with netCDF4.Dataset(broken, "a") as nc:
        nc["crs"].delncattr("grid_mapping_name")
        nc.delncattr("summary")
    assert len(compliance(broken)["errors"]) >= 2
