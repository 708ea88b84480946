"""The straightforward day-tile a user would write without this engine, for comparison.

It reads the day's files with the engine's readers (a script reads them per day), then
does what xarray and scikit-learn offer directly: ``sel(method="nearest")`` to put
ERA5-Land on the 1 km grid, ``interp`` in time for LAI, boolean indexing to build the
predictor table, ``RandomForestRegressor.predict`` per layer, and ``to_netcdf`` of float32
fields. The forests are scikit-learn forests fitted with the same parameters and seed on
the same station-day rows as the engine's, so both compute the same product; the
benchmark records how far apart the two days' values are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smci_gpu.config import Config


def fit_sklearn_forests(cfg: Config) -> dict[int, Any]:
    """One scikit-learn forest per layer, as ``smci train`` fits them on the CPU (always
    scikit-learn itself, whatever ``forest.backend`` names: this is the plain baseline)."""
    from smci_gpu.model.train import TARGET, load_table, make_estimator

    table = load_table(cfg)
    forests = {}
    for depth in cfg.layers:
        rows = table[table.depth_cm == depth]
        est = make_estimator(cfg, "cpu", backend_name="sklearn")
        forests[depth] = est.fit(rows[cfg.features].to_numpy(np.float32), rows[TARGET].to_numpy())
    return forests


def baseline_day(cfg: Config, day, forests: dict[int, Any], path: Path) -> tuple[np.ndarray, float]:
    """Produce one day the plain xarray + scikit-learn way.

    Returns the ``(layers, ny, nx)`` values and the seconds spent reading files.
    """
    import time

    import xarray as xr

    from smci_gpu.features import LAI_SEARCH, land_mask
    from smci_gpu.io.era5land import Era5LandArchive
    from smci_gpu.io.rasters import read_lai, read_static
    from smci_gpu.variables import ERA5LAND_FEATURES, STATIC_FEATURES

    t0 = time.perf_counter()
    day = pd.Timestamp(day)
    grid = cfg.product_grid()
    era_vars = [f for f in cfg.features if f in ERA5LAND_FEATURES]
    era = Era5LandArchive.from_folder(cfg.path("inputs", "era5land")).load(day, day, era_vars)
    on_grid = era.isel(time=0).sel(
        lat=xr.DataArray(grid.lat, dims="y"), lon=xr.DataArray(grid.lon, dims="x"), method="nearest"
    )
    comp, dates = read_lai(cfg.path("inputs", "lai"), grid, day, day, margin=LAI_SEARCH + 1)
    lai = xr.DataArray(
        comp, dims=("time", "y", "x"), coords={"time": dates.astype("datetime64[ns]")}
    )
    lai_day = lai.interp(time=[np.datetime64(day, "ns")]).isel(time=0).fillna(0.0).values
    static_vars = list(STATIC_FEATURES)
    static = read_static(cfg.path("inputs", "static"), grid, static_vars, cfg.static.units)
    read_s = time.perf_counter() - t0
    land = land_mask(static, static_vars)
    columns = {v: on_grid[v].values[land] for v in era_vars}
    columns["lai"] = lai_day[land]
    columns.update({v: static[i][land] for i, v in enumerate(static_vars)})
    x = np.nan_to_num(np.column_stack([columns[f] for f in cfg.features]).astype(np.float32))
    out = np.full((len(cfg.layers), grid.ny, grid.nx), np.nan, dtype=np.float32)
    for k, depth in enumerate(cfg.layers):
        out[k][land] = forests[depth].predict(x)
    ds = xr.Dataset(
        {"sm": (("depth", "lat", "lon"), out)},
        coords={"depth": np.asarray(cfg.layers), "lat": grid.lat, "lon": grid.lon},
    )
    ds.to_netcdf(path, engine="netcdf4")
    return out, read_s
