"""Compile SynthStreet's numba kernels into numba's on-disk cache ahead of their first use.

The kernels are compiled with `cache=True`: the first scene a fresh clone generates pays their compilation (about
40 s on a 2-core CPU), every later one loads them from the cache next to the sources. `scripts/setup.sh` calls
`compile_kernels` so that the install pays it, not the first demo."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def compile_kernels(dynamic: bool = True) -> float:
    """Generate a tiny static (and, with `dynamic`, a tiny dynamic) scene in a temporary folder, which compiles
    every kernel with the argument types the real scenes use. Returns the seconds it took."""
    from faithfusion.synth.generate import generate

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="faithfusion-warm-") as tmp:
        for flag in (False, True) if dynamic else (False,):
            generate(Path(tmp) / f"scene_{int(flag)}", seed=0, frames=2, width=32, height=24, shifts=(1.0,),
                     dynamic=flag, lidar_azimuths=16, progress=False)
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"SynthStreet kernels compiled in {compile_kernels():.1f} s")
