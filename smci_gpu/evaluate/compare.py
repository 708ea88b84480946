"""`smci compare`: other gridded soil-moisture products at the station pixels.

The SMCI1.0 paper compares its product with ERA5-Land, SMAP-L4 and SoMo.ml at the
in-situ stations. This module reads any such product and scores it on the rows of the
station-day table (``work/station_days.parquet``: every 1 km station cell, layer and day)
against the QC'd daily in-situ values before matching (``raw``) and after (``matched``,
the model's training target), beside the model's out-of-sample predictions from
`smci validate` (first experiment's test rows).

What a product may be
    * CF NetCDF, one file, a folder of ``*.nc`` files or a glob pattern. Latitude and
      longitude are found by their CF attributes (``standard_name`` latitude/longitude,
      ``units`` degrees_north/degrees_east or ``axis`` Y/X), time by ``standard_name``
      time / ``axis`` T or a datetime coordinate; sub-daily steps are averaged to UTC days.
      Soil moisture either has a depth axis (``standard_name`` depth or ``axis`` Z, in cm
      or m) or one variable per layer (e.g. ERA5-Land's ``swvl1``…``swvl4``).
    * The published SMCI1.0 files, one per year and layer, ``SMCI_{1km|9km}_{year}_{depth}cm.nc``
      with ``SMCI(time, lat, lon)`` in 0.001 m³/m³ (also what `smci layout` writes):
      each file's layer is the depth in its name.

Units are checked: ``m3 m-3`` (and its spellings), ``1``, ``%`` (÷ 100) or
``0.001 m3/m3`` (× 0.001); anything else (e.g. ``kg m-2``, water per layer) is refused.

Layer mapping (which product value stands for each model layer, 0–10 … 90–100 cm)
    * explicit, ``--layers 10:swvl1,20:swvl2,30:swvl2``: ``LAYER_CM:VARIABLE`` or
      ``LAYER_CM:DEPTH_CM`` (a level of the depth axis, within 0.5 cm); unnamed layers
      are not compared; files without the named variables are passed over (a folder may
      mix files), and a variable no file has is an error;
    * SMCI1.0 layout: the depth in each file name;
    * a depth axis: the level whose bounds contain the layer's mid-depth (d − 5 cm);
      without bounds, the level nearest to it. No interpolation between levels: each
      product value stays one of the product's own numbers;
    * ERA5-Land's ``swvl1``…``swvl4``: the configured ``matching.reference`` table (the
      layer the in-situ series were matched to), so "ERA5-Land" here equals the
      validation's ERA5-Land baseline;
    * otherwise: an error asking for ``--layers``.

Each station cell takes the product cell nearest to its centre; a station farther than
``compare.max_distance_cells`` product cells from it (outside the product's grid) has
no value, and the count is reported.
"""

from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from smci_gpu.config import Config
from smci_gpu.errors import ConfigError, InputDataError
from smci_gpu.evaluate.metrics import all_metrics
from smci_gpu.io.atomic import atomic_path
from smci_gpu.pipeline import stage

SMCI1_NAME = re.compile(r"SMCI_(1km|9km)_(\d{4})_(\d+)cm\.nc$")
ERA5_SM = re.compile(r"swvl[1-4]$")
#: Unit spellings accepted, with the factor to m³/m³.
UNITS = {
    **dict.fromkeys(
        ("m3 m-3", "m3/m3", "m**3 m**-3", "m^3 m^-3", "m3.m-3", "m3m-3", "cm3 cm-3", "cm3/cm3"),
        1.0,
    ),
    **dict.fromkeys(("1", "fraction", "volume fraction"), 1.0),
    **dict.fromkeys(("%", "percent", "% vol", "%vol"), 0.01),
    **dict.fromkeys(("0.001 m3/m3", "0.001 m3 m-3", "1e-3 m3 m-3"), 0.001),
}
MID_DEPTH_CM = 5.0  # a model layer d spans d − 10 … d cm
#: Values read per block of time steps (float64: 160 MB), whatever the product's grid.
READ_BLOCK_VALUES = 20_000_000


