"""`smci report`: one self-contained folder, ``report/index.html`` plus its PNGs.

It reads what the other stages wrote (``work/qc_report.json``, ``work/tune/``,
``work/validation/``, ``models/``, the product) and draws: metrics per layer and
experiment beside the paper's published ranges, obs-vs-prediction density plots,
per-station metric maps, permutation importance, station time series (obs, product,
ERA5-Land), a product map for one day beside ERA5-Land (and the twin world's truth when
it exists), the QC summary with every ISMN flag code explained, and the tuning heat-maps
with the configured cell beside the tuned best. A layer an experiment had to skip appears
in the tables with its reason. Tables give units in their headers and thousands
separators in counts; figures label their axes with units and keep legends off the data.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from smci_gpu import __version__
from smci_gpu.config import Config
from smci_gpu.errors import InputDataError
from smci_gpu.io.atomic import atomic_path
from smci_gpu.pipeline import stage

#: The SMCI1.0 paper's published test scores (ranges over the 10 layers).
PUBLISHED = {
    "year": {
        "ubrmse": (0.041, 0.052),
        "mae": (0.030, 0.036),
        "r": (0.883, 0.919),
        "r2": (0.767, 0.842),
    },
    "station": {
        "ubrmse": (0.045, 0.051),
        "mae": (0.035, 0.038),
        "r": (0.866, 0.893),
        "r2": (0.749, 0.798),
    },
}

#: Units of each metric (soil moisture in m³/m³; R and R² are dimensionless).
METRIC_UNITS = {
    "ubrmse": "m³/m³",
    "rmse": "m³/m³",
    "mae": "m³/m³",
    "bias": "m³/m³",
    "r": "–",
    "r2": "–",
}

#: ISMN quality-flag codes (Dorigo et al. 2013, Vadose Zone J., doi:10.2136/vzj2012.0097,
#: Table 2; ismn.earth "flag overview"); the QC report's legend is built from this table,
#: so a code the QC stage adds is explained as soon as it appears.
ISMN_FLAGS = {
    "C01": "soil moisture below the plausible range (< 0 m³/m³; here qc.sm_min)",
    "C02": "soil moisture above the plausible range (> 0.6 m³/m³; here qc.sm_max)",
    "C03": "soil moisture above the soil's saturation point (porosity from soil maps)",
    "D01": "frozen soil: in-situ soil temperature below 0 °C",
    "D02": "frozen soil: in-situ air temperature below 0 °C",
    "D03": "frozen soil: modelled soil temperature below 0 °C (ISMN: GLDAS; here ERA5-Land)",
    "D04": "rise in soil moisture without in-situ precipitation in the preceding 24 h",
    "D05": "rise in soil moisture without modelled precipitation in the preceding 24 h",
    "D06": "spike: a short departure from the surrounding values",
    "D07": "negative break: a sudden drop in level",
    "D08": "positive break: a sudden jump in level",
    "D09": "low plateau: constant values after a drop",
    "D10": "saturated plateau: constant high values",
}

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.pub{color:#555;background:#fafafa}.skip{color:#a40;font-style:italic}.win{color:#070;font-weight:bold}
.legend td:last-child{text-align:left}
img{max-width:100%;margin:.4em 0}.note{color:#555;font-size:.9em}
"""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    _plt().close(fig)
    return path.name


def _lonlat_axes(ax, nbins: int = 5) -> None:
    """Longitude/latitude labels with units and few enough ticks that labels never touch."""
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    ax.set_xlabel("longitude (°E)", fontsize=8)
    ax.set_ylabel("latitude (°N)", fontsize=8)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]))
        axis.set_major_formatter(FormatStrFormatter("%g"))
    ax.tick_params(labelsize=7)


def _text_colour(rgba) -> str:
    """Black on light cells, white on dark ones (relative luminance, WCAG 2.x)."""

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgba[:3])
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.179 else "white"


def _cell(v: Any, floats: str) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return ""
        return f"{v:,.0f}" if float(v).is_integer() and abs(v) >= 1 else floats.format(v)
    return html.escape(str(v))


