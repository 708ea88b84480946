"""Static maps: any grid that covers the region is resampled; one that does not is refused."""

from __future__ import annotations

import numpy as np
import pytest

from smci_gpu.errors import InputDataError
from smci_gpu.grid import target_grid
from smci_gpu.io.geotiff import write_geotiff
from smci_gpu.io.rasters import read_static


def test_static_map_for_another_region_is_refused(tmp_path):
    region = target_grid(114.0, 40.0, 114.5, 40.5)
    elsewhere = target_grid(100.0, 30.0, 100.5, 30.5)
    write_geotiff(tmp_path / "dem.tif", np.full(elsewhere.shape, 900.0, np.float32), elsewhere)
    with pytest.raises(InputDataError, match=r"dem.tif has values on only 0% of the product"):
        read_static(tmp_path, region, ["dem"])


def test_coarser_static_map_covering_the_region_is_resampled(tmp_path):
    region = target_grid(114.0, 40.0, 114.5, 40.5)
    coarse = target_grid(113.9, 39.9, 114.6, 40.6, resolution_arcsec=60.0)
    values = np.arange(coarse.size, dtype=np.float32).reshape(coarse.shape)
    write_geotiff(tmp_path / "dem.tif", values, coarse)
    got = read_static(tmp_path, region, ["dem"])[0]
    assert got.shape == region.shape and np.isfinite(got).all()
    # Each 30″ pixel lies inside one 60″ cell: the value of the cell it falls in.
    rows = ((region.lat - coarse.south) // coarse.res).astype(int)
    cols = ((region.lon - coarse.west) // coarse.res).astype(int)
    np.testing.assert_array_equal(got, values[rows[:, None], cols[None, :]])


def test_finer_land_cover_is_aggregated_by_majority(tmp_path):
    # A 15″ (500 m) land-cover map aligned with the 30″ grid: each product pixel takes the
    # most frequent class of its 2 × 2 cells, fill (255) ignored, ties to the smaller.
    region = target_grid(114.0, 40.0, 114.5, 40.5)
    fine = target_grid(114.0, 40.0, 114.5, 40.5, resolution_arcsec=15.0)
    rng = np.random.default_rng(4)
    classes = rng.choice(np.array([1, 5, 10, 16, 255], np.uint8), fine.shape)
    write_geotiff(tmp_path / "landcover.tif", classes, fine, nodata=255)
    got = read_static(tmp_path, region, ["landcover"])[0]
    blocks = classes.reshape(region.ny, 2, region.nx, 2).transpose(0, 2, 1, 3).reshape(-1, 4)
    want = np.zeros(len(blocks), np.float32)  # no class in the block: 0 (nodata)
    for i, cells in enumerate(blocks):
        vals, counts = np.unique(cells[cells != 255], return_counts=True)
        if vals.size:
            want[i] = vals[np.argmax(counts)]  # first maximum: the smallest class
    np.testing.assert_array_equal(got, want.reshape(region.shape))
