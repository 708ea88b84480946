"""Readers and writers: every file format the engine meets, behind canonical names/units."""

# Several wheels bundle their own copies of GDAL/PROJ/HDF5/netCDF/ecCodes libraries. Loaded
# in the wrong order they corrupt each other and the process aborts (at exit, or on the
# first GRIB read): rasterio's GDAL first, then pyproj's PROJ, then netCDF4 and ecCodes.
try:
    import rasterio  # noqa: F401
except ImportError:  # GPU-only machines may lack rasterio; kernels and forests do not need it
    pass
try:
    import pyproj  # noqa: F401
except ImportError:
    pass
