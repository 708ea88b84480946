"""A/B of the Zarr store codec: numcodecs shuffle + zstd 1 against the v3 specification's
Blosc (shuffle + zstd 1), interleaved in one process on a smooth int16 field with fill.

Run: .venv/bin/python benchmarks/ab_zarr_codec.py (prints write CPU s, bytes, read CPU s).
"""

import os
import shutil
import tempfile
import time
import warnings

import numpy as np
import zarr
from scipy import ndimage
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.codecs.numcodecs import Shuffle

warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
n = 1024
base = ndimage.zoom(rng.random((8, 64, 64)), (1, 16, 16), order=1) * 0.3 + 0.1
x = (base + rng.normal(0, 0.003, (8, n, n))).clip(0, 0.6)
counts = np.round(x / 0.001).astype(np.int16)
counts[:, :200, :300] = -999


def run(name, comps):
    d = tempfile.mkdtemp(dir="/tmp")
    t = time.process_time()
    a = zarr.create_array(
        d,
        shape=counts.shape,
        chunks=(8, 256, 256),
        dtype="int16",
        compressors=comps,
        fill_value=-999,
        zarr_format=3,
    )
    a[:] = counts
    w = time.process_time() - t
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
    t = time.process_time()
    b = zarr.open_array(d)[:]
    r = time.process_time() - t
    assert (b == counts).all()
    shutil.rmtree(d)
    return w, size, r


for rnd in range(3):
    for name, comps in [
        ("numcodecs shuffle+zstd1", [Shuffle(elementsize=2), ZstdCodec(level=1)]),
        ("blosc zstd1 shuffle", [BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")]),
    ]:
        w, s, r = run(name, comps)
        print(
            rnd,
            name,
            f"write cpu {w:.2f}s size {s / 1e6:.2f}MB read cpu {r:.2f}s",
            f"MB/s {counts.nbytes / 1e6 / w:.0f}",
        )
