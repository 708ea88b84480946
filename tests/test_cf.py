"""CF-1.8 conformance of the product files, checked rule by rule on the raw NetCDF."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
from rich.console import Console

from smci_gpu.config import load_config

#: CF standard names the product uses (CF standard name table, v84).
STANDARD_NAMES = {
    "volume_fraction_of_condensed_water_in_soil",
    "time",
    "depth",
    "latitude",
    "longitude",
}
UNITS = {"latitude": "degrees_north", "longitude": "degrees_east", "depth": "cm"}


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
