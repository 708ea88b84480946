"""Detail measures (smci_gpu.evaluate.detail) against values worked by hand."""

import numpy as np
import pytest

from smci_gpu.evaluate.detail import detail_measures, edge_jumps, within_cell_std

# 4 × 4 fine pixels in 2 × 2 coarse cells of 2 × 2 pixels each
IY = IX = np.array([0, 0, 1, 1])


def test_blocky_map_has_no_spread_and_jumps_only_at_borders():
    # cells: 0.1 | 0.2 over 0.3 | 0.5
    f = np.kron(np.array([[0.1, 0.2], [0.3, 0.5]]), np.ones((2, 2)))
    assert within_cell_std(f, IY, IX) == 0.0
    j = edge_jumps(f, IY, IX)
    # border pairs: horizontal, col 1–2: rows 0,1 jump 0.1, rows 2,3 jump 0.2;
    # vertical, row 1–2: cols 0,1 jump 0.2, cols 2,3 jump 0.3 → mean (0.2+0.4+0.4+0.6)/8
    assert j["border"] == pytest.approx(1.6 / 8)
    assert j["inside"] == 0.0 and j["border_over_inside"] == np.inf
    assert (j["n_border"], j["n_inside"]) == (8, 16)  # 24 pairs in a 4 × 4 grid


def test_hand_worked_spread_and_jumps():
    f = np.array(
        [
            [0.0, 0.2, 0.1, 0.1],
            [0.2, 0.4, 0.1, 0.1],
            [0.3, 0.3, 0.5, 0.5],
            [0.3, 0.3, 0.5, np.nan],
        ]
    )
    # cell (0,0): 0, .2, .2, .4 → mean .2, var (.04+0+0+.04)/4 = .02; others constant;
    # cell (1,1) has 3 valid pixels, all 0.5
    assert within_cell_std(f, IY, IX) == pytest.approx(np.sqrt(0.02) / 4)
    j = edge_jumps(f, IY, IX)
    # inside pairs: cell (0,0): h .2, .2; v .2, .2 → 0.8 over 4; cell (0,1): 4 × 0;
    # cell (1,0): 4 × 0; cell (1,1): h (2,2)-(2,3) 0, v (2,2)-(3,2) 0 (NaN pairs dropped)
    assert j["inside"] == pytest.approx(0.8 / 14) and j["n_inside"] == 14
    # border: h col1–2: |.1-.2|, |.1-.4|, |.5-.3|, |.5-.3| = .1+.3+.2+.2;
    # v row1–2: |.3-.2|, |.3-.4|, |.5-.1|, |.5-.1| → .1+.1+.4+.4  → 1.8 over 8
    assert j["border"] == pytest.approx(1.8 / 8) and j["n_border"] == 8
    d = detail_measures(f, IY, IX)
    assert d["jump_ratio"] == pytest.approx((1.8 / 8) / (0.8 / 14))


def test_cells_with_one_valid_pixel_are_left_out():
    f = np.full((4, 4), np.nan)
    f[0, 0] = 1.0  # lone pixel in cell (0,0)
    f[2:, 2:] = [[0.0, 1.0], [0.0, 1.0]]  # cell (1,1): std 0.5
    assert within_cell_std(f, IY, IX) == pytest.approx(0.5)
    assert np.isnan(within_cell_std(np.full((4, 4), np.nan), IY, IX))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="does not match"):
        within_cell_std(np.zeros((3, 4)), IY, IX)


def test_twin_tables_hold_every_metric_and_the_detail_of_the_three_maps():
    import pandas as pd

    from smci_gpu.evaluate.report import twin_detail_table, twin_section, twin_truth_table

    rows = []
    for day, shift in (("20180710", 0.0), ("20180711", 0.02)):
        for source, base in (("model", 0.01), ("era5land", 0.05)):
            rows.append(
                {
                    "day": day,
                    "layer_cm": 10,
                    "source": source,
                    "bias": base + shift,
                    "rmse": 0.03,
                    "ubrmse": 0.02,
                    "r": 0.9,
                    "r2": -0.5 + shift,
                    "cell_std": 0.001 if source == "model" else 0.0,
                    "jump_border": 0.01,
                    "jump_inside": 0.0005,
                }
            )
        rows.append({"day": day, "layer_cm": 10, "source": "truth", "cell_std": 0.02})
    twin = pd.DataFrame(rows)
    truth = twin_truth_table(twin)
    assert truth.loc[0, "bias product (m³/m³)"] == pytest.approx(0.02)  # mean over days
    assert truth.loc[0, "R² ERA5-Land"] == pytest.approx(-0.49)
    assert {"RMSE product (m³/m³)", "ubRMSE ERA5-Land (m³/m³)", "R product"} <= set(truth)
    detail = twin_detail_table(twin)
    assert detail.loc[0, "std within 0.1° cells (m³/m³): truth"] == pytest.approx(0.02)
    assert detail.loc[0, "std within 0.1° cells (m³/m³): ERA5-Land"] == 0.0
    html = twin_section(twin)
    assert "across cell borders" in html and "matching.method" in html
