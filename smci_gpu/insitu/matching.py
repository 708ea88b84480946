"""Rescaling of in-situ series to ERA5-Land (per station or cell, and layer).

Methods (``matching.method``):

* ``"mean_std"`` — the SMCI1.0 paper's, after Sungmin & Orth (2020): the in-situ series
  is rescaled so that, over the days both have values, its mean and (population) standard
  deviation equal the reference's; day-to-day variation of the in-situ series is kept.
  The product then inherits ERA5-Land's climatology (and its bias).
* ``"none"`` — the QC'd daily in-situ series as measured: the forest learns the station
  climatology, sensor calibration errors included.
* ``"cdf"`` — CDF (quantile) matching, Reichle & Koster (2004, GRL 31, L19501), the usual
  rescaling in soil-moisture data assimilation and in ESA CCI SM's merging: each in-situ
  value takes the reference's value at the same empirical quantile over the common days
  (piecewise linear between order statistics, held at the extremes outside them). It
  matches every moment of the reference, not only the first two.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Below this standard deviation (m³/m³) a series counts as constant: rounding alone
#: can leave a constant series a std of 1e-17, which must not be blown up to the reference's.
MIN_STD = 1e-12


def mean_std_match(insitu: np.ndarray, reference: np.ndarray, min_days: int = 10) -> np.ndarray:
    """Rescale ``insitu`` to ``reference``'s mean and std over common valid days.

    Returns NaNs (same shape) when fewer than ``min_days`` common days exist or the in-situ
    series is constant there (no variation to rescale).

    Notes
    -----
    ``x' = (x − mean(x)) · std(ref) / std(x) + mean(ref)``, statistics with ddof = 0 over
    the common days; applied to every in-situ value.
    """
    x = np.asarray(insitu, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if x.shape != r.shape:
        raise ValueError(f"insitu {x.shape} and reference {r.shape} differ in shape")
    both = np.isfinite(x) & np.isfinite(r)
    if both.sum() < min_days:
        return np.full_like(x, np.nan)
    sx, sr = x[both].std(), r[both].std()
    if sx <= MIN_STD:
        return np.full_like(x, np.nan)
    return (x - x[both].mean()) * (sr / sx) + r[both].mean()


def mean_std_match_frame(
    frame: Any,
    keys: list[str],
    value: str = "sm",
    reference: str = "reference",
    min_days: int = 10,
) -> Any:
    """:func:`mean_std_match` for every group of ``keys`` at once (e.g. cell and layer).

    Works on a pandas or a cuDF frame alike (group-wise mean, std and count, then
    elementwise arithmetic), so the station-day table is matched on the device that
    holds it. Returns the matched column (NaN for groups with fewer than ``min_days``
    common days or no in-situ variation, and where ``value`` is missing).
    """
    both = frame[value].notna() & frame[reference].notna()
    work = frame[keys].copy()
    work["x"] = frame[value].where(both)
    work["r"] = frame[reference].where(both)
    groups = work.groupby(keys, sort=False)
    stats = {}
    for col in ("x", "r"):
        count = groups[col].transform("count")
        # population std (ddof = 0) from the sample std, which both libraries provide
        std = groups[col].transform("std") * ((count - 1) / count) ** 0.5
        stats[col] = (groups[col].transform("mean"), std, count)
    (mx, sx, n), (mr, sr, _) = stats["x"], stats["r"]
    matched = (frame[value] - mx) * (sr / sx) + mr
    return matched.where((n >= min_days) & (sx > MIN_STD))


def cdf_match(insitu: np.ndarray, reference: np.ndarray, min_days: int = 10) -> np.ndarray:
    """Map ``insitu`` onto ``reference``'s distribution over their common valid days.

    Returns NaNs (same shape) under the same conditions as :func:`mean_std_match`.

    Notes
    -----
    With ``x_(1) ≤ … ≤ x_(n)`` and ``r_(1) ≤ … ≤ r_(n)`` the sorted values of both over the
    ``n`` common days, ``x' = interp(x, x_(·), r_(·))``: the k-th smallest in-situ value
    becomes the k-th smallest reference value, values in between are interpolated
    linearly, values outside ``[x_(1), x_(n)]`` take ``r_(1)`` or ``r_(n)`` (Reichle &
    Koster 2004). Tied in-situ values share the mean of their reference order statistics.
    """
    x = np.asarray(insitu, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if x.shape != r.shape:
        raise ValueError(f"insitu {x.shape} and reference {r.shape} differ in shape")
    both = np.isfinite(x) & np.isfinite(r)
    if both.sum() < min_days or x[both].std() <= MIN_STD:
        return np.full_like(x, np.nan)
    xs, rs = np.sort(x[both]), np.sort(r[both])
    # ties in x: one knot per distinct value at the mean of its reference order statistics
    knots, start = np.unique(xs, return_index=True)
    sums = np.add.reduceat(rs, start)
    counts = np.diff(np.append(start, xs.size))
    out = np.interp(x, knots, sums / counts)
    return np.where(np.isfinite(x), out, np.nan)


def match_frame(
    frame: Any,
    keys: list[str],
    method: str = "mean_std",
    value: str = "sm",
    reference: str = "reference",
    min_days: int = 10,
) -> Any:
    """The matched ``value`` column by ``matching.method`` (see the module notes).

    ``"mean_std"`` runs on a pandas or cuDF frame (:func:`mean_std_match_frame`); ``"cdf"``
    sorts per group on the host; ``"none"`` returns ``value`` where the group has at least
    ``min_days`` common days with the reference and varies (the rows every method keeps).
    """
    if method == "mean_std":
        return mean_std_match_frame(frame, keys, value, reference, min_days)
    if method not in ("none", "cdf"):
        raise ValueError(f"unknown matching method {method!r}; known: mean_std, none, cdf")
    host = frame.to_pandas() if hasattr(frame, "to_pandas") else frame
    kept = mean_std_match_frame(host, keys, value, reference, min_days).notna()
    if method == "none":
        return host[value].where(kept)
    out = pd.Series(np.nan, index=host.index)
    for _, g in host.groupby(keys, sort=False):
        out.loc[g.index] = cdf_match(g[value].to_numpy(), g[reference].to_numpy(), min_days)
    return out.where(kept)
