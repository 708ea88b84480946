"""The validation report's tables and figures: units, legends, flag codes, readable text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smci_gpu.config import load_config
from smci_gpu.evaluate import report as rep
from smci_gpu.insitu import qc


def test_counts_carry_thousands_separators():
    assert rep._cell(np.int64(1234567), "{:.3f}") == "1,234,567"
    assert rep._cell(12345, "{:.3f}") == "12,345"
    assert rep._cell(12345.0, "{:.3f}") == "12,345"
    assert rep._cell(0.0412, "{:.3f}") == "0.041"
    assert rep._cell(np.bool_(True), "{:.3f}") == "True"


def test_cell_text_is_black_on_light_and_white_on_dark():
    """WCAG relative luminance: yellow (0.93) takes black, navy (0.04) white."""
    import matplotlib

    assert rep._text_colour((1.0, 1.0, 0.0, 1.0)) == "black"
    assert rep._text_colour((0.0, 0.0, 0.5, 1.0)) == "white"
    viridis = matplotlib.colormaps["viridis"]
    assert rep._text_colour(viridis(1.0)) == "black"  # the yellow end
    assert rep._text_colour(viridis(0.0)) == "white"  # the dark purple end


def test_every_ismn_code_and_every_qc_flag_is_explained():
    """The legend covers C01–C03 and D01–D10 (Dorigo et al. 2013) and all QC flags."""
    ismn = {f"C0{i}" for i in (1, 2, 3)} | {f"D{i:02d}" for i in range(1, 11)}
    assert set(rep.ISMN_FLAGS) == ismn
    assert set(qc.FLAGS) <= set(rep.ISMN_FLAGS)
    table = rep.qc_flag_table({"C01": 1200, "D06": 3, "X99": 1})
    rows = table.set_index("flag")
    assert list(rows.index[:13]) == list(rep.ISMN_FLAGS)
    assert rows.loc["C01", "hours flagged"] == 1200
    assert rows.loc["C03", "hours flagged"] == "not tested"
    assert "not an ISMN code" in rows.loc["X99"].iloc[-1]
    assert "spike" in rows.loc["D06"].iloc[-1]


def test_metric_tables_give_units_and_the_published_range_as_a_column():
    rows = []
    for source, ub in (("model", 0.040), ("era5land", 0.060)):
        rows.append(
            {
                "experiment": "year",
                "layer_cm": 30,
                "source": source,
                "test_rows": 12345,
                "ubrmse": ub,
                "r": 0.9,
                "bias": 0.001,
                "mae": 0.03,
                "r2": 0.8,
            }
        )
    page = rep.metrics_section(pd.DataFrame(rows))
    assert "ubRMSE (m³/m³)" in page and "R² (–)" in page and "MAE (m³/m³)" in page
    assert "12,345" in page
    # the paper's year-to-year ranges (Li et al. 2022): a cell in the row, not a footnote
    assert "<td class=pub>0.041–0.052</td>" in page
    assert "<td class=pub>0.883–0.919</td>" in page


def test_tuning_section_says_what_the_configured_cell_costs(tmp_path):
    cfg = load_config(workdir=tmp_path, overrides={"forest": {"max_features": 8}})
    tune_dir = tmp_path / "work" / "tune"
    tune_dir.mkdir(parents=True)
    cells = pd.DataFrame(
        [
            {"layer_cm": 70, "max_features": mf, "min_samples_leaf": msl, "rmse": r}
            for (mf, msl), r in {(8, 20): 0.0565, (25, 5): 0.0500, (8, 5): 0.052}.items()
        ]
        + [{"layer_cm": 70, "max_features": 25, "min_samples_leaf": 20, "rmse": 0.051}]
    )
    cells.to_csv(tune_dir / "tune_station.csv", index=False)
    out = tmp_path / "report"
    out.mkdir()
    body = rep.tuning_section(cfg, tune_dir, out)
    assert "+13.0%" in body  # 0.0565 / 0.0500 − 1
    assert "max_features=8, min_samples_leaf=20" in body
    assert (out / "tune_station_070cm.png").read_bytes()[:4] == b"\x89PNG"
    assert rep.tuning_section(cfg, tmp_path / "nothing", out) is None


@pytest.mark.parametrize("n_layers", [1, 2])
def test_timeseries_legend_sits_outside_the_panels(tmp_path, monkeypatch, n_layers):
    """The legend's box overlaps no panel; every panel's y axis names its unit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = pd.date_range("2018-01-01", periods=400, freq="D")
    frames = []
    for point in ("p1", "p2"):
        for depth in (10, 100)[:n_layers]:
            frames.append(
                pd.DataFrame(
                    {
                        "experiment": "year",
                        "stations": point,
                        "layer_cm": depth,
                        "time": days,
                        "obs": 0.2,
                        "model": 0.21,
                        "era5land": 0.25,
                    }
                )
            )
    captured = {}
    real_save = rep._save

    def keep(fig, path):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        captured["legend"] = fig.legends[0].get_window_extent(renderer)
        captured["axes"] = [ax.get_window_extent(renderer) for ax in fig.axes]
        captured["ylabels"] = [
            ax.get_ylabel() for ax in fig.axes if ax.get_subplotspec().is_first_col()
        ]
        return real_save(fig, path)

    monkeypatch.setattr(rep, "_save", keep)
    rep.timeseries_figure(pd.concat(frames), "year", tmp_path / "ts.png")
    plt.close("all")
    assert not any(captured["legend"].overlaps(box) for box in captured["axes"])
    assert set(captured["ylabels"]) == {"soil moisture (m³/m³)"}
