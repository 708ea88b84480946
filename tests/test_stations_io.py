"""Station readers: the demo's CSV layout and ISMN downloads (real archives and hand-built)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from smci_gpu.errors import InputDataError
from smci_gpu.io import ismn
from smci_gpu.io.stations import read_station_file, read_stations

LAYERS = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]

HEADER_VALUES = (
    "XMS        NETX            Site-A            40.50000   115.20000  1200.00    0.10    0.10 "
    "Probe\r2018/07/01 00:00   0.2540 G M\r2018/07/01 01:00   0.2560 D02 M\r"
    "2018/07/01 02:00   0.2550 U M\r"
)
CEOP = (
    "2018/07/01 00:00 2018/07/01 00:00 XMS NETX Site-B 40.70000 115.40000 900.00 0.00 0.19 "
    "0.1410 G M\r\n\r\n"
    "2018/07/01 01:00 2018/07/01 01:00 XMS NETX Site-B 40.70000 115.40000 900.00 0.00 0.19 "
    "0.1390 C01 M\r\n"
)


def test_header_values_by_hand(tmp_path):
    path = tmp_path / "NETX_NETX_Site-A_sm_0.100000_0.100000_Probe_20180101_20181231.stm"
    path.write_bytes(HEADER_VALUES.encode())
    got = ismn.read_ismn(path)
    assert list(got.columns) == list(ismn.COLUMNS)
    assert got.station_id.unique().tolist() == ["NETX:Site-A"]
    np.testing.assert_allclose(got.sm, [0.254, 0.256, 0.255])
    assert got.ismn_flag.tolist() == ["G", "D02", "U"]
    assert got.time.tolist() == list(pd.date_range("2018-07-01", periods=3, freq="h"))
    df, drops = read_station_file(path, LAYERS)
    assert drops == {"unknown_depth": 0, "ismn_flagged": 1}
    assert df.depth_cm.tolist() == [10, 10] and (df.lat == 40.5).all()


def test_ceop_by_hand(tmp_path):
    path = tmp_path / "NETX_NETX_Site-B_sm_0.000000_0.190000_Probe_20180101_20181231.stm"
    path.write_bytes(CEOP.encode())
    got = ismn.read_ismn(path)
    assert got.station_id.tolist() == ["NETX:Site-B"] * 2
    assert got.depth_from_cm.tolist() == [0.0, 0.0] and got.depth_to_cm.tolist() == [19.0, 19.0]
    assert got.ismn_flag.tolist() == ["G", "C01"]
    layered, unknown = ismn.assign_layers(got, LAYERS, tolerance_cm=2.5)
    assert unknown == 0 and layered.depth_cm.tolist() == [10, 10]  # centre 9.5 cm


def test_depth_rule():
    rec = pd.DataFrame(
        {"depth_from_cm": [5.08, 0.0, 0.0, 48.0, 0.0], "depth_to_cm": [5.08, 21.0, 60.0, 52.0, 40]}
    )
    out, unknown = ismn.assign_layers(rec, LAYERS, tolerance_cm=2.5)
    # 5.08 cm: 4.9 cm from 10 → dropped; 0–21 → 10; 0–60 too wide; 48–52 → 50; 0–40 too wide
    assert out.depth_cm.tolist() == [10, 50] and unknown == 3
    wider, _ = ismn.assign_layers(rec, LAYERS, tolerance_cm=5.0)
    assert wider.depth_cm.tolist() == [10, 10, 50]


def test_real_header_values_archive(shared_data):
    path = shared_data / "ismn" / "ismn_header_values_scan_soilscape.zip"
    got = ismn.read_ismn(path)
    assert set(got.station_id.str.split(":").str[0]) == {"SCAN", "SOILSCAPE"}
    assert got.station_id.nunique() == 6
    abrams = got[got.station_id == "SCAN:Abrams"].iloc[0]
    # First record of the file: "2007/01/01 00:00   0.1540 D02 M"
    assert abrams.time == pd.Timestamp("2007-01-01 00:00") and abrams.sm == pytest.approx(0.154)
    assert abrams.ismn_flag == "D02" and abrams.lat == pytest.approx(37.133)
    assert set(got.ismn_flag) >= {"U", "D02"} and "G" not in set(got.ismn_flag)
    # The sensors sit at 5 cm, which is no product layer: every record is dropped, counted.
    df, drops = read_station_file(path, LAYERS)
    assert df.empty and drops["unknown_depth"] + drops["ismn_flagged"] == len(got)


def test_real_ceop_archive(shared_data):
    path = shared_data / "ismn" / "ismn_ceop_cosmos.zip"
    got = ismn.read_ismn(path)
    assert sorted(got.station_id.unique()) == ["COSMOS:ARM-1", "COSMOS:Barrow-ARM"]
    first = got[got.station_id == "COSMOS:ARM-1"].iloc[0]
    assert first.time == pd.Timestamp("2017-08-10 00:00") and first.sm == pytest.approx(0.141)
    assert first.ismn_flag == "G" and (first.depth_from_cm, first.depth_to_cm) == (0.0, 19.0)
    df, drops = read_station_file(path, LAYERS)
    assert set(df.depth_cm) == {10} and df.station_id.nunique() == 2
    assert drops["ismn_flagged"] == int((~got.ismn_flag.isin(["G", "U"])).sum())


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"2018/07/01 00:00 0.2 G M\n", "neither header\\+values nor CEOP"),
        (HEADER_VALUES.replace("2018/07/01 01:00", "2018/13/01 01:00").encode(), "bad date"),
    ],
)
def test_bad_ismn_files(tmp_path, content, message):
    path = tmp_path / "N_N_S_sm_0.100000_0.100000_P_2018_2018.stm"
    path.write_bytes(content)
    with pytest.raises(InputDataError, match=message):
        read_station_file(path, LAYERS) if content else ismn.read_ismn(path)


def test_corrupt_zip_is_named(tmp_path):
    path = tmp_path / "download.zip"
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InputDataError, match="download.zip is not a readable zip"):
        ismn.read_ismn(path)


# --------------------------------------------------------------------------- CSV layout


def _csv(tmp_path, name, sm=0.25, time="2018-07-01T00:00", depth=10, lat=40.5):
    df = pd.DataFrame(
        {"station_id": "S1", "lat": lat, "lon": 115.0, "time": time, "depth_cm": depth, "sm": sm},
        index=[0],
    )
    df.to_csv(tmp_path / name, index=False)
    return tmp_path / name


def test_percent_units_are_refused(tmp_path):
    path = _csv(tmp_path, "pct.csv", sm=25.0)
    with pytest.raises(InputDataError, match="station S1 .* looks like percent"):
        read_station_file(path, LAYERS)


def test_bad_date_names_the_line(tmp_path):
    path = _csv(tmp_path, "date.csv", time="2018-02-30T00:00")
    with pytest.raises(InputDataError, match=r"date.csv, line 2: bad time '2018-02-30T00:00'"):
        read_station_file(path, LAYERS)


def test_duplicates_and_unknown_depths_are_counted_and_time_sorted(tmp_path):
    rows = pd.DataFrame(
        {
            "station_id": "S1",
            "lat": 40.5,
            "lon": 115.0,
            "time": [
                "2018-07-01T02:00",
                "2018-07-01T00:00",
                "2018-07-01T00:00",
                "2018-07-01T01:00",
            ],
            "depth_cm": [10, 10, 10, 15],
            "sm": [0.3, 0.2, 0.2, 0.1],
        }
    )
    rows.to_csv(tmp_path / "a.csv", index=False)
    df, drops = read_stations(tmp_path, LAYERS)
    assert drops == {"unknown_depth": 1, "ismn_flagged": 0, "duplicate_time": 1}
    assert df.time.is_monotonic_increasing and df.sm.tolist() == [0.2, 0.3]


def test_station_outside_the_grid_is_dropped_and_counted(tiny_world, tmp_path):
    from smci_gpu.config import load_config
    from smci_gpu.prepare import prepare

    wd = tmp_path / "w"
    shutil.copytree(tiny_world, wd, ignore=shutil.ignore_patterns("work", "models", "product"))
    one = sorted((wd / "inputs" / "stations").glob("*.csv"))[0]
    far = pd.read_csv(one).assign(station_id="FAR", lat=10.0, lon=10.0)
    far.to_csv(wd / "inputs" / "stations" / "FAR.csv", index=False)
    cfg = load_config(workdir=wd, overrides={"device": "cpu"})
    out = prepare(cfg, Console(quiet=True))
    assert out["drops"]["stations_outside_grid"] == 1
    assert {"station_id": "FAR", "reason": "outside the region's grid"} in out["stations_dropped"]
    per = pd.read_csv(wd / "work" / "qc_per_series.csv")
    assert "FAR" not in set(per.station_id) and {"D06", "days_kept"} <= set(per.columns)
    # the flagged hours, decoded, add up to the per-series counts of hours that held a value
    from smci_gpu.insitu.qc import from_bitmask

    flagged = pd.read_parquet(wd / "work" / "qc_flags.parquet")
    decoded = from_bitmask(flagged.qc_flags.to_numpy())
    assert len(flagged) > 0 and decoded["any"].all()
    assert decoded.D06.sum() == per.D06.sum() and decoded.D03.sum() <= per.D03.sum()
    table = pd.read_parquet(out["path"])
    assert "FAR" not in ";".join(table.stations.unique()) and len(table) > 0


def test_in_situ_covariates_are_kept_and_checked(tmp_path):
    hours = pd.date_range("2018-01-01", periods=4, freq="h")
    rows = pd.DataFrame(
        {
            "station_id": "S1",
            "lat": 40.5,
            "lon": 115.0,
            "time": hours.strftime("%Y-%m-%dT%H:%M"),
            "depth_cm": 10,
            "sm": 0.2,
            "soil_temperature": [-1.0, -0.5, 0.5, np.nan],
            "precipitation": [0.0, 1.2, 0.0, 0.0],
        }
    )
    rows.to_csv(tmp_path / "a.csv", index=False)
    df, _ = read_station_file(tmp_path / "a.csv", LAYERS)
    assert "air_temperature" not in df.columns  # absent columns stay absent
    np.testing.assert_array_equal(df.soil_temperature, [-1.0, -0.5, 0.5, np.nan])
    assert df.precipitation.tolist() == [0.0, 1.2, 0.0, 0.0]
    rows.assign(soil_temperature=rows.soil_temperature + 273.15).to_csv(
        tmp_path / "k.csv", index=False
    )
    with pytest.raises(InputDataError, match=r"station S1 in .*k.csv: soil_temperature 272.15"):
        read_station_file(tmp_path / "k.csv", LAYERS)


def test_in_situ_soil_temperature_and_rain_reach_the_qc():
    """The station's own soil temperature raises D01 and its gauge decides D04."""
    from smci_gpu.config import Config
    from smci_gpu.prepare import qc_series

    hours = pd.date_range("2018-04-01", periods=24 * 20, freq="h")
    sm = pd.Series(0.3 - 0.03 * np.arange(hours.size) / hours.size, index=hours)
    sm.iloc[300:] += 0.03  # a rise without rain
    warm = pd.Series(290.0, index=hours.normalize().unique())  # ERA5-Land: never frozen
    in_situ = pd.DataFrame(
        {"soil_temperature": np.where(np.arange(hours.size) < 48, -2.0, 4.0), "precipitation": 0.0},
        index=hours,
    )
    _, counts, flags = qc_series(sm, warm, Config(), "station S1, 10 cm", in_situ=in_situ)
    assert np.flatnonzero(flags.D01).tolist() == list(range(48))
    assert np.flatnonzero(flags.D04).tolist() == [300] and counts["D03"] == 0


