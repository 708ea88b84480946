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


def is_soil_moisture(name: str) -> bool:
    """Whether an ISMN file name holds soil moisture (variable ``sm``)."""
    m = _NAME.search(Path(name).name)
    return bool(m) and m.group("var") == "sm"


def _frame(rows: list[list[str]], where: str) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["date", "hour", "sm", "ismn_flag"])
    time = pd.to_datetime(df.date + " " + df.hour, format="%Y/%m/%d %H:%M", errors="coerce")
    if time.isna().any():
        i = int(np.flatnonzero(time.isna())[0])
        raise InputDataError(f"{where}, record {i + 1}: bad date {df.date[i]} {df.hour[i]}")
    sm = pd.to_numeric(df.sm, errors="coerce")
    return pd.DataFrame({"time": time, "sm": sm, "ismn_flag": df.ismn_flag})


def parse_stm(text: str, where: str) -> pd.DataFrame:
    """One ``.stm`` file (either format) as records in the columns of :data:`COLUMNS`."""
    lines = [ln.split() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise InputDataError(f"ISMN file {where} is empty")
    first = lines[0]
    ceop = len(first) >= 15 and bool(_DATE.match(first[0])) and bool(_DATE.match(first[2]))
    try:
        if ceop:
            meta = first[4:12]  # CSE network station lat lon elev from to
            records = _frame([[ln[0], ln[1], ln[12], ln[13]] for ln in lines], where)
        else:
            if len(first) < 8 or _DATE.match(first[0]):
                raise ValueError("the first line is not a station header")
            meta = first[0:8]
            records = _frame([[ln[0], ln[1], ln[2], ln[3]] for ln in lines[1:]], where)
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
    if not path.exists():
        raise InputDataError(f"ISMN file {path} does not exist")
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as z:
                names = sorted(n for n in z.namelist() if is_soil_moisture(n))
                texts = [(n, z.read(n).decode("latin-1")) for n in names]
        except zipfile.BadZipFile as exc:
            raise InputDataError(f"ISMN archive {path} is not a readable zip file") from exc
        if not texts:
            raise InputDataError(f"ISMN archive {path} holds no soil moisture (*_sm_*.stm) file")
        frames = [parse_stm(t, f"{path}:{n}") for n, t in texts]
        return pd.concat(frames, ignore_index=True)
    return parse_stm(path.read_text(encoding="latin-1"), str(path))


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