def _table(frame: pd.DataFrame, floats: str = "{:.3f}") -> str:
    """An HTML table; NaN cells empty, whole numbers without decimals, strings escaped."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v, floats)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


# --------------------------------------------------------------------------- sections


def _published(exp: str, metric: str) -> str:
    lo_hi = PUBLISHED.get(exp, {}).get(metric)
    return f"{lo_hi[0]:.3f}–{lo_hi[1]:.3f}" if lo_hi else "–"


def _metric_head() -> str:
    """Two header rows: metric (unit) over model / ERA5-Land / SMCI1.0 published."""
    top = ["<th rowspan=2>layer</th>", "<th rowspan=2>test rows</th>"]
    sub = []
    for name, key, cols in (
        ("ubRMSE", "ubrmse", ("model", "ERA5-Land", "SMCI1.0 paper")),
        ("R", "r", ("model", "ERA5-Land", "SMCI1.0 paper")),
        ("bias", "bias", ("model",)),
        ("MAE", "mae", ("model", "SMCI1.0 paper")),
        ("R²", "r2", ("model", "ERA5-Land", "SMCI1.0 paper")),
    ):
        top.append(f"<th colspan={len(cols)}>{name} ({METRIC_UNITS[key]})</th>")
        sub += [f"<th>{c}</th>" for c in cols]
    return f"<tr>{''.join(top)}</tr><tr>{''.join(sub)}</tr>"


def metrics_section(frame: pd.DataFrame) -> str:
    """Per experiment: model and ERA5-Land per layer beside the paper's range, skipped layers.

    The paper publishes one range over its 10 layers per metric (Li et al. 2022); it is
    repeated on every row so each layer reads against it.
    """
    parts = []
    for exp in sorted(frame.experiment.unique()):
        g = frame[frame.experiment == exp]
        rows = []
        pub = {k: f"<td class=pub>{_published(exp, k)}</td>" for k in ("ubrmse", "r", "mae", "r2")}
        for depth, h in g.groupby("layer_cm"):
            if "skipped" in h and h.skipped.notna().any():
                reason = h.skipped.dropna().iloc[0]
                rows.append(
                    f"<tr><td>{depth} cm</td><td colspan=13 class=skip>skipped: "
                    f"{html.escape(str(reason))}</td></tr>"
                )
                continue
            # Station experiments may repeat with other splits: show the mean over repeats.
            m, e = (h[h.source == s].mean(numeric_only=True) for s in ("model", "era5land"))
            win = lambda a, b, low: " class=win" if (a < b if low else a > b) else ""  # noqa: E731
            rows.append(
                f"<tr><td>{depth} cm</td><td>{int(m.test_rows):,}</td>"
                f"<td{win(m.ubrmse, e.ubrmse, True)}>{m.ubrmse:.3f}</td><td>{e.ubrmse:.3f}</td>"
                f"{pub['ubrmse']}"
                f"<td{win(m.r, e.r, False)}>{m.r:.3f}</td><td>{e.r:.3f}</td>{pub['r']}"
                f"<td>{m.bias:+.3f}</td><td>{m.mae:.3f}</td>{pub['mae']}"
                f"<td>{m.r2:.3f}</td><td>{e.r2:.3f}</td>{pub['r2']}"
                "</tr>"
            )
        parts.append(
            f"<h3>{exp}-to-{exp} experiment</h3><table>{_metric_head()}{''.join(rows)}</table>"
            "<p class=note>Bold green: the model beats ERA5-Land's matched layer on the same "
            "test rows. SMCI1.0 paper: the published range over its 10 layers for the same "
            "experiment (Li et al. 2022, ESSD 14, 5267).</p>"
        )
    return "".join(parts)


def density_figure(pred: pd.DataFrame, experiment: str, path: Path) -> str:
    """Obs vs model, one hexbin panel per layer."""
    plt = _plt()
    g = pred[pred.experiment == experiment]
    layers = sorted(g.layer_cm.unique())
    ncol = min(5, len(layers))
    nrow = -(-len(layers) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.6 * nrow), squeeze=False)
    lo, hi = np.nanpercentile(np.r_[g.obs, g.model], [0.5, 99.5])
    for ax, depth in zip(axes.flat, layers, strict=False):
        h = g[g.layer_cm == depth]
        ax.hexbin(h.obs, h.model, gridsize=40, extent=(lo, hi, lo, hi), mincnt=1, bins="log")
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(f"{depth} cm", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(layers) :]:
        ax.axis("off")
    fig.supxlabel("in-situ (matched), m³/m³", fontsize=9)
    fig.supylabel("model, m³/m³", fontsize=9)
    fig.suptitle(f"{experiment}-to-{experiment}: test rows", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def station_map_figure(stations: pd.DataFrame, experiment: str, path: Path) -> str:
    """Per test point, mean over layers: model R and model − ERA5-Land ubRMSE."""
    plt = _plt()
    g = stations[stations.experiment == experiment]
    mean = g.groupby(["stations", "source"])[["lat", "lon", "r", "ubrmse"]].mean().reset_index()
    m = mean[mean.source == "model"].set_index("stations")
    e = mean[mean.source == "era5land"].set_index("stations").reindex(m.index)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    sc = axes[0].scatter(m.lon, m.lat, c=m.r, cmap="viridis", vmin=0.5, vmax=1, s=40)
    fig.colorbar(sc, ax=axes[0], label="R, model (–)")
    diff = m.ubrmse - e.ubrmse
    lim = float(np.nanmax(np.abs(diff))) or 1e-3
    sc = axes[1].scatter(m.lon, m.lat, c=diff, cmap="RdBu_r", vmin=-lim, vmax=lim, s=40)
    fig.colorbar(sc, ax=axes[1], label="ubRMSE model − ERA5-Land (m³/m³)\nblue: model better")
    for ax in axes:
        ax.set_aspect("equal")
        _lonlat_axes(ax)
    fig.suptitle(f"{experiment}-to-{experiment}: per test point, mean over layers", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def importance_figure(imp: pd.DataFrame, path: Path) -> str:
    """Heat-map of permutation importance (RMSE increase), features × layers."""
    plt = _plt()
    grid = imp.pivot_table(index="feature", columns="layer_cm", values="importance")
    grid = grid.loc[grid.mean(axis=1).sort_values(ascending=False).index]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(grid) + 1.5))
    im = ax.imshow(grid.values * 1000, cmap="magma_r", aspect="auto")
    ax.set_yticks(range(len(grid)), grid.index, fontsize=8)
    ax.set_xticks(range(grid.shape[1]), [f"{c} cm" for c in grid.columns], fontsize=8)
    fig.colorbar(im, ax=ax, label="RMSE increase when permuted (0.001 m³/m³)")
    ax.set_title(f"permutation importance ({imp.experiment.iloc[0]} test rows)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def timeseries_figure(pred: pd.DataFrame, experiment: str, path: Path, n: int = 3) -> str:
    """Obs, model and ERA5-Land at the ``n`` best-covered test points, top and deep layer.

    One legend above the panels (never over data), soil moisture in m³/m³ on the y axis,
    concise date labels on the shared time axis.
    """
    import matplotlib.dates as mdates

    plt = _plt()
    g = pred[pred.experiment == experiment]
    layers = sorted(g.layer_cm.unique())
    layers = [layers[0], layers[-1]] if len(layers) > 1 else layers
    points = g[g.layer_cm.isin(layers)].stations.value_counts().index[:n]
    fig, axes = plt.subplots(
        len(points), len(layers), figsize=(11, 2.3 * len(points) + 0.8), squeeze=False, sharex=True
    )
    for i, point in enumerate(points):
        for j, depth in enumerate(layers):
            ax = axes[i, j]
            h = g[(g.stations == point) & (g.layer_cm == depth)].set_index("time").sort_index()
            h = h[["obs", "model", "era5land"]].asfreq("D").reset_index()  # gaps stay gaps
            ax.plot(h.time, h.obs, ".", ms=2, color="k", label="in-situ (matched)")
            ax.plot(h.time, h.model, lw=1, label="product")
            ax.plot(h.time, h.era5land, lw=1, label="ERA5-Land")
            ax.set_title(f"{point} · {depth} cm", fontsize=8)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel("soil moisture (m³/m³)", fontsize=7)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    for ax in axes[-1]:
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return _save(fig, path)


def product_maps(cfg: Config) -> dict[str, Any] | None:
    """The first product day: product, ERA5-Land matched layer and truth, top layer."""
    import xarray as xr

    from smci_gpu.features import Predictors

    files = sorted(Path(cfg.path("product", "1km")).glob("SMCI_1km_*.nc"))
    if not files:
        return None
    stamp = files[0].stem.split("_")[-1]
    day = pd.Timestamp(stamp)
    with xr.open_dataset(files[0], engine="netcdf4") as ds:
        depth = int(ds.depth.values[0])
        product = ds.sm.values[0, 0]
    pred = Predictors.load(cfg, day, day)
    rr, cc = np.indices(pred.grid.shape)
    ref = pred.reference(cfg.matching.reference[depth], rr.ravel(), cc.ravel())[0]
    ref = ref.reshape(pred.grid.shape)
    ref = np.where(np.isfinite(product), ref, np.nan)
    maps = {"product": product, "ERA5-Land " + cfg.matching.reference[depth]: ref}
    truth = Path(cfg.path("truth")) / f"truth_{stamp}.nc"
    if truth.exists():
        with xr.open_dataset(truth, engine="netcdf4") as ds:
            t = ds.sm.values[0, depth // 10 - 1]
        maps["twin-world truth"] = np.where(np.isfinite(product), t, np.nan)
    return {
        "day": day,
        "depth": depth,
        "maps": maps,
        "extent": (pred.grid.west, pred.grid.east, pred.grid.south, pred.grid.north),
        "era_centres": (np.asarray(pred.era_lon), np.asarray(pred.era_lat)),
    }


#: Side of the zoomed window of the map figure (degrees): 5 × 5 ERA5-Land cells, enough to
#: see whether the 1 km map is made of 0.1° blocks.
ZOOM_DEG = 0.5


def _cell_edges(centres: np.ndarray) -> np.ndarray:
    """Sorted borders of the cells centred at ``centres`` (a regular grid)."""
    c = np.sort(np.asarray(centres, dtype=np.float64))
    step = c[1] - c[0] if c.size > 1 else 0.1
    return np.concatenate([[c[0] - step / 2], (c[:-1] + c[1:]) / 2, [c[-1] + step / 2]])


def _zoom_window(extent: tuple, shape: tuple[int, int], lon_edges, lat_edges):
    """Rows, columns and extent of a ZOOM_DEG square near the map's centre whose lower-left
    corner is an ERA5-Land cell corner."""
    west, east, south, north = extent
    ny, nx = shape
    res = (east - west) / nx

    def start(edges, lo, hi):
        ok = edges[(edges >= lo) & (edges <= (lo + hi) / 2 - ZOOM_DEG / 2)]
        return ok[-1] if ok.size else lo

    lon0, lat0 = start(lon_edges, west, east), start(lat_edges, south, north)
    c0, r0 = int(round((lon0 - west) / res)), int(round((lat0 - south) / res))
    n = int(round(ZOOM_DEG / res))
    rows, cols = slice(r0, min(r0 + n, ny)), slice(c0, min(c0 + n, nx))
    box = (
        west + cols.start * res,
        west + cols.stop * res,
        south + rows.start * res,
        south + rows.stop * res,
    )
    return rows, cols, box


def map_figure(info: dict[str, Any], path: Path) -> str:
    """The product beside ERA5-Land (and truth) on one colour scale, lon/lat labelled;
    a second row zooms into a 0.5° window (5 × 5 ERA5-Land cells, borders dotted)."""
    plt = _plt()
    maps = info["maps"]
    fig, axes = plt.subplots(
        2, len(maps), figsize=(4.4 * len(maps) + 1.2, 8.0), squeeze=False, layout="constrained"
    )
    values = np.concatenate([m[np.isfinite(m)] for m in maps.values()])
    lo, hi = np.percentile(values, [1, 99])
    west, east, south, north = info["extent"]
    # ERA5-Land cells: centred on multiples of 0.1° unless the caller gives the centres
    lon_c, lat_c = info.get("era_centres") or (
        np.arange(np.floor(west * 10), np.ceil(east * 10) + 1) / 10,
        np.arange(np.floor(south * 10), np.ceil(north * 10) + 1) / 10,
    )
    lon_e, lat_e = _cell_edges(lon_c), _cell_edges(lat_c)
    rows, cols, box = _zoom_window(info["extent"], next(iter(maps.values())).shape, lon_e, lat_e)
    for k, (name, m) in enumerate(maps.items()):
        top, zoom = axes[0, k], axes[1, k]
        kw = dict(origin="lower", vmin=lo, vmax=hi, cmap="YlGnBu")
        im = top.imshow(m, extent=info["extent"], **kw)
        top.set_title(name, fontsize=9)
        top.add_patch(
            plt.Rectangle(
                (box[0], box[2]), box[1] - box[0], box[3] - box[2], fill=False, ec="red", lw=1
            )
        )
        zoom.imshow(m[rows, cols], extent=box, interpolation="nearest", **kw)
        zoom.set_title(f"{name}, red box (0.1° cells dotted)", fontsize=8)
        for edge in lon_e[(lon_e > box[0]) & (lon_e < box[1])]:
            zoom.axvline(edge, color="0.3", lw=0.5, ls=":")
        for edge in lat_e[(lat_e > box[2]) & (lat_e < box[3])]:
            zoom.axhline(edge, color="0.3", lw=0.5, ls=":")
        for ax in (top, zoom):
            _lonlat_axes(ax, nbins=4)
            if k:
                ax.set_ylabel("")
    fig.colorbar(im, ax=list(axes.flat), label="soil moisture (m³/m³)", shrink=0.85)
    fig.suptitle(f"{info['day']:%Y-%m-%d}, {info['depth']} cm", fontsize=10)
    return _save(fig, path)


def qc_flag_table(flag_hours: dict[str, int]) -> pd.DataFrame:
    """Hours per flag code with its meaning: every ISMN code, then any other code found.

    A code of :data:`ISMN_FLAGS` that the QC report does not list was not tested.
    """
    codes = list(ISMN_FLAGS) + sorted(set(flag_hours) - set(ISMN_FLAGS))
    return pd.DataFrame(
        {
            "flag": codes,
            "hours flagged": [
                int(flag_hours[c]) if c in flag_hours else "not tested" for c in codes
            ],
            "meaning (ISMN, Dorigo et al. 2013)": [
                ISMN_FLAGS.get(c, "not an ISMN code: see smci_gpu.insitu.qc") for c in codes
            ],
        }
    )


def qc_section(report: dict[str, Any]) -> str:
    stations = report.get("stations", "?")
    stations = f"{stations:,}" if isinstance(stations, int) else stations
    parts = [
        f"<p>{stations} stations, {report.get('hours_read', 0):,} hourly "
        f"values read, period {' to '.join(report.get('period', []))}.</p>",
        "<h3>hours flagged per test</h3>",
        "<p class=note>A value can carry several flags, so the hours do not add up.</p>",
        f"<div class=legend>{_table(qc_flag_table(report.get('qc_flag_hours', {})))}</div>",
    ]
    if report.get("drops"):
        drops = pd.DataFrame({"dropped": list(report["drops"]), "count": report["drops"].values()})
        parts += ["<h3>drops</h3>", _table(drops)]
    if report.get("stations_dropped"):
        parts += ["<h3>stations dropped</h3>", _table(pd.DataFrame(report["stations_dropped"]))]
    if report.get("per_series"):
        per = pd.DataFrame(report["per_series"])
        per = per.groupby("depth_cm").sum(numeric_only=True).reset_index()
        parts += ["<h3>per depth (all stations; per station in work/qc_per_series.csv)</h3>"]
        parts += [_table(per)]
    if report.get("qc_vs_injected_faults"):
        s = pd.DataFrame(report["qc_vs_injected_faults"]).T.reset_index(names="fault")
        parts += ["<h3>QC against the twin world's injected faults</h3>", _table(s)]
    return "".join(parts)


def tune_heatmap(cells: pd.DataFrame, title: str, chosen: tuple, path: Path) -> str:
    """CV RMSE over max_features × min_samples_leaf; best cell boxed red, configured dashed.

    Cell numbers are black on light colours and white on dark ones (:func:`_text_colour`).
    """
    plt = _plt()
    grid = cells.pivot(index="min_samples_leaf", columns="max_features", values="rmse")
    fig, ax = plt.subplots(figsize=(1.6 + 0.7 * grid.shape[1], 1.6 + 0.45 * grid.shape[0]))
    im = ax.imshow(grid.values, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns], fontsize=8)
    ax.set_yticks(range(grid.shape[0]), [str(i) for i in grid.index], fontsize=8)
    ax.set_xlabel("max_features", fontsize=8)
    ax.set_ylabel("min_samples_leaf", fontsize=8)
    best = np.unravel_index(np.nanargmin(grid.values), grid.shape)
    ax.add_patch(plt.Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, ec="red", lw=2))
    if chosen[0] in grid.columns and chosen[1] in grid.index:
        i, j = grid.index.get_loc(chosen[1]), grid.columns.get_loc(chosen[0])
        ax.add_patch(
            plt.Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, ec="k", lw=1.5, ls="--")
        )
    if grid.size <= 80:
        for (i, j), v in np.ndenumerate(grid.values):
            colour = _text_colour(im.cmap(im.norm(v)))
            ax.text(j, i, f"{v:.4f}", ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(im, ax=ax, label="CV RMSE (m³/m³)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def tuning_section(cfg: Config, tune_dir: Path, out: Path) -> str | None:
    """Heat-maps per layer and fold mode, and the configured cell against the tuned best."""
    frames = []
    for csv in sorted(tune_dir.glob("tune_*.csv")):  # tune_random.csv, tune_station.csv
        frame = _read_csv(csv)
        if not frame.empty:
            frames.append(frame.assign(groups=csv.stem.removeprefix("tune_")))
    if not frames:
        return None
    every = pd.concat(frames, ignore_index=True)
    chosen = (cfg.forest.max_features, cfg.forest.min_samples_leaf)
    imgs, rows = [], []
    for (mode, depth), cells in every.groupby(["groups", "layer_cm"]):
        title = f"{depth} cm, {mode} folds ({cfg.tune.folds}), {cfg.tune.n_estimators} trees"
        imgs.append(tune_heatmap(cells, title, chosen, out / f"tune_{mode}_{depth:03d}cm.png"))
        best = cells.loc[cells.rmse.idxmin()]
        hit = cells[(cells.max_features == chosen[0]) & (cells.min_samples_leaf == chosen[1])]
        used = float(hit.rmse.iloc[0]) if not hit.empty else np.nan
        rows.append(
            {
                "layer": f"{depth} cm",
                "folds": mode,
                "best max_features": int(best.max_features),
                "best min_samples_leaf": int(best.min_samples_leaf),
                "best RMSE (m³/m³)": float(best.rmse),
                "configured RMSE (m³/m³)": used,
                "configured vs best": f"{used / best.rmse - 1:+.1%}" if not hit.empty else "–",
            }
        )
    note = (
        f"<p class=note>The forests were trained with the configured max_features="
        f"{html.escape(str(chosen[0]))}, min_samples_leaf={chosen[1]} (dashed box; config "
        "<code>[forest]</code>), not with the tuned best (red box): <code>smci tune</code> "
        "only advises. Random folds share days of one station between training and test, "
        "so they reward settings that memorise stations; station folds keep every station "
        "in one fold and score what a map needs, skill where no station was seen. More "
        "features per split cost training time roughly in proportion, and a smaller "
        "min_samples_leaf grows deeper trees that are slower to predict over every pixel. "
        "The table says what the configured cell costs in CV RMSE; to use the best, set "
        "<code>forest.max_features</code> and <code>forest.min_samples_leaf</code>.</p>"
    )
    body = _table(pd.DataFrame(rows), floats="{:.4f}") + note
    return body + "".join(f"<img src='{p}' style='max-width:48%'>" for p in imgs)


#: Twin-world truth table: metric column → heading (m³/m³ unless unitless).
TWIN_METRICS = {"bias": "bias", "rmse": "RMSE", "ubrmse": "ubRMSE", "r": "R", "r2": "R²"}
#: Detail measures (smci_gpu.evaluate.detail) → heading.
DETAIL_MEASURES = {
    "cell_std": "std within 0.1° cells (m³/m³)",
    "jump_border": "|Δ| across cell borders (m³/m³)",
    "jump_inside": "|Δ| inside cells (m³/m³)",
}
TWIN_SOURCES = {"model": "product", "era5land": "ERA5-Land", "truth": "truth"}


def twin_truth_table(twin: pd.DataFrame) -> pd.DataFrame:
    """Per layer, product and ERA5-Land against the truth (mean over produced days)."""
    scored = twin[twin.source.isin(["model", "era5land"])]
    mean = scored.groupby(["layer_cm", "source"])[list(TWIN_METRICS)].mean().unstack("source")
    mean = mean.reindex(columns=[(m, s) for m in TWIN_METRICS for s in ("model", "era5land")])
    mean.columns = [
        f"{TWIN_METRICS[m]} {TWIN_SOURCES[s]}" + ("" if m in ("r", "r2") else " (m³/m³)")
        for m, s in mean.columns
    ]
    return mean.reset_index().rename(columns={"layer_cm": "layer (cm)"})


def twin_detail_table(twin: pd.DataFrame) -> pd.DataFrame:
    """Per layer, the detail measures of product, truth and ERA5-Land (mean over days)."""
    cols = [c for c in DETAIL_MEASURES if c in twin]
    mean = twin.groupby(["layer_cm", "source"])[cols].mean().unstack("source")
    order = [(m, s) for m in cols for s in ("model", "truth", "era5land") if (m, s) in mean]
    mean = mean[order]
    mean.columns = [f"{DETAIL_MEASURES[m]}: {TWIN_SOURCES[s]}" for m, s in mean.columns]
    return mean.reset_index().rename(columns={"layer_cm": "layer (cm)"})


def twin_section(twin: pd.DataFrame) -> str:
    """The truth table and the detail table of the twin-world check."""
    body = (
        "<p>Product and ERA5-Land (its matched layer, the pixel's nearest 0.1° cell) against "
        "the twin world's hidden truth at every land pixel of the produced days (mean over "
        "days). The station target was rescaled to ERA5-Land by <code>matching.method</code>"
        " before training, so the product inherits ERA5-Land's climatology: compare the "
        "bias columns.</p>" + _table(twin_truth_table(twin))
    )
    if "cell_std" in twin:
        body += (
            "<p>Spatial detail. <b>std within 0.1° cells</b>: standard deviation of the 1 km "
            "values inside each ERA5-Land cell, averaged over cells (ERA5-Land taken at the "
            "nearest cell is constant in a cell, so 0). <b>|Δ| across borders / inside</b>: "
            "mean absolute difference between neighbouring pixels that lie in different "
            "0.1° cells / in the same cell. A map made of 0.1° blocks jumps at the borders "
            "and is flat inside; the truth moves about as much at both.</p>"
            + _table(twin_detail_table(twin), floats="{:.4f}")
        )
    return body


# ----------------------------------------------------- raw metrics, compare, TC


MATCHING_NOTE = (
    "<p>The model is trained on the in-situ series <b>after matching</b>: at each station "
    "and layer they are rescaled to ERA5-Land's mean and standard deviation (the paper's "
    "method, after Sungmin &amp; Orth 2020). The product therefore inherits ERA5-Land's "
    "climatology, its mean and its spread, at every station. Against the matched target "
    "its bias is near 0 by construction; against the QC'd in-situ values <b>before "
    "matching</b> (raw) the bias, RMSE and R² show what that climatology costs. Matching "
    "is linear at each station, so a single station's R is the same against either "
    "target; the tables pool all test rows of a layer, where the stations' own means and "
    "spreads, which matching removed, lower R and raise ubRMSE as well.</p>"
)


#: Display names of the validation's series.
SOURCES = {"model": "model", "era5land": "ERA5-Land"}


def _grouped_table(frame: pd.DataFrame, floats: str = "{:.3f}") -> str:
    """:func:`_table` with two header rows: a column ``"top|sub"`` sits under ``top``
    (neighbours with one ``top`` share its cell); a column without ``|`` spans both rows."""
    cols = [str(c).split("|", 1) for c in frame.columns]
    top, sub, k = [], [], 0
    while k < len(cols):
        if len(cols[k]) == 1:
            top.append(f"<th rowspan=2>{html.escape(cols[k][0])}</th>")
            k += 1
            continue
        n = 1
        while k + n < len(cols) and len(cols[k + n]) == 2 and cols[k + n][0] == cols[k][0]:
            n += 1
        top.append(f"<th colspan={n}>{html.escape(cols[k][0])}</th>")
        sub += [f"<th>{html.escape(c[1])}</th>" for c in cols[k : k + n]]
        k += n
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v, floats)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><tr>{''.join(top)}</tr><tr>{''.join(sub)}</tr>{body}</table>"


def raw_metrics_section(frame: pd.DataFrame, clim: pd.DataFrame) -> str:
    """Per experiment and layer: the model and ERA5-Land against the matched target and
    against raw in-situ, side by side; then the climatology table (means over points)."""
    if "raw_bias" not in frame:
        return "<p class=skip>no raw metrics (re-run `smci validate`)</p>"
    scored = frame.dropna(subset=["source"]) if "source" in frame else frame.iloc[0:0]
    parts = [MATCHING_NOTE]
    metrics = (("bias", "bias"), ("rmse", "RMSE"), ("ubrmse", "ubRMSE"), ("r", "R"), ("r2", "R²"))
    for exp, g in scored.groupby("experiment"):
        mean = g.groupby(["layer_cm", "source"]).mean(numeric_only=True)
        rows = []
        order = sorted(mean.index, key=lambda k: (k[0], list(SOURCES).index(k[1])))
        for (depth, src), m in mean.loc[order].iterrows():
            row: dict[str, Any] = {"layer (cm)": int(depth), "series": SOURCES.get(src, src)}
            for key, name in metrics:
                head = f"{name} ({METRIC_UNITS.get(key, 'm³/m³')})"
                row[f"{head}|matched"] = m[key]
                row[f"{head}|raw"] = m[f"raw_{key}"]
            rows.append(row)
        parts += [
            f"<h3>{exp}-to-{exp}: matched vs raw in-situ target (test rows)</h3>",
            _grouped_table(pd.DataFrame(rows)),
        ]
    if not clim.empty:
        parts += [
            "<h3>climatology at the test points (m³/m³, mean over points)</h3>",
            _grouped_table(_climatology_columns(clim)),
            "<p class=note>Per test point: the mean and standard deviation over its test days "
            "of each series; the table averages them over points. The matched in-situ series "
            "has ERA5-Land's mean and std by construction, and the model follows them: the "
            "model − ERA5-Land columns are near 0, the model − in-situ raw columns are the "
            "station climatology that matching removed.</p>",
        ]
    return "".join(parts)


def _climatology_columns(clim: pd.DataFrame) -> pd.DataFrame:
    """climatology.csv with two-level column names for :func:`_grouped_table`."""
    names = {"obs_raw": "in-situ raw", "obs": "in-situ matched", "era5land": "ERA5-Land"}
    names["model"] = "model"
    out = {}
    for col in clim.columns:
        stat, _, rest = col.partition(" ")
        if col == "layer_cm":
            out[col] = "layer (cm)"
        elif stat in ("mean", "std") and rest in names:
            out[col] = f"{stat} (m³/m³)|{names[rest]}"
        elif stat in ("mean", "std") and rest.startswith("model − "):
            out[col] = f"{rest} (m³/m³)|{stat}"
        else:
            out[col] = col
    frame = clim.rename(columns=out)
    tops = list(dict.fromkeys(c.split("|")[0] for c in frame.columns))
    # Columns of one top heading next to each other (stable: their own order kept).
    return frame[sorted(frame.columns, key=lambda c: tops.index(c.split("|")[0]))]


def compare_section(folder: Path) -> str | None:
    """The `smci compare` tables (own rows, raw and matched targets) and what was read."""
    metrics = _read_csv(folder / "compare.csv")
    if metrics.empty:
        return None
    info = (
        json.loads((folder / "compare.json").read_text())
        if (folder / "compare.json").exists()
        else {}
    )
    parts = []
    if info.get("products"):
        read = pd.DataFrame(
            [
                {
                    "product": p["name"],
                    "source": p["path"],
                    "files": p["files"],
                    "layer ← variable[level]": ", ".join(
                        f"{k} cm ← {v}" for k, v in p["layers"].items()
                    ),
                    "station cells outside its grid": p["outside"],
                }
                for p in info["products"]
            ]
        )
        parts += ["<h3>products read</h3>", f"<div class=legend>{_table(read)}</div>"]
    for subset, title in (
        ("own", "each product on its own station-days"),
        ("common", "on the station-days every product has"),
    ):
        g = metrics[metrics.rows == subset]
        if g.empty:
            continue
        raw = g[g.target == "raw"].set_index(["layer_cm", "product"])
        matched = g[g.target == "matched"].set_index(["layer_cm", "product"])
        wide = pd.DataFrame({"n": raw.n})  # both targets sit on the same station-days
        for key in ("bias", "ubrmse", "rmse", "r", "r2"):
            unit = f" ({METRIC_UNITS[key]})" if key in ("bias", "ubrmse", "rmse") else ""
            for target, part in (("raw", raw), ("matched", matched)):
                wide[f"{_METRIC_NAMES[key]}{unit}|{target}"] = part[key].reindex(raw.index)
        wide = wide.reset_index().rename(columns={"layer_cm": "layer (cm)"})
        parts += [f"<h3>{title}</h3>", _grouped_table(wide)]
    model = html.escape(str(info.get("model", "model")))
    parts.append(
        "<p class=note>raw: against the QC'd daily in-situ values before matching; matched: "
        f"against the rescaled series the model was trained on. {model}: "
        "out-of-sample predictions of `smci validate`. A product produced by this engine was "
        "trained on these stations (in-sample for them); each product takes the cell nearest "
        "to the station's 1 km cell. Per-row values: work/compare/collocated.parquet.</p>"
    )
    return "".join(parts)


_METRIC_NAMES = {"n": "n", "bias": "bias", "ubrmse": "ubRMSE", "rmse": "RMSE", "r": "R", "r2": "R²"}


def tc_map_figure(tc: pd.DataFrame, experiment: str, path: Path) -> str:
    """Per test point, mean over layers: TC error standard deviation of each series."""
    from smci_gpu.evaluate.tc import SERIES

    plt = _plt()
    g = tc[tc.experiment == experiment]
    per = (
        g.groupby(["stations", "series"])
        .agg(lat=("lat", "first"), lon=("lon", "first"), err_std=("err_std", "mean"))
        .reset_index()
    )
    defined = per.err_std.dropna()
    hi = float(defined.quantile(0.95)) if not defined.empty else 0.05
    fig, axes = plt.subplots(
        1, len(SERIES), figsize=(4.4 * len(SERIES) + 1.2, 4.0), squeeze=False, layout="constrained"
    )
    sc = None
    for ax, (col, name) in zip(axes.flat, SERIES.items(), strict=True):
        h = per[per.series == col]
        ok = h.err_std.notna()
        sc = ax.scatter(
            h.lon[ok], h.lat[ok], c=h.err_std[ok], cmap="viridis", vmin=0, vmax=hi or 0.05, s=40
        )
        ax.scatter(
            h.lon[~ok], h.lat[~ok], facecolors="none", edgecolors="grey", s=40, label="undefined"
        )
        ax.set_title(f"{name}", fontsize=9)
        ax.set_aspect("equal")
        _lonlat_axes(ax)
    fig.colorbar(  # the scale stops at the 95th percentile: the arrow marks larger values
        sc,
        ax=list(axes.flat),
        label="TC error std (m³/m³), mean over defined layers",
        shrink=0.85,
        extend="max"
        if float(defined.max() if not defined.empty else 0) > (hi or 0.05)
        else "neither",
    )
    fig.suptitle(
        f"triple collocation, {experiment} test points (hollow grey: undefined)", fontsize=10
    )
    return _save(fig, path)


def tc_section(tc: pd.DataFrame, out: Path, twin_world: bool = False) -> str:
    """The TC summary per layer and series, the reasons for undefined points, the map.

    ``twin_world``: the demo's stations read their pixel's truth (linear calibration and
    0.001 m³/m³ hourly noise, :mod:`smci_gpu.demo`), which the note then says.
    """
    from smci_gpu.evaluate import tc as TC

    summary = TC.summarise(tc)
    summary["series"] = summary.series.map(TC.SERIES)
    summary = summary.rename(
        columns={
            TC.REASON_FEW: "undefined: too few days",
            TC.REASON_COV: "undefined: cross covariance ≤ 0",
            TC.REASON_NEG: "undefined: negative error variance",
            "layer_cm": "layer (cm)",
            "median err_std": "median error std (m³/m³)",
            "median snr_db": "median SNR (dB)",
            "points": "test points",
            "defined": "defined",
        }
    )
    parts = [
        "<p>Triple collocation (covariance method; McColl et al. 2014, Gruber et al. 2016) of "
        "the model's out-of-sample predictions, ERA5-Land's matched layer and the raw in-situ "
        "series at each test point and layer: the error standard deviation of each (in its own "
        "units, m³/m³; the scaling of each series to the common truth is part of the method) "
        "and its signal-to-noise ratio. TC assumes the three errors independent of each other. "
        "The model is built from ERA5-Land's predictors, so their errors are correlated: the "
        "shared error looks like signal, which lowers the model's and ERA5-Land's error "
        "variance (below zero, hence undefined, at most points for the model) and raises the "
        "in-situ one. Read the model's and ERA5-Land's values as lower bounds and the in-situ "
        "value as an upper bound; with an independent third product (e.g. a satellite "
        "retrieval through `smci compare`) the assumption would hold better.</p>"
    ]
    if twin_world:
        parts.append(
            "<p>In this twin world the stations read their own pixel's truth through a linear "
            "calibration plus 0.001 m³/m³ hourly noise: their true error is at most about "
            "0.001 m³/m³. A larger in-situ estimate below is the model's and ERA5-Land's "
            "shared error booked to the stations.</p>"
        )
    for exp, g in summary.groupby("experiment"):
        parts += [f"<h3>{exp}-to-{exp} test points</h3>", _table(g.drop(columns="experiment"))]
        parts.append(f"<img src='{tc_map_figure(tc, exp, out / f'tc_map_{exp}.png')}'>")
    parts.append("<p class=note>Per point, layer and series in work/validation/tc.csv.</p>")
    return "".join(parts)


# --------------------------------------------------------------------------- page


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.exists() and path.stat().st_size > 1 else pd.DataFrame()


@stage("report")
def report(cfg: Config, console: Console) -> dict[str, Any]:
    """Build ``report/index.html`` from the stages' outputs (missing parts are noted)."""
    val = Path(cfg.path("work", "validation"))
    out = Path(cfg.path("report"))
    if not (val / "experiments.csv").exists():
        raise InputDataError(f"{val / 'experiments.csv'} does not exist (run `smci validate`)")
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(val / "experiments.csv")
    pred = pd.read_parquet(val / "predictions.parquet")
    per_station = _read_csv(val / "stations.csv")
    imp = _read_csv(val / "importance.csv")
    twin = _read_csv(val / "twin_world.csv")
    sections: list[tuple[str, str]] = [("Validation metrics", metrics_section(frame))]
    clim, tc = _read_csv(val / "climatology.csv"), _read_csv(val / "tc.csv")
    sections.append(
        ("Raw vs matched in-situ: what matching hides", raw_metrics_section(frame, clim))
    )
    comparison = compare_section(Path(cfg.path("work", "compare")))
    if comparison is not None:
        sections.append(("Other products at the stations (smci compare)", comparison))
    if not tc.empty:
        truth = Path(cfg.path("truth")).exists()
        sections.append(("Triple collocation", tc_section(tc, out, truth)))
    for exp in sorted(pred.experiment.unique()) if not pred.empty else ():
        figs = [density_figure(pred, exp, out / f"density_{exp}.png")]
        if not per_station.empty:
            figs.append(station_map_figure(per_station, exp, out / f"stations_{exp}.png"))
        figs.append(timeseries_figure(pred, exp, out / f"timeseries_{exp}.png"))
        caption = (
            f"<p>The {exp}-to-{exp} experiment's test rows: the model's out-of-sample "
            "prediction against the matched in-situ target per layer (density, log count), "
            "the model's R and its ubRMSE less ERA5-Land's per test point on a map, and the "
            "matched target, model and ERA5-Land at the best-covered test points "
            "(m³/m³).</p>"
        )
        sections.append(
            (f"{exp}-to-{exp}: test rows", caption + "".join(f"<img src='{f}'>" for f in figs))
        )
    if not imp.empty:
        sections.append(
            (
                "Permutation importance",
                f"<img src='{importance_figure(imp, out / 'importance.png')}'>",
            )
        )
    maps = product_maps(cfg)
    if maps is not None:
        body = f"<img src='{map_figure(maps, out / 'product_map.png')}'>"
        sections.append(("Product map", body))
        if not twin.empty:
            sections.append(
                ("Twin world: product and ERA5-Land against the truth", twin_section(twin))
            )
    else:
        sections.append(
            ("Product map", "<p class=skip>no product files yet (run `smci produce`)</p>")
        )
    qc = Path(cfg.path("work", "qc_report.json"))
    if qc.exists():
        sections.append(("In-situ quality control", qc_section(json.loads(qc.read_text()))))
    tuning = tuning_section(cfg, Path(cfg.path("work", "tune")), out)
    if tuning is not None:
        sections.append(("Tuning (cross-validated RMSE)", tuning))
    page = _page(cfg, sections)
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(page)
    console.print(f"report: {out / 'index.html'} ({len(list(out.glob('*.png')))} figures)")
    return {"path": str(out / "index.html")}


def _page(cfg: Config, sections: list[tuple[str, str]]) -> str:
    toc = "".join(
        f"<li><a href='#s{i}'>{html.escape(t)}</a></li>" for i, (t, _) in enumerate(sections)
    )
    body = "".join(f"<h2 id='s{i}'>{html.escape(t)}</h2>{b}" for i, (t, b) in enumerate(sections))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>smci-gpu report</title>"
        f"<style>{CSS}</style></head><body><h1>smci-gpu validation report</h1>"
        f"<p class=note>smci-gpu {__version__}, config {cfg.hash()}, "
        f"{cfg.forest.n_estimators} trees, max_features={cfg.forest.max_features}, "
        f"min_samples_leaf={cfg.forest.min_samples_leaf}; built {stamp}.</p>"
        f"<ul>{toc}</ul>{body}</body></html>"
    )
