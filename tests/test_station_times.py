"""Station CSV/Parquet times: UTC offsets, the configured zone of naive times, DST traps.

References are hand-worked: Beijing time is UTC+8 (China Standard Time), and China kept
daylight saving time (UTC+9) from 1986 to 1991; in 1990 it began on 15 April at 02:00
(02:00-03:00 never happened) and ended on 16 September at 02:00 (01:00-02:00 happened
twice).
"""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest
from rich.console import Console

from smci_gpu.config import load_config
from smci_gpu.errors import ConfigError, InputDataError
from smci_gpu.io.stations import parse_timezone, read_station_file, read_stations

LAYERS = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]


def _write(tmp_path, times, name="s.csv", station="CN-01"):
    rows = pd.DataFrame(
        {
            "station_id": station,
            "lat": 39.9,
            "lon": 116.4,
            "time": times,
            "depth_cm": 10,
            "sm": [0.20 + 0.01 * i for i in range(len(times))],
        }
    )
    path = tmp_path / name
    if name.endswith(".parquet"):
        rows.to_parquet(path)
    else:
        rows.to_csv(path, index=False)
    return path


def _utc(*stamps: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(s) for s in stamps]


# ------------------------------------------------------------------------ zone names


@pytest.mark.parametrize(
    "name, on, hours",
    [
        ("UTC", "2018-03-01", 0),
        ("+08:00", "2018-03-01", 8),
        ("+0800", "1988-07-01", 8),  # a fixed offset knows no daylight saving
        ("-05:30", "2018-03-01", -5.5),
        ("Asia/Shanghai", "2018-03-01", 8),
        ("Asia/Shanghai", "1988-07-01", 9),  # China's daylight saving time, 1986-1991
        ("Etc/GMT-8", "2018-03-01", 8),  # the IANA name, POSIX sign inverted
    ],
)
def test_time_zone_forms(name, on, hours):
    zone = parse_timezone(name)
    assert zone.utcoffset(dt.datetime.fromisoformat(on)) == dt.timedelta(hours=hours)


@pytest.mark.parametrize(
    "name, hint",
    [
        ("Asia/Shangai", "IANA name"),
        ("Asia", "IANA name"),
        ("", "IANA name"),
        ("+25:00", "fixed offset"),
        ("UTC+8", "write the offset alone"),
        ("GMT-05:00", "write the offset alone"),
    ],
)
def test_bad_time_zones_are_config_errors(tmp_path, name, hint):
    with pytest.raises(ConfigError, match=hint):
        parse_timezone(name)
    (tmp_path / "smci.toml").write_text(f'[stations]\ntimezone = "{name}"\n')
    with pytest.raises(ConfigError, match=r"'stations.timezone'.* is not a time zone") as info:
        load_config(workdir=tmp_path, environ={})
    assert "\n" not in str(info.value)


def test_time_zone_from_the_environment(tmp_path):
    cfg = load_config(workdir=tmp_path, environ={"SMCI_STATIONS__TIMEZONE": "+08:00"})
    assert cfg.stations.timezone == "+08:00"
    assert load_config(workdir=tmp_path, environ={}).stations.timezone == "UTC"


# ------------------------------------------------------------------------- CSV times


def test_offsets_are_converted_to_utc(tmp_path):
    """The issue's file: offsets used to end in a bare TypeError."""
    path = _write(
        tmp_path,
        [
            "2018-03-01T08:00:00+08:00",
            "2018-03-01T01:00Z",
            "2018-03-01 10:00:00+0800",
            "2018-02-28T21:00:00-05:00",
        ],
    )
    for zone in ("UTC", "Asia/Tokyo"):  # an offset wins over the configured zone
        df, _ = read_station_file(path, LAYERS, timezone=zone)
        assert df.time.tolist() == _utc(
            "2018-03-01 00:00", "2018-03-01 01:00", "2018-03-01 02:00", "2018-03-01 02:00"
        )
        assert df.time.dt.tz is None


def test_naive_times_are_local_time_in_the_configured_zone(tmp_path):
    path = _write(tmp_path, ["2018-03-01T08:00", "2018-03-01T09:00"])
    utc, _ = read_station_file(path, LAYERS)
    assert utc.time.tolist() == _utc("2018-03-01 08:00", "2018-03-01 09:00")  # default UTC
    for zone in ("Asia/Shanghai", "+08:00"):
        bj, _ = read_station_file(path, LAYERS, timezone=zone)
        assert bj.time.tolist() == _utc("2018-03-01 00:00", "2018-03-01 01:00")


def test_the_same_instants_in_two_notations_are_one_record(tmp_path):
    """A folder with a UTC file and a Beijing-time file of the same hours: one record each
    (before, the mix of naive and tz-aware times raised a bare TypeError)."""
    _write(tmp_path, ["2018-03-01T00:00", "2018-03-01T01:00"], name="a.csv")
    _write(tmp_path, ["2018-03-01T08:00+08:00", "2018-03-01T10:00+08:00"], name="b.csv")
    df, drops = read_stations(tmp_path, LAYERS)
    assert df.time.tolist() == _utc("2018-03-01 00:00", "2018-03-01 01:00", "2018-03-01 02:00")
    assert drops["duplicate_time"] == 1


