"""Station soil-moisture files, checked record by record.

Two sources, chosen by suffix (:data:`READERS`):

* CSV/Parquet in the long layout ``station_id, lat, lon, time, depth_cm, sm`` with ``sm``
  in m³/m³ (hourly), as the demo writes, and optionally the station's own
  ``soil_temperature`` (at the sensor) and ``air_temperature`` in °C and ``precipitation``
  in mm/h (:data:`IN_SITU_COVARIATES`), which the QC uses for D01, D02 and D04;
* ISMN downloads, ``.stm`` files or the ``.zip`` archive (header+values or CEOP format;
  see :mod:`smci_gpu.io.ismn`): sensors map to layers by depth, and records that ISMN
  itself flagged (anything but ``G``/``U``) are dropped and counted as ``ismn_flagged``.
  The download's soil temperature (``ts``), air temperature (``ta``) and precipitation
  (``p``) files, where present, become the covariate columns above.

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
#: Optional hourly columns of the CSV/Parquet layout, with their plausible range.
IN_SITU_COVARIATES = {
    "soil_temperature": (-60.0, 70.0),  # °C
    "air_temperature": (-80.0, 60.0),  # °C
    "precipitation": (0.0, 500.0),  # mm/h
}


def read_station_file(
    path: Path, layers: list[int], ismn_tolerance_cm: float = 2.5
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read one file; returns the records at known layers and drop counts."""
    if not path.exists():
        raise InputDataError(f"station file {path} does not exist")
    if path.stat().st_size == 0:
        raise InputDataError(f"station file {path} is empty")
    if path.suffix.lower() in (".stm", ".zip"):
        return _read_ismn(path, layers, ismn_tolerance_cm)
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
    _check_stations(df, path)
    extra = [c for c in IN_SITU_COVARIATES if c in df.columns]
    for name in extra:
        df[name] = pd.to_numeric(df[name], errors="coerce")
        _check_covariate(df, name, path)
    known = df["depth_cm"].isin(layers)
    drops = {"unknown_depth": int((~known).sum()), "ismn_flagged": 0}
    return df.loc[known, [*COLUMNS, *extra]].reset_index(drop=True), drops


def _check_covariate(df: pd.DataFrame, name: str, path: Path) -> None:
    """Refuse an in-situ covariate outside its plausible range (e.g. kelvin for °C)."""
    lo, hi = IN_SITU_COVARIATES[name]
    values = df[name]
    bad = values.notna() & ((values < lo) | (values > hi))
    if bad.any():
        row = df[bad].iloc[0]
        unit = "mm/h" if name == "precipitation" else "°C"
        raise InputDataError(
            f"station {row['station_id']} in {path}: {name} {row[name]} at {row['time']} "
            f"outside {lo:g}..{hi:g} {unit}"
        )


def _check_stations(df: pd.DataFrame, path: Path) -> None:
    """A station must not move, and its values must be volumetric fractions, not %."""
    for sid, g in df.groupby("station_id"):
        if g["lat"].nunique() > 1 or g["lon"].nunique() > 1:
            raise InputDataError(f"station {sid} in {path} changes lat/lon between records")
        med = float(g["sm"].median())
        if med > 1.5:
            raise InputDataError(
                f"station {sid} in {path}: sm median {med:.1f} looks like percent; "
                "expected volumetric m3/m3 (divide by 100)"
            )


def _read_ismn(path: Path, layers: list[int], tolerance_cm: float):
    from smci_gpu.io import ismn

    records = ismn.read_ismn(path)
    flagged = ~records.ismn_flag.isin(ismn.GOOD_FLAGS)
    records = records[~flagged]
    _check_stations(records, path)
    records, unknown = ismn.assign_layers(records, layers, tolerance_cm)
    drops = {"unknown_depth": unknown, "ismn_flagged": int(flagged.sum())}
    return records[list(COLUMNS)], drops


def _with_ismn_covariates(df: pd.DataFrame, paths: list[Path]) -> pd.DataFrame:
    """Attach the in-situ soil/air temperature and precipitation of ISMN downloads."""
    from smci_gpu.io import ismn

    found: dict[str, list[pd.DataFrame]] = {}
    for path in paths:
        for name, records in ismn.read_ismn_covariates(path).items():
            found.setdefault(name, []).append(records)
    if not found:
        return df
    covariates = {k: pd.concat(v, ignore_index=True) for k, v in found.items()}
    df = ismn.attach_covariates(df, covariates)
    for name in covariates:
        _check_covariate(df, name, paths[0].parent)
    return df


#: Station readers by file suffix.
READERS = (".csv", ".parquet", ".stm", ".zip")


def read_stations(
    folder: str | Path, layers: list[int], ismn_tolerance_cm: float = 2.5
) -> tuple[pd.DataFrame, dict[str, int]]:
    """All station files of a folder (see :data:`READERS`), duplicates dropped and counted."""
    folder = Path(folder)
    paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in READERS)
    if not paths:
        raise InputDataError(f"no station files ({', '.join(READERS)}) in {folder}")
    frames, drops = [], {"unknown_depth": 0, "ismn_flagged": 0}
    for path in paths:
        df, d = read_station_file(path, layers, ismn_tolerance_cm)
        frames.append(df)
        for k, v in d.items():
            drops[k] += v
    # files that hold no soil moisture (loose ISMN covariate files) add no records
    df = pd.concat([f for f in frames if len(f)] or frames, ignore_index=True)
    df = _with_ismn_covariates(df, [p for p in paths if p.suffix.lower() in (".stm", ".zip")])
    dup = df.duplicated(["station_id", "depth_cm", "time"])
    drops["duplicate_time"] = int(dup.sum())
    return df[~dup].sort_values(["station_id", "depth_cm", "time"], ignore_index=True), drops
