"""Score the QC flags against a manifest of injected faults (the twin world's truth).

Scoring is by hour. For each fault type T:

* **recall** – of the hours inside injected T faults (where the logger delivered a
  value), the fraction removed by QC (any flag): what matters for the product is that
  the bad value does not reach the daily mean.
* **precision** – of the hours raised by T's own flags (e.g. D07/D08 for breaks), the
  fraction that lie inside some injected fault: a flag that fires on clean data is a
  false alarm; one that catches a neighbouring fault of another type is not.

Gaps are missing records, not flagged values, so they are not scored.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from smci_gpu.errors import InputDataError

#: The ISMN flags meant to catch each injected fault type.
FLAGS_FOR_FAULT: dict[str, tuple[str, ...]] = {
    "range": ("C01", "C02", "C03"),
    "spike": ("D06",),
    "break": ("D07", "D08"),
    "plateau": ("D09", "D10"),
    "frozen": ("D01", "D02", "D03"),
}
COUNTS = ("fault_hours", "removed", "flagged", "flagged_in_fault")


def read_manifest(path: Path) -> pd.DataFrame:
    """The fault manifest: ``station_id, depth_cm, fault, start, end`` (end inclusive)."""
    try:
        df = pd.read_csv(path, dtype={"station_id": str}, parse_dates=["start", "end"])
    except (OSError, ValueError) as exc:
        raise InputDataError(f"fault manifest {path} could not be read: {exc}") from exc
    missing = {"station_id", "depth_cm", "fault", "start", "end"} - set(df.columns)
    if missing:
        raise InputDataError(f"fault manifest {path} lacks column(s) {sorted(missing)}")
    return df


def fault_masks(faults: pd.DataFrame, index: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Boolean mask over ``index`` for each fault type of one station-depth series."""
    masks = {t: np.zeros(index.size, bool) for t in FLAGS_FOR_FAULT}
    for f in faults.itertuples(index=False):
        if f.fault not in masks:
            continue
        a = index.searchsorted(f.start, side="left")
        b = index.searchsorted(f.end, side="right")
        masks[f.fault][a:b] = True
    return masks


def score_series(
    flags: pd.DataFrame, delivered: np.ndarray, faults: pd.DataFrame
) -> dict[str, dict[str, int]]:
    """Hour counts per fault type for one series.

    Parameters
    ----------
    flags
        Output of :func:`smci_gpu.insitu.qc.flag` (boolean columns + ``any``).
    delivered
        True where the logger delivered a value (gaps are not scored).
    faults
        The manifest rows of this station and depth.
    """
    masks = fault_masks(faults, pd.DatetimeIndex(flags.index))
    in_any = np.zeros(len(flags), bool)
    for m in masks.values():
        in_any |= m
    removed = flags["any"].to_numpy() & delivered
    out = {}
    for t, names in FLAGS_FOR_FAULT.items():
        mine = flags[list(names)].to_numpy().any(axis=1) & delivered
        out[t] = {
            "fault_hours": int((masks[t] & delivered).sum()),
            "removed": int((masks[t] & removed).sum()),
            "flagged": int(mine.sum()),
            "flagged_in_fault": int((mine & in_any).sum()),
        }
    out["all"] = {
        "fault_hours": int((in_any & delivered).sum()),
        "removed": int((in_any & removed).sum()),
        "flagged": int(removed.sum()),
        "flagged_in_fault": int((removed & in_any).sum()),
    }
    return out


def summarise(per_series: Iterable[dict[str, dict[str, int]]]) -> dict[str, dict[str, float]]:
    """Add up series counts and compute recall and precision per fault type."""
    total: dict[str, dict[str, float]] = {}
    for s in per_series:
        for t, c in s.items():
            acc = total.setdefault(t, dict.fromkeys(COUNTS, 0))
            for k in COUNTS:
                acc[k] += c[k]
    for acc in total.values():
        acc["recall"] = acc["removed"] / acc["fault_hours"] if acc["fault_hours"] else np.nan
        acc["precision"] = acc["flagged_in_fault"] / acc["flagged"] if acc["flagged"] else np.nan
    return total
