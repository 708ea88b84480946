"""`smci compare`: products read at the station cells against hand-built files."""

from __future__ import annotations

import netCDF4
import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from smci_gpu.cli import app
from smci_gpu.config import load_config
from smci_gpu.errors import ConfigError, InputDataError
from smci_gpu.evaluate import compare as C

QUIET = Console(quiet=True)
LAT = np.array([41.0, 40.5, 40.0])  # descending, 0.5° cells
LON = np.array([114.0, 114.5, 115.0, 115.5])
DAYS = pd.date_range("2018-07-01", periods=4, freq="D")
# Station cells: P0 sits nearest (40.5, 114.5), P1 nearest (40.0, 115.5), P2 far outside.
POINTS = pd.DataFrame(
    {"lat": [40.6, 40.1, 10.0], "lon": [114.4, 115.4, 114.0]}, index=["P0", "P1", "P2"]
)


def _config(tmp_path, **over):
    return load_config(workdir=tmp_path, overrides={"layers": [10, 20], **over}, environ={})


def _field(level: float, day: int, hour: float = 0.0) -> np.ndarray:
    """A value per cell that says where it came from: 0.1 + level/1000 + row/100 + col/1000."""
    r, c = np.indices((LAT.size, LON.size))
    return 0.1 + level / 1000 + r / 100 + c / 1000 + day / 10_000 + hour / 100_000


def _write_depth_product(path, units="%", depth_units="m"):
    """6-hourly, depth axis in metres with bounds, soil moisture in per cent."""
    times = pd.date_range(DAYS[0], periods=len(DAYS) * 4, freq="6h")
    levels = np.array([0.025, 0.15, 0.6])  # metres
    bounds = np.array([[0.0, 0.05], [0.05, 0.3], [0.3, 1.0]])
    with netCDF4.Dataset(path, "w") as nc:
        for dim, n in (("time", times.size), ("depth", 3), ("yc", 3), ("xc", 4), ("nv", 2)):
            nc.createDimension(dim, n)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.standard_name = "hours since 2018-01-01", "time"
        t[:] = (times - pd.Timestamp("2018-01-01")) / pd.Timedelta("1h")
        d = nc.createVariable("depth", "f8", ("depth",))
        d.units, d.axis, d.bounds = depth_units, "Z", "depth_bnds"
        d[:] = levels
        nc.createVariable("depth_bnds", "f8", ("depth", "nv"))[:] = bounds
        # Axis names that say nothing: latitude and longitude are found by standard_name.
        for name, values, sn in (("yc", LAT, "latitude"), ("xc", LON, "longitude")):
            v = nc.createVariable(name, "f8", (name,))
            v.standard_name = sn
            v[:] = values
        sm = nc.createVariable("soil_moisture", "f4", ("time", "depth", "yc", "xc"))
        sm.units = units
        for i, ts in enumerate(times):
            day = (ts.normalize() - DAYS[0]).days
            sm[i] = np.stack([100 * _field(k, day, ts.hour) for k in range(3)])


def _write_era5_style(path):
    with netCDF4.Dataset(path, "w") as nc:
        for dim, n in (("valid_time", len(DAYS)), ("latitude", 3), ("longitude", 4)):
            nc.createDimension(dim, n)
        t = nc.createVariable("valid_time", "i8", ("valid_time",))
        t.units, t.standard_name = "days since 2018-07-01", "time"
        t[:] = np.arange(len(DAYS))
        for name, values, units in (
            ("latitude", LAT, "degrees_north"),
            ("longitude", LON, "degrees_east"),
        ):
            v = nc.createVariable(name, "f8", (name,))
            v.units = units
            v[:] = values
        for k in range(1, 5):
            v = nc.createVariable(f"swvl{k}", "f4", ("valid_time", "latitude", "longitude"))
            v.units = "m3 m-3"
            v[:] = np.stack([_field(k, day) for day in range(len(DAYS))])
        nc.createVariable("t2m", "f4", ("valid_time", "latitude", "longitude"))[:] = 280.0