@dataclass
class ProductSpec:
    """A product to compare: where its files are, its name and an explicit layer mapping."""

    path: str
    name: str = ""
    layers: dict[int, str] = field(default_factory=dict)

    def label(self) -> str:
        return self.name or Path(self.path.rstrip("/")).name


def parse_layers(spec: str | None, where: str = "--layers") -> dict[int, str]:
    """``"10:swvl1,20:5"`` → ``{10: "swvl1", 20: "5"}``; empty or ``auto`` → ``{}``."""
    if not spec or spec.strip() == "auto":
        return {}
    out: dict[int, str] = {}
    for item in spec.split(","):
        layer, sep, source = item.strip().partition(":")
        if not sep or not layer.strip().isdigit() or not source.strip():
            raise ConfigError(f"{where} {spec!r}: expected LAYER_CM:VARIABLE or LAYER_CM:DEPTH_CM")
        out[int(layer)] = source.strip()
    return out


def product_files(path: str) -> list[Path]:
    """A file, the ``*.nc`` files of a folder, or the files a glob pattern matches."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(p.glob("*.nc")) if p.is_dir() else []
    if not files and any(ch in path for ch in "*?["):
        files = [Path(f) for f in sorted(glob.glob(path))]
    if not files:
        raise InputDataError(f"product {path}: no NetCDF file there (a file, folder or glob)")
    return files


def unit_factor(units: str | None, where: str) -> float:
    """Factor from a variable's ``units`` to m³/m³; a clear error for anything else."""
    key = " ".join(str(units or "").strip().lower().split())
    if key not in UNITS:
        raise InputDataError(
            f"{where}: units {units!r}; expected volumetric soil moisture in m3 m-3, % or "
            "0.001 m3/m3"
        )
    return UNITS[key]


def _coord(ds, kind: str, where: str) -> str:
    """Name of the latitude/longitude/time coordinate by its CF attributes."""
    want = {
        "lat": ("latitude", "degrees_north", "Y", ("lat", "latitude")),
        "lon": ("longitude", "degrees_east", "X", ("lon", "longitude")),
        "time": ("time", None, "T", ("time", "valid_time")),
    }[kind]
    sn, units, axis, names = want
    for name, c in ds.coords.items():
        a = c.attrs
        if c.ndim == 1 and (
            a.get("standard_name") == sn
            or (units and a.get("units") == units)
            or a.get("axis") == axis
        ):
            return str(name)
    for name in names:
        if name in ds.coords and ds[name].ndim == 1:
            return name
    if kind == "time":
        for name, c in ds.coords.items():
            if c.ndim == 1 and np.issubdtype(c.dtype, np.datetime64):
                return str(name)
    raise InputDataError(f"{where}: no 1-D {kind} coordinate (by CF attributes or name)")


def _depth_axis(var) -> tuple[str, float, np.ndarray] | None:
    """The depth dimension of a variable: name, factor to cm and levels (cm), or None."""
    for dim in var.dims:
        if dim not in var.coords:
            continue
        c = var.coords[dim]
        if c.attrs.get("standard_name") == "depth" or c.attrs.get("axis") == "Z":
            units = str(c.attrs.get("units", "cm")).strip().lower()
            scale = 100.0 if units in ("m", "metre", "meter", "metres", "meters") else 1.0
            return str(dim), scale, np.asarray(c.values, float) * scale
    return None


def nearest(axis: np.ndarray, points: np.ndarray, max_cells: float) -> np.ndarray:
    """Index of the axis value nearest to each point (−1 farther than ``max_cells`` cells).

    ``axis`` may ascend or descend and be irregular; the allowed distance is
    ``max_cells`` times the spacing at the chosen cell.
    """
    axis = np.asarray(axis, float)
    order = np.argsort(axis)
    sorted_axis = axis[order]
    pos = np.clip(np.searchsorted(sorted_axis, points), 1, max(len(axis) - 1, 1))
    left, right = sorted_axis[pos - 1], sorted_axis[np.minimum(pos, len(axis) - 1)]
    pick = np.where(np.abs(points - left) <= np.abs(right - points), pos - 1, pos)
    pick = np.minimum(pick, len(axis) - 1)
    spacing = np.gradient(sorted_axis) if len(axis) > 1 else np.array([np.inf])
    far = np.abs(sorted_axis[pick] - points) > max_cells * np.abs(spacing[pick])
    return np.where(far, -1, order[pick])


