"""Quality control of hourly in-situ soil moisture as Dorigo et al. (2013) define it.

Dorigo, W. A. et al. (2013): Global automated quality control of in situ soil moisture
data from the International Soil Moisture Network. Vadose Zone J. 12(3),
doi:10.2136/vzj2012.0097. The ISMN attaches these flags to every record it publishes;
its reference code (TUW-GEO ``flagit``) states the thresholds in vol-%, restated here in
m³/m³ (:class:`smci_gpu.config.QCConfig` holds them, with the equation numbers).

Each test is a pure function over an hourly array (NaN where missing) returning a boolean
flag (True = dubious), named by its ISMN code; :func:`flag` runs them all on one
station-depth series. Derivatives are those of a Savitzky–Golay filter of window 3 and
order 2, as the paper uses; on three points that filter is exact, so θ'(t) is the centred
difference (θ(t+1) − θ(t−1))/2 and θ''(t) = θ(t+1) − 2θ(t) + θ(t−1).

* C01/C02 – below ``sm_min`` (0) / above ``sm_max`` (0.6 m³/m³); C03 – above the
  saturation point of the station's soil (ISMN: from HWSD texture by Saxton & Rawls 2006;
  here the porosity map ``POR`` or the station's own soil data).
* D01/D02/D03 – soil (in situ), air (in situ) or modelled soil temperature below 0 °C
  (ISMN: GLDAS; here ERA5-Land). The spell is extended to the sensor's own freeze or thaw
  step when one lies within ``frozen_edge_hours`` of it (:func:`extend_frozen`, this
  project's addition: the model's soil is not the sensor's).
* D04/D05 – a rise (in the last hour, and over 24 h by more than twice the standard
  deviation of the 25 h up to it) while less than ``rain_min_mm`` (0.2 mm) of in-situ
  (D04) or modelled (D05) precipitation fell in the 24 h up to it; sensors ≤ 10 cm only.
* D06 – spike: θ(t)/θ(t−1) beyond 1 ± 0.15 (Eq. 4), |θ''(t−1)/θ''(t+1)| within 1 ± 0.2
  (Eq. 5: the series returns as it left), var/mean of the 24 neighbours in t ± 12 h below
  1 (vol-%; Eq. 6), and θ(t) a local extremum (as ISMN's code requires).
* D07/D08 – negative/positive break, flagged at the first value after the step:
  |Δθ|/θ(t) > 0.1 and |Δθ| > 0.01 m³/m³ (Eq. 7), |θ'(t)| above 10 times the mean θ' of
  t ± 12 h (Eq. 8), |θ''(t−1)/θ''(t)| within 1 ± 0.05 and |θ''(t)/θ''(t+2)| > 10 (Eq. 9:
  a step, not a ramp or a spike).
* D09 – low constant values after a negative break: from a D07 as long as the relative
  variance (var/mean) of the next 13 h stays below 0.001 (vol-%; Eq. 14).
* D10 – saturated plateau: 12 h windows of variance ≤ 0.05 (vol-%²) begun by a rise of
  θ' ≥ 0.25 vol-%/h and ended by a fall, whose mean exceeds 95 % of the series' highest
  value (Eqs. 10–13).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smci_gpu.config import QCConfig
from smci_gpu.errors import InputDataError

FLAGS = (
    "C01", "C02", "C03", "D01", "D02", "D03", "D04", "D05", "D06", "D07", "D08", "D09", "D10"
)  # fmt: skip

#: Half-width (h) of the centred windows of Eqs. 6 and 8 (t − 12 h … t + 12 h).
HALF_WINDOW = 12


def flag_range(sm: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """C01 (below ``lo``) and C02 (above ``hi``), m³/m³; NaN: not flagged."""
    with np.errstate(invalid="ignore"):
        return sm < lo, sm > hi


def flag_saturation(sm: np.ndarray, saturation: float | None) -> np.ndarray:
    """C03: above the soil's saturation point (m³/m³); nothing when it is unknown.

    Raises
    ------
    InputDataError
        A saturation point outside (0, 1] m³/m³ (a porosity in percent, or a fill value).
    """
    if saturation is None or not np.isfinite(saturation):
        return np.zeros(sm.size, bool)
    if not 0 < saturation <= 1:
        raise InputDataError(f"saturation point {saturation} is not in (0, 1] m3/m3")
    with np.errstate(invalid="ignore"):
        return sm > saturation


def flag_below(temperature_c: np.ndarray, threshold: float) -> np.ndarray:
    """D01/D02/D03: temperature (°C) below a threshold (NaN temperature: not flagged)."""
    with np.errstate(invalid="ignore"):
        return temperature_c < threshold


def derivatives(sm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """θ' and θ'' of an hourly series (per hour), as a Savitzky–Golay filter of window 3
    and order 2 gives them: centred differences; NaN at the ends and next to gaps."""
    x = np.asarray(sm, dtype=np.float64)
    d1, d2 = np.full(x.size, np.nan), np.full(x.size, np.nan)
    d1[1:-1] = (x[2:] - x[:-2]) / 2
    d2[1:-1] = x[2:] - 2 * x[1:-1] + x[:-2]
    return d1, d2


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` moved by ``k`` places: ``out[t] = x[t - k]`` (NaN where that falls outside)."""
    out = np.full(x.size, np.nan)
    if k >= 0:
        out[k:] = x[: x.size - k]
    else:
        out[:k] = x[-k:]
    return out


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(a / b)


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
    sm: np.ndarray, rain_24h: np.ndarray, rain_min_mm: float, std_factor: float = 2.0
) -> np.ndarray:
    """D04/D05: a rise without the rain to explain it.

    True where θ rose in the last hour, θ(t) − θ(t−24) exceeds ``std_factor`` standard
    deviations of θ over t−24 … t (25 values), and less than ``rain_min_mm`` fell in the
    24 h up to t (``rain_24h``, mm; NaN: unknown, not flagged). Dorigo et al. (2013);
    ISMN applies it to sensors at most 10 cm deep.
    """
    s = pd.Series(sm)
    std = s.rolling(25, min_periods=2).std().to_numpy()
    rise_1h, rise_24h = s.diff(1).to_numpy(), s.diff(24).to_numpy()
    with np.errstate(invalid="ignore"):
        return (rise_1h > 0) & (rise_24h > std_factor * std) & (rain_24h < rain_min_mm)


