"""The installed library stack, checked the way users meet it: their own scripts (issue #19/11).

Several wheels carry private copies of the same C/C++ libraries: pyproj (PROJ 9.5), rasterio
(GDAL, PROJ 9.7, HDF5 1.14, netCDF), netCDF4 (HDF5, netCDF, curl) and ecCodes' ``eckitlib``
(PROJ 9.8, curl, sqlite). Each copy is harmless while it stays private. findlibs < 0.1.4 opened
eckitlib's libraries ``RTLD_GLOBAL``, so its PROJ took over the C++ symbols of the other two and
the process aborted at exit ("double free or corruption", rc 134/139) after scripts as plain as
``import cfgrib, pyproj`` or an ``xarray.open_dataset`` of a product file.

Each case runs a small script in a fresh interpreter of this environment (``sys.executable``)
and asks for exit code 0, the expected answer on stdout and no allocator complaint on stderr:
a crash at exit cannot be seen from inside the test process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

#: What glibc's allocator and the kernel print when the heap is corrupted.
CRASH_WORDS = ("double free", "corruption", "invalid pointer", "Segmentation fault", "Aborted")

#: The real ERA5 GRIB sample (ecmwf/cfgrib test data): t2m in K, 0.25 deg, 60..30 N, -10..40 E.
GRIB_SAMPLE = "grib/era5-single-level-scalar-time.grib"


def run_user_script(script: str, cwd: Path) -> str:
    """Run ``script`` in a fresh interpreter; fail unless it exits 0 without heap errors.

    Returns its stdout (stripped).
    """
    env = dict(os.environ, PYTHONFAULTHANDLER="1")  # a Python stack in stderr if it crashes
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rc = proc.returncode
    how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
    found = [w for w in CRASH_WORDS if w in proc.stderr]
    assert rc == 0 and not found, (
        f"user script ended with {how} {found}; the wheels' bundled libraries clash "
        f"(see the dependency pins in pyproject.toml).\nscript:\n{script}\n"
        f"stderr (tail):\n{proc.stderr[-3000:]}"
    )
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A product day written by the engine's writer and a 1-band WGS84 GeoTIFF, with their
    values (the scripts' expected answers)."""
    import rasterio
    from rasterio.transform import from_origin

    from smci_gpu.grid import RegularGrid
    from smci_gpu.io.writer import product_dataset, write_day

    folder = tmp_path_factory.mktemp("userfiles")
    rng = np.random.default_rng(19)
    sm = rng.uniform(0.05, 0.45, (2, 6, 8))
    grid = RegularGrid(west=100.0, south=30.0, res=0.5, ny=6, nx=8)
    product = write_day(
        folder / "SMCI_1km_20100101.nc",
        product_dataset(sm, "2010-01-01", [10, 20], grid, {"source": "test_environment"}),
    )
    tif = folder / "lai.tif"
    band = rng.uniform(0.0, 6.0, (6, 8)).astype(np.float32)
    profile = dict(driver="GTiff", width=8, height=6, count=1, dtype="float32", crs="EPSG:4326")
    with rasterio.open(tif, "w", transform=from_origin(100.0, 33.0, 0.5, 0.5), **profile) as dst:
        dst.write(band, 1)
    # int16 counts of 0.001 m3/m3 decoded by CF scale_factor: the 20 cm layer's mean.
    np.save(folder / "sm20_mean.npy", np.round(sm[1] / 0.001).mean() * 0.001)
    np.save(folder / "lai_mean.npy", band.astype(np.float64).mean())
    return {"folder": folder, "product": product, "tif": tif}


def _expected(files: dict[str, Path], name: str) -> float:
    return float(np.load(files["folder"] / f"{name}.npy"))


