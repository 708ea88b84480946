"""Skill metrics, ``f(obs, pred)``, NaN pairs ignored, NumPy or CuPy (array-namespace generic).

bias = mean(pred − obs); mae; rmse; ubrmse = sqrt(rmse² − bias²); Pearson r;
r2 = 1 − SSE/SST (Nash–Sutcliffe form, as the SMCI1.0 paper).
"""

from __future__ import annotations

from smci_gpu.backend import array_module


def _pairs(obs, pred):
    xp = array_module(obs, pred)
    obs, pred = xp.asarray(obs, dtype=float), xp.asarray(pred, dtype=float)
    if obs.shape != pred.shape:
        raise ValueError(f"obs {obs.shape} and pred {pred.shape} differ in shape")
    ok = xp.isfinite(obs) & xp.isfinite(pred)
    return xp, obs[ok], pred[ok]


def bias(obs, pred) -> float:
    xp, o, p = _pairs(obs, pred)
    return float(xp.mean(p - o)) if o.size else float("nan")


def mae(obs, pred) -> float:
    xp, o, p = _pairs(obs, pred)
    return float(xp.mean(xp.abs(p - o))) if o.size else float("nan")


def rmse(obs, pred) -> float:
    xp, o, p = _pairs(obs, pred)
    return float(xp.sqrt(xp.mean((p - o) ** 2))) if o.size else float("nan")


def ubrmse(obs, pred) -> float:
    r, b = rmse(obs, pred), bias(obs, pred)
    return float(max(r * r - b * b, 0.0) ** 0.5)


def pearson_r(obs, pred) -> float:
    xp, o, p = _pairs(obs, pred)
    if o.size < 2:
        return float("nan")
    do, dp = o - o.mean(), p - p.mean()
    den = xp.sqrt((do * do).sum() * (dp * dp).sum())
    return float((do * dp).sum() / den) if float(den) > 0 else float("nan")


def r2(obs, pred) -> float:
    xp, o, p = _pairs(obs, pred)
    if o.size < 2:
        return float("nan")
    sst = float(((o - o.mean()) ** 2).sum())
    return 1.0 - float(((p - o) ** 2).sum()) / sst if sst > 0 else float("nan")


METRICS = {"bias": bias, "mae": mae, "rmse": rmse, "ubrmse": ubrmse, "r": pearson_r, "r2": r2}


def all_metrics(obs, pred) -> dict[str, float]:
    """Every metric plus the number of valid pairs."""
    _, o, _ = _pairs(obs, pred)
    return {"n": int(o.size), **{k: f(obs, pred) for k, f in METRICS.items()}}