def _centred_without_self(sm: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance (ddof 1) of the values in t − half … t + half other than t; NaN
    unless all 2·half are there."""
    x = np.asarray(sm, dtype=np.float64)
    win = 2 * half + 1
    s = pd.Series(x)
    total = s.rolling(win, center=True, min_periods=win).sum().to_numpy() - x
    sq = (s**2).rolling(win, center=True, min_periods=win).sum().to_numpy() - x**2
    n = 2 * half
    mean = total / n
    var = np.maximum(sq - n * mean**2, 0.0) / (n - 1)
    return mean, var


def flag_spike(
    sm: np.ndarray,
    ratio: float = 0.15,
    curvature_tolerance: float = 0.2,
    max_relative_variance: float = 0.01,
) -> np.ndarray:
    """D06: single-value spikes (Dorigo et al. 2013, Eqs. 4–6).

    Parameters
    ----------
    sm
        Hourly soil moisture (m³/m³), NaN where missing; shape ``(n,)``.
    ratio
        Eq. 4: θ(t)/θ(t−1) above ``1 + ratio`` or below ``1 − ratio``.
    curvature_tolerance
        Eq. 5: |θ''(t−1)/θ''(t+1)| within ``1 ± curvature_tolerance`` (the series comes
        back the way it left).
    max_relative_variance
        Eq. 6: variance / mean (m³/m³) of the 24 neighbours in t ± 12 h below this (the
        surroundings are quiet; ISMN: 1 in vol-%, 0.01 in m³/m³).

    Returns
    -------
    ndarray of bool, shape ``(n,)``
        True at the spike's value; also a local extremum, as ISMN's code requires.
    """
    x = np.asarray(sm, dtype=np.float64)
    _, d2 = derivatives(x)
    prev, nxt = _shift(x, 1), _shift(x, -1)
    q = _ratio(x, prev)
    mean, var = _centred_without_self(x, HALF_WINDOW)
    with np.errstate(invalid="ignore", divide="ignore"):
        jump = (q > 1 + ratio) | (q < 1 - ratio)
        curv = np.abs(_ratio(_shift(d2, 1), _shift(d2, -1)) - 1) < curvature_tolerance
        quiet = var / mean < max_relative_variance
        peak = ((x > prev) & (x > nxt)) | ((x < prev) & (x < nxt))
    return jump & curv & quiet & peak


def flag_breaks(
    sm: np.ndarray,
    ratio: float = 0.1,
    min_step: float = 0.01,
    derivative_factor: float = 10.0,
    curvature_tolerance: float = 0.05,
    curvature_ratio: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """D07 (negative) and D08 (positive) breaks (Dorigo et al. 2013, Eqs. 7–9).

    Parameters
    ----------
    sm
        Hourly soil moisture (m³/m³), NaN where missing; shape ``(n,)``.
    ratio, min_step
        Eq. 7: the step Δθ = θ(t) − θ(t−1) exceeds ``ratio`` of θ(t) and ``min_step``.
    derivative_factor
        Eq. 8: |θ'(t)| exceeds ``derivative_factor`` times |mean θ'| over t ± 12 h.
    curvature_tolerance, curvature_ratio
        Eq. 9: |θ''(t−1)/θ''(t)| within ``1 ± curvature_tolerance`` and
        |θ''(t)/θ''(t+2)| above ``curvature_ratio``: a sharp step that stays (ISMN's code
        compares θ''(t) with θ''(t+2), two hours on; its published flags agree).

    Returns
    -------
    (ndarray of bool, ndarray of bool), each shape ``(n,)``
        D07 and D08 at the first value after the step (only the step itself: the values
        after it are not judged, as in the paper).
    """
    x = np.asarray(sm, dtype=np.float64)
    d1, d2 = derivatives(x)
    step = x - _shift(x, 1)
    mean_d1 = (
        pd.Series(d1).rolling(2 * HALF_WINDOW + 1, center=True, min_periods=4).mean().to_numpy()
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        big = (np.abs(step) > ratio * np.abs(x)) & (np.abs(step) > min_step) & (x != 0)
        steep = np.abs(d1) > derivative_factor * np.abs(mean_d1)
        sharp = np.abs(_ratio(_shift(d2, 1), d2) - 1) < curvature_tolerance
        stays = (d2 != 0) & (_ratio(d2, _shift(d2, -2)) > curvature_ratio)
    found = big & steep & sharp & stays
    return found & (step < 0), found & (step > 0)


def _window_stat(x: np.ndarray, n: int, stat: str) -> np.ndarray:
    """``stat`` (``"var"``, ddof 1, or ``"mean"``) of the ``n`` values starting at each t
    (NaN unless all are there)."""
    r = pd.Series(x).rolling(n, min_periods=n)
    out = (r.var() if stat == "var" else r.mean()).to_numpy()
    return _shift(out, -(n - 1))


def flag_low_plateau(
    sm: np.ndarray, negative_break: np.ndarray, hours: int = 12, max_relative_variance: float = 1e-5
) -> np.ndarray:
    """D09: constant low values after a negative break (Dorigo et al. 2013, Eq. 14).

    From a D07 at t, as long as the relative variance (var/mean, m³/m³) of the
    ``hours + 1`` values starting at each hour stays below ``max_relative_variance``
    (ISMN: 0.001 in vol-%), every value of those windows is flagged (so at least 13 h).
    """
    x = np.asarray(sm, dtype=np.float64)
    n = hours + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        quiet = _window_stat(x, n, "var") / _window_stat(x, n, "mean") < max_relative_variance
    starts = np.zeros(x.size, bool)
    for a, b in true_runs(quiet):
        hit = np.flatnonzero(negative_break[a:b])
        if hit.size:
            starts[a + hit[0] : b] = True
    out = np.zeros(x.size, bool)
    for a, b in true_runs(starts):
        out[a : min(b + n - 1, x.size)] = True
    return out


def flag_saturated_plateau(
    sm: np.ndarray,
    hours: int = 12,
    max_variance: float = 5e-6,
    rise_min: float = 0.0025,
    level: float = 0.95,
    highest: float | None = None,
) -> np.ndarray:
    """D10: saturated plateaus (Dorigo et al. 2013, Eqs. 10–13).

    Parameters
    ----------
    sm
        Hourly soil moisture (m³/m³), NaN where missing; shape ``(n,)``.
    hours, max_variance
        Eq. 10: windows of ``hours`` values whose variance (ddof 1) is at most
        ``max_variance`` (ISMN: 0.05 vol-%² = 5e-6 (m³/m³)²); overlapping windows join
        into one low-variance period.
    rise_min
        Eq. 11: θ' reaches ``rise_min`` (m³/m³ per hour; ISMN 0.25 vol-%/h) within ±12 h
        of the period's first window, and (Eq. 12) falls below zero within 24 h after its
        last one: rain filled the soil, and it drained again.
    level, highest
        Eq. 13: the plateau (from the steepest rise, or the period's start, to the
        steepest fall, or its end) has a mean above ``level`` × ``highest`` (default: the
        series' highest value up to ``sm_max``; ISMN takes the two years before).

    Returns
    -------
    ndarray of bool, shape ``(n,)``
        True on the plateau's values. Gaps shorter than :data:`INTERRUPTION_HOURS` are
        closed up first (a plateau bridges them, as in ISMN's code); missing hours are
        never flagged.
    """
    full = np.asarray(sm, dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(full))
    out = np.zeros(full.size, bool)
    if valid.size < hours:
        return out
    top = full[valid].max() if highest is None else highest
    # Short gaps are closed up; a long one (a day or more) ends the stretch.
    cuts = np.flatnonzero(np.diff(valid) >= INTERRUPTION_HOURS) + 1
    for part in np.split(valid, cuts):
        if part.size >= hours:
            out[part] = _saturated_plateau_compact(
                full[part], hours, max_variance, rise_min, level, top
            )
    return out


def _saturated_plateau_compact(
    x: np.ndarray, hours: int, max_variance: float, rise_min: float, level: float, top: float
) -> np.ndarray:
    """:func:`flag_saturated_plateau` over the valid values only (gaps closed up, as ISMN
    does: a plateau bridges a missing hour)."""
    n = x.size
    out = np.zeros(n, bool)
    d1, _ = derivatives(x)
    d1z = np.where(np.isfinite(d1), d1, 0.0)
    low = _window_stat(x, hours, "var") <= max_variance
    for a, b in true_runs(low):  # windows starting at a … b − 1
        end = b - 1 + hours - 1  # the last value of the period
        r0, r1 = max(a - HALF_WINDOW, 0), min(a + HALF_WINDOW + 1, n)
        f0, f1 = b - 1, min(b - 1 + 2 * HALF_WINDOW + 1, n)
        rise = r0 + int(np.argmax(d1z[r0:r1]))
        fall = f0 + int(np.argmin(d1z[f0:f1]))
        if d1z[rise] < rise_min or d1z[fall] >= 0:
            continue
        p0 = rise if a <= rise <= end else a
        p1 = fall if a <= fall <= end else end
        if p1 >= p0 and np.nanmean(x[p0 : p1 + 1]) > level * top:
            out[p0 : p1 + 1] = True
    return out


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True in a boolean array (``stop`` exclusive)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _trailing_median(x: np.ndarray, window: int, lag: int = 1) -> np.ndarray:
    """Median of the ``window`` values ending ``lag`` before each position."""
    med = pd.Series(x).rolling(window, min_periods=window // 2).median().shift(lag)
    return med.to_numpy()


#: Hours without a valid value that interrupt a series: a step across them is not a
#: freeze/thaw step, and a saturated plateau does not bridge them.
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
    the frozen readings between the step and the spell's edge would stay in (the break
    tests flag only the step itself). This extension is this project's, not the paper's.

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


#: One bit per flag. The first twelve keep the layout the engine has always written
#: (C01 = 1, C02 = 2, D01 = 4, … D10 = 2048); C03, added later, takes bit 12.
BITS = {
    code: 1 << i
    for i, code in enumerate(
        ("C01", "C02", "D01", "D02", "D03", "D04", "D05", "D06", "D07", "D08", "D09", "D10", "C03")
    )
}


def to_bitmask(flags: pd.DataFrame) -> np.ndarray:
    """The flags of :func:`flag` as one ``uint16`` per hour (bits as :data:`BITS`)."""
    bits = np.zeros(len(flags), np.uint16)
    for code, bit in BITS.items():
        if code in flags:
            bits |= np.where(flags[code].to_numpy(), np.uint16(bit), np.uint16(0))
    return bits


def from_bitmask(bits: np.ndarray) -> pd.DataFrame:
    """Boolean flag columns (in :data:`FLAGS` order, and ``any``) from :func:`to_bitmask`."""
    bits = np.asarray(bits, np.uint16)
    out = pd.DataFrame({code: (bits & BITS[code]) != 0 for code in FLAGS})
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
    saturation: float | None = None,
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
        Thresholds (defaults when None: the published ones).
    where
        Names the series in errors (e.g. ``"station X, 20 cm"``).
    depth_cm
        The sensor's depth: D04/D05 run only down to ``config.rise_max_depth_cm``.
    saturation
        The soil's saturation point (m³/m³) for C03; None: C03 is not tested.

    Returns
    -------
    DataFrame
        One boolean column per ISMN flag (:data:`FLAGS`) plus ``any``, on ``df``'s index.

    Raises
    ------
    InputDataError
        No ``sm`` column, an unsorted or duplicated time index, values in percent, or a
        saturation point outside (0, 1].
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
    try:
        out["C03"] = flag_saturation(sm, saturation)
    except InputDataError as exc:
        raise InputDataError(f"{where}: {exc}") from None
    frozen_tests = (
        ("D01", "soil_temperature", cfg.frozen_soil_temperature_c),
        ("D02", "air_temperature", cfg.frozen_air_temperature_c),
        ("D03", "model_soil_temperature", cfg.frozen_soil_temperature_c),
    )
    for code, column, threshold in frozen_tests:
        if column in df:
            out[code] = flag_below(df[column].to_numpy(float), threshold)
    # The shape tests see every plausible value (as ISMN runs them), not impossible ones.
    plausible = np.where(out["C01"] | out["C02"], np.nan, sm)
    out["D06"] = flag_spike(
        plausible, cfg.spike_ratio, cfg.spike_curvature_tolerance, cfg.spike_max_relative_variance
    )
    out["D07"], out["D08"] = flag_breaks(
        plausible,
        cfg.break_ratio,
        cfg.break_min_step,
        cfg.break_derivative_factor,
        cfg.break_curvature_tolerance,
        cfg.break_curvature_ratio,
    )
    out["D09"] = flag_low_plateau(
        plausible, out["D07"].to_numpy(), cfg.plateau_hours, cfg.low_plateau_max_relative_variance
    )
    # The series' highest value, spikes aside (they are not the soil's saturation).
    kept = np.where(out["D06"], np.nan, plausible)
    highest = np.nanmax(kept) if np.isfinite(kept).any() else None
    out["D10"] = flag_saturated_plateau(
        plausible,
        cfg.plateau_hours,
        cfg.plateau_max_variance,
        cfg.plateau_rise_min,
        cfg.plateau_level,
        highest,
    )
    _extend_frozen_flags(out, df, plausible, cfg, frozen_tests)
    if depth_cm is None or depth_cm <= cfg.rise_max_depth_cm:
        for code, column in (("D04", "precipitation"), ("D05", "model_precipitation")):
            if column in df:
                rain_24h = rain_before(df[column].to_numpy(float))
                out[code] = flag_rise_without_rain(
                    plausible, rain_24h, cfg.rain_min_mm, cfg.rise_std_factor
                )
    out["any"] = out[list(FLAGS)].any(axis=1)
    return out


def _extend_frozen_flags(
    out: pd.DataFrame, df: pd.DataFrame, plausible: np.ndarray, cfg: QCConfig, tests: tuple
) -> None:
    """Stretch the frozen spell to the sensor's own freeze/thaw steps (see
    :func:`extend_frozen`), under the first frozen flag whose temperature is given."""
    frozen = (out["D01"] | out["D02"] | out["D03"]).to_numpy()
    others = (out["D06"] | out["D09"] | out["D10"]).to_numpy()
    extended = extend_frozen(
        np.where(others | frozen, np.nan, plausible),
        frozen,
        cfg.break_ratio,
        cfg.frozen_edge_hours,
    )
    found_by = next((code for code, column, _ in tests if column in df), "D01")
    out[found_by] |= extended & ~frozen
