"""Kernel benchmark: each kernel's twin vs a plain NumPy/xarray reference vs a memory copy.

Throughput is counted as compulsory traffic: the bytes of every input array read once
plus every output written once, divided by the median time. The ceiling is a copy that
moves the same number of bytes (half read, half written), timed in alternation with the
twin (one call of each per round, so both see the same machine); on the CPU the faster of
``np.copyto`` and a Numba parallel copy is taken, so the ceiling uses all cores as the
twins do.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from smci_gpu import kernels as K
from smci_gpu.backend import array_module
from smci_gpu.bench.harness import Record, time_call, time_interleaved
from smci_gpu.grid import nearest_index

#: Scale of each size: (coarse cells per side, fine factor, lead fields, LAI pixels).
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"coarse": 20, "factor": 12, "lead": 4, "lai_pixels": 20_000},
    "small": {"coarse": 100, "factor": 12, "lead": 16, "lai_pixels": 200_000},
    "medium": {"coarse": 200, "factor": 12, "lead": 16, "lai_pixels": 1_000_000},
    "large": {"coarse": 400, "factor": 12, "lead": 16, "lai_pixels": 4_000_000},
}


@dataclass
class Case:
    """One kernel at one size: how to run the twin and the reference, and bytes moved."""

    stage: str
    size: dict[str, Any]
    bytes: int
    twin: Callable[[], Any]
    reference: Callable[[], Any] | None
    reference_name: str


def _nbytes(*arrays: Any) -> int:
    return int(sum(a.nbytes for a in arrays))


@numba.njit(parallel=True, cache=True)
def _parallel_copy(src, dst):
    for i in numba.prange(src.size):
        dst[i] = src[i]


def last_level_cache_bytes(
    default: int = 64 << 20, root: Path = Path("/sys/devices/system/cpu/cpu0/cache")
) -> int:
    """Size of CPU 0's largest cache from sysfs (``default`` where it cannot be read)."""
    sizes = []
    for f in root.glob("index*/size"):
        text = f.read_text().strip().upper()
        scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        try:
            sizes.append(int(text.rstrip("KM")) * scale)
        except ValueError:
            continue
    return max(sizes, default=default)


def cpu_cache_evictor() -> Callable[[], None]:
    """A call that copies twice the last-level cache through the cores, so whatever runs
    next finds none of its own data cached: every timed call starts cold, as the kernels
    do in production, whose grids are larger than any cache."""
    n = 2 * last_level_cache_bytes() // 4
    src, dst = np.ones(n, np.float32), np.empty(n, np.float32)
    return lambda: _parallel_copy(src, dst)