def _write_smci1(folder, depth, day_written=None):
    """A published-layout year-layer file: int16 counts of 0.001 m³/m³, fill −999; with
    ``day_written``, the project's per-day completion flags as well."""
    folder.mkdir(exist_ok=True)
    with netCDF4.Dataset(folder / f"SMCI_1km_2018_{depth}cm.nc", "w") as nc:
        for dim, n in (("time", len(DAYS)), ("lat", 3), ("lon", 4)):
            nc.createDimension(dim, n)
        t = nc.createVariable("time", "i4", ("time",))
        t.units = "days since 1970-01-01"
        t[:] = (DAYS - pd.Timestamp("1970-01-01")).days
        for name, values, units in (("lat", LAT, "degrees_north"), ("lon", LON, "degrees_east")):
            v = nc.createVariable(name, "f8", (name,))
            v.units = units
            v[:] = values
        v = nc.createVariable("SMCI", "i2", ("time", "lat", "lon"), fill_value=np.int16(-999))
        v.units = "0.001 m3/m3"
        counts = np.stack([np.round(1000 * _field(depth, day)) for day in range(len(DAYS))])
        counts[1, 1, 1] = -999  # P0's cell on day 2 is missing
        v[:] = counts.astype(np.int16)
        if day_written is not None:
            flag = nc.createVariable("day_written", "i1", ("time",), fill_value=np.int8(0))
            flag[:] = np.asarray(day_written, dtype=np.int8)


def _value(p: pd.DataFrame, point: str, layer: int, day: int) -> float:
    hit = p[(p.point == point) & (p.layer_cm == layer) & (p.time == DAYS[day])]
    return float(hit.value.iloc[0]) if len(hit) else np.nan


def test_nearest_cell_on_a_descending_axis_and_outside():
    got = C.nearest(LAT, np.array([40.6, 40.1, 41.2, 41.3, 39.0]), max_cells=1.0)
    # 41.2 is 0.2 beyond the last centre (within one 0.5° cell); 39.0 is two cells out.
    np.testing.assert_array_equal(got, [1, 2, 0, 0, -1])


def test_depth_axis_in_metres_percent_and_subdaily_steps(tmp_path):
    _write_depth_product(tmp_path / "p.nc")
    cfg = _config(tmp_path)
    spec = C.ProductSpec(str(tmp_path / "p.nc"), "depthy")
    values, info = C.sample_product(spec, POINTS, cfg)
    # 10 cm: mid-depth 5 cm sits on the 0–5 cm bound → level 0; 20 cm: 15 cm → level 1.
    assert info["layers"] == {"10": "soil_moisture[0]", "20": "soil_moisture[1]"}
    assert info["outside"] == 1 and set(values.point) == {"P0", "P1"}
    # The daily mean of hours 0, 6, 12, 18 adds (0+6+12+18)/4 = 9 h → 9e-5.
    assert _value(values, "P0", 10, 2) == pytest.approx(
        0.1 + 1 / 100 + 1 / 1000 + 2e-4 + 9e-5, abs=1e-6
    )
    assert _value(values, "P1", 20, 3) == pytest.approx(
        0.1 + 1e-3 + 0.02 + 3e-3 + 3e-4 + 9e-5, abs=1e-6
    )
    # An explicit depth in cm picks the level at 15 cm for both layers.
    spec = C.ProductSpec(str(tmp_path / "p.nc"), "x", C.parse_layers("10:15,20:15"))
    values, info = C.sample_product(spec, POINTS, cfg)
    assert info["layers"] == {"10": "soil_moisture[1]", "20": "soil_moisture[1]"}


