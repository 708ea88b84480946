"""ISMN downloads: "header+values" and "CEOP" ``.stm`` files, loose or inside the zip archive.

Both formats carry hourly soil moisture in m³/m³ with the ISMN quality flag of each record
(``G`` good, ``U`` unchecked, ``C0x``/``D0x`` flagged by ISMN's own tests, several joined by
commas), which is kept in the ``ismn_flag`` column:

* header+values: a first line ``CSE network station lat lon elevation depth_from
  depth_to [sensor]``, then ``YYYY/MM/DD HH:MM value flag original_flag`` per record;
* CEOP: every line ``date time date time CSE network station lat lon elevation
  depth_from depth_to value flag original_flag`` (nominal, then actual UTC time).

Files use CR, LF or CRLF line ends (and CEOP puts blank lines between records). Only soil
moisture files (variable ``sm`` in the ISMN file name) are read. Depths are intervals in
metres; :func:`assign_layers` maps each sensor to a product layer by its interval centre.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from smci_gpu.errors import InputDataError

#: ``..._{variable}_{depth_from}_{depth_to}_{sensor}_{start}_{end}.stm``
_NAME = re.compile(r"_(?P<var>[a-z_]+?)_(?P<d0>-?\d+\.\d+)_(?P<d1>-?\d+\.\d+)_.*\.stm$")
_DATE = re.compile(r"^\d{4}/\d{2}/\d{2}$")
GOOD_FLAGS = ("G", "U")
MAX_INTERVAL_CM = 25.0
COLUMNS = ("station_id", "lat", "lon", "time", "depth_from_cm", "depth_to_cm", "sm", "ismn_flag")


#: ISMN variable codes read beside soil moisture, and the QC's names for them: soil and
#: air temperature (°C) and precipitation (mm per hourly record).
COVARIATES = {"ts": "soil_temperature", "ta": "air_temperature", "p": "precipitation"}


def variable_of(name: str) -> str | None:
    """The ISMN variable code of a file name (``sm``, ``ts``, ``p`` …), None if unnamed."""
    m = _NAME.search(Path(name).name)
    return m.group("var") if m else None


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
    return pd.DataFrame({"time": time, value: values, "ismn_flag": df.ismn_flag})


def parse_stm(text: str, where: str, value: str = "sm") -> pd.DataFrame:
    """One ``.stm`` file (either format) as records in the columns of :data:`COLUMNS`
    (the value column named ``value``: ``sm``, or a :data:`COVARIATES` name)."""
    lines = [ln.split() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [ln for ln in lines if ln]
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
        network, station = meta[1], meta[2]
        lat, lon, d0, d1 = (float(v) for v in (meta[3], meta[4], meta[6], meta[7]))
    except (IndexError, ValueError) as exc:
        raise InputDataError(
            f"ISMN file {where} is neither header+values nor CEOP format ({exc})"
        ) from exc
    records.insert(0, "station_id", f"{network}:{station}")
    records.insert(1, "lat", lat)
    records.insert(2, "lon", lon)
    records.insert(4, "depth_from_cm", round(d0 * 100, 3))
    records.insert(5, "depth_to_cm", round(d1 * 100, 3))
    return records


def read_ismn(path: str | Path) -> pd.DataFrame:
    """Soil-moisture records of an ISMN ``.stm`` file or of every one in an ISMN ``.zip``."""
    path = Path(path)
    texts = _stm_texts(path, "sm")
    if path.suffix.lower() == ".zip" and not texts:
        raise InputDataError(f"ISMN archive {path} holds no soil moisture (*_sm_*.stm) file")
    if not texts:  # a loose file of another variable
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat([parse_stm(t, w) for w, t in texts], ignore_index=True)


def read_ismn_covariates(path: str | Path) -> dict[str, pd.DataFrame]:
    """In-situ soil/air temperature and precipitation records of an ISMN ``.zip`` (or of
    a loose ``.stm`` file named for one of them), by :data:`COVARIATES` name; variables
    the download lacks are absent."""
    path = Path(path)
    out = {}
    for code, name in COVARIATES.items():
        texts = _stm_texts(path, code)
        if texts:
            out[name] = pd.concat([parse_stm(t, w, name) for w, t in texts], ignore_index=True)
    return out


def _stm_texts(path: Path, code: str) -> list[tuple[str, str]]:
    """``(where, text)`` of the ``.stm`` files of variable ``code`` in a zip or loose file.

    A loose file whose name follows no ISMN pattern counts as soil moisture."""
    if not path.exists():
        raise InputDataError(f"ISMN file {path} does not exist")
    if path.suffix.lower() != ".zip":
        if (variable_of(path.name) or "sm") != code:
            return []
        return [(str(path), path.read_text(encoding="latin-1"))]
    try:
        with zipfile.ZipFile(path) as z:
            names = sorted(n for n in z.namelist() if variable_of(n) == code)
            return [(f"{path}:{n}", z.read(n).decode("latin-1")) for n in names]
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
