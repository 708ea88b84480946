# GPU image: RAPIDS base (cuDF, cuML, dask-cuda, CuPy, Numba-CUDA) + smci-gpu.
#   docker build -t smci-gpu .
#   docker run --gpus all -v $PWD/work:/work smci-gpu --workdir /work produce --device gpu
FROM nvcr.io/nvidia/rapidsai/base:26.08-cuda12-py3.12
USER root
WORKDIR /opt/smci-gpu
COPY pyproject.toml README.md ./
COPY smci_gpu ./smci_gpu
COPY kernels ./kernels
RUN pip install --no-cache-dir -e ".[test]" nvforest-cu12 dask-jobqueue
ENTRYPOINT ["smci"]
CMD ["--help"]
