"""The product as one Zarr v3 store (``produce.format = "zarr"``), written day by day.

``product/{res}/SMCI_{res}.zarr`` holds the configured period's whole time axis:
``sm(time, depth, lat, lon)`` int16 counts with the daily files' CF attributes
(``scale_factor = 0.001``, ``_FillValue = −999``, units m3 m-3, ``standard_name``
volume_fraction_of_condensed_water_in_soil, ``grid_mapping = "crs"``; time in days since
1970-01-01 with ``time_bnds``; lat/lon/depth bounds), consolidated metadata, and
``day_written(time)`` (0/1). ``xarray.open_zarr`` decodes it to the values the daily files
decode to (float64 there, float32 in the netCDF files: the same numbers once cast to float32,
since ``count × float32(0.001)`` is exact in float64).

Chunks are ``(T, 1, cy, cx)`` (``produce.zarr_chunks``): T days per chunk serve point time
series, tiles serve maps. A day is not written into a T-day chunk in place (that would
decode and encode the chunk's other days each time): it goes to a staging array beside
the store (``SMCI_{res}.zarr.staging``; one day per chunk, tiles of ≥ 1024 × 2048 cells,
Blosc-LZ4: the fastest codec measured, 369 MB/s per core against zstd's 202) and is
flagged there; when every day of a T-day block is staged, the block is copied into the
store and its days are flagged in ``day_written`` after the copy, then the staging chunks
are removed. Each day is thus encoded twice (LZ4, then the store's codec) and decoded once,
whatever T. zarr-python's local store writes each chunk file to a temporary name and
renames it, so a kill leaves no torn chunk under its name; a block whose copy was
interrupted is copied again on the next open (:meth:`ZarrProduct.finish_blocks`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smci_gpu.errors import OutputError
from smci_gpu.grid import RegularGrid
from smci_gpu.io.writer import FILL, SCALE, product_dataset

#: Codec choices: name → (bytes-to-bytes codecs) factory taking the level.
CODECS = ("zstd", "blosc-lz4", "zlib")
#: Global attributes that must agree between the store and a run writing into it.
_CHECK = ("config_hash", "model_digests")


def store_path(out_dir: str | Path, resolution: str) -> Path:
    """``SMCI_{res}.zarr`` in the product folder of that resolution."""
    return Path(out_dir) / f"SMCI_{resolution}.zarr"


def compressors(codec: str, level: int) -> list:
    """Zarr v3 bytes→bytes codec: Blosc with byte shuffle around zstd, zlib or LZ4.

    Blosc is one of the Zarr v3 specification's own codecs, so other Zarr implementations
    read the store (a numcodecs shuffle codec before zstd gives the same bytes' worth,
    +0.6 % size on a smooth 1 km field, but is not in the specification).

    Raises
    ------
    OutputError
        ``codec`` is not one of :data:`CODECS`.
    """
    from zarr.codecs import BloscCodec

    cname = {"zstd": "zstd", "zlib": "zlib", "blosc-lz4": "lz4"}.get(codec)
    if cname is None:
        raise OutputError(f"produce.zarr_codec '{codec}': expected one of {', '.join(CODECS)}")
    return [BloscCodec(cname=cname, clevel=level, shuffle="shuffle")]


class ZarrProduct:
    """An open product store and its staging array.

    Parameters
    ----------
    path : Path
        The store (a folder ``*.zarr``).
    """

    def __init__(self, path: Path):
        import zarr

        self.path = Path(path)
        self.staging_path = self.path.with_name(self.path.name + ".staging")
        try:
            group = zarr.open_group(str(self.path), mode="r+")
            self.sm = group["sm"]
            self.written = group["day_written"]
            self.attrs = dict(group.attrs)
            times = group["time"][:]
        except Exception as exc:  # noqa: BLE001 - named, not a traceback
            raise OutputError(f"Zarr store {self.path} cannot be opened: {exc}") from exc
        self.days = pd.to_datetime(times, unit="D", origin="1970-01-01")
        self.block = int(self.sm.chunks[0])

    # --- creation --------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        grid: RegularGrid,
        layers: list[int],
        days: pd.DatetimeIndex,
        attrs: dict[str, Any],
        chunks: tuple[int, int, int],
        codec: str = "zstd",
        level: int = 1,
    ) -> ZarrProduct:
        """Write the store's metadata and coordinates (no data chunk) and open it.

        The variables and attributes are those of the daily file (``product_dataset``) with
        the time axis widened to ``days``. Written under a temporary name and renamed.
        """
        import dask.array as da

        t, cy, cx = _clip_chunks(chunks, len(days), grid)
        ds, sm_attrs = _template(grid, layers, days, attrs)
        shape = (len(days), len(layers), grid.ny, grid.nx)
        dims = ("time", "depth", "lat", "lon")
        ds["sm"] = (dims, da.full(shape, FILL, dtype=np.int16, chunks=(t, 1, cy, cx)), sm_attrs)
        ds["day_written"] = (("time",), da.zeros(len(days), dtype=np.int8, chunks=1), _FLAG_ATTRS)
        enc = {
            "sm": {
                "chunks": (t, 1, cy, cx),
                "dtype": "int16",
                "_FillValue": np.int16(FILL),
                "fill_value": FILL,
                "compressors": compressors(codec, level),
            },
            "day_written": {"chunks": (1,), "_FillValue": None, "fill_value": 0},
            "time": {"units": "days since 1970-01-01", "calendar": "standard", "dtype": "int32"},
            "time_bnds": {"units": "days since 1970-01-01", "dtype": "int32", "_FillValue": None},
        }
        for v in ("lat", "lon", "depth", "depth_bnds", "lat_bnds", "lon_bnds"):
            enc[v] = {"_FillValue": None}
        tmp = path.with_name(f".{path.name}.creating")
        shutil.rmtree(tmp, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            ds.to_zarr(tmp, mode="w", compute=False, zarr_format=3, consolidated=True, encoding=enc)
            tmp.rename(path)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise OutputError(f"could not create the Zarr store {path}: {exc}") from exc
        return cls(path)

    # --- days ------------------------------------------------------------------------------

    def index(self, day) -> int:
        """The time index of ``day``; an OutputError if the store's period lacks it."""
        i = self.days.get_indexer([pd.Timestamp(day).normalize()])[0]
        if i < 0:
            raise OutputError(
                f"{pd.Timestamp(day):%Y-%m-%d} is outside the Zarr store {self.path} "
                f"({self.days[0]:%Y-%m-%d}..{self.days[-1]:%Y-%m-%d})"
            )
        return int(i)

    def done(self) -> np.ndarray:
        """Per time index: the day is written to the store or staged (bool)."""
        done = np.asarray(self.written[:]) == 1
        staging = self._staging(create=False)
        if staging is not None:
            done |= np.asarray(staging["staged"][:]) == 1
        return done

    def write_day(self, day, counts: np.ndarray) -> None:
        """Write one day's int16 counts ``(layers, ny, nx)`` (−999 = no value).

        With one day per chunk the day goes into the store and is flagged; otherwise it is
        staged and its block copied into the store once all the block's days are staged.
        """
        i = self.index(day)
        if counts.shape != self.sm.shape[1:] or counts.dtype != np.int16:
            raise OutputError(
                f"day {pd.Timestamp(day):%Y-%m-%d}: counts {counts.dtype}{counts.shape}, the "
                f"store {self.path} expects int16{tuple(self.sm.shape[1:])}"
            )
        if self.block == 1:
            self.sm[i] = counts
            self.written[i] = 1
            return
        staging = self._staging(create=True)
        staging["sm"][i] = counts
        staging["staged"][i] = 1
        self._copy_block_if_staged(i // self.block, staging)

    def finish_blocks(self) -> int:
        """Copy every fully staged block not yet in the store (after a kill); their number.

        Run it only where no other writer is active (``produce`` does, under the output
        folder's lock, before any day is written): it clears the block-copy locks.
        """
        staging = self._staging(create=False)
        if staging is None:
            return 0
        for lock in self.staging_path.glob(".block-*.copying"):  # a killed copier's
            lock.unlink(missing_ok=True)
        staged = np.asarray(staging["staged"][:]) == 1
        written = np.asarray(self.written[:]) == 1
        copied = 0
        for b in range(int(np.ceil(len(self.days) / self.block))):
            sl = slice(b * self.block, min((b + 1) * self.block, len(self.days)))
            if written[sl].all():
                self._drop_staged(b)
            elif (staged[sl] | written[sl]).all():
                self._copy_block(b, staging)
                copied += 1
        return copied

    # --- staging ---------------------------------------------------------------------------

    def _staging(self, create: bool):
        import zarr

        if self.staging_path.exists():
            return zarr.open_group(str(self.staging_path), mode="r+")
        if not create:
            return None
        n, layers, ny, nx = self.sm.shape
        group = zarr.open_group(str(self.staging_path), mode="a")
        group.create_array(
            "sm",
            shape=(n, layers, ny, nx),
            chunks=(1, 1, *self._staging_tile()),
            dtype="int16",
            fill_value=FILL,
            compressors=compressors("blosc-lz4", 5),
            overwrite=True,
        )
        group.create_array("staged", shape=(n,), chunks=(1,), dtype="int8", fill_value=0)
        return group

    def _staging_tile(self) -> tuple[int, int]:
        """Staging chunk rows × columns: whole multiples of the store's tile, ≥ 1024 × 2048
        where the grid allows (large chunks encode faster; see the module docstring)."""
        _, _, ny, nx = self.sm.shape
        cy, cx = self.sm.chunks[2:]
        return min(ny, cy * max(1, 1024 // cy)), min(nx, cx * max(1, 2048 // cx))

    def _copy_block_if_staged(self, b: int, staging) -> None:
        """Copy block ``b`` when all its days are staged, by one writer only: Dask workers
        writing neighbouring days may both see the block complete. The copier holds
        ``.block-B.copying`` (created exclusively) and skips a block already written."""
        sl = slice(b * self.block, min((b + 1) * self.block, len(self.days)))
        if not (np.asarray(staging["staged"][sl]) == 1).all():
            return
        lock = self.staging_path / f".block-{b}.copying"
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # another writer is copying it
        try:
            if not (np.asarray(self.written[sl]) == 1).all():
                self._copy_block(b, staging)
        finally:
            lock.unlink(missing_ok=True)

    def _copy_block(self, b: int, staging) -> None:
        """Block ``b``'s staged days into the store, a band of tile rows at a time, then
        flag them written and drop their staging chunks."""
        sl = slice(b * self.block, min((b + 1) * self.block, len(self.days)))
        _, layers, ny, _ = self.sm.shape
        band = self._staging_tile()[0]  # whole staging chunks, whole store chunks
        # Days of the block already in the store (the last block of a period that was then
        # lengthened) keep their values: their staging chunks are gone.
        kept = np.asarray(self.written[sl]) == 1
        for k in range(layers):
            for r in range(0, ny, band):
                data = staging["sm"][sl, k, r : r + band]
                if kept.any():
                    data[kept] = self.sm[sl, k, r : r + band][kept]
                self.sm[sl, k, r : r + band] = data
        self.written[sl] = 1
        self._drop_staged(b)

    def _drop_staged(self, b: int) -> None:
        """Remove block ``b``'s staging chunks (``sm/c/{t}/…``); the flags stay."""
        for t in range(b * self.block, min((b + 1) * self.block, len(self.days))):
            shutil.rmtree(self.staging_path / "sm" / "c" / str(t), ignore_errors=True)


_FLAG_ATTRS = {
    "long_name": "the day's values are complete (set after they were written)",
    "flag_values": [0, 1],
    "flag_meanings": "not_written written",
}


def _template(grid: RegularGrid, layers: list[int], days, attrs: dict[str, Any]):
    """The store's dataset without ``sm`` values: the daily file's variables, coordinates
    and attributes (:func:`product_dataset`) over the whole period."""
    import xarray as xr

    from smci_gpu.io.writer import coverage_attributes

    tiny = RegularGrid(grid.west, grid.south, grid.res, 1, 1)
    one = product_dataset(np.zeros((len(layers), 1, 1)), days[0], layers, tiny, attrs)
    t0 = pd.DatetimeIndex(days).normalize()
    bounds = np.stack([t0.values, (t0 + pd.Timedelta(days=1)).values], axis=1)
    ds = xr.Dataset(
        {
            "time_bnds": (("time", "nv"), bounds),
            "depth_bnds": one.depth_bnds,
            "lat_bnds": (("lat", "nv"), grid.lat_bounds()),
            "lon_bnds": (("lon", "nv"), grid.lon_bounds()),
            "crs": one.crs,
        },
        coords={
            "time": ("time", t0, one.time.attrs),
            "depth": one.depth,
            "lat": ("lat", grid.lat, one.lat.attrs),
            "lon": ("lon", grid.lon, one.lon.attrs),
        },
    )
    ds.attrs = {
        **one.attrs,
        **coverage_attributes(grid, days[0], days[-1], layers),
        "title": "SMCI-style daily soil moisture (Zarr store)",
    }
    return ds, {**one.sm.attrs, "scale_factor": np.float32(SCALE)}


def _clip_chunks(chunks, n_days: int, grid: RegularGrid) -> tuple[int, int, int]:
    t, cy, cx = (int(c) for c in chunks)
    return max(1, min(t, n_days)), max(1, min(cy, grid.ny)), max(1, min(cx, grid.nx))


def open_product(
    out_dir: str | Path,
    resolution: str,
    grid: RegularGrid,
    layers: list[int],
    days: pd.DatetimeIndex,
    attrs: dict[str, Any],
    chunks: tuple[int, int, int],
    codec: str = "zstd",
    level: int = 1,
) -> ZarrProduct:
    """Open the product store (creating it), check it fits this run, finish staged blocks.

    A store that ends before ``days`` is lengthened (monthly runs add to one store); its
    first day stays.

    Raises
    ------
    OutputError
        The store exists with another grid, layers or provenance (config hash, model
        digests), or starts after ``days[0]``: it is never overwritten; the message says
        what differs.
    """
    path = store_path(out_dir, resolution)
    if not path.exists():
        store = ZarrProduct.create(path, grid, layers, days, attrs, chunks, codec, level)
        return _with_staging(store)
    store = ZarrProduct(path)
    want = {
        "layers × lat × lon": (len(layers), grid.ny, grid.nx),
        **{k: str(attrs.get(k, "")) for k in _CHECK},
    }
    have = {
        "layers × lat × lon": tuple(store.sm.shape[1:]),
        **{k: str(store.attrs.get(k, "")) for k in _CHECK},
    }
    differ = [f"{k} {have[k]} (run: {want[k]})" for k in want if have[k] != want[k]]
    if days[0] < store.days[0]:
        differ.append(f"it starts on {store.days[0]:%Y-%m-%d} (run: {days[0]:%Y-%m-%d})")
    if differ:
        raise OutputError(
            f"Zarr store {path} was made for another product: {'; '.join(differ)}; "
            "move it away or set another workdir"
        )
    if days[-1] > store.days[-1] or _time_lengths_differ(path):
        store = _extend(store, max(days[-1], store.days[-1]))
    store.finish_blocks()
    return _with_staging(store)


def _with_staging(store: ZarrProduct) -> ZarrProduct:
    """Make the staging array here, before any writer runs (two Dask workers creating it
    at once could each wipe the other's)."""
    if store.block > 1:
        store._staging(create=True)
    return store


def _time_lengths_differ(path: Path) -> bool:
    """True when the store's time-dimensioned arrays disagree in length (an interrupted
    extension)."""
    import zarr

    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    names = ("sm", "day_written", "time", "time_bnds")
    return len({group[n].shape[0] for n in names}) > 1


def _extend(store: ZarrProduct, last) -> ZarrProduct:
    """Lengthen the store's time axis to end on ``last`` (a later period, e.g. the next
    month's run). Shapes first, then the time values, then consolidated metadata: each step
    can be redone, so a kill in between is finished on the next open."""
    import zarr

    days = pd.date_range(store.days[0], last, freq="D")
    n = len(days)
    group = zarr.open_group(str(store.path), mode="r+", use_consolidated=False)
    for name in ("sm", "day_written", "time", "time_bnds"):
        group[name].resize((n, *group[name].shape[1:]))
    staging = store._staging(create=False)
    if staging is not None:
        for name in ("sm", "staged"):
            staging[name].resize((n, *staging[name].shape[1:]))
    t = (days - pd.Timestamp("1970-01-01")).days.to_numpy().astype(np.int32)
    group["time"][:] = t
    group["time_bnds"][:] = np.stack([t, t + 1], axis=1)
    group.attrs.update(
        time_coverage_end=f"{last + pd.Timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}",
        time_coverage_duration=f"P{n}D",
    )
    zarr.consolidate_metadata(str(store.path))
    return ZarrProduct(store.path)


def product_store(cfg, grid: RegularGrid, attrs: dict[str, Any] | None = None) -> ZarrProduct:
    """The configured product's store (``produce.format = "zarr"``).

    With ``attrs`` (the run's provenance and grid attributes) it is opened or created for
    the configured period and checked (:func:`open_product`); without, the existing store
    is opened as it is (a writer thread or worker, after the run's start made it).
    """
    res = cfg.produce.resolution
    out_dir = Path(cfg.path("product", res))
    if attrs is None:
        return ZarrProduct(store_path(out_dir, res))
    days = pd.date_range(cfg.produce.start, cfg.produce.end, freq="D")
    p = cfg.produce
    return open_product(
        out_dir, res, grid, list(cfg.layers), days, attrs, p.zarr_chunks, p.zarr_codec, p.zarr_level
    )
