"""`faithfusion recon`: reconstruct a scene, checkpointing and resuming, and write the run folder.

RUN/config.yaml   the resolved configuration
RUN/ckpt/         step_XXXXXX.pt checkpoints (the newest two)
RUN/point_cloud.ply  the Gaussians in the INRIA layout, in world units (metres), recentred: world = file + origin
                  (the origin in the PLY's header comments and in config.yaml's `_run.ply`; --ply-global-frame: none)
RUN/renders/      held-out views, render | ground truth
RUN/metrics.json  held-out PSNR / SSIM / LPIPS, speed, Gaussian count
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
import yaml

from faithfusion.errors import UserError
from faithfusion.data.check import check_scene_images
from faithfusion.data.scene import SceneData
from faithfusion.train.checkpoint import checkpoint_path, checkpoints_by_step, clear_checkpoints, load_latest_checkpoint, save_checkpoint
from faithfusion.train.config import ReconConfig, check_recon_config
from faithfusion.train.lock import acquire_run_lock, release_run_lock
from faithfusion.train.trainer import Trainer
from faithfusion.utils.atomic import atomic_write, make_output_folder, remove_stale_temps
from faithfusion.utils.device import resolve_device
from faithfusion.utils.jsonio import save_json_atomic, to_plain

RESUME_MUST_MATCH = ("method", "data", "scale", "holdout_every", "cameras", "sh_degree", "appearance", "seed", "scene_graph")
"""config.yaml entries that define the model: a --resume with other values would continue another run."""
OUTPUTS_REPLACED_BY_OVERWRITE = ("metrics.json", "rounds.jsonl")
"""Files of an earlier run that --overwrite removes at the start, so that none outlives the new run."""


class RunFolderError(UserError, FileExistsError):
    pass


def prepare_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Create and lock the run folder; refuse to write over a user's existing run unless asked.

    Temporary files of a killed writer are removed; --overwrite also removes the earlier run's
    checkpoints and metrics, so that neither `eval` nor a later --resume can pick them up."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise RunFolderError(
            f"{out}: run folder exists and is not empty; pass --resume to continue it or --overwrite to replace its outputs"
        )
    make_output_folder(out, "run folder")
    acquire_run_lock(out)
    remove_stale_temps(out, announce=True)
    if overwrite and not resume:
        clear_checkpoints(out / "ckpt")
        for name in OUTPUTS_REPLACED_BY_OVERWRITE:
            (out / name).unlink(missing_ok=True)


def open_run_folder(cfg: ReconConfig) -> Path:
    """Check the flags, prepare and lock cfg.out, and refuse a --resume whose configuration differs from the run's."""
    check_recon_config(cfg)
    out = Path(cfg.out)
    prepare_run_folder(out, cfg.resume, cfg.overwrite)
    if cfg.resume:
        check_resume_matches(out, cfg)
    return out


def stored_data_path(value: str) -> Path:
    """config.yaml's `data`: absolute since it is stored so; an older relative one is relative to the working directory."""
    return Path(value).expanduser().resolve()


def check_resume_matches(out: Path, cfg: ReconConfig) -> None:
    """RunFolderError naming the flag when cfg differs from RUN/config.yaml in what defines the model."""
    path = out / "config.yaml"
    if not path.is_file():
        return
    stored = yaml.safe_load(path.read_text()) or {}
    current = to_plain(asdict(cfg))
    for key in RESUME_MUST_MATCH:
        if key not in stored or key not in current:
            continue
        old, new = stored[key], current[key]
        if key == "data":
            old, new = str(stored_data_path(old)), str(stored_data_path(new))
        if isinstance(old, list) or isinstance(new, list):
            old, new = list(old), list(new)
        if old != new:
            flag = "--" + key.replace("_", "-")
            raise RunFolderError(
                f"{path}: the run was made with {flag} {old} but --resume was given {flag} {new}; "
                f"resume with the same {flag}, or start a new run folder (or pass --overwrite instead of --resume)"
            )


def write_config(out: Path, cfg: ReconConfig, extra: dict | None = None) -> None:
    """RUN/config.yaml, with `data` stored as an absolute path (the run is usable from any folder)."""
    payload = to_plain(asdict(cfg))
    if "data" in payload:
        payload["data"] = str(stored_data_path(payload["data"]))
    if extra:
        payload["_run"] = to_plain(extra)
    atomic_write(Path(out) / "config.yaml", yaml.safe_dump(payload, sort_keys=False), what="run configuration")


def ply_frame(scene: SceneData, cfg: ReconConfig) -> dict:
    """Where RUN/point_cloud.ply's positions are: {"frame": "local", "origin": [x, y, z]} or {"frame": "global"}.

    The local origin is the mean world camera centre rounded to whole world units (no rotation)."""
    from faithfusion.gaussians.ply_frame import local_origin

    if cfg.ply_global_frame:
        return {"frame": "global"}
    T = scene.transform
    centres = torch.stack([f.camera.center.double() for f in scene.frames])  # [F, 3] scene units
    world = (centres / T.scale) @ T.rotation.double() + T.center.double()  # [F, 3] world units
    return {"frame": "local", "origin": list(local_origin(world)), "world_from_file": "world = file + origin"}


