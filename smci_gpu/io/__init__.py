"""Readers and writers: every file format the engine meets, behind canonical names/units."""

try:  # Load rasterio's GDAL before netCDF4 opens a file: the other order can abort at exit
    import rasterio  # noqa: F401  (two wheels bundle their own HDF5/netCDF libraries)
except ImportError:  # GPU-only machines may lack rasterio; kernels and forests do not need it
    pass
