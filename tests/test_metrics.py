"""Metrics against hand-worked values and independent formulas."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from smci_gpu.evaluate import metrics as M
from smci_gpu.insitu.matching import mean_std_match

from .conftest import requires_cuda


def test_hand_worked():
    obs = np.array([0.10, 0.20, 0.30, np.nan])
    pred = np.array([0.12, 0.18, 0.36, 0.5])
    # errors 0.02, -0.02, 0.06 → bias 0.02, MAE 0.10/3, RMSE sqrt(0.0044/3)
    assert M.bias(obs, pred) == pytest.approx(0.02)
    assert M.mae(obs, pred) == pytest.approx(0.10 / 3)
    assert M.rmse(obs, pred) == pytest.approx(np.sqrt(0.0044 / 3))
    assert M.ubrmse(obs, pred) == pytest.approx(np.sqrt(0.0044 / 3 - 0.0004))
    # SST = 0.02, SSE = 0.0044 → R² = 0.78
    assert M.r2(obs, pred) == pytest.approx(0.78)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(3, 200), seed=st.integers(0, 10_000))
def test_equal_independent_formulas(n, seed):
    rng = np.random.default_rng(seed)
    obs = rng.random(n)
    pred = obs + rng.normal(0, 0.1, n)
    if np.std(obs) == 0 or np.std(pred) == 0:
        return
    assert M.pearson_r(obs, pred) == pytest.approx(stats.pearsonr(obs, pred)[0], abs=1e-9)
    err = pred - obs
    ub = np.sqrt(np.mean((err - err.mean()) ** 2))  # std of errors = ubRMSE
    assert M.ubrmse(obs, pred) == pytest.approx(ub, abs=1e-9)


def test_matching_hand_worked():
    x = np.array([1.0, 2.0, 3.0, np.nan])
    ref = np.array([10.0, 20.0, 60.0, 5.0])
    # common days: first three; x mean 2, std sqrt(2/3); ref mean 30, std sqrt(1400/3)
    got = mean_std_match(x, ref, min_days=3)
    scale = np.sqrt(1400 / 3) / np.sqrt(2 / 3)
    np.testing.assert_allclose(got[:3], [30 - scale, 30, 30 + scale])
    assert np.isnan(got[3])


@settings(max_examples=50, deadline=None)
@given(n=st.integers(12, 300), seed=st.integers(0, 10_000))
def test_matching_properties(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.random(n) * 0.3
    ref = 0.2 + 0.5 * rng.random(n)
    x[rng.random(n) < 0.1] = np.nan
    got = mean_std_match(x, ref)
    ok = np.isfinite(x)
    if ok.sum() < 10 or np.std(x[ok]) == 0:
        return
    assert got[ok].mean() == pytest.approx(ref[ok].mean(), abs=1e-9)
    assert got[ok].std() == pytest.approx(ref[ok].std(), abs=1e-9)
    assert np.corrcoef(got[ok], x[ok])[0, 1] == pytest.approx(1.0, abs=1e-9)


def _cells_frame(seed: int):
    """Station-day rows of several (cell, layer) groups, one too short, one constant."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    parts = []
    for g, n in enumerate(rng.integers(5, 60, 8)):
        sm = rng.random(n) * 0.3
        ref = 0.1 + 0.4 * rng.random(n)
        ref[rng.random(n) < 0.1] = np.nan
        if g == 3:
            sm[:] = 0.2  # no in-situ variation: cannot be rescaled
        parts.append(
            pd.DataFrame({"row": g % 3, "col": g, "depth_cm": 10, "sm": sm, "reference": ref})
        )
    return pd.concat(parts, ignore_index=True).sample(frac=1, random_state=seed)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_grouped_matching_equals_matching_each_group(seed):
    from smci_gpu.insitu.matching import mean_std_match_frame

    frame = _cells_frame(seed)
    got = mean_std_match_frame(frame, ["row", "col", "depth_cm"]).to_numpy()
    for _, g in frame.groupby(["row", "col", "depth_cm"]):
        pos = frame.index.get_indexer(g.index)
        want = mean_std_match(g.sm.to_numpy(), g.reference.to_numpy())
        np.testing.assert_allclose(got[pos], want, rtol=0, atol=1e-12)


@requires_cuda
def test_grouped_matching_on_cudf_equals_pandas():
    cudf = pytest.importorskip("cudf")
    from smci_gpu.insitu.matching import mean_std_match_frame

    frame = _cells_frame(0)
    keys = ["row", "col", "depth_cm"]
    want = mean_std_match_frame(frame, keys).to_numpy()
    got = mean_std_match_frame(cudf.from_pandas(frame), keys).to_pandas().to_numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_match_cells_on_a_gpu_without_cudf_falls_back_to_pandas(monkeypatch):
    import smci_gpu.prepare as P
    from smci_gpu.errors import DeviceError

    def no_cudf(device):
        raise DeviceError("GPU data frames need cuDF (RAPIDS)")

    monkeypatch.setattr(P, "frame_module", no_cudf)
    frame = _cells_frame(1)
    np.testing.assert_array_equal(P.match_cells(frame, "gpu"), P.match_cells(frame, "cpu"))
