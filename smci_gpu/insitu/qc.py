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
    """D07 (negative) and D08 (positive) breaks, with the shifted segment flagged whole.

    NaN hours (gaps, and values other tests removed) are skipped: steps are taken
    between consecutive valid values, so a break that is undone across a gap is still
    paired, and a flagged segment covers the NaN hours inside it.
    """
    valid = np.flatnonzero(np.isfinite(sm))
    neg, pos = np.zeros(sm.size, bool), np.zeros(sm.size, bool)
    if valid.size < 2:
        return neg, pos
    # An interruption (a day or more without valid values) ends any open shift.
    interrupted = np.diff(valid) >= 24
    neg_c, pos_c = _breaks_compact(sm[valid], interrupted, ratio, min_abs, persist, max_segment)
    for compact, full in ((neg_c, neg), (pos_c, pos)):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], compact.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            full[valid[a] : valid[b - 1] + 1] = True
    return neg, pos


def _returns_to(reference: np.ndarray, level_from: float, level_to: float) -> bool:
    """True when a step from ``level_from`` to ``level_to`` brings the series back towards
    the median of ``reference`` (values on the far side of an interruption)."""
    if reference.size == 0 or not (np.isfinite(level_from) and np.isfinite(level_to)):
        return False
    ref = np.median(reference)
    return bool(abs(level_to - ref) < abs(level_from - ref))


def _breaks_compact(
    sm: np.ndarray,
    interrupted: np.ndarray,
    ratio: float,
    min_abs: float,
    persist: int,
    max_segment: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Break detection over a gap-free series (see :func:`flag_breaks`).

    A break is paired with the first later opposite break that undoes it, also across
    an interruption (``interrupted[k]``: a day or more without values after value ``k``)
    when the series resumes shifted. Steps across an interruption are not breaks, but a
    shift can begin or end unseen inside one: a break just after an interruption that
    brings the series back to the level before it ends a shift, and the values since the
    interruption are flagged; a break not undone before an interruption, after which
    the series is back at the level before the break, is flagged up to the interruption.
    """
    n = sm.size
    neg, pos = np.zeros(n, bool), np.zeros(n, bool)
    step = np.diff(sm, prepend=np.nan)
    before = pd.Series(sm).rolling(persist, min_periods=persist // 2).median().shift(1).to_numpy()
    after = pd.Series(sm[::-1]).rolling(persist, min_periods=persist // 2).median().to_numpy()[::-1]
    shift = after - before
    with np.errstate(invalid="ignore"):
        big = (np.abs(step) > min_abs) & (np.abs(step) > ratio * np.abs(before))
    # A step across an interruption is the change over the gap, not a break.
    big &= ~np.concatenate([[False], interrupted])
    with np.errstate(invalid="ignore"):
        cand = np.flatnonzero(
            big & (np.abs(shift) > 0.6 * np.abs(step)) & (np.sign(shift) == np.sign(step))
        )
    cuts = np.flatnonzero(interrupted)  # value index after which the record breaks off
    used = np.zeros(cand.size, bool)

    def _undone_later(b: int, misfit: float) -> bool:
        """Whether candidate ``b`` is undone by a later one, before the next
        interruption, with a smaller misfit than ``misfit``."""
        j = cand[b]
        cut_j = cuts[np.searchsorted(cuts, j)] if np.searchsorted(cuts, j) < cuts.size else n
        for c in range(b + 1, cand.size):
            k = cand[c]
            if k - j > max_segment or k > cut_j:
                return False
            if np.sign(shift[k]) != np.sign(shift[j]) and abs(shift[k] + shift[j]) < misfit:
                return True
        return False

    for a, i in enumerate(cand):
        if used[a]:
            continue
        k = np.searchsorted(cuts, i)
        prev_cut = cuts[k - 1] if k > 0 else -1
        if (
            prev_cut >= 0
            and i - prev_cut <= max_segment
            and not (a and cand[a - 1] > prev_cut)
            and _returns_to(sm[max(0, prev_cut - persist + 1) : prev_cut + 1], before[i], after[i])
            # A step that a later one undoes starts a break of its own instead.
            and not _undone_later(a, 0.5 * abs(shift[i]))
        ):
            # The record resumed shifted and this step undoes it: the shift was the
            # opposite of this step.
            (pos if shift[i] < 0 else neg)[prev_cut + 1 : i + 1] = True
            continue
        mark = neg if shift[i] < 0 else pos
        mark[i] = True
        cut = cuts[k] if k < cuts.size else n
        # Across an interruption the shift continues only if the series resumes shifted.
        resumes_shifted = cut < n and not _returns_to(
            sm[cut + 1 : cut + 1 + persist], after[i], before[i]
        )
        paired = False
        for b in range(a + 1, cand.size):
            j = cand[b]
            if j - i > max_segment or (j > cut and not resumes_shifted):
                break
            undoes = np.sign(shift[j]) != np.sign(shift[i])
            if undoes and abs(shift[j] + shift[i]) < 0.5 * abs(shift[i]):
                mark[i:j] = True
                used[b] = paired = True
                break
        if (
            not paired
            and cut < n
            and cut - i <= max_segment
            and _returns_to(sm[cut + 1 : cut + 1 + persist], after[i], before[i])
        ):
            mark[i : cut + 1] = True  # shifted until the record breaks off
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
    out["D09"], out["D10"] = flag_plateau(sm, cfg.plateau_hours)
    in_range = np.where(out["C01"] | out["C02"], np.nan, sm)
    out["D06"] = flag_spike(in_range, cfg.spike_ratio)
    # Breaks are sought in what the earlier tests kept: frozen-soil drops and spikes
    # would otherwise pair with real level shifts.
    removed = out["D06"] | out["D01"] | out["D02"] | out["D09"] | out["D10"]
    despiked = np.where(removed, np.nan, in_range)
    out["D07"], out["D08"] = flag_breaks(despiked, cfg.break_ratio)
    out["any"] = out[list(FLAGS)].any(axis=1)
    return out