# Import orders from the issue and their reverses: each alone in a fresh interpreter.
IMPORT_ORDERS = [
    "cfgrib, pyproj",
    "pyproj, cfgrib",
    "eccodes, netCDF4",
    "netCDF4, eccodes",
    "rasterio, netCDF4, cfgrib",
    "cfgrib, netCDF4, rasterio",
    "eccodes, rasterio, pyproj, netCDF4",
    # h5py (HDF5 2.0) files the product's chunks beside netCDF4's own HDF5 2.2 copy.
    "h5py, netCDF4",
    "netCDF4, h5py, rasterio",
    "rasterio, h5py, cfgrib",
]


@pytest.mark.parametrize("modules", IMPORT_ORDERS)
def test_imports_exit_cleanly(modules, tmp_path):
    assert run_user_script(f"import {modules}\nprint('ok')", tmp_path) == "ok"


def test_ecCodes_libraries_stay_private(tmp_path):
    # The mechanism of the crash, asked directly: after `import eccodes` no PROJ symbol may be
    # visible process-wide (dlsym on the global scope), or it overrides pyproj's PROJ.
    out = run_user_script(
        """
        import ctypes
        import eccodes
        print(hasattr(ctypes.CDLL(None), "proj_context_create"))
        """,
        tmp_path,
    )
    assert out == "False", "ecCodes' bundled libraries were loaded RTLD_GLOBAL (findlibs < 0.1.4)"


def test_pyproj_crs_after_cfgrib(tmp_path):
    out = run_user_script(
        """
        import cfgrib
        import pyproj
        print(pyproj.CRS("EPSG:4326").name)
        """,
        tmp_path,
    )
    assert out == "WGS 84"  # the EPSG registry's name of EPSG:4326


@pytest.mark.parametrize(
    ("before", "engine"),
    [
        ("", None),
        ("import cfgrib\n", "netcdf4"),
        ("import cfgrib, rasterio, pyproj\n", None),
    ],
    ids=["plain", "after-cfgrib", "after-all"],
)
def test_xarray_opens_product_file(files, before, engine, tmp_path):
    # engine=None makes xarray try every installed backend (cfgrib, rasterio) on the file: the
    # plainest user script loads the whole stack.
    out = run_user_script(
        before
        + f"""
import xarray as xr
with xr.open_dataset({str(files["product"])!r}, engine={engine!r}) as ds:
    print(repr(float(ds["sm"].sel(depth=20.0).mean())))
""",
        tmp_path,
    )
    assert float(out) == pytest.approx(_expected(files, "sm20_mean"), abs=1e-6)


def test_xarray_opens_real_grib_with_cfgrib(files, shared_data, tmp_path):
    grib = tmp_path / "era5.grib"  # cfgrib writes an index beside the file: use a copy
    shutil.copy(shared_data / GRIB_SAMPLE, grib)
    out = run_user_script(
        f"""
        import xarray as xr
        with xr.open_dataset({str(grib)!r}, engine="cfgrib") as ds:
            t2m = ds["t2m"]
            print(t2m.shape, t2m.attrs["units"], 200 < float(t2m.min()) < float(t2m.max()) < 330)
        with xr.open_dataset({str(files["product"])!r}) as ds:
            print(ds["sm"].shape)
        import pyproj  # after ecCodes: the order that crashed
        print(pyproj.CRS("EPSG:4326").name)
        """,
        tmp_path,
    )
    # 60..30 N and -10..40 E at 0.25 deg: 121 x 201 points (the sample's README).
    assert out.splitlines() == ["(121, 201) K True", "(1, 2, 6, 8)", "WGS 84"]


@pytest.mark.parametrize("before", ["", "import cfgrib, netCDF4\n"], ids=["plain", "after-grib"])
def test_rioxarray_reads_geotiff(files, before, tmp_path):
    out = run_user_script(
        before
        + f"""
import rioxarray
da = rioxarray.open_rasterio({str(files["tif"])!r})
print(da.rio.crs.to_epsg(), repr(float(da.mean())))
""",
        tmp_path,
    )
    epsg, mean = out.split()
    assert epsg == "4326"
    assert float(mean) == pytest.approx(_expected(files, "lai_mean"), rel=1e-6)
