"""Product chunks compressed on every core, then written into the NetCDF4 file as they are.

netCDF-C compresses a variable's chunks one after another inside one library call, on one
core and under the lock that netCDF-C/HDF5's lack of thread safety demands. The product's
chunks are independent, so this module compresses them on threads first (the compressors
release the GIL) and hands the finished bytes to HDF5's direct chunk write (``H5Dwrite_chunk``
through h5py), which only files them. The bytes are exactly what HDF5's own filter pipeline
would store for the variable's declared filters, byte shuffle then deflate (RFC 1950 zlib
streams), so every netCDF/HDF5 reader decodes the file as if netCDF-C had written it.

Compressors (both write standard zlib streams; the choice changes file size and speed, never
a value): ``"isal"``, Intel ISA-L through the ``isal`` package (5x stdlib zlib's speed per
core for 11 % more bytes on a China day; benchmarks/RESULTS.md, "Writing a China day"), and
``"zlib"``, the standard library's zlib at :data:`ZLIB_LEVEL` (netCDF-C's own codec).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from smci_gpu.errors import OutputError

COMPRESSORS = ("isal", "zlib")
#: ISA-L level (0–3). On a China day level 2 gave the smallest files of levels 1–3 (236 MB per
#: 10-layer day against 244 and 238) at 5.2x stdlib zlib level 1's speed per core.
ISAL_LEVEL = 2
#: zlib level declared in the product files' filter, used by netCDF-C (float32 files, the
#: SMCI1.0 year files) and by ``compressor = "zlib"``. On a China-size day (benchmarks/
#: bench_storage.py, RESULTS.md "Product storage") level 1 wrote files within 1 % of level
#: 4's size (213 vs 212 MB per 10-layer day) at 1.8x its speed per core (94 vs 52 MB/s).
ZLIB_LEVEL = 1
#: HDF5 filter identifiers (H5Zpublic.h): deflate and byte shuffle.
H5Z_FILTER_DEFLATE = 1
H5Z_FILTER_SHUFFLE = 2

Piece = tuple[tuple[int, ...], bytes]


def compressor_function(name: str) -> Callable[[bytes], bytes]:
    """The zlib-stream compressor ``name`` (one of :data:`COMPRESSORS`).

    Raises
    ------
    OutputError
        An unknown name, or ``"isal"`` without the ``isal`` package installed.
    """
    if name == "zlib":
        return lambda data: zlib.compress(data, ZLIB_LEVEL)
    if name == "isal":
        try:
            from isal import isal_zlib
        except ImportError as exc:  # a core dependency, but keep the message plain
            raise OutputError(
                "produce.compressor = 'isal' needs the isal package (pip install isal), "
                "or set produce.compressor = 'zlib'"
            ) from exc
        return lambda data: isal_zlib.compress(data, ISAL_LEVEL)
    raise OutputError(f"produce.compressor {name!r}: expected one of {list(COMPRESSORS)}")


def default_threads() -> int:
    """Cores this process may use (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def shuffle_bytes(block: np.ndarray) -> bytes:
    """HDF5's byte shuffle of a C-ordered block: every element's first byte, then every
    second byte, and so on (H5Zshuffle.c's layout; for int16, the low bytes then the high)."""
    b = np.ascontiguousarray(block).view(np.uint8).reshape(-1, block.dtype.itemsize)
    return np.ascontiguousarray(b.T).tobytes()


def _chunk_starts(shape: tuple[int, ...], chunk: tuple[int, ...]) -> list[tuple[int, ...]]:
    counts = [-(-n // c) for n, c in zip(shape, chunk, strict=True)]
    return [tuple(i * c for i, c in zip(idx, chunk, strict=True)) for idx in np.ndindex(*counts)]


def _full_chunk(
    values: np.ndarray, start: tuple[int, ...], chunk: tuple[int, ...], fill
) -> np.ndarray:
    """The chunk at ``start``, padded with ``fill`` past the array's edge (HDF5 stores edge
    chunks whole)."""
    part = values[tuple(slice(s, s + c) for s, c in zip(start, chunk, strict=True))]
    if part.shape == chunk:
        return part
    full = np.full(chunk, fill, values.dtype)
    full[tuple(slice(0, n) for n in part.shape)] = part
    return full


def deflate_chunks(
    values: np.ndarray,
    chunk: tuple[int, ...],
    fill,
    compressor: str = "isal",
    threads: int | None = None,
) -> list[Piece]:
    """Shuffle and deflate every chunk of ``values`` that holds a value other than ``fill``.

    Parameters
    ----------
    values : ndarray, any shape, integer dtype
        The variable's data in its stored type and byte order (e.g. ``(1, 10, ny, nx)``
        int16 counts).
    chunk : tuple of int
        The variable's chunk shape (same length as ``values.shape``).
    fill
        The variable's ``_FillValue``: chunks holding only it are left out, and HDF5 gives
        the fill value for chunks never written.
    compressor : {"isal", "zlib"}
    threads : int, optional
        Compressing threads; default :func:`default_threads`.

    Returns
    -------
    list of (offset, bytes)
        Each written chunk's first element index and its filtered bytes, in C order.
    """
    if len(chunk) != values.ndim:
        raise OutputError(f"chunk {chunk} does not match data of shape {values.shape}")
    compress = compressor_function(compressor)
    starts = _chunk_starts(values.shape, chunk)

    def one(start: tuple[int, ...]) -> Piece | None:
        block = _full_chunk(values, start, chunk, fill)
        if np.all(block == fill):
            return None
        return start, compress(shuffle_bytes(block))

    n = threads or default_threads()
    if n == 1:
        pieces = [one(s) for s in starts]
    else:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="smci-deflate") as pool:
            pieces = list(pool.map(one, starts))
    return [p for p in pieces if p is not None]


def check_filters(dataset, chunk: tuple[int, ...], path: Path, fill=None) -> None:
    """Refuse to file raw chunks unless the dataset's pipeline is exactly shuffle then
    deflate with this chunk shape (otherwise readers would decode garbage) and, when
    ``fill`` is given, its HDF5 fill value is ``fill`` (chunks of fill are not written)."""
    plist = dataset.id.get_create_plist()
    codes = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if codes != [H5Z_FILTER_SHUFFLE, H5Z_FILTER_DEFLATE] or dataset.chunks != chunk:
        raise OutputError(
            f"{path}: variable {dataset.name!r} has filters {codes} and chunks "
            f"{dataset.chunks}; expected shuffle + deflate ({[2, 1]}) and chunks {chunk}"
        )
    if fill is not None and dataset.fillvalue != fill:
        raise OutputError(
            f"{path}: variable {dataset.name!r} has fill value {dataset.fillvalue}; "
            f"expected {fill} (chunks holding only fill are left unwritten)"
        )


def write_pieces(
    path: str | Path, name: str, pieces: list[Piece], chunk: tuple[int, ...], fill=None
) -> None:
    """File compressed chunks into variable ``name`` of an existing NetCDF4 file.

    The variable must exist with chunks ``chunk``, filters shuffle + deflate and (when
    given) the fill value ``fill``; its attributes, dimensions and the other variables are
    left as netCDF-C wrote them.

    Raises
    ------
    OutputError
        The file cannot be opened for writing, it lacks the variable, or the variable's
        filters, chunks or fill value differ.
    """
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r+") as f:
            if name not in f:
                raise OutputError(f"{path} has no variable {name!r} to write chunks into")
            dataset = f[name]
            check_filters(dataset, chunk, path, fill)
            for offset, data in pieces:
                dataset.id.write_direct_chunk(offset, data, filter_mask=0)
    except OSError as exc:
        raise OutputError(f"could not write the chunks of {name!r} into {path}: {exc}") from exc
