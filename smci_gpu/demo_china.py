"""A China-size world: the real extent and sizes in the real file formats, cheaply.

`smci demo --size china` writes into ``DIR/inputs`` what production reads for the SMCI1.0
region (73–136° E, 18–54° N; 4320 × 7560 cells at 30″) over a short period, and a small
forest per layer into ``DIR/models``, so that `smci produce` and `smci bench produce
--size china` run a real-size day and month. There is no hidden truth at this size.

* Land is the real ERA5-Land land mask (``landmask_0.1_0.1.nc``; a cell is land where
  ``land`` ≥ 0.5), carried to 30″ and 15″ by nearest cell, so ERA5-Land, LAI water codes
  and land cover agree on the coast.
* Every field is smooth structure generated on the 0.1° ERA5-Land grid and interpolated
  (bilinear) to the fine grids: seconds per map, not the demo's per-pixel simulation.
* ERA5-Land comes per month as the CDS delivers it: states from the daily-statistics
  service (``daily_mean``) and accumulations from the hourly dataset at 00 UTC (the
  demo's ``daily`` layout), NaN over sea as in real files.
* LAI: one MODIS-like 8-day mosaic per composite at 15″ (500 m; uint8 × 0.1, 254 water,
  255 fill in cloud gaps). Static maps at 30″ (land cover included).
* Models: per layer a scikit-learn forest of ``trees`` trees (default 1, depth ≤ 10), fitted on
  seeded samples of these inputs against a smooth made-up target, with the features in the
  config's order. They make the product's numbers plausible; they say nothing about skill.

Disk for a month (July 2019, default): see :func:`generate_china`'s summary
(``bytes_written``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from smci_gpu.config import LAYERS_CM
from smci_gpu.errors import InputDataError
from smci_gpu.grid import RegularGrid, target_grid
from smci_gpu.io.atomic import atomic_path
from smci_gpu.io.cds import cds_dataset, write_cds_netcdf
from smci_gpu.io.geotiff import write_geotiff
from smci_gpu.variables import ACCUMULATED, ERA5LAND_FEATURES, FEATURES

#: The SMCI1.0 region (west, south, east, north), degrees.
CHINA_BBOX = (73.0, 18.0, 136.0, 54.0)
ERA5_RES = 0.1
LAI_FILL, LAI_WATER, LAI_SCALE = 255, 254, 0.1
WATER_CLASS = 17
#: Where the shared ERA5-Land land mask lies beside a checkout (``../shared``).
DEFAULT_LANDMASK = Path(__file__).resolve().parents[2] / "shared/data/era5/landmask_0.1_0.1.nc"

#: Value ranges of the generated ERA5-Land fields (canonical units, variables.yaml).
_ERA_RANGES = {
    "swvl1": (0.08, 0.42),
    "swvl2": (0.09, 0.43),
    "swvl3": (0.10, 0.44),
    "swvl4": (0.11, 0.45),
    "stl1": (270.0, 305.0),
    "stl2": (271.0, 303.0),
    "stl3": (272.0, 300.0),
    "stl4": (274.0, 296.0),
    "t2m": (265.0, 306.0),
    "tp": (0.0, 0.02),
    "e": (-0.005, 0.0),
    "pev": (-0.01, 0.0),
    "ssrd": (5e6, 3e7),
    "strd": (2.0e7, 3.6e7),
    "lai_hv": (0.0, 5.0),
    "lai_lv": (0.0, 3.0),
}


def era5_axes(bbox: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """ERA5-Land 0.1° cell centres covering ``bbox`` (lat ascending, lon −180..180).

    The cells are those whose centres lie in ``[south, north] × [west, east]`` on the
    0.1° lattice of whole tenths, as the CDS cuts an ``area`` request.
    """
    west, south, east, north = bbox
    lat = np.round(np.arange(round(south * 10), round(north * 10) + 1) * ERA5_RES, 4)
    lon = np.round(np.arange(round(west * 10), round(east * 10) + 1) * ERA5_RES, 4)
    return lat, lon


def read_landmask(path: str | Path, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``(lat, lon)`` bool land of the ERA5-Land land mask at the given cell centres.

    Raises
    ------
    InputDataError
        The file is missing, has no ``land``/``lsm`` variable, or lacks one of the cells.
    """
    import netCDF4

    path = Path(path)
    if not path.exists():
        raise InputDataError(f"ERA5-Land land mask {path} does not exist (--landmask)")
    with netCDF4.Dataset(path) as nc:
        name = next((v for v in ("land", "lsm") if v in nc.variables), None)
        if name is None:
            raise InputDataError(f"ERA5-Land land mask {path} has no variable 'land' or 'lsm'")
        flat = np.round(np.asarray(nc["latitude"][:], np.float64), 4)
        flon = np.round(np.asarray(nc["longitude"][:], np.float64) % 360.0, 4)
        values = np.asarray(nc[name][:], np.float32).squeeze()
    rows = _positions(flat, lat, path, "latitude")
    cols = _positions(flon, np.round(lon % 360.0, 4), path, "longitude")
    return values[np.ix_(rows, cols)] >= 0.5


