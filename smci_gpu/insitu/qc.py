"""Quality control of hourly in-situ soil moisture after Dorigo et al. (2013, ISMN).

Each test is a pure function over arrays returning a boolean flag (True = suspect), named
by its ISMN code. :func:`flag` runs them all on one station-depth series.

Thresholds live in :class:`smci_gpu.config.QCConfig`:

* C01/C02 – below ``sm_min`` / above ``sm_max`` (m³/m³).
* D01 – soil temperature below ``frozen_soil_temperature_c`` (frozen soil: permittivity
  sensors read far too low). D02 – air temperature below ``frozen_air_temperature_c``
  (only when ``air_temperature`` is given; off in the engine's default run).
* D06 – spike: a value that departs from the centred 13-hour median by more than
  ``spike_ratio`` of it (and 0.02 m³/m³).
* D07/D08 – negative/positive break: a one-hour step larger than ``break_ratio`` of the
  level (and 0.04 m³/m³) that persists for 12 hours; the segment between a break and the
  opposite break that undoes it is flagged whole.
* D09/D10 – plateau: the same value for ``plateau_hours`` or more, below / above the
  series median.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smci_gpu.config import QCConfig
from smci_gpu.errors import InputDataError

FLAGS = ("C01", "C02", "D01", "D02", "D06", "D07", "D08", "D09", "D10")


def flag_range(sm: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """C01 (below ``lo``) and C02 (above ``hi``)."""
    return sm < lo, sm > hi


def flag_below(temperature_c: np.ndarray, threshold: float) -> np.ndarray:
    """D01/D02: temperature below a threshold (NaN temperature: not flagged)."""
    with np.errstate(invalid="ignore"):
        return temperature_c < threshold


def _centred_median(x: np.ndarray, half: int) -> np.ndarray:
    return pd.Series(x).rolling(2 * half + 1, center=True, min_periods=half).median().to_numpy()


def flag_spike(sm: np.ndarray, ratio: float, min_abs: float = 0.02) -> np.ndarray:
    """D06: departures from the centred 13-hour median larger than ``ratio`` of it."""
    med = _centred_median(sm, 6)
    dev = np.abs(sm - med)
    with np.errstate(invalid="ignore"):
        return (dev > ratio * np.abs(med)) & (dev > min_abs)


def flag_breaks(
    sm: np.ndarray,
    ratio: float,
    min_abs: float = 0.04,
    persist: int = 12,
    max_segment: int = 24 * 90,
) -> tuple[np.ndarray, np.ndarray]:
    """D07 (negative) and D08 (positive) breaks, with the shifted segment flagged whole."""
    n = sm.size
    neg, pos = np.zeros(n, bool), np.zeros(n, bool)
    step = np.diff(sm, prepend=np.nan)
    before = pd.Series(sm).rolling(persist, min_periods=persist // 2).median().shift(1).to_numpy()
    after = pd.Series(sm[::-1]).rolling(persist, min_periods=persist // 2).median().to_numpy()[::-1]
    shift = after - before
    with np.errstate(invalid="ignore"):
        big = (np.abs(step) > min_abs) & (np.abs(step) > ratio * np.abs(before))
        cand = np.flatnonzero(
            big & (np.abs(shift) > 0.6 * np.abs(step)) & (np.sign(shift) == np.sign(step))
        )
    used = np.zeros(cand.size, bool)
    for a, i in enumerate(cand):
        if used[a]:
            continue
        mark = neg if shift[i] < 0 else pos
        mark[i] = True
        for b in range(a + 1, cand.size):
            j = cand[b]
            if j - i > max_segment:
                break
            if np.sign(shift[j]) != np.sign(shift[i]) and abs(shift[j] + shift[i]) < 0.5 * abs(
                shift[i]
            ):
                mark[i:j] = True
                used[b] = True
                break
    return neg, pos


def flag_plateau(sm: np.ndarray, hours: int) -> tuple[np.ndarray, np.ndarray]:
    """D09 (low) and D10 (high) plateaus: runs of one value lasting ``hours`` or more."""
    n = sm.size
    same = np.concatenate([[False], sm[1:] == sm[:-1]])
    run_id = np.cumsum(~same)
    lengths = np.bincount(run_id)[run_id]
    plateau = (lengths >= hours) & np.isfinite(sm)
    med = np.nanmedian(sm) if np.isfinite(sm).any() else 0.0
    low = plateau & (sm <= med)
    return low, plateau & ~low if n else plateau


def check_units(sm: np.ndarray, where: str) -> None:
    """Refuse series that look like percent rather than m³/m³."""
    finite = sm[np.isfinite(sm)]
    if finite.size and np.median(finite) > 1.5:
        raise InputDataError(
            f"{where}: sm median {np.median(finite):.1f} looks like percent; expected m3/m3"
        )


def flag(df: pd.DataFrame, config: QCConfig | None = None, where: str = "series") -> pd.DataFrame:
    """Run every test on one hourly series.

    Parameters
    ----------
    df
        Indexed by hourly time (sorted, unique); column ``sm`` (m³/m³) and optionally
        ``soil_temperature`` / ``air_temperature`` (°C) and ``precipitation`` (mm/h).
    config
        Thresholds (defaults when None).
    where
        Names the series in errors (e.g. ``"station X, 20 cm"``).

    Returns
    -------
    DataFrame
        One boolean column per ISMN flag plus ``any``, on ``df``'s index.
    """
    cfg = config or QCConfig()
    if "sm" not in df:
        raise InputDataError(f"{where}: no 'sm' column")
    idx = df.index
    if not idx.is_monotonic_increasing or idx.has_duplicates:
        raise InputDataError(f"{where}: time index must be sorted and unique")
    sm = df["sm"].to_numpy(dtype=np.float64)
    check_units(sm, where)
    out = pd.DataFrame(False, index=idx, columns=list(FLAGS))
    out["C01"], out["C02"] = flag_range(sm, cfg.sm_min, cfg.sm_max)
    if "soil_temperature" in df:
        out["D01"] = flag_below(
            df["soil_temperature"].to_numpy(float), cfg.frozen_soil_temperature_c
        )
    if "air_temperature" in df:
        out["D02"] = flag_below(df["air_temperature"].to_numpy(float), cfg.frozen_air_temperature_c)
    in_range = np.where(out["C01"] | out["C02"], np.nan, sm)
    out["D06"] = flag_spike(in_range, cfg.spike_ratio)
    despiked = np.where(out["D06"], np.nan, in_range)
    out["D07"], out["D08"] = flag_breaks(despiked, cfg.break_ratio)
    out["D09"], out["D10"] = flag_plateau(sm, cfg.plateau_hours)
    out["any"] = out[list(FLAGS)].any(axis=1)
    return out