def load_scene_for(cfg: ReconConfig) -> SceneData:
    from faithfusion.data.load import detect_format, load_scene

    opts: dict = {"holdout_every": cfg.holdout_every}
    if detect_format(cfg.data) == "drivestudio":
        opts["cameras"] = cfg.cameras
    return check_scene_images(load_scene(cfg.data, **opts))


def run_recon(cfg: ReconConfig, scene: SceneData | None = None) -> dict:
    """Train (or resume) a reconstruction and write every output; returns the metrics dict."""
    trainer, scene = train_run(cfg, scene)
    metrics = finish_run(trainer, scene, cfg, Path(cfg.out))
    release_run_lock(Path(cfg.out))
    return metrics


def train_run(cfg: ReconConfig, scene: SceneData | None = None, trainer_factory=None) -> tuple[Trainer, SceneData]:
    """Prepare RUN/, build (or resume) the trainer and train to cfg.steps with checkpoints.

    `trainer_factory(scene, cfg, device)` lets a method supply a Trainer subclass or a prepared one."""
    out = open_run_folder(cfg)
    device = resolve_device(cfg.device)
    scene = scene or load_scene_for(cfg)
    trainer = (trainer_factory or Trainer)(scene, cfg, device)
    ckpt_dir = out / "ckpt"
    if cfg.resume:
        found = load_latest_checkpoint(ckpt_dir, device)
        if found is not None:
            trainer.load_state_dict(found[1])
            print(f"resumed from {found[0]} at step {trainer.step}")
    write_config(out, cfg, {"scene": scene.summary(), "device": str(device), "ply": ply_frame(scene, cfg)})

    def on_step(tr: Trainer, stats: dict) -> None:
        if cfg.ckpt_every > 0 and tr.step % cfg.ckpt_every == 0 and tr.step < cfg.steps:
            save_checkpoint(checkpoint_path(ckpt_dir, tr.step), tr.state_dict())
        if cfg.eval_every > 0 and tr.step % cfg.eval_every == 0 and scene.test_ids:
            result = tr.evaluate(eval_ids(scene, cfg))
            print(f"step {tr.step}: held-out {json.dumps(result['mean'])}")

    with out_of_memory_names(f"training {out}", ckpt_dir):
        trainer.fit(cfg.steps, progress=cfg.progress, on_step=on_step)
    save_checkpoint(checkpoint_path(ckpt_dir, trainer.step), trainer.state_dict())
    return trainer, scene


class OutOfMemoryError(UserError, MemoryError):
    """The device ran out of memory; the last checkpoint is kept."""


@contextmanager
def out_of_memory_names(stage: str, ckpt_dir: Path):
    """Turn an out-of-memory error into one naming the stage and the checkpoint to resume from."""
    try:
        yield
    except (torch.cuda.OutOfMemoryError, MemoryError) as err:
        if isinstance(err, UserError):
            raise
        found = checkpoints_by_step(ckpt_dir)
        last = f"the last checkpoint {found[-1][1]} is kept; " if found else ""
        raise OutOfMemoryError(
            f"{stage}: out of memory ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
            f"{last}lower --scale or the number of Gaussians, then run again with --resume"
        ) from err


def eval_ids(scene: SceneData, cfg: ReconConfig) -> list[int]:
    ids = scene.test_ids
    if cfg.max_eval_views > 0 and len(ids) > cfg.max_eval_views:
        step = len(ids) / cfg.max_eval_views
        ids = [ids[int(k * step)] for k in range(cfg.max_eval_views)]
    return ids


def finish_run(trainer: Trainer, scene: SceneData, cfg: ReconConfig, out: Path) -> dict:
    """PLY, held-out renders and metrics.json."""
    from faithfusion.gaussians.ply import save_ply

    frame = ply_frame(scene, cfg)
    save_ply(trainer.world_model(), out / "point_cloud.ply", transform=scene.transform, overwrite=True, origin=frame.get("origin"))  # nodes at the first training timestep
    t0 = time.perf_counter()
    held_out = trainer.evaluate(eval_ids(scene, cfg), out / "renders" if cfg.save_renders else None) if scene.test_ids else {"mean": {}, "per_view": []}
    train_eval = trainer.evaluate(scene.train_ids[:: max(1, len(scene.train_ids) // 8)])
    metrics = {
        "steps": trainer.step,
        "device": str(trainer.device),
        "device_name": torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda" else "cpu",
        "num_gaussians": len(trainer.model),
        "train_seconds": trainer.train_seconds,
        "iterations_per_second": trainer.step / max(trainer.train_seconds, 1e-9),
        "eval_seconds": time.perf_counter() - t0,
        "resolution": [trainer.real.views[0].camera.width, trainer.real.views[0].camera.height],
        "lpips_net": held_out.get("lpips_net", train_eval["lpips_net"]),  # the network behind every "lpips" below
        "test": held_out["mean"],
        "test_per_view": held_out["per_view"],
        "train_subset": train_eval["mean"],
        "scene": scene.summary(),
    }
    save_json_atomic(out / "metrics.json", metrics)
    return metrics