def _positions(axis: np.ndarray, want: np.ndarray, path: Path, name: str) -> np.ndarray:
    index = {v: i for i, v in enumerate(axis.tolist())}
    missing = [w for w in want.tolist() if w not in index]
    if missing:
        raise InputDataError(
            f"ERA5-Land land mask {path}: {name} {missing[0]} not on its 0.1° grid"
        )
    return np.array([index[w] for w in want.tolist()])


def _nearest(axis: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Index of the nearest of regular ``axis`` (ascending) for each of ``coords``."""
    step = axis[1] - axis[0] if axis.size > 1 else ERA5_RES
    return np.clip(np.rint((coords - axis[0]) / step).astype(np.int64), 0, axis.size - 1)


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field (correlation ~``sigma`` cells), float32."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return ((f - f.mean()) / (f.std() + 1e-12)).astype(np.float32)


def _zoom(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of a 0.1° field to a fine grid of ``shape`` (float32)."""
    factors = (shape[0] / coarse.shape[0], shape[1] / coarse.shape[1])
    return ndimage.zoom(coarse.astype(np.float32), factors, order=1, grid_mode=True, mode="nearest")


def _to_range(f: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (lo + (hi - lo) / (1.0 + np.exp(-1.5 * f))).astype(np.float32)


class ChinaWorld:
    """The generator's state: grids, land, the 0.1° structure every field is built from."""

    def __init__(self, bbox, landmask: np.ndarray | None, seed: int, landmask_path=None):
        self.bbox = bbox
        self.grid = target_grid(*bbox, 30)
        self.era_lat, self.era_lon = era5_axes(bbox)
        shape = (self.era_lat.size, self.era_lon.size)
        if landmask is None:
            landmask = read_landmask(landmask_path or DEFAULT_LANDMASK, *self.era_axes)
        if landmask.shape != shape:
            raise InputDataError(f"land mask has shape {landmask.shape}, expected {shape}")
        self.land = landmask
        self.rng = np.random.default_rng(seed)
        sigma = max(2.0, min(shape) / 12)
        self.relief = _smooth(self.rng, shape, sigma)
        self.wet = _smooth(self.rng, shape, sigma / 2)
        self.greenness = _to_range(_smooth(self.rng, shape, sigma / 2) + 0.5 * self.wet, 0.3, 4.5)

    @property
    def era_axes(self) -> tuple[np.ndarray, np.ndarray]:
        return self.era_lat, self.era_lon

    def fine_land(self, grid: RegularGrid) -> np.ndarray:
        """Land on ``grid`` by nearest ERA5-Land cell (lat ascending)."""
        iy = _nearest(self.era_lat, grid.lat)
        ix = _nearest(self.era_lon, grid.lon)
        return self.land[np.ix_(iy, ix)]


def write_static(world: ChinaWorld, out: Path) -> None:
    """Land cover, DEM and soil maps at 30″, one GeoTIFF each (float32, nodata −9999)."""
    out.mkdir(parents=True, exist_ok=True)
    g = world.grid
    relief = _zoom(world.relief, g.shape)
    rng = world.rng
    coarse = world.relief.shape
    dem = _to_range(relief, 0.0, 5000.0)
    write_geotiff(out / "dem.tif", dem.astype(np.float32), g, nodata=-9999.0)
    del dem
    sand = _to_range(_zoom(_smooth(rng, coarse, 6), g.shape) + 0.4 * relief, 15.0, 75.0)
    clay = np.minimum(
        _to_range(_zoom(_smooth(rng, coarse, 5), g.shape) - 0.3 * relief, 5, 45), 95 - sand
    )
    write_geotiff(out / "sa.tif", sand, g, nodata=-9999.0)
    write_geotiff(out / "cl.tif", clay, g, nodata=-9999.0)
    write_geotiff(out / "si.tif", (100.0 - sand - clay).astype(np.float32), g, nodata=-9999.0)
    del sand, clay
    grav = _to_range(_zoom(_smooth(rng, coarse, 4), g.shape) + 0.8 * relief, 0.0, 35.0)
    write_geotiff(out / "grav.tif", grav, g, nodata=-9999.0)
    del grav
    bd = _to_range(_zoom(_smooth(rng, coarse, 5), g.shape), 1.15, 1.6)
    write_geotiff(out / "bd.tif", bd, g, nodata=-9999.0)
    write_geotiff(out / "por.tif", (1.0 - bd / 2.65).astype(np.float32), g, nodata=-9999.0)
    del bd
    lc = np.full(g.shape, 10, dtype=np.uint8)  # grassland
    lc[relief > 0.5] = 4  # deciduous broadleaf forest
    lc[relief > 1.1] = 1  # evergreen needleleaf forest
    lc[relief < -0.2] = 12  # cropland
    lc[~world.fine_land(g)] = WATER_CLASS
    write_geotiff(out / "landcover.tif", lc, g, nodata=0)


def composite_starts(days: pd.DatetimeIndex) -> list[pd.Timestamp]:
    """MODIS 8-day composite starts (day of year 1, 9, 17, …) from one before the first day
    to one after the last."""
    starts = []
    for year in range(days[0].year - 1, days[-1].year + 2):
        for doy in range(1, 366, 8):
            starts.append(pd.Timestamp(year, 1, 1) + pd.Timedelta(days=doy - 1))
    first = max(s for s in starts if s <= days[0]) - pd.Timedelta(days=8)
    last = max(s for s in starts if s <= days[-1]) + pd.Timedelta(days=8)
    return [s for s in starts if first <= s <= last]


def seasonal(day: pd.Timestamp) -> float:
    """LAI seasonal factor: 0.35 in January to 1.0 in late July."""
    return 0.675 - 0.325 * float(np.cos(2 * np.pi * (day.day_of_year - 15) / 365.25))


def write_lai(world: ChinaWorld, out: Path, days: pd.DatetimeIndex) -> list[pd.Timestamp]:
    """One 15″ (500 m) mosaic per 8-day composite bracketing ``days``; their start days."""
    out.mkdir(parents=True, exist_ok=True)
    g = world.grid
    g500 = RegularGrid(g.west, g.south, g.res / 2, g.ny * 2, g.nx * 2)
    base = _zoom(world.greenness, g500.shape)
    iy, ix = _nearest(world.era_lat, g500.lat), _nearest(world.era_lon, g500.lon)
    land = world.land[np.ix_(iy, ix)]
    starts = composite_starts(days)
    for start in starts:
        gaps = _smooth(world.rng, world.relief.shape, 2.0) > 1.8  # cloud-contaminated
        stored = np.rint(base * np.float32(seasonal(start + pd.Timedelta(days=3)) / LAI_SCALE))
        stored = np.clip(stored, 0, 100).astype(np.uint8)
        stored[gaps[np.ix_(iy, ix)]] = LAI_FILL
        stored[~land] = LAI_WATER
        write_geotiff(
            out / f"LAI_{start.year}{start.day_of_year:03d}.tif",
            stored,
            g500,
            nodata=LAI_FILL,
            scale=LAI_SCALE,
            tags={"date": f"{start:%Y-%m-%d}"},
        )
    return starts


def era5_fields(world: ChinaWorld, days: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """``(days, lat, lon)`` float32 daily ERA5-Land values (NaN over sea), canonical units.

    Each variable is a fixed 0.1° pattern plus two patterns whose weights drift smoothly
    from day to day, mapped into the variable's range (:data:`_ERA_RANGES`).
    """
    rng, shape = world.rng, world.relief.shape
    sigma = max(2.0, min(shape) / 20)
    t = np.arange(days.size, dtype=np.float32)[:, None, None]
    out = {}
    for k, name in enumerate(ERA5LAND_FEATURES):
        base = _smooth(rng, shape, sigma) + (0.5 * world.wet if name.startswith("swvl") else 0)
        p1, p2 = _smooth(rng, shape, sigma), _smooth(rng, shape, sigma / 2)
        phase = rng.uniform(0, 2 * np.pi)
        z = base + 0.6 * np.sin(t / 5.0 + phase) * p1 + 0.4 * np.cos(t / 3.0 + k) * p2
        lo, hi = _ERA_RANGES[name]
        v = _to_range(z, lo, hi)
        v[:, ~world.land] = np.nan
        out[name] = v
    return out


def write_era5(world: ChinaWorld, out: Path, days: pd.DatetimeIndex) -> None:
    """Monthly files as the CDS delivers them (the demo's ``daily`` layout): states from
    the daily-statistics service, accumulations from the hourly dataset at 00 UTC (day
    d's total stamped d+1 00 UTC)."""
    out.mkdir(parents=True, exist_ok=True)
    stamps = days.append(pd.DatetimeIndex([days[-1] + pd.Timedelta(days=1)]))
    fields = era5_fields(world, stamps)
    states = [v for v in ERA5LAND_FEATURES if v not in ACCUMULATED]
    lat, lon = world.era_lat, world.era_lon
    for month in pd.period_range(days[0], days[-1], freq="M"):
        sel = np.flatnonzero(days.to_period("M") == month)
        stamp = f"{month.year}{month.month:02d}"
        daily = {v: fields[v][sel] for v in states}
        ds = cds_dataset(daily, days[sel], lat, lon, "new", statistic="daily_mean")
        write_cds_netcdf(ds, out / f"era5land_daily_mean_{stamp}.nc")
        acc = {v: fields[v][sel] for v in ACCUMULATED}
        ds = cds_dataset(acc, stamps[sel + 1], lat, lon, layout="new")
        write_cds_netcdf(ds, out / f"era5land_accum_00utc_{stamp}.nc")


def training_rows(
    world: ChinaWorld, inputs: Path, days: pd.DatetimeIndex, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seeded (pixel, day) rows of the features (config order) and a made-up
    ``(n, layers)`` target: the ERA5-Land layer at each depth, wetter under more LAI and
    clay, plus noise. Read back from the written inputs at the sampled pixels only."""
    from smci_gpu.io.rasters import read_band

    rng = world.rng
    g = world.grid
    land = world.fine_land(g)
    rr, cc = np.nonzero(land)
    pick = rng.choice(rr.size, size=min(n, rr.size), replace=False)
    rows, cols = rr[pick], cc[pick]
    day_i = rng.integers(0, days.size, rows.size)
    cols_out = {}
    for name in ("landcover", "dem", "grav", "por", "sa", "si", "cl", "bd"):
        raw = read_band(inputs / "static" / f"{name}.tif").raw[::-1]  # lat ascending
        cols_out[name] = raw[rows, cols].astype(np.float32)
    iy, ix = _nearest(world.era_lat, g.lat[rows]), _nearest(world.era_lon, g.lon[cols])
    fields = era5_fields(
        ChinaWorld(world.bbox, world.land, int(rng.integers(1 << 30))), days
    )  # same ranges and structure as the inputs; values differ, which is all a toy needs
    for name, v in fields.items():
        cols_out[name] = v[day_i, iy, ix]
    cols_out["lai"] = world.greenness[iy, ix] * np.float32(seasonal(days[days.size // 2]))
    x = np.stack([cols_out[f] for f in FEATURES], axis=1).astype(np.float32)
    depth = np.asarray(LAYERS_CM, np.float32)[None, :]
    shallow, deep = cols_out["swvl1"][:, None], cols_out["swvl3"][:, None]
    w = np.clip((depth - 10.0) / 90.0, 0, 1)
    y = (1 - w) * shallow + w * deep
    y += 0.01 * (cols_out["lai"][:, None] - 2.0) + 0.002 * (cols_out["cl"][:, None] - 25.0)
    y += rng.normal(0, 0.005, y.shape).astype(np.float32)
    return x, np.clip(y, 0.02, 0.55)


def train_models(cfg, x: np.ndarray, y: np.ndarray, trees: int, seed: int) -> None:
    """One scikit-learn forest of ``trees`` trees per layer, packed, with its card."""
    import sklearn
    from sklearn.ensemble import RandomForestRegressor

    from smci_gpu import __version__
    from smci_gpu.model.forest import PackedForest
    from smci_gpu.model.train import layer_dir

    for k, depth in enumerate(cfg.layers):
        est = RandomForestRegressor(
            n_estimators=trees,
            max_features=cfg.forest.max_features,
            min_samples_leaf=cfg.forest.min_samples_leaf,
            max_depth=cfg.forest.max_depth,
            random_state=seed + k,
            n_jobs=2,
        ).fit(x, y[:, LAYERS_CM.index(depth)])
        forest = PackedForest.from_sklearn(est, list(cfg.features))
        out = layer_dir(cfg, depth)
        forest.save(out / "forest.npz")
        card = {
            "layer_cm": depth,
            "features": list(cfg.features),
            "target": "sm",
            "forest": {**cfg.forest.model_dump(), "n_estimators": trees},
            "device": "cpu",
            "rows": int(len(x)),
            "stations": 0,
            "note": "China-size world: fitted on generated inputs against a made-up target",
            "model_digest": forest.digest(),
            "data_hash": "china-world",
            "config_hash": cfg.hash(),
            "grid_resolution_arcsec": cfg.grid.resolution_arcsec,
            "versions": {"smci_gpu": __version__, "sklearn": sklearn.__version__},
            "n_nodes": forest.n_nodes,
        }
        with atomic_path(out / "card.json") as tmp:
            tmp.write_text(json.dumps(card, indent=2))


def china_config_toml(bbox, start: str, end: str, trees: int) -> str:
    """The ``smci.toml`` written beside the China-size world's inputs."""
    west, south, east, north = bbox
    return f"""# Written by `smci demo --size china`: the China-size world's configuration.
[region]
west = {west}
south = {south}
east = {east}
north = {north}

[forest]
# Small on purpose: inference time is measured per tree and scaled to the paper's 100.
n_estimators = {trees}
max_depth = 10
max_features = 8
min_samples_leaf = 20

[produce]
start = {start}
end = {end}
tile_size = 512
"""


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def generate_china(
    workdir: str | Path,
    start: str = "2019-07-01",
    end: str = "2019-07-31",
    trees: int = 1,
    seed: int = 42,
    bbox: tuple[float, float, float, float] = CHINA_BBOX,
    landmask: str | Path | None = None,
    train_rows: int = 40_000,
) -> dict:
    """Write the China-size world (inputs, models, ``smci.toml``) into ``workdir``.

    Parameters
    ----------
    start, end
        The period (days inclusive; ERA5-Land files per month, LAI composites bracketing).
    trees
        Trees per layer of the fitted forests (inference time scales with it).
    bbox
        (west, south, east, north) in degrees on whole tenths: the SMCI1.0 region by
        default; tests pass a few cells of it.
    landmask
        The ERA5-Land land mask NetCDF (default: the shared copy beside the checkout).

    Returns
    -------
    dict
        Grid shape, land cells, seconds per part and bytes written per input folder.

    Raises
    ------
    InputDataError
        The land mask is missing or does not cover ``bbox``.
    """
    from smci_gpu.config import load_config

    workdir = Path(workdir)
    inputs = workdir / "inputs"
    days = pd.date_range(start, end, freq="D")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    world = ChinaWorld(bbox, None, seed, landmask_path=landmask)
    for part, fn in (
        ("static", lambda: write_static(world, inputs / "static")),
        ("lai", lambda: write_lai(world, inputs / "lai", days)),
        ("era5land", lambda: write_era5(world, inputs / "era5land", days)),
    ):
        fn()
        seconds[part] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
    (workdir / "smci.toml").write_text(china_config_toml(bbox, start, end, trees))
    cfg = load_config(workdir=workdir, overrides={"device": "cpu"})
    x, y = training_rows(world, inputs, days, train_rows)
    train_models(cfg, x, y, trees, seed)
    seconds["models"] = round(time.perf_counter() - t0, 1)
    return {
        "grid": list(world.grid.shape),
        "era5_cells": list(world.land.shape),
        "era5_land_cells": int(world.land.sum()),
        "land_pixels": int(world.fine_land(world.grid).sum()),
        "days": int(days.size),
        "trees": trees,
        "seconds": seconds,
        "bytes": {p: _folder_bytes(inputs / p) for p in ("era5land", "lai", "static")},
    }
