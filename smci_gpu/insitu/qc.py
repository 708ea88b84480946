"""Quality control of hourly in-situ soil moisture after Dorigo et al. (2013, ISMN).

Each test is a pure function over arrays returning a boolean flag (True = suspect), named
by its ISMN code. :func:`flag` runs them all on one station-depth series.

Thresholds live in :class:`smci_gpu.config.QCConfig`:

* C01/C02 – below ``sm_min`` / above ``sm_max`` (m³/m³).
* D01/D02/D03 – frozen soil (permittivity sensors read far too low): in-situ soil
  temperature below ``frozen_soil_temperature_c`` (D01), in-situ air temperature below
  ``frozen_air_temperature_c`` (D02), modelled soil temperature at the station (ISMN:
  GLDAS; here ERA5-Land) below ``frozen_soil_temperature_c`` (D03). The spell is
  extended to the sensor's own freeze or thaw step when one lies within
  ``frozen_edge_hours`` of it (:func:`extend_frozen`), under the flag that found it.
* D04/D05 – a rise of more than ``rise_min`` in one hour with less than ``rain_min_mm``
  of in-situ (D04) or modelled (D05) precipitation in the 24 hours up to it.
* D06 – spike: a value that departs from the centred 13-hour median by more than
  ``spike_ratio`` of it (and 0.02 m³/m³).
* D07/D08 – negative/positive break: a one-hour step larger than ``break_ratio`` of the
  level (and 0.04 m³/m³) that persists for 12 hours; the segment between a break and the
  opposite break that undoes it is flagged whole, and so is the segment between an
  unpaired break and the nearer long gap or record end (its partner hidden there).
  An unpaired upward step after rain is taken for the rain's doing, not a break.
* D09/D10 – plateau: the same value for ``plateau_hours`` or more, below / above the
  series median.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smci_gpu.config import QCConfig
from smci_gpu.errors import InputDataError

#: An upward step of Δθ (m³/m³) is put down to rain when at least Δθ · d mm fell in the
#: 24 h before it: the water that raises the soil above the sensor (d: its depth, at
#: least this many mm) by the step.
WETTING_DEPTH_MM = 100.0

FLAGS = ("C01", "C02", "D01", "D02", "D03", "D04", "D05", "D06", "D07", "D08", "D09", "D10")


def flag_range(sm: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """C01 (below ``lo``) and C02 (above ``hi``)."""
    return sm < lo, sm > hi


def flag_below(temperature_c: np.ndarray, threshold: float) -> np.ndarray:
    """D01/D02: temperature below a threshold (NaN temperature: not flagged)."""
    with np.errstate(invalid="ignore"):
        return temperature_c < threshold


def _centred_median(x: np.ndarray, half: int) -> np.ndarray:
    return pd.Series(x).rolling(2 * half + 1, center=True, min_periods=half).median().to_numpy()


def rain_before(precipitation_mmh: np.ndarray, hours: int = 24) -> np.ndarray:
    """Precipitation (mm) in the ``hours`` hours up to and including each hour; NaN where
    any of them is missing."""
    p = np.asarray(precipitation_mmh, dtype=np.float64)
    missing = np.concatenate([[0], np.cumsum(~np.isfinite(p))])
    total = np.concatenate([[0.0], np.cumsum(np.nan_to_num(p, nan=0.0))])
    end = np.arange(1, p.size + 1)
    start = np.maximum(end - hours, 0)
    out = total[end] - total[start]
    out[missing[end] > missing[start]] = np.nan
    return out


def flag_rise_without_rain(
    sm: np.ndarray, rain_24h: np.ndarray, rise_min: float, rain_min_mm: float
) -> np.ndarray:
    """D04/D05: a rise of more than ``rise_min`` from the previous hour while less than
    ``rain_min_mm`` fell in the 24 hours up to it (unknown precipitation: not flagged)."""
    rise = np.diff(sm, prepend=np.nan)
    with np.errstate(invalid="ignore"):
        return (rise > rise_min) & (rain_24h < rain_min_mm)


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
    long_gap: int = 72,
    rain_24h: np.ndarray | None = None,
    wetting_depth_mm: float = WETTING_DEPTH_MM,
) -> tuple[np.ndarray, np.ndarray]:
    """D07 (negative) and D08 (positive) breaks, with the shifted segment flagged whole.

    NaN hours (gaps, and values other tests removed) are skipped: steps are taken
    between consecutive valid values, so a break that is undone across a gap is still
    paired, and a flagged segment covers the NaN hours inside it. A step whose partner
    is hidden (in a gap of ``long_gap`` hours or more, or beyond the record's ends)
    shifts the values from it to the nearer such gap or end, within ``max_segment``
    hours; see :func:`_breaks_compact`. ``rain_24h`` (optional, per hour): the
    precipitation (mm) in the 24 hours up to each hour; an upward step after enough rain
    to cause it, or where precipitation is unknown, only ever ends a negative shift.
    """
    valid = np.flatnonzero(np.isfinite(sm))
    neg, pos = np.zeros(sm.size, bool), np.zeros(sm.size, bool)
    if valid.size < 2:
        return neg, pos
    # unknown precipitation (none given, or a missing hour in the window): may be rain
    rain = np.full(valid.size, np.inf) if rain_24h is None else rain_24h[valid]
    neg_c, pos_c = _breaks_compact(
        sm[valid],
        valid,
        ratio,
        min_abs,
        persist,
        max_segment,
        long_gap,
        np.where(np.isnan(rain), np.inf, rain),
        wetting_depth_mm,
    )
    for compact, full in ((neg_c, neg), (pos_c, pos)):
        for a, b in true_runs(compact):
            full[valid[a] : valid[b - 1] + 1] = True
    return neg, pos


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True in a boolean array (``stop`` exclusive)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _trailing_median(x: np.ndarray, window: int, lag: int = 1) -> np.ndarray:
    """Median of the ``window`` values ending ``lag`` before each position."""
    med = pd.Series(x).rolling(window, min_periods=window // 2).median().shift(lag)
    return med.to_numpy()


def _returns_to(reference: np.ndarray, level_from: float, level_to: float) -> bool:
    """True when a step from ``level_from`` to ``level_to`` brings the series back towards
    the median of ``reference`` (values on the far side of an interruption)."""
    if reference.size == 0 or not (np.isfinite(level_from) and np.isfinite(level_to)):
        return False
    ref = np.median(reference)
    return bool(abs(level_to - ref) < abs(level_from - ref))


#: Hours without a valid value that interrupt a series: a step across them is the change
#: over the gap, not a break.
INTERRUPTION_HOURS = 24


def _candidate_steps(
    sm: np.ndarray, hour: np.ndarray, ratio: float, min_abs: float, persist: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of one-value steps that look like breaks, and the levels before and after
    every value (medians of ``persist`` values). ``sm``: the valid values; ``hour``: theirs.

    A candidate is larger than ``min_abs`` and ``ratio`` of the level before it, and the
    median of the ``persist`` values after it differs from the median of those before in
    the same direction by at least 0.6 of the step (a shift, not a spike).
    """
    step = np.diff(sm, prepend=np.nan)
    before = _trailing_median(sm, persist)
    after = _trailing_median(sm[::-1], persist, lag=0)[::-1]
    shift = after - before
    with np.errstate(invalid="ignore"):
        big = (np.abs(step) > min_abs) & (np.abs(step) > ratio * np.abs(before))
        persistent = (np.abs(shift) > 0.6 * np.abs(step)) & (np.sign(shift) == np.sign(step))
    big &= np.concatenate([[True], np.diff(hour) < INTERRUPTION_HOURS])
    return np.flatnonzero(big & persistent), before, after


def _breaks_compact(
    sm: np.ndarray,
    hour: np.ndarray,
    ratio: float,
    min_abs: float,
    persist: int,
    max_segment: int,
    long_gap: int,
    rain_24h: np.ndarray,
    wetting_depth_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Break detection over the valid values of a series (see :func:`flag_breaks`).

    ``hour[k]`` is value ``k``'s hour: segment lengths are measured in time, and a step
    across :data:`INTERRUPTION_HOURS` or more without values is not a candidate. Gaps of
    ``long_gap`` hours or more (a frozen spell, a logger outage) are interruptions: the
    values between them and the record's ends form stretches, across which a sensor's
    offset may have changed unseen.

    1. Steps pair like brackets: each closes the latest still-open step of opposite
       sign that it undoes (misfit under half that step's shift) within
       ``max_segment``, and the segment between them is shifted; across an
       interruption only when the series resumes shifted (it is not back at the level
       before the first step). Unpaired steps inside a segment stay inside it.
    2. A step left unpaired had its partner hidden (in an interruption, before the
       record starts or after it ends): the shift runs from the step to the nearer end
       of its stretch, when that end is within ``max_segment``, no other unpaired step
       lies in the stretch (several make the story ambiguous) and the step is seen from
       one hour to the next. Where both ends qualify, the side whose far neighbour
       (across the interruption) the step departs from or returns to decides; else the
       shorter.

    An upward step after enough rain to cause it (``rain_24h[k]``, mm, at least the
    water that wets a ``wetting_depth_mm`` layer by the step), or with precipitation
    unknown (``inf``), only ever ends a negative shift.
    """
    n = sm.size
    neg, pos = np.zeros(n, bool), np.zeros(n, bool)
    cand, before, after = _candidate_steps(sm, hour, ratio, min_abs, persist)
    shift = after - before
    cuts = np.flatnonzero(np.diff(hour) >= long_gap)  # the last value before each
    stretch = np.searchsorted(cuts, np.arange(n))  # stretch number of each value
    first = np.concatenate([[0], cuts + 1])  # first value of each stretch
    last = np.concatenate([cuts, [n - 1]])  # last value of each stretch

    def mark(a: int, b: int, up: bool) -> None:
        (pos if up else neg)[a : b + 1] = True

    def far_after(k: int) -> np.ndarray:
        """Values just across the interruption that ends stretch ``k``."""
        return sm[last[k] + 1 : last[k] + 1 + persist]

    def far_before(k: int) -> np.ndarray:
        """Values just across the interruption that starts stretch ``k``."""
        return sm[max(0, first[k] - persist) : first[k]]

    # An upward step that rain can explain (or might: precipitation unknown) is a wetting
    # front: it may end a negative shift but neither starts a positive one nor stands alone.
    wetting = (shift > 0) & (rain_24h >= shift * wetting_depth_mm)

    def undoes(b: int, a: int) -> bool:
        """Whether step ``a`` undoes the shift step ``b`` began, within ``max_segment``."""
        i, j = cand[b], cand[a]
        return bool(
            np.sign(shift[j]) != np.sign(shift[i])
            and abs(shift[j] + shift[i]) < 0.5 * abs(shift[i])
            and hour[j] - hour[i] <= max_segment
        )

    # 1. Pairs, nested like brackets: each step closes the latest open shift it undoes.
    paired = np.zeros(cand.size, bool)
    opened: list[int] = []  # candidates that began a shift not yet undone, oldest first
    for a, j in enumerate(cand):
        for depth in range(len(opened) - 1, -1, -1):
            b = opened[depth]
            i = cand[b]
            if not undoes(b, a):
                continue
            if stretch[j] != stretch[i] and _returns_to(far_after(stretch[i]), after[i], before[i]):
                continue  # back at the level before the step after the interruption
            mark(i, j - 1, shift[i] > 0)
            paired[a] = paired[b] = True
            del opened[depth:]  # steps inside the segment stay inside it
            break
        if not paired[a] and not wetting[j]:
            opened.append(a)

    # 2. Unpaired steps: the partner is hidden at the nearer end of the stretch.
    free = np.flatnonzero(~paired)
    for n_free, a in enumerate(free):
        i, k = cand[a], stretch[cand[a]]
        if wetting[i]:
            continue
        lo, hi = first[k], last[k]
        prev_free = cand[free[n_free - 1]] if n_free else -1
        next_free = cand[free[n_free + 1]] if n_free + 1 < free.size else n
        # Alone in its stretch (another free step there makes the story ambiguous) and
        # seen from one hour to the next (not across missing hours, which may hide a
        # natural change).
        alone = prev_free < lo and next_free > hi and i > 0 and hour[i] - hour[i - 1] == 1
        lo_ok = alone and lo < i and hour[i] - hour[lo] <= max_segment
        hi_ok = alone and hour[hi] - hour[i] <= max_segment
        if lo_ok and hi_ok:
            # Evidence across the interruptions first: which side is out of line.
            hi_says = _returns_to(far_after(k), after[i], before[i])
            lo_says = _returns_to(far_before(k), before[i], after[i])
            if hi_says != lo_says:
                lo_ok = lo_says
            else:
                lo_ok = hour[i] - hour[lo] < hour[hi] - hour[i]
            hi_ok = not lo_ok
        if lo_ok:
            mark(lo, i - 1, shift[i] < 0)  # the shift this step undoes
        elif hi_ok:
            mark(i, hi, shift[i] > 0)
        else:
            mark(i, i, shift[i] > 0)
    return neg, pos


def extend_frozen(
    sm: np.ndarray,
    frozen: np.ndarray,
    ratio: float,
    within: int,
    min_abs: float = 0.04,
    persist: int = 12,
) -> np.ndarray:
    """Frozen spells extended to the sensor's own freeze and thaw steps.

    A frozen-soil flag comes from a temperature that is not the sensor's (a model layer,
    or a probe at another depth), so the sensor often freezes a few days before the flag
    starts or thaws a few days after it ends; its reading drops, or rises, in one step
    there. A downward step within ``within`` hours before a spell, or an upward step
    within ``within`` hours after one, moves the spell's edge to that step. Without this,
    the step would be taken for a break and the thawed values between two such steps
    for the shifted ones.

    Parameters
    ----------
    sm
        Hourly values, NaN where missing or removed by other tests (frozen hours too).
    frozen
        The frozen-soil flag (D01, or D02 where only air temperature is known).
    """
    out = frozen.copy()
    valid = np.flatnonzero(np.isfinite(sm))
    if not frozen.any() or valid.size < 2 or within <= 0:
        return out
    cand, before, after = _candidate_steps(sm[valid], valid, ratio, min_abs, persist)
    hours, up = valid[cand], after[cand] > before[cand]
    for start, stop in true_runs(frozen):
        # the first step after the spell, if it is a thaw
        k = np.searchsorted(hours, stop)
        if k < hours.size and up[k] and hours[k] - stop < within:
            out[stop : hours[k]] = True
        # the last step before the spell, if it is a freeze
        k = np.searchsorted(hours, start) - 1
        if k >= 0 and not up[k] and start - hours[k] <= within:
            out[hours[k] : start] = True
    return out


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


#: One bit per flag, in :data:`FLAGS` order (C01 = 1, C02 = 2, D01 = 4, …).
BITS = {code: 1 << i for i, code in enumerate(FLAGS)}


def to_bitmask(flags: pd.DataFrame) -> np.ndarray:
    """The flags of :func:`flag` as one ``uint16`` per hour (bits as :data:`BITS`)."""
    bits = np.zeros(len(flags), np.uint16)
    for code, bit in BITS.items():
        bits |= np.where(flags[code].to_numpy(), np.uint16(bit), np.uint16(0))
    return bits


def from_bitmask(bits: np.ndarray) -> pd.DataFrame:
    """Boolean flag columns (and ``any``) back from :func:`to_bitmask`'s integers."""
    bits = np.asarray(bits, np.uint16)
    out = pd.DataFrame({code: (bits & bit) != 0 for code, bit in BITS.items()})
    out["any"] = bits != 0
    return out


def check_units(sm: np.ndarray, where: str) -> None:
    """Refuse series that look like percent rather than m³/m³."""
    finite = sm[np.isfinite(sm)]
    if finite.size and np.median(finite) > 1.5:
        raise InputDataError(
            f"{where}: sm median {np.median(finite):.1f} looks like percent; expected m3/m3"
        )


def flag(
    df: pd.DataFrame,
    config: QCConfig | None = None,
    where: str = "series",
    depth_cm: float | None = None,
) -> pd.DataFrame:
    """Run every test on one hourly series.

    Parameters
    ----------
    df
        Indexed by hourly time (sorted, unique); column ``sm`` (m³/m³) and optionally
        the in-situ ``soil_temperature`` / ``air_temperature`` (°C) and
        ``precipitation`` (mm/h), and the modelled ``model_soil_temperature`` (°C) and
        ``model_precipitation`` (mm/h) at the station (ERA5-Land in the engine).
    config
        Thresholds (defaults when None).
    where
        Names the series in errors (e.g. ``"station X, 20 cm"``).
    depth_cm
        The sensor's depth: a rise at depth needs more rain to be put down to it
        (see :data:`WETTING_DEPTH_MM`).

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
    frozen_tests = (
        ("D01", "soil_temperature", cfg.frozen_soil_temperature_c),
        ("D02", "air_temperature", cfg.frozen_air_temperature_c),
        ("D03", "model_soil_temperature", cfg.frozen_soil_temperature_c),
    )
    for code, column, threshold in frozen_tests:
        if column in df:
            out[code] = flag_below(df[column].to_numpy(float), threshold)
    out["D09"], out["D10"] = flag_plateau(sm, cfg.plateau_hours)
    in_range = np.where(out["C01"] | out["C02"], np.nan, sm)
    out["D06"] = flag_spike(in_range, cfg.spike_ratio)
    # Breaks are sought in what the earlier tests kept: frozen-soil drops and spikes
    # would otherwise pair with real level shifts.
    # The frozen flag reaches to the sensor's own freeze/thaw steps (not breaks).
    frozen = (out["D01"] | out["D02"] | out["D03"]).to_numpy()
    others = (out["D06"] | out["D09"] | out["D10"]).to_numpy()
    extended = extend_frozen(
        np.where(others | frozen, np.nan, in_range), frozen, cfg.break_ratio, cfg.frozen_edge_hours
    )
    found_by = next((code for code, column, _ in frozen_tests if column in df), "D01")
    out[found_by] |= extended & ~frozen
    despiked = np.where(others | extended, np.nan, in_range)
    # Rises without rain, from in-situ (D04) or modelled (D05) precipitation.
    rain_24h = None
    for code, column in (("D05", "model_precipitation"), ("D04", "precipitation")):
        if column in df:
            rain_24h = rain_before(df[column].to_numpy(float))  # in-situ, when given, last
            out[code] = flag_rise_without_rain(despiked, rain_24h, cfg.rise_min, cfg.rain_min_mm)
    wetting_mm = max(WETTING_DEPTH_MM, 10.0 * depth_cm) if depth_cm else WETTING_DEPTH_MM
    out["D07"], out["D08"] = flag_breaks(
        despiked, cfg.break_ratio, rain_24h=rain_24h, wetting_depth_mm=wetting_mm
    )
    out["any"] = out[list(FLAGS)].any(axis=1)
    return out
