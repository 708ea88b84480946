"""Every ERA5-Land code and name alias of the variable table, against ecCodes' own tables.

ecCodes (bundled with cfgrib) is the reference: a GRIB 1 message built from its
``regular_ll_sfc_grib1`` sample with ``centre = ecmf`` and a ``paramId`` reads back that
parameter's shortName, cfVarName (the name cfgrib and the CDS NetCDF converter give the
variable), units, table and code. The CDS request names are the ERA5-Land download form's.
"""

from __future__ import annotations

import numpy as np
import pytest

from smci_gpu.io.cds import PARAM_IDS
from smci_gpu.variables import ERA5LAND_FEATURES, canonical_name, variable_table

# The CDS request names of reanalysis-era5-land (its download form / API request).
CDS_NAMES = {
    "swvl1": "volumetric_soil_water_layer_1",
    "swvl2": "volumetric_soil_water_layer_2",
    "swvl3": "volumetric_soil_water_layer_3",
    "swvl4": "volumetric_soil_water_layer_4",
    "stl1": "soil_temperature_level_1",
    "stl2": "soil_temperature_level_2",
    "stl3": "soil_temperature_level_3",
    "stl4": "soil_temperature_level_4",
    "t2m": "2m_temperature",
    "tp": "total_precipitation",
    "e": "total_evaporation",
    "pev": "potential_evaporation",
    "ssrd": "surface_solar_radiation_downwards",
    "strd": "surface_thermal_radiation_downwards",
    "lai_hv": "leaf_area_index_high_vegetation",
    "lai_lv": "leaf_area_index_low_vegetation",
}
TABLE = variable_table()["era5land"]


def _eccodes_keys(param_id: int) -> dict:
    import eccodes

    h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib1")
    try:
        eccodes.codes_set(h, "centre", "ecmf")
        eccodes.codes_set(h, "paramId", param_id)
        keys = {k: eccodes.codes_get(h, k, str) for k in ("shortName", "cfVarName", "units")}
        for k in ("paramId", "table2Version", "indicatorOfParameter"):
            keys[k] = eccodes.codes_get(h, k, int)
        return keys
    finally:
        eccodes.codes_release(h)


def _unit_key(units: str) -> str:
    return " ".join(units.replace("**", "").replace(" of water equivalent", "").split())


def test_the_table_and_the_param_ids_cover_the_same_variables():
    assert set(TABLE) == set(PARAM_IDS) == set(ERA5LAND_FEATURES) == set(CDS_NAMES)


@pytest.mark.parametrize("canon", ERA5LAND_FEATURES)
def test_param_id_reads_back_as_the_variable_in_eccodes(canon):
    keys = _eccodes_keys(PARAM_IDS[canon])
    assert keys["paramId"] == PARAM_IDS[canon]
    # cfVarName is the name cfgrib and the CDS NetCDF converter give the variable.
    assert keys["cfVarName"] == canon
    assert canonical_name("era5land", keys["shortName"]) == canon
    assert _unit_key(keys["units"]) == _unit_key(TABLE[canon]["units"])


@pytest.mark.parametrize("canon", ERA5LAND_FEATURES)
def test_every_alias_names_its_own_variable(canon):
    """varNNN: CDO's name for GRIB 1 code NNN (its indicatorOfParameter, whatever the
    table: pev is table 228 code 251 → var251); other aliases: the CDS request name or
    ecCodes' shortName; no alias may name two variables."""
    keys = _eccodes_keys(PARAM_IDS[canon])
    aliases = TABLE[canon]["aliases"]
    assert aliases[0] == CDS_NAMES[canon]
    for alias in aliases:
        assert canonical_name("era5land", alias) == canon, alias
        if alias.startswith("var") and alias[3:].isdigit():
            assert int(alias[3:]) == keys["indicatorOfParameter"], alias
        else:
            assert alias in (CDS_NAMES[canon], keys["shortName"], "evaporation"), alias
    cdo = f"var{keys['indicatorOfParameter']}"
    assert cdo in aliases


def test_leaf_area_index_codes_as_ecmwf_defines_them():
    # ECMWF parameter database: 66 = lai_lv (low vegetation), 67 = lai_hv (high).
    assert _eccodes_keys(66)["shortName"] == "lai_lv"
    assert _eccodes_keys(67)["shortName"] == "lai_hv"
    assert PARAM_IDS["lai_lv"] == 66 and PARAM_IDS["lai_hv"] == 67


def test_cdo_style_names_read_as_the_right_leaf_area_index(tmp_path):
    """A NetCDF converted by CDO names GRIB codes varNNN: var66 = 2.0, var67 = 1.0 must
    come back as lai_lv = 2.0, lai_hv = 1.0."""
    import pandas as pd
    import xarray as xr

    from smci_gpu.io.era5land import Era5LandArchive

    times = pd.date_range("2018-07-01", periods=24, freq="h")
    shape = (times.size, 2, 3)
    ds = xr.Dataset(
        {"var66": (("time", "lat", "lon"), np.full(shape, 2.0, np.float32))}
        | {"var67": (("time", "lat", "lon"), np.full(shape, 1.0, np.float32))},
        coords={"time": times, "lat": [40.0, 40.1], "lon": [114.0, 114.1, 114.2]},
    )
    ds.to_netcdf(tmp_path / "cdo.nc")
    archive = Era5LandArchive.from_folder(tmp_path)
    got = archive.load("2018-07-01", "2018-07-01", ["lai_hv", "lai_lv"])
    assert float(got.lai_lv.mean()) == 2.0 and float(got.lai_hv.mean()) == 1.0


def test_engine_grib_round_trips_both_leaf_area_indices(tmp_path):
    import pandas as pd

    from smci_gpu.io.cds import write_cds_grib
    from smci_gpu.io.era5land import Era5LandArchive

    times = pd.date_range("2018-07-01", periods=24, freq="h")
    lat, lon = np.array([40.0, 40.1]), np.array([114.0, 114.1, 114.2])
    fields = {"lai_hv": np.full((24, 2, 3), 4.0), "lai_lv": np.full((24, 2, 3), 1.5)}
    write_cds_grib(fields, times, lat, lon, tmp_path / "lai.grib")
    archive = Era5LandArchive.from_folder(tmp_path)
    got = archive.load("2018-07-01", "2018-07-01", ["lai_hv", "lai_lv"])
    np.testing.assert_allclose(got.lai_hv.values, 4.0, atol=1e-5)
    np.testing.assert_allclose(got.lai_lv.values, 1.5, atol=1e-5)
