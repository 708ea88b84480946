"""Readers and writers: every file format the engine meets, behind canonical names/units."""

# Several wheels bundle their own copies of GDAL/PROJ/HDF5/netCDF/ecCodes libraries. The
# crash at exit that once followed some import orders came from findlibs < 0.1.4 loading
# ecCodes' eckitlib (with its own PROJ) into the global symbol namespace; pyproject pins
# findlibs >= 0.1.4 and tests/test_environment.py checks every order. Loading GDAL and PROJ
# first is kept as a cheap guard for environments assembled by hand.
try:
    import rasterio  # noqa: F401
except ImportError:  # GPU-only machines may lack rasterio; kernels and forests do not need it
    pass
try:
    import pyproj  # noqa: F401
except ImportError:
    pass
