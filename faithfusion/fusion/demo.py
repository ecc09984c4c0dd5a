"""`faithfusion demo`: the built-in synthetic street, end to end, with a report.

SynthStreet scene -> reconstruction per method -> lane-shift evaluation against ground truth ->
`OUT/report.md` (tables, a plot of PSNR against shift per method, and pictures at 0, 3 and 6 m).
`--quick` is sized for a 2-core CPU in under 10 minutes; the full demo is sized for one GPU.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from faithfusion.data.scene import save_json_atomic
from faithfusion.fusion.config import Difix3DSchedule, FaithFusionSchedule, GenFusionSchedule
from faithfusion.fusion.fixers import WEIGHTS_ROOT
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig


ABLATION = "faithfusion-no-eig"


@dataclass
class DemoConfig:
    """Run the synthetic street demo: scene, reconstruction(s), lane-shift evaluation and a report."""

    out: Path = Path("runs/demo")
    quick: bool = False
    """Small scene and budget: finishes in minutes on a 2-core CPU."""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    methods: tuple[str, ...] = ("3dgs", "faithfusion")
    """Methods to compare (each a schedule over the shared trainer); `faithfusion-no-eig` is the ablation
    (uniform loss weights, an EIG condition of 1 everywhere)."""
    fixer: str | None = None
    """Difix folder for the fusion methods (`identity`: an untrained identity model, plumbing only)."""
    video_fixer: str | None = None
    """Video fixer folder (EIGent for faithfusion, GenFusion for genfusion)."""
    steps: int | None = None
    """Training steps per method (default: 1500 quick, 7000 full)."""
    overwrite: bool = False
    resume: bool = False
    """Continue this demo folder: a finished method is loaded from its final checkpoint and evaluated again, an
    interrupted one resumes from its newest checkpoint (e.g. the full demo as two device commands)."""
    faithfusion: FaithFusionSchedule = field(default_factory=FaithFusionSchedule)
    """FaithFusion's schedule (e.g. --faithfusion.loss-weight 0.3); its view_stride is the demo size's unless set."""
    difix3d: Difix3DSchedule = field(default_factory=Difix3DSchedule)
    """Difix3D's (and Difix3D+'s) schedule."""
    genfusion: GenFusionSchedule = field(default_factory=GenFusionSchedule)
    """GenFusion's schedule."""


def demo_sizes(cfg: DemoConfig) -> dict:
    if cfg.quick:
        return {"frames": 16, "width": 192, "height": 128, "shifts": (1.0, 3.0, 6.0), "steps": 1000,
                "max_points": 10_000, "random_points": 2_000, "frame_stride": 3, "fuse_view_stride": 3}
    return {"frames": 40, "width": 480, "height": 320, "shifts": (1.0, 2.0, 3.0, 4.0, 5.0, 6.0), "steps": 7000,
            "max_points": 300_000, "random_points": 50_000, "frame_stride": 2, "fuse_view_stride": 1}


def run_demo(cfg: DemoConfig) -> Path:
    from faithfusion.eval.lane_shift import evaluate_lane_shift, plot_lane_shift
    from faithfusion.eval.report import write_report
    from faithfusion.fusion.config import as_fuse_config
    from faithfusion.fusion.methods import render_function, run_method
    from faithfusion.synth.generate import generate

    from faithfusion.fusion.methods import METHODS

    unknown = [m for m in cfg.methods if m not in METHODS and m != ABLATION]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; available: {sorted(METHODS) + [ABLATION]}")
    out = Path(cfg.out)
    if cfg.resume and cfg.overwrite:
        raise ValueError("--resume continues the demo folder and --overwrite replaces it: pass one of them")
    if out.exists() and any(out.iterdir()) and not (cfg.overwrite or cfg.resume):
        raise FileExistsError(f"{out}: demo folder is not empty; pass --resume to continue it or --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    sizes = demo_sizes(cfg)
    timings: dict[str, float] = {}  # this command's wall seconds per stage
    spent_file = out / "demo_seconds.json"  # wall seconds per stage summed over every command that ran the demo
    spent: dict[str, float] = json.loads(spent_file.read_text()) if cfg.resume and spent_file.is_file() else {}

    def record(stage: str, seconds: float) -> None:
        timings[stage] = seconds
        spent[stage] = spent.get(stage, 0.0) + seconds
        save_json_atomic(spent_file, spent)
    t0 = time.perf_counter()
    scene_dir = out / "scene"
    if not (scene_dir / "scene.json").is_file():
        generate(scene_dir, cfg.seed, frames=sizes["frames"], width=sizes["width"], height=sizes["height"],
                 shifts=sizes["shifts"], progress=True, overwrite=True)
    record("synth", time.perf_counter() - t0)

    base = ReconConfig(
        data=scene_dir, steps=cfg.steps or sizes["steps"], device=cfg.device, holdout_every=10,
        overwrite=not cfg.resume, resume=cfg.resume,
        ckpt_every=1000, init=InitConfig(max_points=sizes["max_points"], random_points=sizes["random_points"]),
        strategy=StrategyConfig(refine_stop=int(0.75 * (cfg.steps or sizes["steps"]))),
    )
    curves, results, notes, train_seconds = {}, {}, [], {}
    for method in cfg.methods:
        t1 = time.perf_counter()
        ablation = method == ABLATION
        schedule = "faithfusion" if ablation else method  # faithfusion+ is its own schedule name (render hook)
        run_cfg = as_fuse_config(replace(base, out=out / method), method=schedule, fixer=cfg.fixer,
                                 video_fixer=cfg.video_fixer, no_eig=ablation)
        run_cfg.difix3d, run_cfg.genfusion = cfg.difix3d, cfg.genfusion
        run_cfg.faithfusion = replace(cfg.faithfusion, view_stride=cfg.faithfusion.view_stride
                                      if cfg.faithfusion.view_stride != 1 else sizes["fuse_view_stride"])
        if schedule.startswith("faithfusion") and cfg.video_fixer is None and not (WEIGHTS_ROOT / "eigent" / "config.json").is_file():
            run_cfg.faithfusion.video_until = 0.0
            note = ("No EIGent ships yet: FaithFusion ran its Difix branch (the shipped compact Difix) at every "
                    "shift; EIG still weighted the loss of every fused pixel.")
            if note not in notes:
                notes.append(note)
                print("demo: " + note)
        trainer, scene = run_method(schedule, run_cfg)
        render_fn = render_function(trainer)  # the method's render hook (Difix3D+) or the plain render

        result = evaluate_lane_shift(render_fn, scene, scene_dir, list(sizes["shifts"]), sizes["frame_stride"])
        record(method, time.perf_counter() - t1)
        train_seconds[method] = float(trainer.train_seconds)  # over every command that trained it (checkpointed)
        save_json_atomic(out / method / "eval" / "lane_shift.json", result)
        curves[method] = result["by_magnitude"]
        results[method] = {"trainer": trainer, "scene": scene, "result": result}
    plot_lane_shift(curves, out / "lane_shift.png", title=f"SynthStreet seed {cfg.seed}")
    report = write_report(out, results, sizes, spent, scene_dir, notes=notes)
    save_json_atomic(out / "demo.json", {"seed": cfg.seed, "quick": cfg.quick, "sizes": sizes, "methods": list(cfg.methods),
                                         "seconds": timings, "seconds_all_commands": spent,
                                         "train_seconds": train_seconds,
                                         "resumed": cfg.resume, "notes": notes, "by_magnitude": curves})
    print(f"demo finished in {time.perf_counter() - t0:.0f} s -> {report}")
    return report
