"""(d) How many frames per second does each shipped fixer repair, in fp32 and (on CUDA) under bf16 autocast?

Each fixer is loaded as a fusion run loads it (`choose_fixer`: faithfusion/fixers/weights/KIND) and called through
its `fix` with the inputs a fusion round gives it: Difix a batch of single frames with their reference views
(as `fix_frames` does), EIGent a window with a reference and per-pixel EIG, GenFusion a window with a reference,
render depth and the reference's depth. Inputs are random, made once on the device.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor

from faithfusion.bench.timing import peak_memory, time_calls

VIDEO_FIXERS = ("eigent", "genfusion")


def fixer_inputs(kind: str, frames: int, height: int, width: int, device: torch.device, seed: int = 0) -> dict[str, Tensor]:
    """The keyword arguments of `fix` for `frames` frames of `kind` at `width` x `height`."""
    g = torch.Generator().manual_seed(seed)
    b, t = (1, frames) if kind in VIDEO_FIXERS else (frames, 1)
    args = {"images": torch.rand(b, t, height, width, 3, generator=g),  # [B, T, H, W, 3]
            "ref": torch.rand(b, height, width, 3, generator=g)}  # [B, H, W, 3]
    if kind == "eigent":
        args["eig"] = torch.rand(b, t, height, width, generator=g)  # [B, T, H, W]
    if kind == "genfusion":
        args["depth"] = 2.0 + 60.0 * torch.rand(b, t, height, width, generator=g)  # [B, T, H, W] metres
        args["ref_depth"] = 2.0 + 60.0 * torch.rand(b, height, width, generator=g)  # [B, H, W]
    return {k: v.to(device) for k, v in args.items()}


def dtypes_for(device: torch.device) -> list[str]:
    """fp32 everywhere; bf16 autocast on CUDA only (on the CPU it is not how the fixers run)."""
    return ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]


def bench_fixer(kind: str, device: torch.device, width: int, height: int, frames: int, warmup: int,
                repeats: int) -> dict:
    """Frames per second of the shipped fixer `kind` per dtype, or a note when its weights are missing."""
    from faithfusion.fusion.fixers import MissingFixerError, choose_fixer

    try:
        chosen = choose_fixer(None, kind, device)
    except MissingFixerError as e:
        return {"skipped": str(e)}
    fixer = chosen.fixer
    args = fixer_inputs(kind, frames, height, width, device)
    out: dict = {"source": chosen.source, "class": type(fixer).__name__, "resolution": [width, height],
                 "frames_per_call": frames, "window": kind in VIDEO_FIXERS,
                 "parameters": sum(p.numel() for p in fixer.parameters())}
    for dtype in dtypes_for(device):
        def call(bf16: bool = dtype == "bf16") -> None:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext():
                fixer.fix(**args)

        with peak_memory(device) as mem:
            t = time_calls(call, device, warmup=warmup, repeats=repeats)
        out[dtype] = {**t.to_dict(), "frames_per_second": frames / t.median_s, "ms_per_frame": 1e3 * t.median_s / frames,
                      "peak_memory_gib": mem.gib, "peak_memory_above_start_gib": mem.above_start_gib}
    if device.type != "cuda":
        out["note"] = "bf16 autocast is timed on CUDA only"
    return out


def bench_fixers(kinds: tuple[str, ...], device: torch.device, width: int, height: int, frames: int, warmup: int,
                 repeats: int) -> dict:
    return {kind: bench_fixer(kind, device, width, height, frames, warmup, repeats) for kind in kinds}
