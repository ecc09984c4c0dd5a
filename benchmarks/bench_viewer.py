"""Viewer speed: frames per second of the viewer's library render (`RunView.layer`) at a given size and device.

    python benchmarks/bench_viewer.py [--run RUN] [--width 960 --height 540] [--device auto|cpu|cuda]
        [--frames 60 --warmup 5] [--layers render depth] [--threads N] [--result benchmarks/results/NAME.json]

Each timed frame is what the viewer does for one slider move in drive mode: `RunView.layer(layer, frame, shift,
size=(W, H))` (rasterise, sky, copy to a uint8 image on the host) plus the JPEG encode viser sends (imageio, quality
90), cycling over the drive's frames and lane shifts -6..6 m. Without --run a SynthStreet scene (8 frames, 480x320)
is generated and trained for --make-steps steps on the device first (the figure then says how many Gaussians).
Writes a JSON with the device, the commit, the command, the size, the thread count, the Gaussian count, the
1-minute load averages at start and end (a shared CPU) and, per layer, the median / mean milliseconds and frames
per second. `eig` and `fixed` build their EIG session / load the fixer during the warm-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import device_name, git_commit, sync

from faithfusion.utils.jsonio import save_json_atomic


def make_run(root: Path, device: str, steps: int) -> Path:
    """A SynthStreet scene and a short reconstruction of it (the bench's default subject)."""
    from faithfusion.synth import generate
    from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
    from faithfusion.train.recon import run_recon

    scene = generate(root / "scene", 0, frames=8, width=480, height=320, shifts=(3.0,))
    run_recon(ReconConfig(data=scene, out=root / "run", steps=steps, device=device, progress=False, ckpt_every=0,
                          cameras=(0,), save_renders=False, init=InitConfig(max_points=50_000, random_points=5_000),
                          strategy=StrategyConfig(refine_stop=int(0.75 * steps))))
    return root / "run"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=None, help="a trained run (default: make a small SynthStreet run)")
    p.add_argument("--width", type=int, default=960)
    p.add_argument("--height", type=int, default=540)
    p.add_argument("--device", default="auto")
    p.add_argument("--frames", type=int, default=60, help="timed frames per layer")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--layers", nargs="+", default=["render"], help="layers to time (render, depth, eig, fixed, gt)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--make-steps", type=int, default=300, help="training steps of the default run")
    p.add_argument("--result", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    import imageio.v3 as iio

    from faithfusion.utils.device import resolve_device
    from faithfusion.viewer.frames import RunView

    device = resolve_device(args.device)
    load_start = os.getloadavg()[0]
    tmp = None
    run = args.run
    if run is None:
        tmp = tempfile.TemporaryDirectory()
        run = make_run(Path(tmp.name), device.type, args.make_steps)
    view = RunView(run, device.type)
    ids = view.drive()
    shifts = [-6.0, -3.0, 0.0, 3.0, 6.0]
    size = (args.width, args.height)
    layers = {}
    for layer in args.layers:
        def one(k: int) -> None:
            out = view.layer(layer, ids[k % len(ids)], shifts[k % len(shifts)], size=size)
            iio.imwrite("<bytes>", out.image, extension=".jpeg", quality=90)

        for k in range(args.warmup):
            one(k)
        times = []
        for k in range(args.frames):
            sync(device)
            t0 = time.perf_counter()
            one(k)
            sync(device)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        layers[layer] = {"median_ms": 1000 * med, "mean_ms": 1000 * statistics.fmean(times), "min_ms": 1000 * min(times),
                         "fps_median": 1.0 / med, "fps_mean": len(times) / sum(times), "frames": len(times)}
        print(f"{layer}: {1.0 / med:.1f} frames/s (median {1000 * med:.1f} ms) at {size[0]}x{size[1]} on {device_name(device)}")
    result = {
        "benchmark": "bench_viewer", "command": "python " + " ".join(sys.argv if argv is None else ["benchmarks/bench_viewer.py", *argv]),
        "commit": git_commit(), "device": device_name(device), "threads": torch.get_num_threads(),
        "width": args.width, "height": args.height, "run": str(run) if args.run else f"generated ({args.make_steps} steps)",
        "gaussians": len(view.trainer.model), "layers": layers,
        "load_average_start": load_start, "load_average_end": os.getloadavg()[0],
    }
    if args.result is not None:
        save_json_atomic(args.result, result)
    if tmp is not None:
        tmp.cleanup()
    return result


if __name__ == "__main__":
    main()
