# GPU image: RAPIDS base (cuDF, cuML, dask-cuda, CuPy, Numba-CUDA) + smci-gpu.
#   docker build -t smci-gpu .
#   docker run --gpus all -v $PWD/work:/work smci-gpu --workdir /work produce --device gpu
FROM nvcr.io/nvidia/rapidsai/base:26.08-cuda12-py3.12
USER root
WORKDIR /opt/smci-gpu
COPY pyproject.toml README.md ./
COPY smci_gpu ./smci_gpu
COPY kernels ./kernels
COPY tests ./tests
# The geo stack comes as the PyPI wheels pinned in pyproject.toml (the set the CPU venv tests),
# each with private GDAL/PROJ/HDF5/netCDF/ecCodes copies; the build fails if user scripts that
# import them together do not exit cleanly in this image (issue #19 item 11).
RUN pip install --no-cache-dir -e ".[test]" nvforest-cu12 dask-jobqueue \
    && python -m pytest -q -p no:cacheprovider tests/test_environment.py
ENTRYPOINT ["smci"]
CMD ["--help"]
