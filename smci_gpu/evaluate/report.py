"""`smci report`: one self-contained folder, ``report/index.html`` plus its PNGs.

It reads what the other stages wrote (``work/qc_report.json``, ``work/tune/``,
``work/validation/``, ``models/``, the product) and draws: metrics per layer and
experiment beside the paper's published ranges, obs-vs-prediction density plots,
per-station metric maps, permutation importance, station time series (obs, product,
ERA5-Land), a product map for one day beside ERA5-Land (and the twin world's truth when
it exists), the QC summary and the tuning heat-maps. A layer an experiment had to skip
appears in the tables with its reason.
"""

from __future__ import annotations

import html
import json
import shutil
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

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}.skip{color:#a40;font-style:italic}.win{color:#070;font-weight:bold}
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


def _cell(v: Any, floats: str) -> str:
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


def metrics_section(frame: pd.DataFrame) -> str:
    """Per experiment: model and ERA5-Land per layer, the paper's range, skipped layers."""
    parts = []
    for exp in sorted(frame.experiment.unique()):
        g = frame[frame.experiment == exp]
        rows = []
        for depth, h in g.groupby("layer_cm"):
            if "skipped" in h and h.skipped.notna().any():
                reason = h.skipped.dropna().iloc[0]
                rows.append(
                    f"<tr><td>{depth} cm</td><td colspan=9 class=skip>skipped: "
                    f"{html.escape(str(reason))}</td></tr>"
                )
                continue
            # Station experiments may repeat with other splits: show the mean over repeats.
            m, e = (h[h.source == s].mean(numeric_only=True) for s in ("model", "era5land"))
            win = lambda a, b, low: " class=win" if (a < b if low else a > b) else ""  # noqa: E731
            rows.append(
                f"<tr><td>{depth} cm</td><td>{int(m.test_rows):,}</td>"
                f"<td{win(m.ubrmse, e.ubrmse, True)}>{m.ubrmse:.3f}</td><td>{e.ubrmse:.3f}</td>"
                f"<td{win(m.r, e.r, False)}>{m.r:.3f}</td><td>{e.r:.3f}</td>"
                f"<td>{m.bias:+.3f}</td><td>{m.mae:.3f}</td><td>{m.r2:.3f}</td><td>{e.r2:.3f}</td>"
                "</tr>"
            )
        pub = PUBLISHED.get(exp, {})
        ranges = ", ".join(f"{k} {lo:.3f}–{hi:.3f}" for k, (lo, hi) in pub.items())
        head = "".join(
            f"<th>{c}</th>"
            for c in (
                "layer",
                "test rows",
                "ubRMSE model",
                "ubRMSE ERA5-Land",
                "R model",
                "R ERA5-Land",
                "bias model",
                "MAE model",
                "R² model",
                "R² ERA5-Land",
            )
        )
        parts.append(
            f"<h3>{exp}-to-{exp} experiment</h3><table><tr>{head}</tr>{''.join(rows)}</table>"
            f"<p class=note>SMCI1.0 published ({exp}-to-{exp}, 10 layers): {ranges}. "
            "Bold green: the model beats ERA5-Land's matched layer on the same test rows.</p>"
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
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    sc = axes[0].scatter(m.lon, m.lat, c=m.r, cmap="viridis", vmin=0.5, vmax=1, s=40)
    fig.colorbar(sc, ax=axes[0], label="R (model)")
    diff = m.ubrmse - e.ubrmse
    lim = float(np.nanmax(np.abs(diff))) or 1e-3
    sc = axes[1].scatter(m.lon, m.lat, c=diff, cmap="RdBu_r", vmin=-lim, vmax=lim, s=40)
    fig.colorbar(sc, ax=axes[1], label="ubRMSE model − ERA5-Land (blue: model better)")
    for ax in axes:
        ax.set_xlabel("lon")
        ax.set_ylabel("lat")
        ax.set_aspect("equal")
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
    """Obs, model and ERA5-Land at the ``n`` best-covered test points, top and deep layer."""
    plt = _plt()
    g = pred[pred.experiment == experiment]
    layers = sorted(g.layer_cm.unique())
    layers = [layers[0], layers[-1]] if len(layers) > 1 else layers
    points = g[g.layer_cm.isin(layers)].stations.value_counts().index[:n]
    fig, axes = plt.subplots(
        len(points), len(layers), figsize=(11, 2.3 * len(points)), squeeze=False, sharex=True
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
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
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
    }


def map_figure(info: dict[str, Any], path: Path) -> str:
    plt = _plt()
    maps = info["maps"]
    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 3.8), squeeze=False)
    values = np.concatenate([m[np.isfinite(m)] for m in maps.values()])
    lo, hi = np.percentile(values, [1, 99])
    for ax, (name, m) in zip(axes.flat, maps.items(), strict=True):
        im = ax.imshow(m, origin="lower", extent=info["extent"], vmin=lo, vmax=hi, cmap="YlGnBu")
        ax.set_title(name, fontsize=9)
    fig.colorbar(im, ax=list(axes.flat), label="m³/m³", shrink=0.85)
    fig.suptitle(f"{info['day']:%Y-%m-%d}, {info['depth']} cm", fontsize=10)
    return _save(fig, path)


def qc_section(report: dict[str, Any]) -> str:
    flags = pd.DataFrame(
        {"flag": list(report["qc_flag_hours"]), "hours": list(report["qc_flag_hours"].values())}
    )
    parts = [
        f"<p>{report.get('stations', '?')} stations, {report.get('hours_read', 0):,} hourly "
        f"values read, period {' to '.join(report.get('period', []))}.</p>",
        "<h3>hours flagged per test</h3>",
        _table(flags),
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


def twin_section(twin: pd.DataFrame) -> str:
    mean = twin.groupby(["layer_cm", "source"])[["ubrmse", "r", "bias"]].mean().unstack("source")
    mean.columns = [f"{m} {s}" for m, s in mean.columns]
    return (
        "<p>Product and ERA5-Land (matched layer, nearest cell) against the hidden truth at "
        "every land pixel of the produced days (mean over days).</p>"
        + _table(mean.reset_index().rename(columns={"layer_cm": "layer (cm)"}))
    )


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
    for exp in sorted(pred.experiment.unique()) if not pred.empty else ():
        figs = [density_figure(pred, exp, out / f"density_{exp}.png")]
        if not per_station.empty:
            figs.append(station_map_figure(per_station, exp, out / f"stations_{exp}.png"))
        figs.append(timeseries_figure(pred, exp, out / f"timeseries_{exp}.png"))
        sections.append((f"{exp}-to-{exp}: test rows", "".join(f"<img src='{f}'>" for f in figs)))
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
        if not twin.empty:
            body += twin_section(twin)
        sections.append(("Product map", body))
    else:
        sections.append(
            ("Product map", "<p class=skip>no product files yet (run `smci produce`)</p>")
        )
    qc = Path(cfg.path("work", "qc_report.json"))
    if qc.exists():
        sections.append(("In-situ quality control", qc_section(json.loads(qc.read_text()))))
    tune_dir = Path(cfg.path("work", "tune"))
    heatmaps = sorted(tune_dir.glob("tune_*cm.png"))
    if heatmaps:
        for png in heatmaps:
            shutil.copyfile(png, out / png.name)
        sections.append(
            (
                "Tuning (cross-validated RMSE)",
                "<p class=note>Random folds share days of one station between training and "
                "test; station folds do not, and score what a map needs.</p>"
                + "".join(f"<img src='{p.name}' style='max-width:48%'>" for p in heatmaps),
            )
        )
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
