"""Triple collocation against hand-worked covariances and series of known error variance."""

import numpy as np
import pandas as pd
import pytest

from smci_gpu.evaluate import tc as TC


def test_tiny_exact_example_worked_by_hand():
    # t = [0, 1, 2, 3] (mean 1.5); x = t + [1, -1, -1, 1]; y = 2t + [0, 1, -1, 0]; z = t.
    x = np.array([1.0, 0.0, 1.0, 4.0])
    y = np.array([0.0, 3.0, 3.0, 6.0])
    z = np.array([0.0, 1.0, 2.0, 3.0])
    # Deviations: x [-0.5,-1.5,-0.5,2.5], y [-3,0,0,3], z [-1.5,-0.5,0.5,1.5]; ddof = 1:
    # Qxx = 9/3 = 3, Qyy = 18/3 = 6, Qzz = 5/3, Qxy = 9/3 = 3, Qxz = 5/3, Qyz = 9/3 = 3.
    # σ²x = 3 − 3·(5/3)/3 = 4/3; σ²y = 6 − 3·3/(5/3) = 0.6; σ²z = 5/3 − (5/3)·3/3 = 0.
    res = TC.triple_collocation(x, y, z, min_samples=3)
    assert res.n == 4
    assert res.err_var[0] == pytest.approx(4 / 3)
    assert res.err_var[1] == pytest.approx(0.6)
    # z's error variance is exactly 0: not positive, so undefined with the reason.
    assert np.isnan(res.err_var[2]) and res.reason[2] == TC.REASON_NEG
    # SNR_x = (5/3) / (4/3) → 10·log10(1.25); SNR_y = 5.4 / 0.6 = 9 → 10·log10(9).
    assert res.snr_db[0] == pytest.approx(10 * np.log10(1.25))
    assert res.snr_db[1] == pytest.approx(10 * np.log10(9.0))
    assert res.reason[:2] == ("", "")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_truth_plus_independent_noise_recovers_the_variances(seed):
    rng = np.random.default_rng(seed)
    n = 20_000
    t = rng.normal(0.25, 0.06, n)
    sig = np.array([0.02, 0.03, 0.04])
    beta = np.array([1.0, 0.7, 1.3])
    series = [0.05 * k + beta[k] * t + rng.normal(0, sig[k], n) for k in range(3)]
    res = TC.triple_collocation(*series, min_samples=100)
    # Sampling tolerance from n: each estimate is a combination of sample covariances,
    # whose relative standard error is about sqrt(2/n)·(var / err_var); take 5 of those.
    var = beta**2 * 0.06**2 + sig**2
    tol = 5 * np.sqrt(2 / n) * var
    np.testing.assert_array_less(np.abs(res.err_var - sig**2), tol)
    snr = 10 * np.log10(beta**2 * 0.06**2 / sig**2)
    np.testing.assert_allclose(res.snr_db, snr, atol=0.5)


def test_too_few_samples_and_non_positive_covariance_are_undefined():
    rng = np.random.default_rng(3)
    t = rng.normal(size=50)
    res = TC.triple_collocation(t, t + 0.1, t - 0.1, min_samples=100)
    assert res.n == 50 and np.isnan(res.err_var).all() and res.reason == (TC.REASON_FEW,) * 3
    res = TC.triple_collocation(t, -t + rng.normal(0, 0.1, 50), t, min_samples=10)
    assert np.isnan(res.snr_db).all() and res.reason == (TC.REASON_COV,) * 3


def test_missing_days_are_dropped_in_all_three():
    rng = np.random.default_rng(4)
    t = rng.normal(size=300)
    x, y, z = (t + rng.normal(0, 0.3, 300) for _ in range(3))
    full = TC.triple_collocation(x[:200], y[:200], z[:200], min_samples=100)
    x, y = x.copy(), y.copy()
    x[200:250] = np.nan
    y[250:] = np.nan
    assert TC.triple_collocation(x, y, z, min_samples=100).err_var == pytest.approx(full.err_var)


def test_station_tc_and_summary_count_reasons():
    rng = np.random.default_rng(5)
    frames = []
    for point, n in (("A", 400), ("B", 30)):
        t = rng.normal(0.3, 0.05, n)
        frames.append(
            pd.DataFrame(
                {
                    "experiment": "year",
                    "layer_cm": 10,
                    "stations": point,
                    "lat": 40.0,
                    "lon": 115.0,
                    "model": t + rng.normal(0, 0.01, n),
                    "era5land": t + rng.normal(0, 0.02, n),
                    "obs_raw": t + rng.normal(0, 0.03, n),
                }
            )
        )
    out = TC.station_tc(pd.concat(frames), min_samples=100)
    assert len(out) == 6
    a = out[out.stations == "A"].set_index("series")
    assert (a.reason == "").all()
    assert a.err_std["model"] < a.err_std["era5land"] < a.err_std["obs_raw"]
    summary = TC.summarise(out).set_index("series")
    assert (summary.defined == 1).all() and (summary[TC.REASON_FEW] == 1).all()
    # Read back from tc.csv the empty reasons come as NaN: still counted as defined.
    again = TC.summarise(out.assign(reason=out.reason.replace("", np.nan))).set_index("series")
    pd.testing.assert_frame_equal(again, summary)
