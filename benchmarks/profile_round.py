"""Where does a FaithFusion round spend its time? Stage seconds of its first rounds, and plain 3DGS steps beside them.

    python benchmarks/profile_round.py --out DIR [--size quick|full] [--rounds 2] [--threads 1] [--steps N]
        [--data SCENE] [--device auto] [--fixer DIR|identity] [--video-fixer DIR|identity] [--h-train-refresh K]
        [--result FILE.json]

Trains FaithFusion (the shipped fixers unless --fixer / --video-fixer) on a SynthStreet scene (seed 0,
generated into DIR/scene at the demo's size unless --data) with the demo's reconstruction settings
(`faithfusion demo` sizes: quick 192x128 / 16 frames / 1000 steps, full 480x320 / 40 frames / 7000 steps),
and stops after --rounds rounds. A smaller --steps scales the whole schedule (rounds come earlier; the model
then has fewer steps behind it than in the demo, so its point count differs). Every round's row in
DIR/faithfusion/rounds.jsonl holds the seconds of its stages: `train` (the steps before the round), `h_train`
(Fisher of captured and fused views), `eig` (calibration and the EIG maps of the shifted views), `render`
(novel-view renders), `references`, `fix_video`, `fix_difix`, `pool_insert` and `checkpoint`. A plain 3DGS
trainer then runs as many steps from the same start, for its seconds per step. --h-train-refresh K sets
`faithfusion.h_train_refresh` (1 = H_train recomputed every round, the default; K > 1 = every K rounds, carried
through densification in between).

The JSON holds the device, commit and command, the rows, the stage totals and their shares of the rounds'
wall time (with `unaccounted` for what no stage covers) and of the rounds' own work (without `train`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, git_commit  # noqa: E402

from faithfusion.commands.demo import DemoConfig, demo_sizes  # noqa: E402
from faithfusion.fusion.config import FaithFusionConfig, FaithFusionSchedule, fuse_config  # noqa: E402
from faithfusion.fusion.runner import run_method  # noqa: E402
from faithfusion.synth.generate import generate  # noqa: E402
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig  # noqa: E402
from faithfusion.utils.device import resolve_device  # noqa: E402
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402

ROUND_STAGES = ("h_train", "eig", "render", "references", "fix_video", "fix_difix", "pool_insert", "checkpoint")


def recon_config(sizes: dict, scene: Path, out: Path, steps: int, device: str) -> ReconConfig:
    """The demo's reconstruction settings (`faithfusion.commands.demo.run_demo`) for `steps` steps."""
    return ReconConfig(
        data=scene, out=out, steps=steps, device=device, holdout_every=10, overwrite=True, progress=False,
        ckpt_every=min(1000, max(1, steps // 5)),
        init=InitConfig(max_points=sizes["max_points"], random_points=sizes["random_points"]),
        strategy=StrategyConfig(refine_stop=int(0.75 * steps)),
    )


def plain_seconds_per_step(cfg: ReconConfig, steps: int) -> dict:
    """Seconds per step of a plain 3DGS trainer over its first `steps` steps (same scene and settings)."""
    from faithfusion.train.recon import load_scene_for
    from faithfusion.train.trainer import Trainer

    scene = load_scene_for(cfg)
    trainer = Trainer(scene, cfg, resolve_device(cfg.device))
    trainer.fit(steps, progress=False)
    return {"steps": steps, "seconds": trainer.train_seconds, "seconds_per_step": trainer.train_seconds / max(1, steps),
            "gaussians": len(trainer.model)}


def shares(totals: dict[str, float], whole: float) -> dict[str, float]:
    return {k: v / whole for k, v in totals.items()} if whole > 0 else {}


def summarise(rows: list[dict]) -> dict:
    """Stage totals over the rounds and their shares of the wall time and of the rounds' own work."""
    totals: dict[str, float] = {}
    for r in rows:
        for k, v in r["stages"].items():
            totals[k] = totals.get(k, 0.0) + v
    wall = sum(r["wall_seconds"] for r in rows)
    with_unaccounted = {**totals, "unaccounted": max(0.0, wall - sum(totals.values()))}
    own = {k: v for k, v in totals.items() if k != "train"}
    own_wall = sum(r["seconds"] for r in rows) + totals.get("checkpoint", 0.0)
    own["other"] = max(0.0, own_wall - sum(own.values()))
    steps = sum(r["train_steps"] for r in rows)
    return {"stage_seconds": totals, "wall_seconds": wall, "share_of_wall": shares(with_unaccounted, wall),
            "round_work_seconds": own_wall, "share_of_round_work": shares(own, own_wall),
            "train_steps": steps, "train_seconds_per_step": totals.get("train", 0.0) / max(1, steps)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", choices=("quick", "full"), default="quick")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--steps", type=int, default=None, help="training budget the schedule is scaled to (default: the demo's)")
    ap.add_argument("--data", type=Path, default=None, help="a SynthStreet scene (default: generate seed 0 at the size)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--fixer", default=None, help="Difix folder (default: the shipped weights)")
    ap.add_argument("--video-fixer", default=None, help="EIGent folder (default: the shipped weights)")
    ap.add_argument("--h-train-refresh", type=int, default=1,
                    help="faithfusion.h_train_refresh: recompute H_train every K rounds (1 = every round)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the plain 3DGS steps")
    ap.add_argument("--result", type=Path, default=None, help="JSON path (default OUT/profile_round.json)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    sizes = demo_sizes(DemoConfig(quick=a.size == "quick"))
    steps = a.steps or sizes["steps"]
    scene = a.data
    if scene is None:
        scene = a.out / "scene"
        if not (scene / "scene.json").is_file():
            generate(scene, 0, frames=sizes["frames"], width=sizes["width"], height=sizes["height"],
                     shifts=sizes["shifts"], progress=False, overwrite=True)
    base = recon_config(sizes, scene, a.out / "faithfusion", steps, str(device))
    cfg = fuse_config(FaithFusionConfig, base, fixer=a.fixer, video_fixer=a.video_fixer, stop_after_rounds=a.rounds,
                      faithfusion=FaithFusionSchedule(view_stride=sizes["fuse_view_stride"],
                                                      h_train_refresh=a.h_train_refresh))
    t0 = time.perf_counter()
    run = run_method("faithfusion", cfg)
    fusion_seconds = time.perf_counter() - t0
    rows = [json.loads(line) for line in (a.out / "faithfusion" / "rounds.jsonl").read_text().splitlines()]
    summary = summarise(rows)
    result = {
        "device": device_name(device), "commit": git_commit(),
        "command": "python " + " ".join(shlex.quote(x) for x in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "size": a.size, "sizes": sizes, "steps": steps, "threads": a.threads, "h_train_refresh": a.h_train_refresh,
        "steps_note": None if steps == sizes["steps"] else
        f"--steps {steps} instead of the demo's {sizes['steps']}: the schedule is scaled, so rounds come earlier",
        "gaussians_at_stop": len(run.trainer.model), "fusion_command_seconds": fusion_seconds,
        "rounds": rows, **summary,
    }
    result["fixers"] = {"difix": run.method.difix.source, "eigent": None if run.method.video is None else run.method.video.source}
    if not a.no_baseline:
        plain = recon_config(sizes, scene, a.out / "3dgs", steps, str(device))
        result["plain_3dgs"] = plain_seconds_per_step(plain, summary["train_steps"])
        result["train_step_ratio_faithfusion_to_3dgs"] = (
            summary["train_seconds_per_step"] / result["plain_3dgs"]["seconds_per_step"])
    path = a.result or a.out / "profile_round.json"
    save_json_atomic(path, result)
    print(json.dumps({k: result[k] for k in ("share_of_wall", "share_of_round_work", "train_seconds_per_step")}, indent=1))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