def copy_candidates(nbytes: int, xp: Any, device: str) -> dict[str, Callable[[], Any]]:
    """Same-size copies (``nbytes`` read+written) on the device, by implementation name."""
    n = max(1, nbytes // 2 // 4)
    src = xp.ones(n, dtype=np.float32)
    dst = xp.empty_like(src)
    candidates = {"copy": lambda: xp.copyto(dst, src)}
    if device == "cpu":
        candidates["copy_parallel"] = lambda: _parallel_copy(src, dst)
    return candidates


# ------------------------------------------------------------------ references


def upsample_reference_xarray(src, lat, lon, dst_lat, dst_lon):
    """What a user writes: xarray ``sel(method="nearest")``."""
    import xarray as xr

    da = xr.DataArray(src, dims=("v", "lat", "lon"), coords={"lat": lat, "lon": lon})
    return da.sel(lat=dst_lat, lon=dst_lon, method="nearest").values


def block_mean_reference(a, fy, fx, min_valid=1):
    """NumPy: reshape into blocks, ``nanmean``, mask blocks short of ``min_valid``."""
    xp = array_module(a)
    lead, ny, nx = a.shape
    b = a.reshape(lead, ny // fy, fy, nx // fx, fx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = xp.nanmean(b, axis=(2, 4))
    n = (~xp.isnan(b)).sum(axis=(2, 4))
    return xp.where(n >= min_valid, mean, xp.nan).astype(a.dtype)


def block_majority_reference(a, fy, fx):
    """NumPy: count each class over the blocks, keep the largest count (ties → smaller)."""
    xp = array_module(a)
    ny, nx = a.shape
    b = a.reshape(ny // fy, fy, nx // fx, fx)
    best = xp.zeros((ny // fy, nx // fx), dtype=a.dtype)
    best_n = xp.full(best.shape, -1)
    for c in xp.unique(a).tolist():
        n = (b == c).sum(axis=(1, 3))
        better = n > best_n
        best = xp.where(better, a.dtype.type(c), best)
        best_n = xp.where(better, n, best_n)
    return best


def lai_reference(comp, cdates, tdates):
    """NumPy, vectorised: last valid composite at or before / first valid after, per pixel."""
    xp = array_module(comp)
    t_count = comp.shape[0]
    valid = ~xp.isnan(comp)
    # Last valid composite at or before each one, first at or after: a loop over the
    # composites (CuPy's ufunc.accumulate does not cover every ufunc).
    prev = xp.empty(comp.shape, dtype=np.int64)
    nxt = xp.empty(comp.shape, dtype=np.int64)
    last = xp.full(comp.shape[1], -1, dtype=np.int64)
    for k in range(t_count):
        last = xp.where(valid[k], k, last)
        prev[k] = last
    last = xp.full(comp.shape[1], t_count, dtype=np.int64)
    for k in range(t_count - 1, -1, -1):
        last = xp.where(valid[k], k, last)
        nxt[k] = last
    cd = xp.asarray(cdates)
    out = xp.empty((len(tdates), comp.shape[1]), dtype=comp.dtype)
    for d, t in enumerate(tdates):
        k = int(np.searchsorted(cdates, t, side="right")) - 1
        lo = prev[k] if k >= 0 else xp.full(comp.shape[1], -1)
        exact = k >= 0 and cdates[k] == t
        j = k if exact else k + 1
        hi = nxt[j] if j < t_count else xp.full(comp.shape[1], t_count)
        lo_c, hi_c = xp.clip(lo, 0, t_count - 1), xp.clip(hi, 0, t_count - 1)
        vlo = xp.take_along_axis(comp, lo_c[None], axis=0)[0]
        vhi = xp.take_along_axis(comp, hi_c[None], axis=0)[0]
        span = cd[hi_c] - cd[lo_c]
        w = xp.where(span > 0, (t - cd[lo_c]) / xp.where(span > 0, span, 1), 0)
        val = (vlo + w * (vhi - vlo)).astype(comp.dtype)  # weights in float64, as the twin
        val = xp.where(lo < 0, vhi, xp.where(hi >= t_count, vlo, val))
        out[d] = xp.where((lo < 0) & (hi >= t_count), xp.nan, val)
    return out


def assemble_reference(coarse, iy, ix, fine, rows, cols, kind, index):
    """NumPy: fancy-index every column, stack in feature order."""
    xp = array_module(coarse)
    cols_out = [
        coarse[i, iy[rows], ix[cols]] if k == K.assemble.COARSE else fine[i, rows, cols]
        for k, i in zip(kind.tolist(), index.tolist(), strict=True)
    ]
    return xp.stack(cols_out, axis=1).astype(np.float32)


# ------------------------------------------------------------------ cases


def make_cases(size: str, xp: Any, seed: int = 0) -> list[Case]:
    """Inputs for every kernel at ``size`` on the array module ``xp`` (NumPy or CuPy)."""
    s = SIZES[size]
    rng = np.random.default_rng(seed)
    nc, f, lead = s["coarse"], s["factor"], s["lead"]
    nf = nc * f
    res = 0.1
    lat = 30 + res * (nc - 1 - np.arange(nc))  # descending, as in CDS files
    lon = 110 + res * np.arange(nc)
    fine_res = res / f
    dst_lat = (lat.min() - res / 2) + fine_res * (np.arange(nf) + 0.5)
    dst_lon = (lon.min() - res / 2) + fine_res * (np.arange(nf) + 0.5)
    on_host = xp is np
    cases: list[Case] = []

    src = xp.asarray(rng.random((lead, nc, nc), dtype=np.float32))
    out = xp.empty((lead, nf, nf), dtype=np.float32)
    cases.append(
        Case(
            "upsample_nearest",
            {"src": f"{lead}x{nc}x{nc}", "dst": f"{lead}x{nf}x{nf}"},
            _nbytes(src, out),
            lambda: K.upsample_nearest(src, lat, lon, dst_lat, dst_lon, out=out),
            (lambda: upsample_reference_xarray(src, lat, lon, dst_lat, dst_lon))
            if on_host
            else _gather_reference(xp, src, lat, lon, dst_lat, dst_lon),
            "xarray_sel" if on_host else "cupy_fancy_index",
        )
    )

    for fy, n_in in ((2, 2 * nf), (12, nf)):
        a = rng.random((4, n_in, n_in), dtype=np.float32)
        a[a < 0.15] = np.nan
        a = xp.asarray(a)
        o = xp.empty((4, n_in // fy, n_in // fy), dtype=np.float32)
        cases.append(
            Case(
                f"block_mean_{fy}x{fy}",
                {"a": f"4x{n_in}x{n_in}"},
                _nbytes(a, o),
                lambda a=a, o=o, fy=fy: K.block_mean(a, fy, fy, out=o),
                lambda a=a, fy=fy: block_mean_reference(a, fy, fy),
                "numpy_nanmean",
            )
        )
        lc = xp.asarray(rng.integers(0, 17, (n_in, n_in)).astype(np.uint8))
        olc = xp.empty((n_in // fy, n_in // fy), dtype=np.uint8)
        cases.append(
            Case(
                f"block_majority_{fy}x{fy}",
                {"a": f"{n_in}x{n_in} uint8"},
                _nbytes(lc, olc),
                lambda lc=lc, olc=olc, fy=fy: K.block_majority(lc, fy, fy, out=olc),
                lambda lc=lc, fy=fy: block_majority_reference(lc, fy, fy),
                "numpy_class_counts",
            )
        )

    npix = s["lai_pixels"]
    cdates = np.arange(46) * 8.0
    tdates = np.arange(365.0)
    for stage, gaps in (("lai_daily", 0.1), ("lai_daily_gapfree", 0.0)):
        comp = rng.random((46, npix), dtype=np.float32) * 6
        comp[rng.random(comp.shape) < gaps] = np.nan  # cloud/snow gaps in the composites
        comp = xp.asarray(comp)
        lai_out = xp.empty((365, npix), dtype=np.float32)
        cases.append(
            Case(
                stage,
                {"composites": f"46x{npix}", "days": 365, "gaps": gaps},
                _nbytes(comp, lai_out),
                lambda comp=comp, lai_out=lai_out: K.lai_daily(comp, cdates, tdates, out=lai_out),
                lambda comp=comp: lai_reference(comp, cdates, tdates),
                "numpy_vectorised",
            )
        )

    n_coarse, n_fine = 16, 9
    coarse = xp.asarray(rng.random((n_coarse, nc, nc), dtype=np.float32))
    fine = xp.asarray(rng.random((n_fine, nf, nf), dtype=np.float32))
    land = rng.random((nf, nf)) < 0.7
    rows, cols = (xp.asarray(v) for v in np.nonzero(land))
    iy = xp.asarray(nearest_index(lat, dst_lat))
    ix = xp.asarray(nearest_index(lon, dst_lon))
    kind = np.array([K.assemble.COARSE] * n_coarse + [K.assemble.FINE] * n_fine)
    index = np.concatenate([np.arange(n_coarse), np.arange(n_fine)])
    perm = rng.permutation(kind.size)  # the config's order interleaves the sources
    kind, index = kind[perm], index[perm]
    feat = xp.empty((rows.size, kind.size), dtype=np.float32)
    touched = int(rows.size) * (n_fine * 4 + 16)  # fine values at land pixels + rows/cols
    cases.append(
        Case(
            "assemble_features",
            {"pixels": int(rows.size), "features": int(kind.size)},
            touched + _nbytes(coarse, feat),
            lambda: K.assemble_features(coarse, iy, ix, fine, rows, cols, kind, index, out=feat),
            lambda: assemble_reference(
                coarse, iy, ix, fine, rows, cols, xp.asarray(kind), xp.asarray(index)
            ),
            "numpy_fancy_index",
        )
    )
    return cases


def _gather_reference(xp, src, lat, lon, dst_lat, dst_lon):
    iy = xp.asarray(nearest_index(lat, dst_lat))
    ix = xp.asarray(nearest_index(lon, dst_lon))
    return lambda: src[:, iy[:, None], ix[None, :]]


def _time_reference(case: Case, device: str, repeats: int):
    """The reference's Timing, or None (with a warning) when it cannot run on this device,
    so that a GPU run still records the twin against the copy."""
    if case.reference is None:
        return None
    try:
        return time_call(case.reference, device=device, repeats=max(2, repeats // 2))
    except Exception as exc:  # a reference that this CuPy lacks must not end the run
        warnings.warn(f"{case.stage}: reference {case.reference_name} failed: {exc}", stacklevel=2)
        return None


def run(
    size: str = "small",
    devices: tuple[str, ...] = ("cpu",),
    repeats: int = 5,
    progress: Callable[[str], Any] | None = None,
) -> list[Record]:
    """Measure every kernel on each device: twin, reference and same-size copy.

    A twin that fails (a GPU kernel that does not compile on this device, say) is warned
    about and left out of the table, so the other kernels and devices are still measured.
    ``progress`` receives one line per kernel as it finishes.
    """
    records: list[Record] = []
    for device in devices:
        if device == "gpu":
            from smci_gpu.backend import cupy_module

            xp = cupy_module()
        else:
            xp = np
        evict = cpu_cache_evictor() if device == "cpu" else None
        for case in make_cases(size, xp):
            try:
                rec = _measure(case, xp, device, repeats, evict)
            except Exception as exc:  # one kernel must not cost the rest of the table
                warnings.warn(f"{case.stage} on {device} failed: {exc!r}", stacklevel=2)
                continue
            records += rec
            if progress is not None:
                progress(
                    f"{case.stage:22s} {device}: {rec[0].gbps:8.1f} GB/s, "
                    f"{rec[0].extra['of_copy']:.2f} of copy"
                )
    return records


def _measure(
    case: Case, xp: Any, device: str, repeats: int, evict: Callable[[], Any] | None
) -> list[Record]:
    """The twin's, the reference's and the copy ceiling's records for one case, ``evict``
    (on the CPU) run before each timed call."""
    # The twin and the copies alternate, so their ratio sees the same machine, and on the
    # CPU each starts with cold caches: else a cache-sized case would time whichever call
    # follows one that shares its buffers (the two copies do) warm and the others cold.
    fns = {"twin": case.twin, **copy_candidates(case.bytes, xp, device)}
    timed = time_interleaved(fns, device=device, repeats=repeats, before_each=evict)
    twin = timed.pop("twin")
    copy_impl = min(timed, key=lambda k: timed[k].median)
    copy = timed[copy_impl]
    rec = [Record("kernels", case.stage, "twin", device, case.size, twin, case.bytes)]
    ref = _time_reference(case, device, repeats)
    if ref is not None:
        rec.append(
            Record("kernels", case.stage, case.reference_name, device, case.size, ref, case.bytes)
        )
    rec.append(Record("kernels", case.stage, copy_impl, device, case.size, copy, case.bytes))
    rec[0].extra = {
        "of_copy": copy.median / twin.median,
        "vs_reference": (rec[1].seconds.median / twin.median) if len(rec) > 2 else None,
    }
    return rec


def summary_rows(records: list[Record]) -> list[dict[str, Any]]:
    """Per (stage, device): twin GB/s, fraction of the copy ceiling, speed-up over reference."""
    out = []
    for r in records:
        if r.impl == "twin":
            out.append(
                {
                    "stage": r.stage,
                    "device": r.device,
                    "twin_gbps": r.gbps,
                    "of_copy": r.extra["of_copy"],
                    "vs_reference": r.extra["vs_reference"],
                }
            )
    return out