def test_era5_variables_follow_the_matching_table(tmp_path):
    _write_era5_style(tmp_path / "era.nc")
    cfg = _config(tmp_path, matching={"reference": {10: "swvl1", 20: "swvl3"}})
    values, info = C.sample_product(C.ProductSpec(str(tmp_path / "*.nc")), POINTS, cfg)
    assert info["layers"] == {"10": "swvl1", "20": "swvl3"}
    assert _value(values, "P0", 20, 1) == pytest.approx(
        0.1 + 3e-3 + 1 / 100 + 1 / 1000 + 1e-4, abs=1e-6
    )
    # An explicit mapping wins.
    spec = C.ProductSpec(str(tmp_path / "era.nc"), "e", C.parse_layers("10:swvl4"))
    values, info = C.sample_product(spec, POINTS, cfg)
    assert info["layers"] == {"10": "swvl4"} and set(values.layer_cm) == {10}
    # A folder may hold other files (passed over); a variable no file has is an error.
    (tmp_path / "other.nc").write_bytes((tmp_path / "era.nc").read_bytes())
    with netCDF4.Dataset(tmp_path / "other.nc", "a") as nc:
        nc.renameVariable("swvl4", "tp")
    spec = C.ProductSpec(str(tmp_path), "e", C.parse_layers("10:swvl4"))
    assert C.sample_product(spec, POINTS, cfg)[1]["files"] == 1  # other.nc passed over
    spec = C.ProductSpec(str(tmp_path), "e", C.parse_layers("10:swvl9"))
    with pytest.raises(InputDataError, match="no file has 10 cm ← swvl9"):
        C.sample_product(spec, POINTS, cfg)


def test_smci1_layout_counts_fill_and_layer_from_the_name(tmp_path):
    for depth in (10, 20, 30):
        _write_smci1(tmp_path / "smci", depth)
    values, info = C.sample_product(
        C.ProductSpec(str(tmp_path / "smci")), POINTS, _config(tmp_path)
    )
    assert info["layers"] == {"10": "SMCI", "20": "SMCI"}  # 30 cm is not a configured layer
    assert _value(values, "P1", 20, 0) == pytest.approx(round(1000 * _field(20, 0)[2, 3]) / 1000)
    assert np.isnan(_value(values, "P0", 10, 1))  # the fill value is missing, not −0.999


def test_a_day_not_flagged_written_in_a_year_file_is_missing(tmp_path):
    # A run stopped while adding day 1: its values may be partly there, its flag is 0.
    flags = np.ones(len(DAYS), dtype=np.int8)
    flags[0] = 0
    _write_smci1(tmp_path / "smci", 20, day_written=flags)
    values, _ = C.sample_product(C.ProductSpec(str(tmp_path / "smci")), POINTS, _config(tmp_path))
    assert np.isnan(_value(values, "P1", 20, 0))
    assert _value(values, "P1", 20, 2) == pytest.approx(round(1000 * _field(20, 2)[2, 3]) / 1000)


@pytest.mark.parametrize(
    ("units", "message"),
    [("kg m-2", "units 'kg m-2'; expected volumetric"), ("m3 m-3", "values up to")],
)
def test_wrong_units_are_one_clear_error(tmp_path, units, message):
    # In "m3 m-3" the per-cent numbers (10–13) are out of range: the error says so.
    _write_depth_product(tmp_path / "p.nc", units=units)
    with pytest.raises(InputDataError, match=message) as err:
        C.sample_product(C.ProductSpec(str(tmp_path / "p.nc")), POINTS, _config(tmp_path))
    assert "\n" not in str(err.value) and "p.nc" in str(err.value)


def test_layer_spec_errors():
    assert C.parse_layers("10:swvl1, 20:5") == {10: "swvl1", 20: "5"}
    assert C.parse_layers("auto") == {}
    with pytest.raises(ConfigError, match="LAYER_CM:VARIABLE"):
        C.parse_layers("swvl1")


def test_scores_equal_hand_worked_values():
    rows = pd.DataFrame(
        {
            "depth_cm": 10,
            "sm": [0.10, 0.20, 0.30, 0.40],
            "sm_matched": [0.12, 0.22, 0.32, 0.42],
            "a": [0.11, 0.21, 0.31, np.nan],
            "b": [0.10, 0.30, 0.20, 0.40],
        }
    )
    got = C.score(rows, ["a", "b"]).set_index(["product", "rows", "target"])
    a = got.loc[("a", "own", "raw")]
    assert a.n == 3 and a.bias == pytest.approx(0.01) and a.ubrmse == pytest.approx(0, abs=1e-12)
    assert got.loc[("a", "own", "matched")].bias == pytest.approx(-0.01)
    b = got.loc[("b", "own", "raw")]
    # errors 0, 0.1, −0.1, 0: RMSE sqrt(0.02/4); SST 0.05 → R² = 1 − 0.02/0.05 = 0.6
    assert b.n == 4 and b.rmse == pytest.approx(np.sqrt(0.005)) and b.r2 == pytest.approx(0.6)
    assert got.loc[("b", "common", "raw")].n == 3  # rows where a has a value too


