"""zlib-stream compressors on a China day's shuffled int16 chunks: bytes and speed per core.

python benchmarks/bench_deflate.py [--layers 2] [--rounds 2]

Every compressor writes standard zlib streams (RFC 1950), so any of them can fill a NetCDF4
variable declared with shuffle + deflate. The chunks are the product's (512 × 512, HDF5
byte shuffle applied, chunks of fill only left out, as ``smci_gpu.io.chunks`` does) from
:func:`bench_storage.china_day`. CPU seconds of this process, best of ``rounds``; MB per
10-layer day scale the layers measured. Optional packages (``deflate`` for libdeflate,
``zlib-ng``) are measured when installed.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_storage import FILL, china_day  # noqa: E402

from smci_gpu.io.chunks import shuffle_bytes  # noqa: E402


def compressors() -> dict:
    from functools import partial

    from isal import isal_zlib

    out = {"stdlib zlib 1": partial(zlib.compress, level=1)}
    out.update({f"ISA-L {lv}": partial(isal_zlib.compress, level=lv) for lv in (1, 2, 3)})
    try:
        import deflate

        out.update(
            {f"libdeflate {lv}": (lambda b, lv=lv: deflate.zlib_compress(b, lv)) for lv in (1, 2)}
        )
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        out["zlib-ng 1"] = partial(zlib_ng.compress, level=1)
    except ImportError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    day = china_day(args.layers)
    chunks = []
    for k in range(day.shape[0]):
        for y in range(0, day.shape[1], 512):
            for x in range(0, day.shape[2], 512):
                c = np.full((512, 512), FILL, np.int16)
                part = day[k, y : y + 512, x : x + 512]
                c[: part.shape[0], : part.shape[1]] = part
                if not (c == FILL).all():
                    chunks.append(shuffle_bytes(c))
    scale = 10 / args.layers
    mb = day.nbytes / 1e6
    print(f"{len(chunks)} chunks with values; {mb:.0f} MB of int16 ({args.layers} layers)")
    print("| compressor | MB per 10-layer day | CPU s per 10-layer day | raw MB per CPU s |")
    print("|---|---|---|---|")
    for name, fn in compressors().items():
        best = float("inf")
        for _ in range(args.rounds):
            t = time.process_time()
            out = [fn(c) for c in chunks]
            best = min(best, time.process_time() - t)
        assert zlib.decompress(out[len(out) // 2]) == chunks[len(out) // 2]
        mb = sum(map(len, out)) * scale / 1e6
        print(f"| {name} | {mb:.0f} | {best * scale:.2f} | {day.nbytes / 1e6 / best:.0f} |")


if __name__ == "__main__":
    main()
