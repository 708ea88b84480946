"""Station soil-moisture files: CSV/Parquet in the long layout, checked record by record.

Layout: ``station_id, lat, lon, time, depth_cm, sm`` with ``sm`` in m³/m³ (hourly).
Records at depths outside the layer table are dropped and counted; anything that would
make a silently wrong table (bad dates, % units, moving stations) is an error naming
the file and station.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from smci_gpu.errors import InputDataError

COLUMNS = ("station_id", "lat", "lon", "time", "depth_cm", "sm")


def read_station_file(path: Path, layers: list[int]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read one file; returns the records at known layers and drop counts."""
    if not path.exists():
        raise InputDataError(f"station file {path} does not exist")
    if path.stat().st_size == 0:
        raise InputDataError(f"station file {path} is empty")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype={"station_id": str})
    except PermissionError as exc:
        raise InputDataError(f"station file {path} is not readable (permission denied)") from exc
    except Exception as exc:  # noqa: BLE001
        raise InputDataError(f"station file {path} could not be parsed: {exc}") from exc
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputDataError(f"station file {path} lacks column(s) {missing}; expected {COLUMNS}")
    if df.empty:
        raise InputDataError(f"station file {path} has no records")
    time = pd.to_datetime(df["time"], errors="coerce", format="ISO8601")
    if time.isna().any():
        bad = df.loc[time.isna(), "time"].iloc[0]
        row = int(np.flatnonzero(time.isna())[0]) + 2
        raise InputDataError(f"station file {path}, line {row}: bad time {bad!r} (ISO 8601)")
    df = df.assign(time=time, sm=pd.to_numeric(df["sm"], errors="coerce"))
    for sid, g in df.groupby("station_id"):
        if g["lat"].nunique() > 1 or g["lon"].nunique() > 1:
            raise InputDataError(f"station {sid} in {path} changes lat/lon between records")
        med = float(g["sm"].median())
        if med > 1.5:
            raise InputDataError(
                f"station {sid} in {path}: sm median {med:.1f} looks like percent; "
                "expected volumetric m3/m3 (divide by 100)"
            )
    known = df["depth_cm"].isin(layers)
    drops = {"unknown_depth": int((~known).sum())}
    return df[known].reset_index(drop=True), drops


def read_stations(folder: str | Path, layers: list[int]) -> tuple[pd.DataFrame, dict[str, int]]:
    """All station files of a folder (``*.csv``, ``*.parquet``)."""
    folder = Path(folder)
    paths = sorted(folder.glob("*.csv")) + sorted(folder.glob("*.parquet"))
    if not paths:
        raise InputDataError(f"no station files (*.csv, *.parquet) in {folder}")
    frames, drops = [], {"unknown_depth": 0}
    for path in paths:
        df, d = read_station_file(path, layers)
        frames.append(df)
        drops["unknown_depth"] += d["unknown_depth"]
    df = pd.concat(frames, ignore_index=True)
    dup = df.duplicated(["station_id", "depth_cm", "time"])
    drops["duplicate_time"] = int(dup.sum())
    return df[~dup].sort_values(["station_id", "depth_cm", "time"], ignore_index=True), drops
