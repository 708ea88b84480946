"""Run the GPU-twin tests under the Numba CUDA simulator, in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path


def test_gpu_twins_under_cudasim():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    folder = Path(__file__).parent / "cudasim"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "failed" not in r.stdout