def _stm(network: str, station: str, depth_m: float, values: list[str]) -> str:
    header = f"XMS {network} {station} 40.50000 115.20000 1200.00 {depth_m:.2f} {depth_m:.2f} P"
    return "\r".join([header, *values]) + "\r"


def _ismn_records(values: list[float], flags: list[str]) -> list[str]:
    hours = pd.date_range("2018-07-01", periods=len(values), freq="h")
    return [
        f"{t:%Y/%m/%d %H:%M} {v:.4f} {f} M" for t, v, f in zip(hours, values, flags, strict=True)
    ]


@pytest.mark.parametrize("packed", [True, False])
def test_ismn_soil_temperature_and_precipitation_reach_the_records(tmp_path, packed):
    import zipfile

    files = {
        "NETX_NETX_S_sm_0.100000_0.100000_P_2018_2018.stm": _stm(
            "NETX", "S", 0.10, _ismn_records([0.25, 0.26, 0.27], ["G", "G", "G"])
        ),
        # two temperature probes: 5 cm stands for the 10 cm layer, 50 cm is too far
        "NETX_NETX_S_ts_0.050000_0.050000_P_2018_2018.stm": _stm(
            "NETX", "S", 0.05, _ismn_records([-1.5, 0.5, 2.0], ["G", "D03", "U"])
        ),
        "NETX_NETX_S_ts_0.500000_0.500000_P_2018_2018.stm": _stm(
            "NETX", "S", 0.50, _ismn_records([9.0, 9.0, 9.0], ["G", "G", "G"])
        ),
        "NETX_NETX_S_p_-1.400000_-1.400000_P_2018_2018.stm": _stm(
            "NETX", "S", -1.40, _ismn_records([0.0, 3.2, 0.0], ["G", "G", "G"])
        ),
    }
    folder = tmp_path / "stations"
    folder.mkdir()
    if packed:
        with zipfile.ZipFile(folder / "download.zip", "w") as z:
            for name, text in files.items():
                z.writestr(f"NETX/S/{name}", text)
    else:
        for name, text in files.items():
            (folder / name).write_text(text)
    df, drops = read_stations(folder, LAYERS)
    assert df.depth_cm.tolist() == [10, 10, 10] and drops["ismn_flagged"] == 0
    np.testing.assert_allclose(df.sm, [0.25, 0.26, 0.27])
    # the record ISMN flagged (D03) is not used
    np.testing.assert_array_equal(df.soil_temperature, [-1.5, np.nan, 2.0])
    np.testing.assert_allclose(df.precipitation, [0.0, 3.2, 0.0])
    assert "air_temperature" not in df.columns