def _plan(ds, path: Path, spec: ProductSpec, cfg: Config) -> list[tuple[int, str, int | None]]:
    """(model layer, variable, depth level index or None) to read from one file."""
    m = SMCI1_NAME.search(path.name)
    if m and not spec.layers:
        depth = int(m.group(3))
        return [(depth, "SMCI", None)] if depth in cfg.layers and "SMCI" in ds else []
    lat, lon = _coord(ds, "lat", str(path)), _coord(ds, "lon", str(path))
    gridded = [
        str(n) for n, v in ds.data_vars.items() if lat in v.dims and lon in v.dims and v.ndim >= 2
    ]
    mapping = spec.layers
    if not mapping:
        era5 = [n for n in gridded if ERA5_SM.match(n)]
        if era5:
            mapping = {d: cfg.matching.reference[d] for d in cfg.layers}
            mapping = {d: v for d, v in mapping.items() if v in era5}
        else:
            sm = [n for n in gridded if _depth_axis(ds[n]) is not None] or gridded
            if len(sm) != 1:
                raise ConfigError(
                    f"{path}: cannot tell which variable holds which layer ({gridded}); "
                    "give --layers LAYER_CM:VARIABLE,…"
                )
            axis = _depth_axis(ds[sm[0]])
            if axis is None:
                raise ConfigError(
                    f"{path}: {sm[0]} has no depth axis; give --layers LAYER_CM:{sm[0]},…"
                )
            return [(d, sm[0], _level_for(ds, sm[0], axis, d)) for d in cfg.layers]
    plan = []
    for depth, source in mapping.items():
        if depth not in cfg.layers:
            continue
        if source in ds:
            plan.append((depth, source, None))
            continue
        try:
            want = float(source)
        except ValueError:
            continue  # another file of the product may hold it (checked when all are read)
        var = next((n for n in gridded if _depth_axis(ds[n]) is not None), None)
        if var is None:
            raise InputDataError(f"{path}: no variable with a depth axis for {source} cm")
        _, _, levels = _depth_axis(ds[var])
        hit = np.flatnonzero(np.abs(levels - want) <= 0.5)
        if hit.size == 0:
            raise InputDataError(f"{path}: no depth level at {want} cm (levels {levels} cm)")
        plan.append((depth, var, int(hit[0])))
    return plan


def _level_for(ds, var: str, axis, depth: int) -> int:
    """The depth level whose bounds hold the layer's mid-depth, else the nearest level."""
    dim, scale, levels = axis
    mid = depth - MID_DEPTH_CM
    bname = ds[dim].attrs.get("bounds")
    if bname and bname in ds:
        b = np.asarray(ds[bname].values, float) * scale
        inside = np.flatnonzero((b.min(axis=1) <= mid) & (mid <= b.max(axis=1)))
        if inside.size:
            return int(inside[0])
    return int(np.argmin(np.abs(levels - mid)))


