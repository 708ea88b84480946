import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from smci_gpu.errors import GridError
from smci_gpu.grid import RegularGrid, era5land_grid, index_maps, nearest_index, target_grid


def test_full_china_grid_is_cheap_and_exact():
    g = target_grid(73, 18, 136, 54)
    assert g.shape == (4320, 7560)  # the published 1 km grid
    assert g.lat[0] == pytest.approx(18 + 1 / 240) and g.lon[-1] == pytest.approx(136 - 1 / 240)
    assert g.coarsen(12).shape == (360, 630)  # the published 9 km grid
    # Only the five numbers are stored.
    assert set(vars(g)) == {"west", "south", "res", "ny", "nx"}


def test_bounds_are_cf_layout():
    g = RegularGrid(10.0, 20.0, 0.5, 2, 3)
    np.testing.assert_allclose(g.lat_bounds(), [[20.0, 20.5], [20.5, 21.0]])
    np.testing.assert_allclose(g.lon, [10.25, 10.75, 11.25])


def test_era5land_grid_centres_on_tenths():
    e = era5land_grid(110.0, 30.0, 112.0, 32.0, margin=1)
    np.testing.assert_allclose(e.lon[[0, 1, -1]], [109.9, 110.0, 112.1])
    np.testing.assert_allclose(e.lat[[0, -1]], [29.9, 32.1])


def test_hand_worked_nearest_at_box_edges_with_descending_source():
    # Source like a CDS file: latitude descending 32.1 .. 29.9, step 0.1.
    src_lat = np.round(np.arange(32.1, 29.85, -0.1), 10)
    g = target_grid(110.0, 30.0, 112.0, 32.0)
    iy, _ = index_maps(g, src_lat, np.arange(109.9, 112.15, 0.1))
    # First target row is at 30.00417: nearest is 30.0, index 21 in the descending source.
    assert src_lat[iy[0]] == pytest.approx(30.0)
    assert iy[0] == 21
    # Row 5 is 30.04583 -> 30.0; row 6 is 30.05417 -> 30.1 (the cell edge is 30.05).
    assert src_lat[iy[5]] == pytest.approx(30.0) and src_lat[iy[6]] == pytest.approx(30.1)
    # Last row at 31.99583 -> 32.0 at the north edge of the box.
    assert src_lat[iy[-1]] == pytest.approx(32.0)


def test_longitudes_wrap_at_the_dateline():
    src = np.arange(0.0, 360.0, 0.1)  # 0..359.9, as ERA5-Land on the CDS
    dst = np.array([-180.0 + 1 / 240, -0.04, 179.96, 179.99])
    idx = nearest_index(src, dst, period=360.0)
    np.testing.assert_allclose(src[idx], [180.0, 0.0, 180.0, 180.0], atol=1e-9)
    # A box across the dateline: 179.99 E and -179.99 (= 180.01) both pick 180.0.
    idx = nearest_index(
        np.array([179.8, 179.9, 180.0, 180.1]), np.array([179.99, -179.99]), period=360.0
    )
    assert list(idx) == [2, 2]
    # 359.96 is nearest to 0.0 across the wrap, not to 359.9.
    assert nearest_index(src, np.array([359.96]), period=360.0)[0] == 0


def test_poles_of_the_box():
    src = np.round(np.arange(90.0, -90.05, -0.1), 10)  # 90 .. -90 descending
    idx = nearest_index(src, np.array([89.999, -89.999, 0.04]))
    np.testing.assert_allclose(src[idx], [90.0, -90.0, 0.0], atol=1e-9)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="strictly increasing or strictly decreasing"):
        nearest_index(np.array([0.0, 1.0, 0.5]), np.array([0.2]), name="src_lat")
    with pytest.raises(ValueError, match="outside src_lat"):
        nearest_index(np.array([0.0, 1.0]), np.array([5.0]), name="src_lat")


def test_station_lookup_names_the_station():
    g = target_grid(110, 30, 112, 32)
    r, c = g.row_col([30.0, 31.999], [110.0, 111.999])
    assert list(r) == [0, 239] and list(c) == [0, 239]
    with pytest.raises(GridError, match="ST9"):
        g.row_col([30.5, 40.0], [110.5, 110.5], names=["ST1", "ST9"])


def test_coarsen_requires_whole_blocks():
    with pytest.raises(GridError, match="12x12"):
        RegularGrid(0, 0, 1 / 120, 13, 24).coarsen(12)


@settings(max_examples=60, deadline=None)
@given(
    n_src=st.integers(2, 40),
    n_dst=st.integers(1, 60),
    descending=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_nearest_matches_xarray_sel(n_src, n_dst, descending, seed):
    rng = np.random.default_rng(seed)
    src = np.sort(rng.uniform(-50, 50, n_src))
    if np.any(np.diff(src) < 1e-6):
        return
    if descending:
        src = src[::-1]
    dst = rng.uniform(src.min(), src.max(), n_dst)
    idx = nearest_index(src, dst, max_distance=np.inf)
    da = xr.DataArray(np.arange(n_src), coords={"x": src}, dims="x")
    expected = da.sel(x=dst, method="nearest").values
    # Exact ties are measure-zero with random floats; compare the picks.
    np.testing.assert_array_equal(idx, expected)
