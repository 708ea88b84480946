"""Mean/standard-deviation matching of in-situ series to ERA5-Land (per station and layer).

After Sungmin & Orth (2020), as the SMCI1.0 paper did: the in-situ series is rescaled so
that, over the days both have values, its mean and (population) standard deviation equal
the reference's; day-to-day variation of the in-situ series is kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