def test_compare_command_writes_tables_beside_the_model(tmp_path):
    _write_era5_style(tmp_path / "era.nc")
    for depth in (10, 20):
        _write_smci1(tmp_path / "smci", depth)
    work = tmp_path / "work"
    (work / "validation").mkdir(parents=True)
    rows = []
    for point in ("P0", "P1"):
        for depth in (10, 20):
            for day in DAYS:
                rows.append((point, depth, day, *POINTS.loc[point], 0.2, 0.25))
    table = pd.DataFrame(
        rows, columns=["stations", "depth_cm", "time", "lat", "lon", "sm", "sm_matched"]
    )
    table.to_parquet(work / "station_days.parquet")
    pred = table.rename(columns={"depth_cm": "layer_cm"}).assign(experiment="year", model=0.23)
    pred.to_parquet(work / "validation" / "predictions.parquet")
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(tmp_path / "era.nc"),
            str(tmp_path / "smci"),
            "--name",
            "ERA5-Land",
            "--name",
            "SMCI1.0",
            "--layers",
            "10:swvl1,20:swvl2",
            "--workdir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    got = pd.read_csv(work / "compare" / "compare.csv")
    assert set(got["product"]) == {"model (year test rows)", "ERA5-Land", "SMCI1.0"}
    m = got[(got["product"] == "model (year test rows)") & (got.rows == "own")]
    assert m[m.target == "raw"].bias.to_numpy() == pytest.approx([0.03, 0.03])
    assert m[m.target == "matched"].bias.to_numpy() == pytest.approx([-0.02, -0.02])
    common = got[(got.rows == "common") & (got.layer_cm == 10)]
    assert (common.n == 7).all()  # 8 station-days less P0's missing SMCI1.0 day
    era = got[(got["product"] == "ERA5-Land") & (got.rows == "own") & (got.target == "raw")]
    # ERA5-Land swvl1 at P0 (row 1, col 1) and P1 (row 2, col 3), days 0–3, minus 0.2.
    expect = np.mean([_field(1, d)[rc] for rc in ((1, 1), (2, 3)) for d in range(4)]) - 0.2
    assert float(era[era.layer_cm == 10].bias.iloc[0]) == pytest.approx(expect, abs=1e-6)
    bad = CliRunner().invoke(app, ["compare", str(tmp_path / "nothing.nc"), "-w", str(tmp_path)])
    assert bad.exit_code != 0 and "no NetCDF file there" in str(bad.exception)


def test_era5_land_read_back_equals_the_station_table_reference(trained):
    # Two independent readers: prepare samples ERA5-Land through the engine's input reader
    # (matching.reference layer, nearest 0.1° cell of each 1 km cell); compare reads the
    # same daily-mean files with xarray by their CF attributes.
    cfg = load_config(workdir=trained, overrides={"device": "cpu"})
    table = pd.read_parquet(trained / "work" / "station_days.parquet")
    spec = C.ProductSpec(str(trained / "inputs" / "era5land" / "*daily_mean*.nc"), "ERA5-Land")
    values, info = C.sample_product(spec, C.station_points(table), cfg)
    assert info["outside"] == 0
    rows = C.collocate(table, {"ERA5-Land": values}, None, "")
    rows = rows.merge(
        table[["stations", "depth_cm", "time", "reference"]].assign(
            time=lambda f: pd.DatetimeIndex(f.time).normalize().astype("datetime64[ns]"),
            depth_cm=lambda f: f.depth_cm.astype(int),
        ),
        on=["stations", "depth_cm", "time"],
    )
    assert rows["ERA5-Land"].notna().mean() > 0.99
    np.testing.assert_allclose(rows["ERA5-Land"], rows.reference, atol=1e-6)
