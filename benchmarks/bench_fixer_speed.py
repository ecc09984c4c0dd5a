"""Fixer speed: frames per second of Difix (compact by default) at 960x540 with a reference view.

    python benchmarks/bench_fixer_speed.py [--height 540 --width 960] [--frames 200 --warmup 20]
        [--batch 1] [--dtype bf16|fp16|fp32] [--no-ref] [--compile] [--model DIR] [--threads N]
        [--result benchmarks/results/NAME.json]

Times the differentiable frame path `Difix(frames [N, H, W, 3], ref [N, H, W, 3])` (padding and
layout changes included) under autocast on CUDA, after a warm-up; prints frames/s and writes a
JSON with device, commit, command and figures. On CPU autocast is off: use a tiny size there
(e.g. --height 64 --width 96 --frames 3 --warmup 1) to check that the script runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from common import device_name, git_commit, time_loop

from faithfusion.fixers import Difix, DifixConfig, load_fixer
from faithfusion.utils.jsonio import save_json_atomic

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--height", type=int, default=540)
    p.add_argument("--width", type=int, default=960)
    p.add_argument("--frames", type=int, default=200, help="timed forward passes (x batch frames)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="autocast dtype on CUDA")
    p.add_argument("--no-ref", action="store_true", help="no reference view")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    p.add_argument("--model", type=Path, default=None, help="a saved fixer folder (default: a fresh compact Difix)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--result", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    model = load_fixer(args.model) if args.model else Difix(DifixConfig())
    model = model.to(device).eval()
    if args.compile:
        model.net = torch.compile(model.net)
    g = torch.Generator(device="cpu").manual_seed(0)
    frames = torch.rand(args.batch, args.height, args.width, 3, generator=g).to(device)  # [N, H, W, 3]
    ref = None if args.no_ref else torch.rand(args.batch, args.height, args.width, 3, generator=g).to(device)
    use_autocast = device.type == "cuda" and args.dtype != "fp32"

    def step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=DTYPES[args.dtype], enabled=use_autocast):
            return model(frames, ref)

    warm_s, seconds, out = time_loop(step, device, args.warmup, args.frames)
    n = args.frames * args.batch
    result = {
        "benchmark": "fixer_speed",
        "device": device_name(device),
        "commit": git_commit(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "torch": torch.__version__,
        "fixer": type(model).__name__,
        "backbone": model.config.backbone,
        "parameters": sum(p.numel() for p in model.parameters()),
        "height": args.height,
        "width": args.width,
        "batch": args.batch,
        "reference": ref is not None,
        "dtype": args.dtype if use_autocast else "fp32",
        "compile": args.compile,
        "warmup_passes": args.warmup,
        "warmup_seconds": warm_s,
        "frames": n,
        "seconds": seconds,
        "frames_per_second": n / seconds,
        "ms_per_frame": 1000 * seconds / n,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "output_shape": list(out.shape),
    }
    print(f"{result['fixer']}/{result['backbone']} on {result['device']}: {args.width}x{args.height}, "
          f"batch {args.batch}, ref {result['reference']}, {result['dtype']}: "
          f"{result['frames_per_second']:.1f} frames/s ({result['ms_per_frame']:.2f} ms/frame)")
    if args.result is not None:
        save_json_atomic(args.result, result)
    return result


if __name__ == "__main__":
    main()
