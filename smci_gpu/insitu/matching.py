"""Mean/standard-deviation matching of in-situ series to ERA5-Land (per station and layer).

After Sungmin & Orth (2020), as the SMCI1.0 paper did: the in-situ series is rescaled so
that, over the days both have values, its mean and (population) standard deviation equal
the reference's; day-to-day variation of the in-situ series is kept.
"""

from __future__ import annotations

import numpy as np


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
    if sx <= 0:
        return np.full_like(x, np.nan)
    return (x - x[both].mean()) * (sr / sx) + r[both].mean()