def sample_product(
    spec: ProductSpec, points: pd.DataFrame, cfg: Config
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Daily values of a product at the points (``lat``, ``lon``; index = point id).

    Returns a frame ``point, layer_cm, time, value`` (m³/m³, UTC days) and a record of
    what was read (files, mapping, units, points outside the grid). Each file is read in
    blocks of time steps over the box that holds the points, so memory stays bounded.
    """
    import xarray as xr

    files = product_files(spec.path)
    parts, info = [], {"name": spec.label(), "path": spec.path, "files": 0}
    mapping: dict[int, str] = {}
    outside, used = 0, set()
    for path in files:
        try:
            ds = xr.open_dataset(path, engine="netcdf4")
        except Exception as exc:  # noqa: BLE001 - a damaged file is named, not a traceback
            raise InputDataError(f"product file {path} cannot be read: {exc}") from exc
        with ds:
            plan = _plan(ds, path, spec, cfg)
            if not plan:
                continue
            lat, lon = _coord(ds, "lat", str(path)), _coord(ds, "lon", str(path))
            tname = _coord(ds, "time", str(path))
            plon = points.lon.to_numpy(float)
            if float(ds[lon].max()) > 180:  # a 0–360° product
                plon = np.mod(plon, 360.0)
            ri = nearest(ds[lat].values, points.lat.to_numpy(float), cfg.compare.max_distance_cells)
            ci = nearest(ds[lon].values, plon, cfg.compare.max_distance_cells)
            ok = (ri >= 0) & (ci >= 0)
            outside = max(outside, int((~ok).sum()))
            if not ok.any():
                continue
            for depth, var, level in plan:
                da = ds[var]
                where = f"{path}: {var}"
                factor = unit_factor(da.attrs.get("units"), where)
                if tname not in da.dims:
                    raise InputDataError(f"{where} has no time dimension {tname!r}")
                if level is not None:
                    da = da.isel({_depth_axis(da)[0]: level})
                extra = [d for d in da.dims if d not in (tname, lat, lon)]
                if extra:
                    raise InputDataError(f"{where}: dimensions {extra} besides time, lat, lon")
                mapping[depth] = var if level is None else f"{var}[{level}]"
                used.add(path)
                values = _read_points(da.transpose(tname, lat, lon), lat, lon, ri[ok], ci[ok])
                values = values * factor
                values[~_days_written(ds, tname)] = np.nan
                times = pd.DatetimeIndex(ds[tname].values)
                frame = pd.DataFrame(values, index=times, columns=points.index[ok])
                parts.append(_daily(frame).assign(layer_cm=depth))
                info.setdefault("units", {})[var] = str(da.attrs.get("units"))
    missing = [
        f"{d} cm ← {v}" for d, v in spec.layers.items() if d in cfg.layers and d not in mapping
    ]
    if missing:
        raise InputDataError(f"product {spec.path}: no file has {', '.join(missing)}")
    if not parts:
        raise InputDataError(
            f"product {spec.path}: no values for layers {cfg.layers} at the stations"
        )
    long = pd.concat(parts, ignore_index=True)
    # A day in two files (overlap) counts once.
    long = long.groupby(["point", "layer_cm", "time"], as_index=False).value.mean()
    _check_range(long.value.to_numpy(), spec.path)
    info.update(
        {
            "layers": {str(k): v for k, v in sorted(mapping.items())},
            "outside": outside,
            "files": len(used),  # files that held a compared layer
        }
    )
    return long, info


def _days_written(ds, tname: str) -> np.ndarray:
    """True for each time step that holds values: a year-layer file of the SMCI1.0 layout
    flags its finished days in ``day_written`` (a day being added when a run stopped is
    not data); files without the flag hold values at every step."""
    flag = ds.variables.get("day_written")
    if flag is None or flag.dims != (tname,):
        return np.ones(ds.sizes[tname], dtype=bool)
    return np.asarray(flag.values) == 1


def _read_points(da, lat: str, lon: str, ri: np.ndarray, ci: np.ndarray) -> np.ndarray:
    """Values ``(time, points)`` of a (time, lat, lon) array at cells ``(ri, ci)``."""
    r0, r1, c0, c1 = ri.min(), ri.max() + 1, ci.min(), ci.max() + 1
    box = da.isel({lat: slice(r0, r1), lon: slice(c0, c1)})
    step = max(1, READ_BLOCK_VALUES // max(1, (r1 - r0) * (c1 - c0)))
    out = np.empty((da.shape[0], ri.size), np.float64)
    for t in range(0, da.shape[0], step):
        block = np.asarray(box[t : t + step].values, dtype=np.float64)
        out[t : t + step] = block[:, ri - r0, ci - c0]
    return out


def _daily(frame: pd.DataFrame) -> pd.DataFrame:
    """Wide ``(time, point)`` values → long daily means (UTC calendar days)."""
    daily = frame.groupby(frame.index.normalize()).mean()
    daily.index.name = "time"
    daily.columns.name = "point"
    long = daily.reset_index().melt(id_vars="time", var_name="point", value_name="value")
    return long.dropna(subset=["value"])


def _check_range(values: np.ndarray, where: str) -> None:
    if values.size and np.nanpercentile(values, 99) > 1.0:
        raise InputDataError(
            f"product {where}: values up to {np.nanmax(values):.3g} after unit conversion; "
            "volumetric soil moisture must lie in 0–1 m3/m3 (are the units right?)"
        )


# --------------------------------------------------------------------------- scoring


def station_points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per station cell: ``lat``, ``lon`` of its centre, indexed by ``stations``."""
    return table.groupby("stations")[["lat", "lon"]].first()


def model_series(cfg: Config) -> tuple[pd.DataFrame | None, str]:
    """The first experiment's out-of-sample predictions from `smci validate`, if any."""
    path = Path(cfg.path("work", "validation", "predictions.parquet"))
    if not path.exists():
        return None, ""
    pred = pd.read_parquet(path)
    if pred.empty:
        return None, ""
    first = pred.experiment.iloc[0]
    pred = pred[pred.experiment == first][["stations", "layer_cm", "time", "model"]]
    return pred, f"model ({first} test rows)"


def collocate(
    table: pd.DataFrame, samples: dict[str, pd.DataFrame], model: pd.DataFrame | None, label: str
) -> pd.DataFrame:
    """The station-day rows with one column per product (NaN where it has no value)."""
    keys = ["stations", "depth_cm", "time"]
    out = table[[*keys, "lat", "lon", "sm", "sm_matched"]].copy()
    parts = {label: model.rename(columns={"model": label})} if model is not None else {}
    for name, s in samples.items():
        parts[name] = s.rename(columns={"point": "stations", "value": name})
    frames = [out] + [p.rename(columns={"layer_cm": "depth_cm"}) for p in parts.values()]
    for f in frames:  # one day resolution for the join (parquet may hold µs, xarray ns)
        f["time"] = pd.DatetimeIndex(f.time).normalize().astype("datetime64[ns]")
        f["depth_cm"] = f.depth_cm.astype(int)
    out = frames[0]
    for f in frames[1:]:
        out = out.merge(f, on=keys, how="left")
    return out


def score(rows: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Metrics per series, layer and target, on each series' own rows and on the rows
    where every series has a value (``common``)."""
    out = []
    common = rows[names].notna().all(axis=1)
    for depth, g in rows.groupby("depth_cm", sort=True):
        for subset in ("own", "common"):
            h = g[common.loc[g.index]] if subset == "common" else g
            for name in names:
                for target, col in (("raw", "sm"), ("matched", "sm_matched")):
                    out.append(
                        {
                            "product": name,
                            "rows": subset,
                            "target": target,
                            "layer_cm": int(depth),
                            **all_metrics(h[col].to_numpy(), h[name].to_numpy()),
                        }
                    )
    return pd.DataFrame(out)


def compare_products(cfg: Config, specs: list[ProductSpec], console: Console) -> dict[str, Any]:
    """Sample every product at the stations, score them beside the model, write
    ``work/compare/`` (``compare.csv``, ``collocated.parquet``, ``compare.json``)."""
    if not specs:
        raise ConfigError("compare: no product given (PRODUCT…)")
    labels = [s.label() for s in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"compare: product names repeat ({labels}); give --name for each")
    path = Path(cfg.path("work", "station_days.parquet"))
    if not path.exists():
        raise InputDataError(f"station-day table {path} does not exist (run `smci prepare`)")
    table = pd.read_parquet(
        path, columns=["stations", "depth_cm", "time", "lat", "lon", "sm", "sm_matched"]
    )
    points = station_points(table)
    samples, infos = {}, []
    for spec in specs:
        values, info = sample_product(spec, points, cfg)
        samples[spec.label()] = values
        infos.append(info)
    model, label = model_series(cfg)
    rows = collocate(table, samples, model, label)
    names = ([label] if model is not None else []) + list(samples)
    metrics = score(rows, names)
    out = Path(cfg.path("work", "compare"))
    with atomic_path(out / "compare.csv") as tmp:
        metrics.to_csv(tmp, index=False)
    with atomic_path(out / "collocated.parquet") as tmp:
        rows.to_parquet(tmp, index=False)
    summary = {"products": infos, "model": label, "stations": int(len(points))}
    with atomic_path(out / "compare.json") as tmp:
        tmp.write_text(json.dumps({**summary, "metrics": metrics.to_dict("records")}, indent=2))
    _print(console, metrics, infos)
    return {"path": str(out), **summary}


def _print(console: Console, metrics: pd.DataFrame, infos: list[dict[str, Any]]) -> None:
    for info in infos:
        console.print(
            f"compare: {info['name']}: {info['files']} file(s), layers {info['layers']}, "
            f"{info['outside']} station cell(s) outside its grid"
        )
    own = metrics[(metrics.rows == "own") & (metrics.target == "raw")]
    t = Table(title="compare: against in-situ before matching (each product's own rows)")
    for col in ("product", "layer", "n", "bias", "ubRMSE", "RMSE", "R", "R²"):
        t.add_column(col, justify="left" if col == "product" else "right")
    for _, r in own[own.n > 0].iterrows():  # a layer the product lacks has no row here
        t.add_row(
            str(r["product"]),
            f"{r.layer_cm} cm",
            f"{r.n:,}",
            f"{r.bias:+.3f}",
            f"{r.ubrmse:.3f}",
            f"{r.rmse:.3f}",
            f"{r.r:.3f}",
            f"{r.r2:.3f}",
        )
    console.print(t)
    lacking = own[own.n == 0].groupby("product").layer_cm.apply(list)
    for product, layers in lacking.items():
        console.print(f"compare: {product} has no values at the stations for {layers} cm")
    console.print("compare: all metrics (raw and matched, own and common rows) in work/compare/")


def default_products(cfg: Config) -> list[ProductSpec]:
    """What a working folder can be compared with by itself: its daily product files,
    their SMCI1.0 layout (when written) and its ERA5-Land daily-mean input files."""
    specs = []
    res = cfg.produce.resolution
    daily = Path(cfg.path("product", res))
    if any(daily.glob(f"SMCI_{res}_????????.nc")):
        specs.append(ProductSpec(str(daily / f"SMCI_{res}_????????.nc"), "product (daily files)"))
    layout = Path(cfg.path("product", f"smci1_{res}"))
    if any(layout.glob(f"SMCI_{res}_*cm.nc")):
        specs.append(ProductSpec(str(layout), "product (SMCI1.0 layout)"))
    era5 = Path(cfg.path("inputs", "era5land"))
    if any(era5.glob("*daily_mean*.nc")):
        specs.append(ProductSpec(str(era5 / "*daily_mean*.nc"), "ERA5-Land"))
    return specs


@stage("compare")
def compare(cfg: Config, console: Console, products: list[ProductSpec] | None = None) -> dict:
    """`smci compare`: the given products, or (none) :func:`default_products`.

    ``products=None`` is the pipeline's call (`smci demo`): it first writes the SMCI1.0
    layout of the daily files (`smci layout`, resumable) so the demo reads its product
    back in the published layout too. The command line passes a list, empty or not.
    """
    res = cfg.produce.resolution
    if products is None and any(Path(cfg.path("product", res)).glob(f"SMCI_{res}_*.nc")):
        from smci_gpu.layout import smci1_layout

        done = smci1_layout(cfg, res)
        console.print(
            f"compare: SMCI1.0 layout {len(done['written'])} file(s) written → {done['path']}"
        )
    specs = products or default_products(cfg)
    if not specs:
        raise InputDataError(
            "compare: no product given and none in the working folder (product/, "
            "inputs/era5land/*daily_mean*.nc)"
        )
    return compare_products(cfg, specs, console)
