"""The Triton EIG kernels' tunables, readable without importing Triton (the tile lists are cut to match them).

`FAITHFUSION_EIG_TRITON="block,batch,warps[,tile]"`: one program per `block x block` pixels, the Gaussian list
walked `batch` at a time with `warps` warps, the lists built over `tile x tile` pixel tiles (`tile` a multiple of
`block`, default `block`: every program walks only the Gaussians whose screen box touches its own pixels).
"""

from __future__ import annotations

import os
from typing import NamedTuple

ENV = "FAITHFUSION_EIG_TRITON"


class KernelConfig(NamedTuple):
    block: int
    batch: int
    warps: int
    tile: int


# the default configuration; benchmarks/bench_eig_kernels.py sweeps the alternatives
DEFAULT = KernelConfig(block=4, batch=64, warps=2, tile=4)


def parse_config(text: str) -> KernelConfig:
    """"8,32,4" or "8,32,4,16" -> KernelConfig; a clear error for anything else."""
    try:
        vals = [int(x) for x in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) not in (3, 4) or min(vals, default=0) <= 0:
        raise ValueError(f"{ENV}={text!r}: expected 'block,batch,warps[,tile]' as positive integers")
    block, batch, warps = vals[:3]
    tile = vals[3] if len(vals) == 4 else block
    if tile % block:
        raise ValueError(f"{ENV}={text!r}: block {block} must divide the list tile {tile}")
    return KernelConfig(block, batch, warps, tile)


def default_config() -> KernelConfig:
    """The configuration in FAITHFUSION_EIG_TRITON, else DEFAULT."""
    env = os.environ.get(ENV, "")
    return parse_config(env) if env else DEFAULT
