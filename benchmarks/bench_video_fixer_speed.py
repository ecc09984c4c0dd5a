"""Video fixer speed: seconds per 16-frame window at 960x540 for EIGent (with EIG and a reference view)
and GenFusion's RGB-D fixer (with render depth and a reference view).

    python benchmarks/bench_video_fixer_speed.py [--model eigent|genfusion|both] [--frames 16]
        [--height 540 --width 960] [--windows 10 --warmup 3] [--dtype bf16|fp16|fp32] [--no-ref]
        [--compile] [--eigent DIR] [--genfusion DIR] [--threads N] [--tiny]
        [--result benchmarks/results/NAME.json]

Times the differentiable window path under autocast on CUDA, after a warm-up: EIGent's
`model(frames [1, T, H, W, 3], ref, eig)`; GenFusion's depth -> normalised disparity, `model(...)`,
disparity -> depth (what `fix` does, without its bookkeeping). Padding and layout changes are
included. The target is one window in <= 1 s on an H100 in bf16. Prints seconds per window and
writes a JSON with device, commit, command and figures. `--tiny` (tiny configs, 64x48, 1 timed
window) checks on CPU that the script runs; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, git_commit, time_loop  # noqa: E402
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402

from faithfusion.fixers import load_fixer  # noqa: E402
from faithfusion.fixers.eigent import EIGent, EIGentConfig  # noqa: E402
from faithfusion.fixers.genfusion import GenFusion, GenFusionConfig, denormalise_disparity  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
TARGET_SECONDS = 1.0  # per 16-frame 960x540 window on an H100, bf16
TINY = {
    "eigent": EIGentConfig(difix_channels=(8, 16), difix_dim=16, difix_depth=1, latent_channels=4, dim=16,
                           coarse_depth=1, fine_depth=1, context_width=8),
    "genfusion": GenFusionConfig(channels=(8, 16), dim=16, heads=2, coarse_depth=1, fine_depth=1),
}


def build(name: str, folder: Path | None, tiny: bool) -> torch.nn.Module:
    if folder is not None:
        model = load_fixer(folder)
        want = {"eigent": EIGent, "genfusion": GenFusion}[name]
        if not isinstance(model, want):
            raise SystemExit(f"{folder}: holds a {type(model).__name__}, not a {want.__name__}")
        return model
    if name == "eigent":
        return EIGent(TINY["eigent"] if tiny else EIGentConfig())
    return GenFusion(TINY["genfusion"] if tiny else GenFusionConfig())


def window_step(name: str, model: torch.nn.Module, net: Callable, frames: torch.Tensor, ref: torch.Tensor | None,
                g: torch.Generator) -> Callable[[], torch.Tensor]:
    """The timed call for one window; inputs are made once, on the device."""
    b, t, h, w, _ = frames.shape
    if name == "eigent":
        eig = torch.rand(b, t, h, w, generator=g).to(frames.device)
        return lambda: net(frames, ref, eig)
    depth = (2 + 60 * torch.rand(b, t, h, w, generator=g)).to(frames.device)

    def step() -> torch.Tensor:
        disp, valid, _, _, rng = model.prepare_depth(depth, None, frames)
        rgb, d = net(frames, disp.to(frames.dtype), valid.to(frames.dtype), ref)
        return denormalise_disparity(d.float(), rng, model.config.min_range)

    return step


def bench_one(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    model = build(name, getattr(args, name), args.tiny).to(device).eval()
    net = torch.compile(model) if args.compile else model
    g = torch.Generator(device="cpu").manual_seed(0)
    frames = torch.rand(1, args.frames, args.height, args.width, 3, generator=g).to(device)  # [1, T, H, W, 3]
    ref = None if args.no_ref else torch.rand(1, args.height, args.width, 3, generator=g).to(device)
    use_autocast = device.type == "cuda" and args.dtype != "fp32"
    inner = window_step(name, model, net, frames, ref, g)

    def step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=DTYPES[args.dtype], enabled=use_autocast):
            return inner()

    warm_s, seconds, out = time_loop(step, device, args.warmup, args.windows)
    per_window = seconds / args.windows
    return {
        "fixer": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_mb_fp32": 4 * sum(p.numel() for p in model.parameters()) / 1e6,
        "config": model.config_dict(),
        "frames": args.frames,
        "height": args.height,
        "width": args.width,
        "reference": ref is not None,
        "dtype": args.dtype if use_autocast else "fp32",
        "compile": args.compile,
        "warmup_windows": args.warmup,
        "warmup_seconds": warm_s,
        "windows": args.windows,
        "seconds": seconds,
        "seconds_per_window": per_window,
        "frames_per_second": args.frames / per_window,
        "ms_per_frame": 1000 * per_window / args.frames,
        "target_seconds_per_window": TARGET_SECONDS,
        "meets_target": bool(per_window <= TARGET_SECONDS) if not args.tiny else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "output_shape": list(out.shape),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["eigent", "genfusion", "both"], default="both")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--height", type=int, default=540)
    p.add_argument("--width", type=int, default=960)
    p.add_argument("--windows", type=int, default=10, help="timed windows")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="autocast dtype on CUDA")
    p.add_argument("--no-ref", action="store_true", help="no reference view")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--eigent", type=Path, default=None, help="a saved EIGent folder (default: a fresh one)")
    p.add_argument("--genfusion", type=Path, default=None, help="a saved GenFusion folder (default: a fresh one)")
    p.add_argument("--tiny", action="store_true", help="tiny configs at 64x48, 1 window: checks that the script runs")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--result", type=Path, default=None)
    args = p.parse_args(argv)
    if args.tiny:
        args.height, args.width, args.windows, args.warmup = 48, 64, 1, 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    names = ["eigent", "genfusion"] if args.model == "both" else [args.model]
    result = {
        "benchmark": "video_fixer_speed",
        "device": device_name(device),
        "commit": git_commit(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "torch": torch.__version__,
        "tiny": args.tiny,
        "models": {},
    }
    for name in names:
        r = bench_one(name, args, device)
        result["models"][name] = r
        print(f"{r['fixer']} on {result['device']}: {args.frames}x{args.width}x{args.height}, ref {r['reference']}, "
              f"{r['dtype']}: {r['seconds_per_window']:.3f} s/window ({r['ms_per_frame']:.1f} ms/frame), "
              f"{r['parameters'] / 1e6:.2f} M parameters")
    if args.result is not None:
        save_json_atomic(args.result, result)
    return result


if __name__ == "__main__":
    main()
