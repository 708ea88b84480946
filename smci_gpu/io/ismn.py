"""ISMN downloads: "header+values" and "CEOP" ``.stm`` files, loose or inside the zip archive.

Both formats carry hourly soil moisture in m³/m³ with the ISMN quality flag of each record
(``G`` good; ``U`` in older downloads, which had no ``G``; ``C01``–``C03`` outside the
plausible range and ``D01``–``D10`` dubious by ISMN's own tests, several joined by commas;
see :data:`FLAGS`), which is kept in the ``ismn_flag`` column:

* header+values: a first line ``CSE network station lat lon elevation depth_from
  depth_to [sensor]``, then ``YYYY/MM/DD HH:MM value flag [original_flag]`` per record;
* CEOP: every line ``date time date time CSE network station lat lon elevation
  depth_from depth_to value flag original_flag`` (nominal, then actual UTC time).

Times are UTC (ISMN harmonises every network to UTC). Files use CR, LF or CRLF line ends
(and CEOP may put blank lines between records). Only soil moisture files (variable ``sm``
in the ISMN file name) are read.

Names and depths come from the file name ISMN builds,
``NETWORK_NETWORK_STATION_VAR_DEPTHFROM_DEPTHTO_SENSOR_START_END.stm`` (:func:`parse_name`),
whose station part is also the station's folder in the archive: header lines carry the
provider's own spelling, which ISMN does not use for its folders (``SCAN/AdamsRanch#1``
holds a header saying ``Adams_Ranch_#1``), and round depths to centimetres (0.0508 m is
``0.05`` there). A file whose name does not follow the pattern falls back on its header.
Depths are intervals in metres; :func:`assign_layers` maps each sensor to a product layer
by its interval centre.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from smci_gpu.errors import InputDataError

#: ``{prefix}_{variable}_{depth_from}_{depth_to}_{sensor}_{start}_{end}.stm``; the variable
#: codes of ``.stm`` files (sm, ts, ta, p, su, sd, sweq, tsf …) hold no underscore.
_NAME = re.compile(
    r"^(?P<prefix>.+?)_(?P<var>[a-z]+)_(?P<d0>-?\d+\.\d+)_(?P<d1>-?\d+\.\d+)_.*(?i:\.stm)$"
)
#: The prefix repeats the network: ``NETWORK_NETWORK_STATION`` (networks such as
#: CTP_SMTMN and stations such as KELLEYR.S_ hold underscores themselves).
_PREFIX = re.compile(r"^(?P<network>.+?)_(?P=network)_(?P<station>.+)$")
_DATE = re.compile(r"^\d{4}/\d{2}/\d{2}$")
GOOD_FLAGS = ("G", "U")
#: ISMN quality flags (ISMN "quality flags" page; Dorigo et al. 2013, Vadose Zone J.):
#: C01 sm < 0, C02 sm > 0.6 m³/m³, C03 sm above the HWSD saturation point; D01/D02
#: in situ soil/air temperature < 0 °C; D03 GLDAS soil temperature < 0 °C; D04/D05 a
#: rise without in situ/GLDAS rain in the 24 h before; D06 spike; D07/D08 negative/positive
#: break; D09 low and D10 saturated plateau; G good; U unflagged (older downloads);
#: M value missing.
FLAGS = (
    *GOOD_FLAGS,
    "M",
    *(f"C{i:02d}" for i in range(1, 4)),
    *(f"D{i:02d}" for i in range(1, 11)),
)
MAX_INTERVAL_CM = 25.0
#: Header lines round depths to 0.01 m; a file name and header further apart disagree.
DEPTH_AGREEMENT_M = 0.006
COLUMNS = ("station_id", "lat", "lon", "time", "depth_from_cm", "depth_to_cm", "sm", "ismn_flag")


#: ISMN variable codes read beside soil moisture, and the QC's names for them: soil and
#: air temperature (°C) and precipitation (mm per hourly record).
COVARIATES = {"ts": "soil_temperature", "ta": "air_temperature", "p": "precipitation"}


@dataclass(frozen=True)
class IsmnName:
    """What an ISMN data file's name says (:func:`parse_name`).

    ``network`` and ``station`` are None when the name lacks the ``NETWORK_NETWORK_``
    prefix (a renamed file); depths are metres below the surface.
    """

    network: str | None
    station: str | None
    variable: str
    depth_from_m: float
    depth_to_m: float


def parse_name(name: str) -> IsmnName | None:
    """Split an ISMN data file name into network, station, variable and depth interval.

    Parameters
    ----------
    name
        File name or path (only the last part is read), e.g.
        ``SCAN_SCAN_AdamsRanch#1_sm_0.050800_0.050800_Hydraprobe_20070101_20131231.stm``.

    Returns
    -------
    IsmnName or None
        None when the name does not follow the ISMN pattern
        ``NETWORK_NETWORK_STATION_VAR_DEPTHFROM_DEPTHTO_SENSOR_START_END.stm`` (the layout
        of ISMN downloads and of the TUW-GEO ``ismn`` package's file handlers).
    """
    m = _NAME.match(PurePosixPath(str(name).replace("\\", "/")).name)
    if not m:
        return None
    prefix = _PREFIX.match(m.group("prefix"))
    return IsmnName(
        network=prefix.group("network") if prefix else None,
        station=prefix.group("station") if prefix else None,
        variable=m.group("var").lower(),
        depth_from_m=float(m.group("d0")),
        depth_to_m=float(m.group("d1")),
    )


def variable_of(name: str) -> str | None:
    """The ISMN variable code of a file name (``sm``, ``ts``, ``p`` …), None if unnamed."""
    parsed = parse_name(name)
    return parsed.variable if parsed else None


def is_soil_moisture(name: str) -> bool:
    """Whether an ISMN file name holds soil moisture (variable ``sm``)."""
    return variable_of(name) == "sm"


def _frame(rows: list[list[str]], where: str, value: str) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["date", "hour", "value", "ismn_flag"])
    time = pd.to_datetime(df.date + " " + df.hour, format="%Y/%m/%d %H:%M", errors="coerce")
    if time.isna().any():
        i = int(np.flatnonzero(time.isna())[0])
        raise InputDataError(f"{where}, record {i + 1}: bad date {df.date[i]} {df.hour[i]}")
    values = pd.to_numeric(df.value, errors="coerce")
    bad = values.isna() & (df.value.str.lower() != "nan")  # a written NaN stays missing
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputDataError(f"{where}, record {i + 1}: {value} value {df.value[i]!r} is no number")
    return pd.DataFrame({"time": time, value: values, "ismn_flag": df.ismn_flag})


def _split_lines(text: str) -> list[list[str]]:
    """Whitespace-split non-blank lines, whatever the line ends (CR, LF, CRLF)."""
    lines = (ln.split() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return [ln for ln in lines if ln]


def parse_stm(
    text: str, where: str, value: str = "sm", file_name: str | None = None
) -> pd.DataFrame:
    """One ``.stm`` file (either format) as records in the columns of :data:`COLUMNS`.

    Parameters
    ----------
    text
        The file's content (any line ends).
    where
        The file (or archive member) named in errors.
    value
        Name of the value column: ``sm``, or a :data:`COVARIATES` name.
    file_name
        The ISMN file name; its network, station and depth interval (:func:`parse_name`)
        win over the header's. None: the header's are used.

    Returns
    -------
    pandas.DataFrame
        One row per record: ``station_id`` (``NETWORK:STATION``), ``lat``, ``lon``
        (degrees), ``time`` (UTC, naive), ``depth_from_cm``, ``depth_to_cm``, the value
        and ``ismn_flag`` (the ISMN quality flag text, e.g. ``G`` or ``D02,D03``).

    Raises
    ------
    InputDataError
        Neither format; a bad date, value or flag; a header whose depths disagree with the
        file name's.
    """
    lines = _split_lines(text)
    if not lines:
        raise InputDataError(f"ISMN file {where} is empty")
    first = lines[0]
    ceop = len(first) >= 15 and bool(_DATE.match(first[0])) and bool(_DATE.match(first[2]))
    try:
        if ceop:
            meta = first[4:12]  # CSE network station lat lon elev from to
            records = _frame([[ln[0], ln[1], ln[12], ln[13]] for ln in lines], where, value)
        else:
            if len(first) < 8 or _DATE.match(first[0]):
                raise ValueError("the first line is not a station header")
            meta = first[0:8]
            records = _frame([[ln[0], ln[1], ln[2], ln[3]] for ln in lines[1:]], where, value)
        lat, lon, d0, d1 = (float(v) for v in (meta[3], meta[4], meta[6], meta[7]))
    except (IndexError, ValueError) as exc:
        raise InputDataError(
            f"ISMN file {where} is neither header+values nor CEOP format ({exc})"
        ) from exc
    _check_flags(records.ismn_flag, where)
    network, station = meta[1], meta[2]
    named = parse_name(file_name) if file_name else None
    if named is not None:
        _check_depths(named, d0, d1, where)
        d0, d1 = named.depth_from_m, named.depth_to_m
        if named.station is not None:
            network, station = named.network, named.station
    records.insert(0, "station_id", f"{network}:{station}")
    records.insert(1, "lat", lat)
    records.insert(2, "lon", lon)
    records.insert(4, "depth_from_cm", round(d0 * 100, 3))
    records.insert(5, "depth_to_cm", round(d1 * 100, 3))
    return records


def _check_depths(named: IsmnName, d0: float, d1: float, where: str) -> None:
    """The header's depths (rounded to 0.01 m) must be the file name's."""
    if max(abs(named.depth_from_m - d0), abs(named.depth_to_m - d1)) > DEPTH_AGREEMENT_M:
        raise InputDataError(
            f"ISMN file {where}: the header's depth {d0:g}-{d1:g} m disagrees with the file "
            f"name's {named.depth_from_m:g}-{named.depth_to_m:g} m"
        )


def _check_flags(flags: pd.Series, where: str) -> None:
    """Every comma-joined code must be an ISMN quality flag (:data:`FLAGS`)."""
    codes = set(flags.unique())
    if codes <= set(GOOD_FLAGS):
        return
    unknown = sorted({c for text in codes for c in text.split(",")} - set(FLAGS))
    if unknown:
        i = int(np.flatnonzero(flags.str.split(",").map(lambda c: bool(set(c) - set(FLAGS))))[0])
        raise InputDataError(
            f"{where}, record {i + 1}: unknown ISMN quality flag {unknown[0]!r}; expected "
            "G, U, M, C01-C03 or D01-D10 (comma-joined)"
        )


def read_ismn(path: str | Path) -> pd.DataFrame:
    """Soil-moisture records of an ISMN ``.stm`` file or of every one in an ISMN ``.zip``.

    Parameters
    ----------
    path
        A loose ``.stm`` file or the ``.zip`` archive ISMN delivers (members in
        ``NETWORK/STATION/`` folders; other members such as ``*_static_variables.csv``
        and ``Metadata.xml`` are ignored).

    Returns
    -------
    pandas.DataFrame
        Records in the columns of :data:`COLUMNS` (see :func:`parse_stm`); empty for a
        loose file of another variable.

    Raises
    ------
    InputDataError
        A missing or unreadable file, an archive without soil moisture, a bad record.
    """
    path = Path(path)
    texts = _stm_texts(path, "sm")
    if path.suffix.lower() == ".zip" and not texts:
        raise InputDataError(f"ISMN archive {path} holds no soil moisture (*_sm_*.stm) file")
    if not texts:  # a loose file of another variable
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat([parse_stm(t, w, file_name=n) for w, n, t in texts], ignore_index=True)


def read_ismn_covariates(path: str | Path) -> dict[str, pd.DataFrame]:
    """In-situ soil/air temperature and precipitation records of an ISMN ``.zip`` (or of
    a loose ``.stm`` file named for one of them), by :data:`COVARIATES` name; variables
    the download lacks are absent."""
    path = Path(path)
    out = {}
    for code, name in COVARIATES.items():
        texts = _stm_texts(path, code)
        if texts:
            frames = [parse_stm(t, w, name, file_name=n) for w, n, t in texts]
            out[name] = pd.concat(frames, ignore_index=True)
    return out


def _stm_texts(path: Path, code: str) -> list[tuple[str, str, str]]:
    """``(where, file name, text)`` of the ``.stm`` files of variable ``code`` in a zip or
    loose file.

    A loose file whose name follows no ISMN pattern counts as soil moisture."""
    if not path.exists():
        raise InputDataError(f"ISMN file {path} does not exist")
    if path.suffix.lower() != ".zip":
        if (variable_of(path.name) or "sm") != code:
            return []
        return [(str(path), path.name, path.read_text(encoding="latin-1"))]
    try:
        with zipfile.ZipFile(path) as z:
            names = sorted(n for n in z.namelist() if variable_of(n) == code)
            return [(f"{path}:{n}", n, z.read(n).decode("latin-1")) for n in names]
    except zipfile.BadZipFile as exc:
        raise InputDataError(f"ISMN archive {path} is not a readable zip file") from exc


#: A soil-temperature sensor stands for a soil-moisture sensor this close in depth (cm).
MAX_TEMPERATURE_DEPTH_CM = 10.0


def attach_covariates(records: pd.DataFrame, covariates: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Add the station's own covariates to soil-moisture records (station, layer, hour).

    Soil temperature comes from the station's sensor nearest in depth to each layer,
    within :data:`MAX_TEMPERATURE_DEPTH_CM`; air temperature and precipitation are the
    station's (mean over its sensors). Records ISMN flagged are not used.
    """
    out = records
    for name, cov in covariates.items():
        cov = cov[cov.ismn_flag.isin(GOOD_FLAGS)]
        if name == "soil_temperature":
            cov = _nearest_depth(cov, out[["station_id", "depth_cm"]].drop_duplicates())
            keys = ["station_id", "depth_cm", "time"]
        else:
            keys = ["station_id", "time"]
        values = cov.groupby(keys, as_index=False)[name].mean().rename(columns={name: "_new"})
        out = out.merge(values, on=keys, how="left")
        # a column the record files already carry keeps its values; the download fills gaps
        merged = out.pop("_new")
        out[name] = out[name].fillna(merged) if name in out else merged
    return out


def _nearest_depth(cov: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """Soil-temperature records relabelled to the layers they stand for."""
    centre = (cov.depth_from_cm + cov.depth_to_cm) / 2
    sensors = cov.assign(centre=centre)[["station_id", "centre"]].drop_duplicates()
    pairs = layers.merge(sensors, on="station_id")
    pairs = pairs.assign(dist=(pairs.centre - pairs.depth_cm).abs())
    pairs = pairs[pairs.dist <= MAX_TEMPERATURE_DEPTH_CM]
    best = pairs.sort_values("dist").drop_duplicates(["station_id", "depth_cm"])
    return cov.assign(centre=centre).merge(best[["station_id", "centre", "depth_cm"]])


def assign_layers(
    records: pd.DataFrame, layers: list[int], tolerance_cm: float
) -> tuple[pd.DataFrame, int]:
    """Map each sensor's depth interval to a layer; drop (and count) the others.

    A sensor belongs to layer ``L`` cm when the centre of its interval is within
    ``tolerance_cm`` of ``L`` (a probe at 10 cm, or one integrating 0–19 cm, is the
    10 cm layer, as is a cosmic-ray probe reading 0–21 cm); a sensor whose interval is
    wider than :data:`MAX_INTERVAL_CM` does not stand for one layer and is dropped.
    """
    centre = (records.depth_from_cm + records.depth_to_cm) / 2
    width = records.depth_to_cm - records.depth_from_cm
    layer_arr = np.asarray(layers, dtype=float)
    dist = np.abs(centre.to_numpy()[:, None] - layer_arr[None, :])
    best = dist.argmin(axis=1)
    ok = (dist[np.arange(len(records)), best] <= tolerance_cm) & (
        width.to_numpy() <= MAX_INTERVAL_CM
    )
    out = records[ok].assign(depth_cm=layer_arr[best[ok]].astype(int))
    return out.reset_index(drop=True), int((~ok).sum())