@pytest.mark.parametrize(
    "cell, message",
    [
        ({"sm": "abc"}, r"line 3 \(station S1\): sm 'abc' is not a number or empty"),
        ({"depth_cm": "10cm"}, r"line 3 \(station S1\): depth_cm '10cm' is not a number"),
        ({"lat": "40,5"}, r"line 3 \(station S1\): lat '40,5' is not a number in -90..90"),
        ({"lat": 95.0}, r"line 3 \(station S1\): lat 95 is not a number in -90..90"),
        ({"lon": ""}, r"line 3 \(station S1\): lon \(empty\) is not a number"),
        ({"station_id": ""}, r"line 3: no station_id"),
        ({"soil_temperature": "warm"}, r"line 3 \(station S1\): soil_temperature 'warm' is not"),
    ],
)
def test_bad_cells_name_the_line_and_station(tmp_path, cell, message):
    """Text in a numeric column used to become NaN (or a whole file of unknown depths)."""
    good = {"station_id": "S1", "lat": 40.5, "lon": 115.0, "time": "2018-07-01T00:00"}
    good |= {"depth_cm": 10, "sm": 0.25, "soil_temperature": 5.0}
    rows = pd.DataFrame([good, {**good, "time": "2018-07-01T01:00", **cell}])
    rows.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputDataError, match=r"station file .*bad.csv, " + message) as info:
        read_station_file(tmp_path / "bad.csv", LAYERS)
    assert "\n" not in str(info.value)


def test_an_empty_sm_cell_is_a_missing_value(tmp_path):
    rows = pd.DataFrame(
        {
            "station_id": "S1",
            "lat": 40.5,
            "lon": 115.0,
            "time": ["2018-07-01T00:00", "2018-07-01T01:00"],
            "depth_cm": 10,
            "sm": ["0.25", ""],
        }
    )
    rows.to_csv(tmp_path / "gap.csv", index=False)
    df, _ = read_station_file(tmp_path / "gap.csv", LAYERS)
    assert df.sm.iloc[0] == 0.25 and np.isnan(df.sm.iloc[1])