def test_offsets_may_change_within_a_file(tmp_path):
    """The documented rule: each offset is its own instant (summer time writes two)."""
    path = _write(tmp_path, ["2018-03-25T00:30+01:00", "2018-03-25T03:30+02:00"])
    df, _ = read_station_file(path, LAYERS)
    assert df.time.tolist() == _utc("2018-03-24 23:30", "2018-03-25 01:30")


def test_naive_and_offset_times_in_one_file_are_an_error(tmp_path):
    path = _write(tmp_path, ["2018-03-01T08:00+08:00", "2018-03-01T09:00", "2018-03-01T10:00"])
    with pytest.raises(
        InputDataError,
        match=r"s.csv, line 3 \(station CN-01\): time '2018-03-01T09:00' has no UTC offset "
        r"but line 2 has one",
    ) as info:
        read_station_file(path, LAYERS, timezone="Asia/Shanghai")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "stamp, why",
    [
        ("1990-09-16T01:30", "is ambiguous there"),  # DST ended 02:00 -> 01:00
        ("1990-04-15T02:30", "does not exist there"),  # DST began 02:00 -> 03:00
    ],
)
def test_local_times_a_dst_change_repeats_or_skips_are_errors(tmp_path, stamp, why):
    path = _write(tmp_path, ["1990-04-14T00:00", stamp])
    with pytest.raises(
        InputDataError, match=rf"s.csv, line 3 \(station CN-01\): local time .* {why}"
    ) as info:
        read_station_file(path, LAYERS, timezone="Asia/Shanghai")
    assert "+08:00" in str(info.value) and "\n" not in str(info.value)
    fixed, _ = read_station_file(path, LAYERS, timezone="+08:00")  # the way out it names
    assert fixed.time.iloc[1] == pd.Timestamp(stamp) - pd.Timedelta(hours=8)


def test_a_bad_time_still_names_line_and_station(tmp_path):
    path = _write(tmp_path, ["2018-03-01T08:00+08:00", "2018-02-30T00:00+08:00"])
    with pytest.raises(
        InputDataError, match=r"s.csv, line 3: bad time '2018-02-30T00:00\+08:00' \(station CN-01"
    ):
        read_station_file(path, LAYERS)


# --------------------------------------------------------------------- Parquet times


def test_parquet_timestamp_columns(tmp_path):
    local = pd.to_datetime(["2018-03-01 08:00", "2018-03-01 09:00"])
    aware = _write(tmp_path, local.tz_localize("Asia/Shanghai"), name="aware.parquet")
    assert isinstance(pd.read_parquet(aware).time.dtype, pd.DatetimeTZDtype)
    naive = _write(tmp_path, local, name="naive.parquet")
    text = _write(tmp_path, ["2018-03-01T08:00+08:00", "2018-03-01T09:00+08:00"], "t.parquet")
    want = _utc("2018-03-01 00:00", "2018-03-01 01:00")
    for path, zone in [(aware, "UTC"), (aware, "-05:00"), (naive, "+08:00"), (text, "UTC")]:
        df, _ = read_station_file(path, LAYERS, timezone=zone)
        assert df.time.tolist() == want, (path.name, zone)
    missing = _write(tmp_path, [local[0], pd.NaT], name="nat.parquet")
    with pytest.raises(InputDataError, match=r"nat.parquet, row 2: bad time"):
        read_station_file(missing, LAYERS)


# --------------------------------------------------- the station-day table, end to end


def _rewrite_times(folder, shift_hours: int, suffix: str) -> None:
    """Every station CSV's times moved by ``shift_hours`` and written with ``suffix``;
    the other columns stay byte-identical text."""
    for path in folder.glob("*.csv"):
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        local = pd.to_datetime(df.time, format="ISO8601") + pd.Timedelta(hours=shift_hours)
        df["time"] = local.dt.strftime("%Y-%m-%dT%H:%M") + suffix
        df.to_csv(path, index=False)


@pytest.fixture(scope="module")
def tables(tiny_world, tmp_path_factory):
    """The tiny world's station-day table from UTC times, from the same instants written
    in Beijing time with +08:00, and written as naive Beijing time with the zone set."""
    from smci_gpu.prepare import build_table

    out = {}
    for case, shift, suffix, zone in [
        ("utc", 0, "", None),
        ("offset", 8, "+08:00", None),
        ("beijing", 8, "", "Asia/Shanghai"),
    ]:
        wd = tmp_path_factory.mktemp(case) / "w"
        shutil.copytree(tiny_world, wd, ignore=shutil.ignore_patterns("work", "models", "product"))
        if shift:
            _rewrite_times(wd / "inputs" / "stations", shift, suffix)
        overrides = {"device": "cpu", **({"stations": {"timezone": zone}} if zone else {})}
        cfg = load_config(workdir=wd, overrides=overrides)
        out[case] = build_table(cfg, Console(quiet=True))
    return out


def test_utc_and_beijing_time_give_the_identical_station_day_table(tables):
    table, report = tables["utc"]
    assert len(table) > 0
    for case in ("offset", "beijing"):
        other, other_report = tables[case]
        pd.testing.assert_frame_equal(other, table, check_exact=True)
        assert other_report["per_series"] == report["per_series"]
