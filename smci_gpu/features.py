"""The one predictor builder: any set of pixels, any day, in the config's feature order.

The station-day table is this builder sampled at station pixels, and production calls it
for every land pixel of a tile, so training and production features are identical by
construction.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from smci_gpu import backend, kernels
from smci_gpu.config import Config
from smci_gpu.grid import RegularGrid, index_maps
from smci_gpu.io.era5land import NETCDF_LOCK, Era5LandArchive
from smci_gpu.io.rasters import LaiComposites, read_static
from smci_gpu.kernels.assemble import COARSE, FINE
from smci_gpu.kernels.upsample import linear_weights
from smci_gpu.variables import ERA5LAND_FEATURES, STATIC_FEATURES

WATER_CLASSES = (0, 17)  # no data / IGBP water bodies
#: Composites searched past a NaN one on each side of a day (8-day composites: ~32 days).
LAI_SEARCH = 4


def column_plan(features: list[str], era_vars: list[str], fine_vars: list[str]):
    """Per feature: (kind, index) into the coarse or the fine stack."""
    kind = np.array([COARSE if f in era_vars else FINE for f in features], dtype=np.int64)
    index = np.array(
        [era_vars.index(f) if f in era_vars else fine_vars.index(f) for f in features],
        dtype=np.int64,
    )
    return kind, index


#: LAI composites held in this process across the days it loads (production walks the
#: days in order, so each composite is read once).
_LAI = LaiComposites()

#: Static maps already read in this process, by folder, grid, names and file times.
_STATIC: dict[tuple, np.ndarray] = {}


def bilinear_maps(grid: RegularGrid, era_lat, era_lon):
    """Separable bilinear maps of the 1 km grid on the ERA5-Land cell centres.

    Returns ``(iy0, ix0, (iy1, wy, ix1, wx))``: per fine row the two ERA5-Land rows and the
    second's weight, the same per column (:func:`kernels.upsample.linear_weights`; edges
    clamped), as :func:`kernels.assemble_features` takes them.
    """
    iy0, iy1, wy = linear_weights(era_lat, grid.lat, name="ERA5-Land latitude")
    ix0, ix1, wx = linear_weights(era_lon, grid.lon, period=360.0, name="ERA5-Land longitude")
    return iy0, ix0, (iy1, wy, ix1, wx)


def static_maps(
    folder, grid, names: list[str], units: dict[str, str] | None = None, copy: bool = True
) -> np.ndarray:
    """Static maps on the grid, read once per process while their files are unchanged
    (a Dask worker keeps them across its tasks); ``units``: declared file units by map.
    ``copy=False`` returns the held array itself (1 GB at China size), to be read only."""
    stamps = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in Path(folder).glob("*")))
    key = (str(folder), grid, tuple(names), tuple(sorted((units or {}).items())), stamps)
    if key not in _STATIC:
        _STATIC.clear()
        _STATIC[key] = read_static(folder, grid, names, units)
    return _STATIC[key].copy() if copy else _STATIC[key]


def land_mask(static, static_vars: list[str]):
    """``(ny, nx)`` True where land cover is not water and every static map is valid."""
    xp = backend.array_module(static)
    lc = static[static_vars.index("landcover")]
    ok = ~xp.isin(lc, xp.asarray(WATER_CLASSES, dtype=lc.dtype))
    return ok & xp.all(xp.isfinite(static), axis=0)


class FineBuffer:
    """Reusable memory for :meth:`Predictors.fine_stack` over a run of days (one thread).

    Holds the ``(1 + n_static, ny, nx)`` float32 stack with the static maps it was filled
    from, the stacked LAI composites of the last window and the land mask. Each is kept
    while the same (identical) arrays come in: static maps and LAI composites are held
    once per process and shared by the days' :class:`Predictors`, so the copies are made
    once per run, or once per LAI window.
    """

    def __init__(self) -> None:
        self._static = None  # the static array the buffer was filled from (kept alive)
        self._fine = None
        self._comps: tuple = ()  # the composites stacked in _stack (kept alive)
        self._stack = None
        self._land = None

    def with_static(self, static, xp):
        """The stack, its planes ``1:`` holding ``static`` (copied when it is new)."""
        if self._static is not static:
            self._fine = None  # free the old stack before allocating the new one
            self._fine = xp.empty((1 + static.shape[0], *static.shape[1:]), np.float32)
            self._fine[1:] = static
            self._static, self._land = static, None
        return self._fine

    def window(self, comps, xp):
        """``comps`` (held ``(ny, nx)`` maps, or an array) as one ``(T, ny, nx)`` array,
        stacked again only when the maps differ from the last call's."""
        if not isinstance(comps, list):
            return comps
        if len(comps) != len(self._comps) or any(
            a is not b for a, b in zip(comps, self._comps, strict=True)
        ):
            self._stack = None
            self._stack = xp.stack(comps)
            self._comps = tuple(comps)
        return self._stack

    def land_mask(self, pred: Predictors):
        """``pred.land_mask()``, computed once per static array."""
        if self._land is None or self._static is not pred.static:
            self.with_static(pred.static, backend.xp_for(pred.device))
            self._land = pred.land_mask()
        return self._land


