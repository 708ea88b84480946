"""Hourly → daily: remove flagged values, refill short gaps, daily means, cell averages."""

from __future__ import annotations

import numpy as np
import pandas as pd


def null_windows(sm: pd.Series, days: int, min_fraction: float) -> np.ndarray:
    """True for hours in ``days``-long windows (from the series start) that are mostly empty."""
    window = (sm.index - sm.index[0]) // pd.Timedelta(days=days)
    frac = sm.notna().groupby(window).transform("mean").to_numpy()
    return frac < min_fraction


def refill(sm: pd.Series, max_days: float) -> pd.Series:
    """Linear interpolation in time across gaps whose both sides lie within ±``max_days``.

    A gap of up to ``2 * max_days`` is filled (each filled hour then has valid values on
    both sides within ``max_days``); longer gaps and the series' ends stay NaN.
    """
    if sm.notna().sum() < 2:
        return sm
    filled = sm.interpolate(method="time", limit_area="inside")
    gap = sm.isna()
    run = (gap != gap.shift()).cumsum()
    length = gap.groupby(run).transform("sum")
    too_long = gap & (length > 2 * max_days * 24)
    return filled.mask(too_long)


def daily_mean(sm: pd.Series, min_hours: int) -> pd.Series:
    """Daily means of days with at least ``min_hours`` valid hours."""
    g = sm.resample("1D")
    mean, count = g.mean(), g.count()
    return mean.where(count >= min_hours)


def cell_average(daily: pd.DataFrame) -> pd.DataFrame:
    """Average stations that fall in the same 1 km cell, per layer and day.

    ``daily`` has columns station_id, row, col, depth_cm, time, sm; the result has one
    row per (row, col, depth_cm, time) with the mean ``sm``, the station count and ids.
    """
    g = daily.groupby(["row", "col", "depth_cm", "time"], sort=True)
    out = g.agg(
        sm=("sm", "mean"),
        n_stations=("station_id", "nunique"),
        stations=("station_id", lambda s: ";".join(sorted(set(s)))),
    ).reset_index()
    return out
