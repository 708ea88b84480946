"""ISMN downloads: station names, depths, flags and record counts, against the real archives.

The references here are independent of the reader: the archive's own member paths
(``NETWORK/STATION/file``), the raw bytes of each file (line ends, record lines counted
with a regular expression), ISMN's published flag list and hand-built files.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections import Counter

import pandas as pd
import pytest

from smci_gpu.errors import InputDataError
from smci_gpu.io import ismn
from smci_gpu.io.stations import read_station_file, read_stations

LAYERS = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
HEADER_VALUES = "ismn_header_values_scan_soilscape.zip"
CEOP = "ismn_ceop_cosmos.zip"
#: A record line starts with its date (CEOP lines hold two dates; only the first starts).
RECORD = re.compile(rb"(?:^|[\r\n])\d{4}/\d{2}/\d{2} \d{2}:\d{2}")
DATE = re.compile(rb"^\d{4}/\d{2}/\d{2}$")


@pytest.fixture
def archive(shared_data, tmp_path):
    """A temporary copy of a real ISMN archive (nothing is ever opened beside the original)."""

    def copy(name: str):
        return shutil.copy(shared_data / "ismn" / name, tmp_path / name)

    return copy


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist() if n.endswith(".stm")}


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name, network, station, variable, depths",
    [
        # the real archives' members
        (
            "SCAN_SCAN_AdamsRanch#1_sm_0.050800_0.050800_Hydraprobe-Analog-(2.5-Volt)"
            "_20070101_20131231.stm",
            "SCAN",
            "AdamsRanch#1",
            "sm",
            (0.0508, 0.0508),
        ),
        (
            "COSMOS_COSMOS_Barrow-ARM_sm_0.000000_0.210000_Cosmic-ray-Probe_20170810_20180809.stm",
            "COSMOS",
            "Barrow-ARM",
            "sm",
            (0.0, 0.21),
        ),
        # a Chinese network whose name holds an underscore, and a station that does
        (
            "CTP_SMTMN_CTP_SMTMN_MQ_01_sm_0.050000_0.050000_5TM_20080101_20201231.stm",
            "CTP_SMTMN",
            "MQ_01",
            "sm",
            (0.05, 0.05),
        ),
        # ISMN's folder name for a station ending in '.' (TUW-GEO/ismn issue #97)
        (
            "SNOTEL_SNOTEL_KELLEYR.S__ts_0.508000_0.508000_P_19500101_20240314.stm",
            "SNOTEL",
            "KELLEYR.S_",
            "ts",
            (0.508, 0.508),
        ),
        ("NET_NET_S1_p_-1.400000_-1.400000_P_2018_2018.stm", "NET", "S1", "p", (-1.4, -1.4)),
        # renamed: no NETWORK_NETWORK_ prefix, the variable and depths still read
        ("mine_sm_0.100000_0.100000_P_2018_2018.stm", None, None, "sm", (0.1, 0.1)),
    ],
)
def test_file_names_split_as_ismn_builds_them(name, network, station, variable, depths):
    got = ismn.parse_name(f"SOME/FOLDER/{name}")
    assert (got.network, got.station, got.variable) == (network, station, variable)
    assert (got.depth_from_m, got.depth_to_m) == depths


@pytest.mark.parametrize(
    "name", ["COSMOS_COSMOS_ARM-1_static_variables.csv", "Metadata.xml", "readme_sm.stm"]
)
def test_other_members_are_no_data_files(name):
    assert ismn.parse_name(name) is None and not ismn.is_soil_moisture(name)


def _stm(network: str, station: str, depth: str = "0.10    0.10") -> str:
    header = f"XMS {network} {station} 31.50000 104.20000 500.00 {depth} Probe"
    rows = ["2018/07/01 00:00 0.2540 G M", "2018/07/01 01:00 0.2560 U M"]
    return "\r".join([header, *rows]) + "\r"


@pytest.mark.parametrize("packed", [True, False])
def test_station_is_named_by_folder_and_file_not_header(tmp_path, packed):
    """Folder and file say CST-01; the header line says CST_01 (the provider's spelling)."""
    folder = tmp_path / "stations"
    folder.mkdir()
    files = {
        "CHN_CHN_CST-01_sm_0.100000_0.100000_Probe_20180101_20181231.stm": _stm("CHN", "CST_01"),
        "CHN_CHN_CST-01_ts_0.100000_0.100000_Probe_20180101_20181231.stm": _stm("CHN", "CST_01"),
    }
    if packed:
        with zipfile.ZipFile(folder / "download.zip", "w") as z:
            for name, text in files.items():
                z.writestr(f"CHN/CST-01/{name}", text)
    else:
        for name, text in files.items():
            (folder / name).write_text(text, newline="")
    df, _ = read_stations(folder, LAYERS)
    assert df.station_id.unique().tolist() == ["CHN:CST-01"]
    # the soil temperature file is named the same way, so it reaches the same records
    assert df.soil_temperature.tolist() == [0.254, 0.256]


def test_real_station_names_are_the_archive_folders(archive):
    """SCAN/AdamsRanch#1 holds a header saying Adams_Ranch_#1: the folder's name wins."""
    path = archive(HEADER_VALUES)
    members = _members(path)
    folders = {f"{n.split('/')[0]}:{n.split('/')[1]}" for n in members}
    header = members[next(n for n in members if "AdamsRanch" in n)].split(b"\r")[0].split()
    assert header[2] == b"Adams_Ranch_#1"  # the trap is really there
    got = ismn.read_ismn(path)
    assert set(got.station_id) == folders and "SCAN:AdamsRanch#1" in folders
    ceop = ismn.read_ismn(archive(CEOP))
    assert set(ceop.station_id) == {"COSMOS:ARM-1", "COSMOS:Barrow-ARM"}


# ------------------------------------------------------------------ records and flags


@pytest.mark.parametrize("name", [HEADER_VALUES, CEOP])
def test_every_record_of_the_real_files_is_read(archive, name):
    path = archive(name)
    got = ismn.read_ismn(path)
    for member, raw in _members(path).items():
        station = "{}:{}".format(*member.split("/")[:2])
        assert (got.station_id == station).sum() == len(RECORD.findall(raw)), member


def test_real_header_values_files_end_lines_with_cr_only(archive):
    """The SCAN/SOILSCAPE files use bare CR (old Mac) line ends: the first record, the
    last and the count all come through."""
    path = archive(HEADER_VALUES)
    raw = _members(path)
    aamu = next(n for n in raw if "AAMU-jtg" in n)
    assert b"\n" not in raw[aamu] and raw[aamu].count(b"\r") == 42896  # header + records
    got = ismn.read_ismn(path)
    g = got[got.station_id == "SCAN:AAMU-jtg"]
    assert len(g) == 42895
    # 'head -c' of the file: "2007/03/..." first; the last line "2013/09/23 09:00 0.3110 U"
    # has no provider flag (125 records of this file lack it)
    assert g.time.iloc[-1] == pd.Timestamp("2013-09-23 09:00") and g.sm.iloc[-1] == 0.311
    assert g.ismn_flag.iloc[-1] == "U"


@pytest.mark.parametrize("name, column", [(HEADER_VALUES, 3), (CEOP, 13)])
def test_real_flags_are_ismn_codes_and_flagged_records_are_dropped(archive, name, column):
    path = archive(name)
    raw_flags = Counter()
    for raw in _members(path).values():
        lines = (ln.split() for ln in re.split(rb"\r\n|\r|\n", raw))
        records = [ln for ln in lines if ln and DATE.match(ln[0])]
        raw_flags.update(ln[column].decode() for ln in records)
    codes = {c for text in raw_flags for c in text.split(",")}
    assert codes <= set(ismn.FLAGS)
    # the archive documents: header+values files mark unflagged records U, never G
    assert ("G" in codes) == (name == CEOP) and ("U" in codes) == (name == HEADER_VALUES)
    flagged = sum(n for text, n in raw_flags.items() if text not in ("G", "U"))
    _, drops = read_station_file(path, LAYERS, ismn_tolerance_cm=5.0)
    assert drops["ismn_flagged"] == flagged > 0


def test_real_depths_are_the_file_names_intervals(archive):
    """Headers round to 0.01 m (SCAN's 2-inch probes read 0.05); the names keep 0.0508."""
    got = ismn.read_ismn(archive(HEADER_VALUES))
    scan = got[got.station_id.str.startswith("SCAN:")]
    assert set(scan.depth_from_cm) == {5.08} and set(scan.depth_to_cm) == {5.08}
    ceop = ismn.read_ismn(archive(CEOP))
    spans = ceop.groupby("station_id")[["depth_from_cm", "depth_to_cm"]].first()
    assert spans.to_dict("index") == {
        "COSMOS:ARM-1": {"depth_from_cm": 0.0, "depth_to_cm": 19.0},
        "COSMOS:Barrow-ARM": {"depth_from_cm": 0.0, "depth_to_cm": 21.0},
    }
    # 0-19 and 0-21 cm centre on 9.5 and 10.5 cm: the 10 cm layer; 5.08 cm is 4.92 cm
    # from it, outside the default 2.5 cm tolerance, inside 5 cm
    df, drops = read_station_file(archive(CEOP), LAYERS)
    assert set(df.depth_cm) == {10} and drops["unknown_depth"] == 0
    hv, drops = read_station_file(archive(HEADER_VALUES), LAYERS)
    assert hv.empty and drops["unknown_depth"] > 0
    wide, _ = read_station_file(archive(HEADER_VALUES), LAYERS, ismn_tolerance_cm=5.0)
    assert set(wide[wide.station_id.str.startswith("SCAN:")].depth_cm) == {10}


# ------------------------------------------------------------------------ bad files


@pytest.mark.parametrize(
    "text, message",
    [
        (_stm("NET", "S1").replace("U M", "X9 M"), r"record 2: unknown ISMN quality flag 'X9'"),
        (_stm("NET", "S1").replace("0.2560", "abc"), r"record 2: sm value 'abc' is no number"),
        (_stm("NET", "S1", "0.30    0.30"), r"header's depth 0.3-0.3 m disagrees .* 0.1-0.1 m"),
    ],
)
def test_bad_ismn_records_name_the_file(tmp_path, text, message):
    path = tmp_path / "NET_NET_S1_sm_0.100000_0.100000_P_20180101_20181231.stm"
    path.write_text(text, newline="")
    with pytest.raises(InputDataError, match=f"NET_NET_S1_sm.*{message}") as info:
        read_station_file(path, LAYERS)
    assert "\n" not in str(info.value)