@dataclass
class Predictors:
    """Inputs of a period, loaded once and kept on one device.

    Attributes
    ----------
    coarse
        ``(days, n_era, ny_c, nx_c)`` ERA5-Land daily fields, NaN cells filled.
    static
        ``(n_static, ny, nx)`` static maps on the target grid.
    lai_comp, lai_dates
        LAI composites on the target grid (a list of ``(ny, nx)`` maps, shared with the
        process's :class:`~smci_gpu.io.rasters.LaiComposites`) and their dates.
    seconds
        Time :meth:`load` spent: ``read`` (ERA5-Land), ``read_wait`` (waiting for the
        NetCDF lock another thread held, not part of ``read``), ``static``, ``lai_read``.
    """

    config: Config
    grid: RegularGrid
    days: pd.DatetimeIndex
    era_vars: list[str]
    coarse: object
    era_lat: np.ndarray
    era_lon: np.ndarray
    iy: object
    ix: object
    static_vars: list[str]
    static: object
    lai_comp: object
    lai_dates: np.ndarray
    device: str
    missing_days: dict[str, list[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(
        cls, config: Config, start, end, device: str = "cpu", allow_missing_days: bool = False
    ) -> Predictors:
        """Read every input for days ``start..end`` onto ``device``.

        With ``allow_missing_days``, days the ERA5-Land files lack are listed in
        :attr:`missing_days` (day → variables) instead of failing the whole period.

        Memory stays bounded however long the period: ERA5-Land is read per file and
        variable for these days only (``(days, vars)`` 0.1° fields, ~15 MB per China day);
        static maps are read once per process and shared; LAI composites are read once
        per process and held only while a loaded window needs them (:data:`_LAI`).
        Production loads one day at a time, a day ahead (:mod:`smci_gpu.produce`).
        """
        t0 = time.perf_counter()
        grid = config.product_grid()
        days = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D")
        era_vars = [f for f in config.features if f in ERA5LAND_FEATURES]
        # Matching references are needed even when not used as features.
        needed = sorted(
            set(era_vars) | set(config.matching.reference.values()), key=ERA5LAND_FEATURES.index
        )
        archive = Era5LandArchive.from_folder(config.path("inputs", "era5land"))
        t_lock = time.perf_counter()
        with NETCDF_LOCK:  # produce's writer thread may be writing a NetCDF meanwhile
            waited = time.perf_counter() - t_lock  # idle, not work: timed apart
            ds = archive.load(days[0], days[-1], needed, allow_missing_days=allow_missing_days)
            gc.collect()  # files of datasets in reference cycles close here, under the lock
        coarse = np.stack([ds[v].values for v in needed], axis=1).astype(np.float32)
        missing_days = dict(ds.attrs.get("missing_days", {}))
        absent = days.strftime("%Y-%m-%d").isin(list(missing_days))
        if absent.all():  # a one-day load of a day the files lack: nothing to fill
            pass
        elif absent.any():  # leave absent days NaN; fill the others' coast/lake cells
            coarse[~absent] = kernels.fill_nearest_valid(coarse[~absent])
        else:
            coarse = kernels.fill_nearest_valid(coarse)
        iy, ix = index_maps(grid, ds["lat"].values, ds["lon"].values)
        seconds = {"read": time.perf_counter() - t0 - waited, "read_wait": waited}
        t0 = time.perf_counter()
        static_vars = list(STATIC_FEATURES)
        static = static_maps(
            config.path("inputs", "static"), grid, static_vars, config.static.units, copy=False
        )
        seconds["static"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        comp, dates = _LAI.window(
            config.path("inputs", "lai"), grid, days[0], days[-1], margin=LAI_SEARCH + 1
        )
        seconds["lai_read"] = time.perf_counter() - t0
        put = lambda a: backend.to_device(a, device)  # noqa: E731
        return cls(
            config,
            grid,
            days,
            needed,
            put(coarse),
            ds["lat"].values,
            ds["lon"].values,
            put(iy),
            put(ix),
            static_vars,
            put(static),
            [put(c) for c in comp],
            dates,
            device,
            missing_days,
            seconds,
        )

    @property
    def fine_vars(self) -> list[str]:
        return ["lai", *self.static_vars]

    def land_mask(self):
        """True where a product value is wanted: land cover not water, statics valid."""
        return land_mask(self.static, self.static_vars)

    def day_index(self, day) -> int:
        i = self.days.get_indexer([pd.Timestamp(day)])[0]
        if i < 0:
            raise KeyError(f"day {pd.Timestamp(day).date()} is not in the loaded period")
        return int(i)

    def fine_stack(self, day, buffer: FineBuffer | None = None):
        """``(1 + n_static, ny, nx)`` float32: the day's LAI, then the static maps.

        Without ``buffer`` a new array. With a :class:`FineBuffer` (production: one per run
        of days) its array, valid until the next call: the static planes are copied into
        it once per static array, the stacked LAI window once per window, and each day
        only the LAI plane is rewritten (a new 1.2 GB stack per China day cost page faults
        and copies). The values are the same either way.
        """
        xp = backend.xp_for(self.device)
        target = np.datetime64(pd.Timestamp(day), "s")
        # Only the composites within LAI_SEARCH of the day's brackets take part, so a day's
        # LAI (and product) does not depend on which period was loaded with it.
        i = int(np.searchsorted(self.lai_dates, target, "right"))
        lo, hi = max(i - 1 - LAI_SEARCH, 0), min(i + 1 + LAI_SEARCH, len(self.lai_dates))
        buffer = buffer or FineBuffer()
        fine = buffer.with_static(self.static, xp)
        comps = buffer.window(self.lai_comp[lo:hi], xp)
        lai, when = fine[:1], (self.lai_dates[lo:hi], np.array([target]))
        if comps.dtype == np.float32:
            kernels.lai_daily(comps, *when, out=lai)
        else:  # interpolated in the composites' dtype, then stored as float32
            lai[...] = kernels.lai_daily(comps, *when)
        xp.copyto(lai, 0.0, where=xp.isnan(lai))  # bare soil, water: no leaves
        return fine

    @cached_property
    def coarse_maps(self) -> tuple:
        """``(iy, ix, bilinear)`` for :func:`kernels.assemble_features` under the config's
        ``predictors.era5_upsampling``: the nearest-cell maps and ``None``, or the bilinear
        maps (on this device)."""
        if self.config.predictors.era5_upsampling == "nearest":
            return self.iy, self.ix, None
        iy0, ix0, extra = bilinear_maps(self.grid, self.era_lat, self.era_lon)
        put = lambda a: backend.to_device(a, self.device)  # noqa: E731
        return put(iy0), put(ix0), tuple(put(a) for a in extra)

    def features(self, day, rows, cols, fine=None, out=None):
        """``(len(rows), n_features)`` float32 predictors for one day at pixels (rows, cols).

        ERA5-Land columns are the pixel's 0.1° cell (``predictors.era5_upsampling =
        "nearest"``, the paper) or interpolated between the four nearest cell centres
        (``"bilinear"``); the station-day table and the product both come from here.
        """
        xp = backend.xp_for(self.device)
        fine = self.fine_stack(day) if fine is None else fine
        kind, index = column_plan(self.config.features, self.era_vars, self.fine_vars)
        iy, ix, bilinear = self.coarse_maps
        return kernels.assemble_features(
            self.coarse[self.day_index(day)],
            iy,
            ix,
            fine,
            xp.asarray(rows),
            xp.asarray(cols),
            kind,
            index,
            out=out,
            bilinear=bilinear,
        )

    def reference(self, name: str, rows, cols) -> np.ndarray:
        """``(days, len(rows))`` daily ERA5-Land ``name`` at the pixels' nearest cells."""
        v = self.era_vars.index(name)
        iy, ix = backend.to_host(self.iy), backend.to_host(self.ix)
        c = backend.to_host(self.coarse)
        return c[:, v, iy[np.asarray(rows)], ix[np.asarray(cols)]]
