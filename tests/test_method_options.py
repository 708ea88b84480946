"""Method options beyond the paper: bilinear ERA5-Land upsampling, matching methods, and
how a change of option makes tables and models stale."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.interpolate import RegularGridInterpolator
from scipy.stats import rankdata
from smci_gpu.kernels.upsample import linear_weights

from smci_gpu import kernels as K
from smci_gpu.config import Config, load_config
from smci_gpu.errors import InputDataError, ModelError
from smci_gpu.insitu.matching import cdf_match, match_frame, mean_std_match_frame

# ERA5-Land-like 0.1° centres, latitude descending as the CDS delivers them
LAT = np.round(np.arange(41.0, 39.95, -0.1), 2)
LON = np.round(np.arange(114.0, 115.05, 0.1), 2)
# 30″ pixel centres reaching past the outermost ERA5-Land centres (edges clamped)
FLAT = np.arange(39.9, 41.1, 1 / 120) + 1 / 240
FLON = np.arange(113.95, 115.1, 1 / 120) + 1 / 240


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _scipy_bilinear(field, lat, lon):
    """SciPy's linear interpolation on the ascending grid, outside points clamped."""
    f = RegularGridInterpolator((LAT[::-1], LON), field[::-1].astype(np.float64))
    pts = np.stack([np.clip(lat, LAT.min(), LAT.max()), np.clip(lon, LON.min(), LON.max())], -1)
    return f(pts)


def test_linear_weights_hand_worked():
    i0, i1, w = linear_weights(np.array([10.0, 10.1, 10.2]), np.array([10.0, 10.025, 10.15, 9.9]))
    np.testing.assert_array_equal(i0, [0, 0, 1, 0])
    np.testing.assert_array_equal(i1, [1, 1, 2, 1])
    np.testing.assert_allclose(w, [0.0, 0.25, 0.5, 0.0])  # 9.9: clamped to the first centre
    # descending source: indices refer to the original order
    i0, i1, w = linear_weights(np.array([10.2, 10.1, 10.0]), np.array([10.175]))
    assert {int(i0[0]), int(i1[0])} == {0, 1}
    assert (1 - w[0]) * [10.2, 10.1][i0[0]] + w[0] * [10.2, 10.1][i1[0]] == pytest.approx(10.175)


