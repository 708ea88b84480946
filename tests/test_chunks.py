"""Pre-compressed product chunks (smci_gpu.io.chunks): what netCDF-C and HDF5 read back.

The references are independent of this module: numcodecs' HDF5-compatible byte shuffle,
netCDF-C's own compression of the same dataset (``compressor=None``), and netCDF-C / HDF5
as the readers of every file.
"""

from __future__ import annotations

import zlib

import netCDF4
import numpy as np
import pytest
import xarray as xr

from smci_gpu.errors import OutputError
from smci_gpu.grid import RegularGrid
from smci_gpu.io import chunks
from smci_gpu.io.writer import FILL, encode_int16, product_dataset, write_day


def _day(seed: int = 3, ny: int = 70, nx: int = 110) -> tuple[np.ndarray, RegularGrid]:
    rng = np.random.default_rng(seed)
    sm = rng.uniform(0.0, 0.6, (3, ny, nx)).astype(np.float32)
    sm[:, : ny // 2, : nx // 2] = np.nan  # whole chunks of fill (at chunk 32: 1 x 1 of them)
    sm[rng.random(sm.shape) < 0.1] = np.nan
    return sm, RegularGrid(114.0, 40.0, 1 / 120, ny, nx)


def _write(path, sm, grid, compressor, threads=None):
    ds = product_dataset(sm, "2018-07-10", [10, 20, 30], grid, {"source": "test"}, "int16")
    return write_day(path, ds, "int16", compressor=compressor, threads=threads)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.int64])
def test_shuffle_bytes_matches_numcodecs(dtype):
    from numcodecs import Shuffle  # implements HDF5's shuffle filter

    block = np.arange(5 * 7, dtype=dtype).reshape(5, 7) * 997 - 300
    expected = bytes(Shuffle(elementsize=block.dtype.itemsize).encode(block))
    assert chunks.shuffle_bytes(block) == expected


def test_shuffle_of_int16_puts_low_bytes_first():
    # Worked by hand: 0x0102 and 0x0304 are stored little-endian as 02 01 04 03.
    assert chunks.shuffle_bytes(np.array([0x0102, 0x0304], "<i2")) == bytes([2, 4, 1, 3])


@pytest.mark.parametrize("compressor", ["isal", "zlib"])
def test_file_equals_netcdf_c_written_one(tmp_path, compressor):
    sm, grid = _day()
    reference = _write(tmp_path / "netcdf-c.nc", sm, grid, None)
    ours = _write(tmp_path / f"{compressor}.nc", sm, grid, compressor)
    with netCDF4.Dataset(reference) as a, netCDF4.Dataset(ours) as b:
        va, vb = a["sm"], b["sm"]
        va.set_auto_maskandscale(False)
        vb.set_auto_maskandscale(False)
        np.testing.assert_array_equal(vb[:], va[:])  # decoded by netCDF-C
        np.testing.assert_array_equal(vb[:][0], encode_int16(sm))
        assert vb.filters() == va.filters()  # shuffle + zlib level 1, as netCDF-C declares
        assert vb.chunking() == va.chunking()
        assert {k: vb.getncattr(k) for k in vb.ncattrs()} == {
            k: va.getncattr(k) for k in va.ncattrs()
        }
        assert set(b.variables) == set(a.variables) and b.data_model == "NETCDF4"
    decoded = xr.open_dataset(ours, engine="netcdf4").sm.values[0]
    np.testing.assert_allclose(decoded, sm, atol=0.0005 + 1e-9)


def test_fill_chunks_are_not_stored_and_read_as_fill(tmp_path):
    import h5py

    ny, nx = 600, 1100  # chunks 512 x 512: 2 x 3 per layer, the last ones cut at the edge
    sm = np.full((3, ny, nx), np.nan, np.float32)
    sm[:, 520:, 1030:] = 0.25  # only the corner chunk of each layer holds values
    path = _write(tmp_path / "day.nc", sm, RegularGrid(100.0, 30.0, 1 / 120, ny, nx), "isal")
    with h5py.File(path, "r") as f:
        assert f["sm"].id.get_num_chunks() == 3  # one per layer
    with netCDF4.Dataset(path) as nc:
        nc["sm"].set_auto_maskandscale(False)
        raw = nc["sm"][:][0]
    assert (raw[:, :520, :] == FILL).all() and (raw[:, 520:, 1030:] == 250).all()


def test_threads_do_not_change_the_bytes():
    counts = encode_int16(_day(seed=5)[0])[None]
    one = chunks.deflate_chunks(counts, (1, 1, 32, 32), np.int16(FILL), "zlib", threads=1)
    three = chunks.deflate_chunks(counts, (1, 1, 32, 32), np.int16(FILL), "zlib", threads=3)
    assert one == three
    # each piece is a zlib stream of the shuffled chunk, in C order of the chunk grid
    (start, data) = one[0]
    block = counts[tuple(slice(s, s + c) for s, c in zip(start, (1, 1, 32, 32), strict=True))]
    assert zlib.decompress(data) == chunks.shuffle_bytes(block)
    assert [p[0] for p in one] == sorted(p[0] for p in one)


def test_raw_chunks_refused_for_other_filters(tmp_path):
    import h5py

    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("sm", shape=(4, 4), dtype="<i2", chunks=(2, 2), compression="gzip")
    with pytest.raises(OutputError, match=r"filters \[1\].*expected shuffle \+ deflate"):
        chunks.write_pieces(path, "sm", [((0, 0), b"")], (2, 2))


def test_unknown_compressor_is_a_clear_error():
    with pytest.raises(OutputError, match="produce.compressor 'lz4'"):
        chunks.compressor_function("lz4")


def test_gdal_reads_the_same_counts(tmp_path):
    rasterio = pytest.importorskip("rasterio")  # GDAL's netCDF driver: its own HDF5 copy
    sm, grid = _day(seed=7)
    reference = _write(tmp_path / "netcdf-c.nc", sm, grid, None)
    ours = _write(tmp_path / "isal.nc", sm, grid, "isal")
    bands = []
    for path in (reference, ours):
        with rasterio.open(f'NETCDF:"{path}":sm') as src:
            bands.append(src.read())
            assert src.nodata == FILL and src.crs.to_epsg() == 4326
    np.testing.assert_array_equal(bands[1], bands[0])


def test_raw_chunks_refused_for_another_fill_value_or_a_missing_variable(tmp_path):
    import h5py

    path = tmp_path / "fill.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "sm",
            shape=(4, 4),
            dtype="<i2",
            chunks=(2, 2),
            shuffle=True,
            compression="gzip",
            fillvalue=0,
        )
    with pytest.raises(OutputError, match="fill value 0; expected -999"):
        chunks.write_pieces(path, "sm", [((0, 0), b"")], (2, 2), np.int16(FILL))
    with pytest.raises(OutputError, match="no variable 'soil'"):
        chunks.write_pieces(path, "soil", [((0, 0), b"")], (2, 2))
