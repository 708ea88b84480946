"""In-situ QC: each flag on hand-built hourly series, and scoring against injected faults."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smci_gpu.errors import InputDataError
from smci_gpu.insitu import qc, qc_score

HOURS = pd.date_range("2018-04-01", periods=24 * 60, freq="h")


def smooth_series(seed: int = 0, level: float = 0.3) -> np.ndarray:
    """A slowly drying series with small noise (no step larger than 0.01)."""
    rng = np.random.default_rng(seed)
    t = np.arange(HOURS.size)
    return level - 0.03 * t / t.size + rng.normal(0, 0.002, t.size)


def run_flags(sm: np.ndarray, **cols) -> pd.DataFrame:
    return qc.flag(pd.DataFrame({"sm": sm, **cols}, index=HOURS[: sm.size]))


DRY = np.zeros(HOURS.size)  # a rain gauge that saw no rain


def run_dry(sm: np.ndarray, **cols) -> pd.DataFrame:
    """The QC with in-situ precipitation all zero: no step can be put down to rain."""
    return run_flags(sm, precipitation=DRY[: sm.size], **cols)


def test_clean_series_raises_no_flag():
    assert not run_flags(smooth_series())["any"].any()


def test_range_flags():
    sm = smooth_series()
    sm[100:105] = -0.02
    sm[300:302] = 0.7
    f = run_flags(sm)
    assert np.flatnonzero(f.C01).tolist() == list(range(100, 105))
    assert np.flatnonzero(f.C02).tolist() == [300, 301]


def test_spike_is_one_hour_and_neighbours_stay_clean():
    sm = smooth_series()
    sm[500] *= 1.7
    f = run_flags(sm)
    assert np.flatnonzero(f.D06).tolist() == [500]
    assert f["any"].sum() == 1


def test_frozen_soil_flags_where_soil_temperature_is_below_zero():
    temp = np.full(HOURS.size, 5.0)
    temp[200:260] = -1.0
    f = run_flags(smooth_series(), soil_temperature=temp)
    assert np.flatnonzero(f.D01).tolist() == list(range(200, 260))


def test_frozen_flag_is_named_by_the_temperature_that_found_it():
    temp = np.full(HOURS.size, 5.0)
    temp[200:260] = -1.0
    for column, code in [
        ("soil_temperature", "D01"),
        ("air_temperature", "D02"),
        ("model_soil_temperature", "D03"),
    ]:
        f = run_flags(smooth_series(), **{column: temp})
        assert np.flatnonzero(f[code]).tolist() == list(range(200, 260)), column
        assert f["any"].sum() == 60


def test_rain_before_by_hand():
    p = np.array([1.0, 0.0, 2.0, np.nan, 0.5, 0.0])
    got = qc.rain_before(p, hours=2)
    np.testing.assert_array_equal(got[:3], [1.0, 1.0, 2.0])
    assert np.isnan(got[3]) and np.isnan(got[4])  # a missing hour in the window
    assert got[5] == 0.5


def test_rise_without_rain_d04_in_situ_d05_model():
    sm = smooth_series()
    sm[600:] += 0.03  # a lasting rise of 0.03 in one hour (too small for a break)
    dry, wet = np.zeros(HOURS.size), np.zeros(HOURS.size)
    wet[590:600] = 1.0  # 10 mm in the ten hours before it
    f = run_flags(sm, model_precipitation=dry)
    assert np.flatnonzero(f.D05).tolist() == [600] and not f.D04.any()
    assert np.flatnonzero(run_flags(sm, precipitation=dry).D04).tolist() == [600]
    assert not run_flags(sm, model_precipitation=wet)["any"].any()
    # unknown precipitation raises nothing
    assert not run_flags(sm, precipitation=np.full(HOURS.size, np.nan))["any"].any()


def test_unpaired_upward_step_after_enough_rain_is_not_a_break():
    sm = smooth_series()
    sm[1000:] += 0.08  # would need 8 mm to explain it (a 10 cm layer wetted by 0.08)
    rain = np.zeros(HOURS.size)
    rain[990:1000] = 0.5  # 5 mm: not enough
    assert run_flags(sm, precipitation=rain).D08[1000:].all()
    rain[990:1000] = 1.0  # 10 mm
    f = run_flags(sm, precipitation=rain)
    assert not (f.D07.any() or f.D08.any() or f.D04.any())
    # at 80 cm the same rain cannot wet the 80 cm above the sensor by 0.08 (64 mm needed)
    deep = qc.flag(pd.DataFrame({"sm": sm, "precipitation": rain}, HOURS), depth_cm=80)
    assert deep.D08[1000:].all()
    # nor does it start a shift that a later drop would end; the drop undoes a shift that
    # rain may have begun, so neither side of it is known to be shifted
    sm[1200:] -= 0.08
    f = run_flags(sm, precipitation=rain)
    assert not f.D08.any() and np.flatnonzero(f.D07).tolist() == [1200]


def test_break_segment_is_flagged_whole_even_across_a_gap():
    sm = smooth_series()
    sm[400:900] += 0.08
    sm[600:660] = np.nan  # the logger was off inside the shifted stretch
    f = run_dry(sm)
    assert f.D08[400:900].all()
    assert not f.D08[:400].any() and not f.D08[900:].any()
    assert not f.D07.any()


def test_negative_break_flags_d07():
    sm = smooth_series()
    sm[300:700] -= 0.07
    f = run_dry(sm)
    assert f.D07[300:700].all() and f.D07.sum() == 400


def test_shift_running_into_an_interruption_is_flagged_up_to_it():
    sm = smooth_series()
    sm[400:800] += 0.08  # never seen to end: the record breaks off at 800 ...
    sm[800:900] = np.nan
    f = run_dry(sm)  # ... and resumes at the old level
    assert f.D08[400:800].all() and not f.D08[900:].any()


def test_shift_ending_after_an_interruption_is_flagged_since_it():
    sm = smooth_series()
    sm[300:400] = np.nan
    sm[400:700] -= 0.08  # the record resumes low; the step at 700 undoes the shift
    f = run_dry(sm)
    assert f.D07[400:700].all() and not f.D07[:300].any() and not f.D07[701:].any()


def test_break_soon_after_an_interruption_is_its_own_shift():
    # Snowmelt wets the soil while the record is off: it resumes higher. A negative break a
    # few days later brings it back near the old level and is undone later: the break is
    # the shift, not the days between the gap and the break's first step.
    sm = smooth_series()
    sm[300:400] = np.nan
    sm[400:] += 0.08
    sm[500:800] -= 0.08
    f = run_dry(sm)
    assert f.D07[500:800].all() and not f.D07[801:].any()
    assert not (f.D07[400:500].any() or f.D08[400:500].any())


def test_record_that_starts_shifted_is_flagged_up_to_the_step_that_ends_it():
    # The step that began the shift happened before the record starts.
    sm = smooth_series()
    sm[:300] -= 0.08
    f = run_dry(sm)
    assert np.flatnonzero(f.D07).tolist() == list(range(300))
    assert not f.D08.any()


def test_hidden_partner_marks_the_nearer_end_only_within_max_segment():
    sm = smooth_series()
    sm[1000:] += 0.08  # never undone before the record ends, 440 h later
    neg, pos = qc.flag_breaks(sm, 0.1, rain_24h=DRY)
    assert np.flatnonzero(pos).tolist() == list(range(1000, sm.size)) and not neg.any()
    # the same step with both ends farther than max_segment: a lasting change of level
    # (a sensor replaced) is not a segment; only the step itself is flagged
    neg, pos = qc.flag_breaks(sm, 0.1, max_segment=400, rain_24h=DRY)
    assert np.flatnonzero(pos).tolist() == [1000] and not neg.any()


def test_steps_farther_apart_than_max_segment_in_time_do_not_pair_across_a_gap():
    # 30 days apart in time but only a few valid values apart: a long gap between them
    sm = smooth_series()
    sm[300:1000] = np.nan
    sm[200:300] += 0.08
    sm[1000:1100] += 0.08
    neg, pos = qc.flag_breaks(sm, 0.1, max_segment=24 * 20, rain_24h=DRY)
    assert pos[200:300].all() and pos[1000:1100].all()
    assert not neg.any()


def test_frozen_spell_reaches_the_sensors_own_thaw_and_freeze_steps():
    # The model soil temperature says frozen for hours 500-700; the sensor thaws 50 h
    # later (its reading rises in one step) and froze 20 h earlier (it dropped).
    temp = np.full(HOURS.size, 5.0)
    temp[500:700] = -2.0
    sm = smooth_series()
    sm[480:750] *= 0.45
    f = run_dry(sm, soil_temperature=temp)
    assert np.flatnonzero(f.D01).tolist() == list(range(480, 750))
    assert not (f.D07.any() or f.D08.any())
    # a thaw farther from the spell than frozen_edge_hours is left to the break test:
    # the low values before the step are a negative shift whose start the spell hides
    cfg = qc.QCConfig(frozen_edge_hours=24)
    g = qc.flag(
        pd.DataFrame({"sm": sm, "soil_temperature": temp, "precipitation": DRY}, HOURS), cfg
    )
    assert np.flatnonzero(g.D01).tolist() == list(range(480, 700))
    assert np.flatnonzero(g.D07).tolist() == list(range(700, 750))


def test_plateau_low_and_high():
    sm = smooth_series()
    sm[100:300] = sm[100]  # 200 h constant, above the median (early, wetter)
    sm[1000:1200] = 0.2  # below the median
    f = run_flags(sm)
    assert f.D10[100:300].all() and f.D09[1000:1200].all()
    assert f.D09.sum() == 200 and f.D10.sum() == 200


def test_percent_units_and_bad_index_are_clear_errors():
    with pytest.raises(InputDataError, match="percent"):
        run_flags(smooth_series() * 100)
    df = pd.DataFrame({"sm": smooth_series()[:10]}, index=HOURS[:10][::-1])
    with pytest.raises(InputDataError, match="sorted and unique"):
        qc.flag(df, where="station X")
    dup = pd.DataFrame({"sm": [0.2, 0.2]}, index=[HOURS[0], HOURS[0]])
    with pytest.raises(InputDataError, match="station Y"):
        qc.flag(dup, where="station Y")


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(50, 1000),
    st.floats(0.05, 0.12),
    st.sampled_from([-1, 1]),
)
def test_any_isolated_break_is_found(seed, start, size, sign):
    sm = smooth_series(seed)
    end = min(start + 24 * 20, sm.size - 50)
    sm[start:end] += sign * size
    f = run_dry(sm)
    col = f.D08 if sign > 0 else f.D07
    assert col[start:end].all()
    # the rise that ends a negative break lies outside it: D04 (a rise without rain)
    assert f["any"].sum() == end - start + (sign < 0)
    assert np.flatnonzero(f.D04).tolist() == [start if sign > 0 else end]


def test_score_series_hand_worked():
    idx = HOURS[:10]
    flags = pd.DataFrame(False, index=idx, columns=[*qc.FLAGS, "any"])
    flags.loc[idx[2:5], "D06"] = True  # 3 spike flags: hours 2, 3, 4
    flags.loc[idx[7], "C01"] = True
    flags["any"] = flags[list(qc.FLAGS)].any(axis=1)
    faults = pd.DataFrame(
        {
            "fault": ["spike", "range"],
            "start": [idx[3], idx[6]],
            "end": [idx[4], idx[8]],
        }
    )
    delivered = np.ones(10, bool)
    delivered[8] = False  # a gap hour is not scored
    s = qc_score.score_series(flags, delivered, faults)
    assert s["spike"] == {"fault_hours": 2, "removed": 2, "flagged": 3, "flagged_in_fault": 2}
    assert s["range"] == {"fault_hours": 2, "removed": 1, "flagged": 1, "flagged_in_fault": 1}
    total = qc_score.summarise([s, s])
    assert total["spike"]["precision"] == pytest.approx(2 / 3)
    assert total["range"]["recall"] == pytest.approx(0.5)
    assert total["all"]["fault_hours"] == 8


def test_prepare_scores_qc_against_the_twin_worlds_faults(tmp_path):
    """A two-year world with many faults: the prepare report scores every fault type."""
    from smci_gpu import demo
    from smci_gpu.config import load_config
    from smci_gpu.prepare import build_table

    spec = dataclasses.replace(
        demo.TINY,
        start="2017-01-01",
        end="2018-12-31",
        spinup_days=30,
        n_stations=12,
        faults_per_series=3.0,
        production_days=("2018-06-01",),
    )
    demo.generate(tmp_path, spec)
    (tmp_path / "smci.toml").write_text(demo.demo_config_toml(spec))
    cfg = load_config(tmp_path / "smci.toml", workdir=tmp_path)
    _, report = build_table(cfg)
    assert report["qc_inputs"]["precipitation"] == "ERA5-Land tp (D05)"
    assert report["qc_flag_hours"]["D03"] > 0 and report["qc_flag_hours"]["D01"] == 0
    scores = report["qc_vs_injected_faults"]
    assert set(scores) == {*qc_score.FLAGS_FOR_FAULT, "all"}
    for fault in ("range", "spike", "plateau", "frozen", "break", "all"):
        assert scores[fault]["fault_hours"] > 0
        assert scores[fault]["recall"] >= 0.9, (fault, scores[fault])
        assert scores[fault]["precision"] >= 0.9, (fault, scores[fault])
    # Breaks: recall 0.931, precision 0.972 here. What is missed is mostly a break nested
    # inside an opposite one (the values between are right, though the manifest lists
    # them) and an end step masked by a rain-driven rise.
    assert scores["break"]["recall"] >= 0.9 and scores["break"]["precision"] >= 0.9


def test_upward_step_alone_is_no_break_without_precipitation():
    # With no rain data a sharp lasting rise may be a wetting front; a drop may not.
    up, down = smooth_series(), smooth_series()
    up[1000:] += 0.08
    down[1000:] -= 0.08
    assert not run_flags(up)["any"].any()
    assert np.flatnonzero(run_flags(down).D07).tolist() == list(range(1000, down.size))


@pytest.mark.parametrize(
    "archive", ["ismn_header_values_scan_soilscape.zip", "ismn_ceop_cosmos.zip"]
)
def test_real_ismn_series_raise_few_breaks(shared_data, archive):
    """Real hourly records (SCAN, SOILSCAPE, COSMOS; no precipitation given) are full of
    rain-driven steps, and COSMOS Barrow lies on permafrost. ISMN's own QC marks D07/D08
    on < 0.1 % of their hours; the break test here must stay near that, not mistake
    wetting or thaw for shifts. (Earlier versions of it flagged 10-30 % of some.)"""
    from smci_gpu.io import ismn

    records = ismn.read_ismn(shared_data / "ismn" / archive)
    # No soil temperature comes with them: ISMN's own frozen-soil flags stand in for the
    # modelled soil temperature of the engine's D03 (-1 °C where flagged, else 5 °C).
    frozen = records.ismn_flag.str.contains("D01|D02|D03")
    records = records.assign(t=np.where(frozen, -1.0, 5.0))
    for station, g in records.groupby("station_id"):
        g = g.set_index("time").sort_index()
        g = g[~g.index.duplicated()]
        sm = g["sm"]
        hours = pd.date_range(sm.index[0], sm.index[-1], freq="h")
        t = g["t"].reindex(hours).ffill().to_numpy()
        frame = pd.DataFrame({"sm": sm.reindex(hours), "model_soil_temperature": t})
        f = qc.flag(frame, where=station)
        valid = sm.reindex(hours).notna().to_numpy()
        share = ((f.D07 | f.D08).to_numpy() & valid).sum() / valid.sum()
        ismn_share = g.ismn_flag.str.contains("D07|D08").mean()
        assert ismn_share < 0.001, station
        assert share < 0.02, (station, share)
        if station.startswith("SCAN"):  # 2007-2013, hourly: no break flagged at all
            assert share == 0, station


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(100, 400),
    st.integers(100, 300),
    st.integers(48, 600),
    st.floats(0.05, 0.12),
    st.sampled_from([-1, 1]),
)
def test_break_whose_start_a_frozen_spell_hides_is_removed(seed, s0, length, tail, size, sign):
    # The model says frozen over [s0, s1); a break began unseen inside the spell and
    # ends at b1, after it: every hour from the spell's start to the break's end goes.
    sm = smooth_series(seed)
    s1 = s0 + length
    b1 = s1 + tail
    sm[s0 + length // 2 : b1] += sign * size
    temp = np.full(HOURS.size, 5.0)
    temp[s0:s1] = -1.0
    f = run_dry(sm, model_soil_temperature=temp)
    assert f["any"][s0:b1].all()
    assert not f["any"][:s0].any() and not f["any"][b1 + 1 :].any()


def test_missing_rain_hours_count_as_possible_rain():
    sm = smooth_series()
    sm[1000:] += 0.08
    gauge = np.zeros(HOURS.size)
    gauge[995] = np.nan  # the gauge missed an hour in the day before the rise
    f = run_flags(sm, precipitation=gauge)
    assert not (f.D08.any() or f.D04.any())


def test_bitmask_round_trip_and_bit_values():
    f = run_dry(smooth_series())
    f.loc[f.index[[3, 7]], "D07"] = True
    f.loc[f.index[7], "C01"] = True
    bits = qc.to_bitmask(f)
    assert bits.dtype == np.uint16
    assert bits[3] == qc.BITS["D07"] == 1 << qc.FLAGS.index("D07")
    assert bits[7] == qc.BITS["D07"] | 1  # C01 is bit 0
    back = qc.from_bitmask(bits)
    for code in qc.FLAGS:
        np.testing.assert_array_equal(back[code], f[code].to_numpy())
    assert back["any"].sum() == 2