def test_linear_weights_wrap_longitudes():
    src = np.arange(0.0, 360.0, 0.1)  # 0..359.9
    i0, i1, w = linear_weights(src, np.array([-179.95, 114.05]), period=360.0)
    np.testing.assert_array_equal(i0, [1800, 1140])
    np.testing.assert_allclose(w, [0.5, 0.5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bilinear_assembly_equals_scipy(rng, dtype):
    coarse = rng.random((3, LAT.size, LON.size)).astype(dtype)
    fine = rng.random((2, FLAT.size, FLON.size)).astype(dtype)
    iy0, iy1, wy = linear_weights(LAT, FLAT)
    ix0, ix1, wx = linear_weights(LON, FLON, period=360.0)
    rows, cols = rng.integers(0, FLAT.size, 300), rng.integers(0, FLON.size, 300)
    rows[:2], cols[:2] = [0, FLAT.size - 1], [0, FLON.size - 1]  # corners: clamped
    kind, index = np.array([0, 1, 0]), np.array([2, 1, 0])
    out = K.assemble_features(
        coarse, iy0, ix0, fine, rows, cols, kind, index, bilinear=(iy1, wy, ix1, wx)
    )
    for col, var in ((0, 2), (2, 0)):
        want = _scipy_bilinear(coarse[var], FLAT[rows], FLON[cols])
        np.testing.assert_allclose(out[:, col], want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out[:, 1], fine[1, rows, cols].astype(np.float32))


def test_bilinear_at_cell_centres_is_the_cell_value(rng):
    coarse = rng.random((1, LAT.size, LON.size)).astype(np.float32)
    iy0, iy1, wy = linear_weights(LAT, LAT)
    ix0, ix1, wx = linear_weights(LON, LON)
    r, c = np.meshgrid(np.arange(LAT.size), np.arange(LON.size), indexing="ij")
    out = K.assemble_features(
        coarse,
        iy0,
        ix0,
        np.zeros((1, LAT.size, LON.size), np.float32),
        r.ravel(),
        c.ravel(),
        np.array([0]),
        np.array([0]),
        bilinear=(iy1, wy, ix1, wx),
    )
    np.testing.assert_allclose(out[:, 0], coarse[0].ravel(), rtol=1e-7)


def test_predictor_builder_bilinear_on_the_tiny_world(tiny_world):
    from smci_gpu.features import Predictors

    cfg = load_config(
        workdir=tiny_world,
        overrides={"device": "cpu", "predictors": {"era5_upsampling": "bilinear"}},
    )
    day = pd.Timestamp("2018-05-10")
    pred = Predictors.load(cfg, day, day)
    rows, cols = np.nonzero(pred.land_mask())
    x = pred.features(day, rows, cols)
    for name in ("swvl1", "t2m"):
        v = pred.era_vars.index(name)
        f = RegularGridInterpolator(
            (pred.era_lat, pred.era_lon)
            if pred.era_lat[0] < pred.era_lat[-1]
            else (pred.era_lat[::-1], pred.era_lon),
            pred.coarse[0, v] if pred.era_lat[0] < pred.era_lat[-1] else pred.coarse[0, v][::-1],
        )
        lat, lon = pred.grid.lat[rows], pred.grid.lon[cols]
        lo, hi = np.sort(pred.era_lat[[0, -1]])
        pts = np.stack([np.clip(lat, lo, hi), np.clip(lon, *pred.era_lon[[0, -1]])], -1)
        np.testing.assert_allclose(x[:, cfg.features.index(name)], f(pts), rtol=1e-5)
    # the fine columns are the nearest builder's
    near = Predictors.load(load_config(workdir=tiny_world, overrides={"device": "cpu"}), day, day)
    xn = near.features(day, rows, cols)
    dem = cfg.features.index("dem")
    np.testing.assert_array_equal(x[:, dem], xn[:, dem])
    assert not np.allclose(x[:, cfg.features.index("swvl1")], xn[:, cfg.features.index("swvl1")])


def test_cdf_match_hand_worked():
    x = np.array([0.30, 0.10, 0.20, np.nan, 0.25, 0.05])
    ref = np.array([0.5, 0.3, 0.4, 0.9, np.nan, 0.2])
    # common days: x = .30 .10 .20 .05, ref = .5 .3 .4 .2 → sorted knots (.05,.2) (.1,.3)
    # (.2,.4) (.3,.5); .25 lies halfway between .2 and .3 → .45
    got = cdf_match(x, ref, min_days=3)
    np.testing.assert_allclose(got, [0.5, 0.3, 0.4, np.nan, 0.45, 0.2])
    assert np.isnan(cdf_match(x, ref, min_days=5)).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_cdf_match_gives_the_reference_distribution_and_keeps_ranks(seed):
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 0.05, 200)
    ref = 0.2 + 0.1 * rng.beta(2, 5, 200)
    got = cdf_match(x, ref)
    np.testing.assert_allclose(np.sort(got), np.sort(ref), atol=1e-12)
    np.testing.assert_array_equal(rankdata(got), rankdata(x))


def _frame(rng):
    frame = pd.DataFrame(
        {
            "row": np.repeat([0, 0, 1], 40),
            "col": np.repeat([3, 4, 3], 40),
            "depth_cm": 10,
            "sm": rng.random(120) * 0.3,
            "reference": 0.2 + rng.random(120) * 0.1,
        }
    )
    frame.loc[80:, "sm"] = 0.25  # a constant series: unmatched by every method
    frame.loc[5, "reference"] = np.nan
    return frame


def test_match_frame_methods(rng):
    frame = _frame(rng)
    keys = ["row", "col", "depth_cm"]
    ms = match_frame(frame, keys, "mean_std")
    pd.testing.assert_series_equal(ms, mean_std_match_frame(frame, keys))
    none = match_frame(frame, keys, "none")
    np.testing.assert_array_equal(none[:80], frame.sm[:80])
    assert none[80:].isna().all() and ms[80:].isna().all()
    cdf = match_frame(frame, keys, "cdf")
    for lo in (0, 40):
        g = frame.iloc[lo : lo + 40]
        np.testing.assert_allclose(cdf[lo : lo + 40], cdf_match(g.sm, g.reference))
    assert cdf[80:].isna().all()
    with pytest.raises(ValueError, match="unknown matching method"):
        match_frame(frame, keys, "zscore")


def test_default_options_keep_the_hash_and_others_change_it():
    base = Config()
    payload = base.model_dump(
        mode="json", exclude={"workdir", "device", "dask", "metadata", "lock"}
    )
    assert "predictors" in payload  # the options are part of the config ...
    same = Config(predictors={"era5_upsampling": "nearest"}, matching={"method": "mean_std"})
    assert same.hash() == base.hash()  # ... but the paper's choices hash as before
    hashes = {
        base.hash(),
        Config(predictors={"era5_upsampling": "bilinear"}).hash(),
        Config(matching={"method": "none"}).hash(),
        Config(matching={"method": "cdf"}).hash(),
    }
    assert len(hashes) == 4


def test_unknown_option_values_are_config_errors(tmp_path):
    from smci_gpu.errors import ConfigError

    (tmp_path / "smci.toml").write_text('[predictors]\nera5_upsampling = "cubic"\n')
    with pytest.raises(ConfigError, match="era5_upsampling"):
        load_config(workdir=tmp_path)


def test_table_and_models_of_another_option_are_stale(trained, tmp_path):
    import shutil

    from smci_gpu.model.train import load_layer, load_table

    wd = tmp_path / "w"
    shutil.copytree(trained, wd, ignore=shutil.ignore_patterns("product"))
    paper = load_config(workdir=wd, overrides={"device": "cpu"})
    assert load_table(paper).attrs["method_options"] == paper.method_options()
    assert json.loads((wd / "models/layer_010cm/card.json").read_text())["method_options"] == {
        "era5_upsampling": "nearest",
        "matching_method": "mean_std",
    }
    load_layer(paper, 10)
    for override in (
        {"predictors": {"era5_upsampling": "bilinear"}},
        {"matching": {"method": "none"}},
    ):
        other = load_config(workdir=wd, overrides={"device": "cpu", **override})
        with pytest.raises(InputDataError, match="re-run `smci prepare`"):
            load_table(other)
        with pytest.raises(ModelError, match="re-run `smci train`"):
            load_layer(other, 10)
