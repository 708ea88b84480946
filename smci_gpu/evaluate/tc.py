"""Triple collocation: error variances and SNR of three collocated soil-moisture series.

The covariance method (McColl et al. 2014, GRL 41, 6229, "extended triple collocation";
Gruber et al. 2016, Int. J. Appl. Earth Obs. 45, 200): three series ``x, y, z`` that
measure one truth ``t`` as ``i = α_i + β_i t + ε_i`` with zero-mean errors independent
of ``t`` and of each other. From their covariance matrix ``Q`` (ddof = 1)::

    σ²_εx = Q_xx − Q_xy Q_xz / Q_yz        (error variance, in x's own units²)
    σ²_εy = Q_yy − Q_xy Q_yz / Q_xz
    σ²_εz = Q_zz − Q_xz Q_yz / Q_xy
    signal variance of x: β_x² σ²_t = Q_xy Q_xz / Q_yz (and likewise for y and z)
    SNR_x = signal / σ²_εx,  in dB: 10 log10(SNR_x)

The estimates are undefined (NaN, with the reason counted) when fewer than
``min_samples`` days are collocated, when one of the cross covariances is not positive
(the series do not share a signal of one sign, so the ratios are meaningless) or, per
series, when its estimated error variance comes out negative (sampling error or
correlated errors larger than the error itself).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Reasons an estimate is left undefined (NaN).
REASON_FEW = "fewer than min_samples collocated days"
REASON_COV = "a cross covariance is not positive"
REASON_NEG = "negative error variance"


@dataclass(frozen=True)
class TCResult:
    """Error variances (units² of each series), SNR (dB), sample count and reasons.

    ``err_var``, ``snr_db``: shape (3,), in the order the series were given; NaN where
    undefined. ``reason``: one entry per series, ``""`` when defined.
    """

    n: int
    err_var: np.ndarray
    snr_db: np.ndarray
    reason: tuple[str, str, str]


def triple_collocation(x, y, z, min_samples: int = 100) -> TCResult:
    """Error variance and SNR of three collocated series by the covariance method.

    Parameters
    ----------
    x, y, z : array_like, shape (n,)
        The three series on the same days; a day missing (NaN) in any series is dropped.
    min_samples : int
        Fewest collocated days for an estimate (the TC literature asks for about 100;
        Gruber et al. 2016 discuss the sampling error below that).

    Returns
    -------
    TCResult
        See the module docstring for the formulas.
    """
    data = np.vstack([np.asarray(a, dtype=np.float64) for a in (x, y, z)])
    if data.ndim != 2 or data.shape[0] != 3:
        raise ValueError(f"x, y and z must be 1-D series of one length, got {data.shape}")
    data = data[:, np.isfinite(data).all(axis=0)]
    n = data.shape[1]
    nan3 = np.full(3, np.nan)
    if n < max(min_samples, 3):
        return TCResult(n, nan3, nan3.copy(), (REASON_FEW,) * 3)
    q = np.cov(data, ddof=1)
    qxy, qxz, qyz = q[0, 1], q[0, 2], q[1, 2]
    if min(qxy, qxz, qyz) <= 0:
        return TCResult(n, nan3, nan3.copy(), (REASON_COV,) * 3)
    signal = np.array([qxy * qxz / qyz, qxy * qyz / qxz, qxz * qyz / qxy])
    err = np.diag(q) - signal
    # Not positive, allowing for round-off (an exact zero can come out as +1e-17).
    bad = err <= 1e-12 * np.diag(q)
    err_var = np.where(bad, np.nan, err)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr_db = np.where(bad, np.nan, 10.0 * np.log10(signal / err))
    reason = tuple(REASON_NEG if b else "" for b in bad)
    return TCResult(n, err_var, snr_db, reason)  # type: ignore[arg-type]


#: The three series of the station TC, by their column in the predictions table.
SERIES = {"model": "product (model)", "era5land": "ERA5-Land", "obs_raw": "in-situ"}


def station_tc(predictions: pd.DataFrame, min_samples: int = 100) -> pd.DataFrame:
    """Triple collocation per experiment, layer and test point.

    ``predictions``: the validation's test rows (columns experiment, layer_cm, stations,
    lat, lon, optionally repeat, and the series of :data:`SERIES`, all m³/m³). Returns
    one row per test point (and repeat), layer and series: ``n``, ``err_var``
    (m⁶/m⁶), ``err_std`` (m³/m³), ``snr_db`` and ``reason`` (empty when defined).
    """
    rows = []
    keys = ["experiment", "layer_cm", "stations"]
    if "repeat" in predictions:  # a point tested in two station splits is two series
        keys.insert(1, "repeat")
    for key, g in predictions.groupby(keys, sort=True):
        res = triple_collocation(*(g[c].to_numpy() for c in SERIES), min_samples=min_samples)
        for k, (col, name) in enumerate(SERIES.items()):
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "lat": g.lat.iloc[0],
                    "lon": g.lon.iloc[0],
                    "series": col,
                    "name": name,
                    "n": res.n,
                    "err_var": res.err_var[k],
                    "err_std": float(np.sqrt(res.err_var[k])),
                    "snr_db": res.snr_db[k],
                    "reason": res.reason[k],
                }
            )
    return pd.DataFrame(rows)


def summarise(tc: pd.DataFrame) -> pd.DataFrame:
    """Per experiment, layer and series: median error std and SNR over the test points
    with a defined estimate, and how many points were undefined for each reason."""
    out = []
    tc = tc.assign(reason=tc.reason.fillna(""))  # read back from CSV, "" comes as NaN
    for (exp, depth, series), g in tc.groupby(["experiment", "layer_cm", "series"], sort=True):
        ok = g.reason == ""
        row = {
            "experiment": exp,
            "layer_cm": depth,
            "series": series,
            "points": len(g),
            "defined": int(ok.sum()),
            "median err_std": float(g.err_std[ok].median()) if ok.any() else np.nan,
            "median snr_db": float(g.snr_db[ok].median()) if ok.any() else np.nan,
        }
        for reason in (REASON_FEW, REASON_COV, REASON_NEG):
            row[reason] = int((g.reason == reason).sum())
        out.append(row)
    return pd.DataFrame(out)
