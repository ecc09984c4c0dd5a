"""`faithfusion fixer curate`: paired fixer data (degraded render, target, reference) by Difix3D's strategies.

One reconstruction per scene serves every strategy. It trains on a sparse subset (every `every`-th
timestep, without `holdout_camera`) and keeps checkpoints at 25, 50, 75 and 100 % of `steps`; then

- `sparse`: the held-out timesteps of the trained cameras, final model -> the real images;
- `underfit`: training and held-out views from the 25-75 % checkpoints -> the real images;
- `cross_camera`: the left-out camera, final model -> its real images;
- `lane_shift` (SynthStreet only): the ego moved +-d metres, final model -> `gt_shifted/` ground truth;
- `video` (`video_windows`): windows of `video_frames` timesteps for the video fixers: a lateral ramp
  of `video_ramp` frames from 0 to the full shift (as FaithFusion renders it), then frames at the
  full shift; plus windows of the left-out camera. Ramp frames between two generated shifts get their
  ground truth from the SynthStreet renderer itself (`SynthOracle`), exact at any shift.

`kinds` picks the strategies (default: the four per-frame ones, plus `video` with `video_windows`);
`--kinds video` curates the video windows alone: the final reconstruction, references and EIG, but no
under-fitted snapshot renders and no per-frame samples.

Real scenes (`real_scenes`, e.g. the fox) train on every `every`-th image and render the others
(`sparse`, `underfit`). Each sample holds a degraded render PNG, the target PNG, the reference (the
nearest training image), the calibrated EIG map (`with_eig`), the rendered depth (metres) and alpha
(float16 .npy), and the metadata that `faithfusion/fixers/dataset.py` reads.

Layout under `out/`:

    curate_config.yaml        the config (a re-run must match it, or pass --overwrite)
    scenes/seed_N/            generated SynthStreet scenes (kept when present)
    recon/<scene>/ckpt/       the 25/50/75/100 % checkpoints (a stopped reconstruction resumes)
    samples/<scene>/...       PNG / .npy files, samples.json and the completion marker complete.json
    index.json                all samples (relative paths), written atomically
    summary.json              counts per kind and split
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
import yaml
from PIL import Image
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.atomic import atomic_write, remove_stale_temps, save_npy_atomic, write_text_atomic
from faithfusion.data.scene import SceneData, save_json_atomic
from faithfusion.eval.lane_shift import load_gt_image, shift_folder
from faithfusion.fusion.paths import ramp_shifts

MARKER = "complete.json"
RUNTIME_FIELDS = ("overwrite", "progress", "device", "max_seconds", "workers", "only")  # may differ between a run and its resume
IMAGE_KINDS = ("underfit", "sparse", "cross_camera", "lane_shift")  # per-frame samples
KINDS = (*IMAGE_KINDS, "video")
SYNTH_CAMERA_IDS = {"front": 0, "front_left": 1, "front_right": 2, "side_left": 3, "side_right": 4}


@dataclass
class CurateConfig:
    """Curate a paired fixer dataset (Difix3D's degradations plus SynthStreet lane shifts)."""

    out: Path
    """Dataset folder: index.json, samples/, scenes/, recon/."""
    synth_seeds: tuple[int, ...] = (0,)
    """SynthStreet seeds of the training split (generated into out/scenes/seed_N unless present)."""
    test_seeds: tuple[int, ...] = ()
    """Held-out SynthStreet seeds (split "test"): the split is by scene, never by frame."""
    real_scenes: tuple[Path, ...] = ()
    """Captured scenes (any format load_scene reads): sparse views vs the held-out photos."""
    real_split: Literal["train", "test"] = "test"
    """Split of the real scenes' samples."""
    synth_frames: int = 40
    synth_width: int = 480
    synth_height: int = 320
    synth_cameras: tuple[str, ...] = ("front", "front_left", "front_right")
    shifts: tuple[float, ...] = (1, 2, 3, 4, 5, 6)
    """Lane shifts in metres (both signs are used); SynthStreet renders their ground truth."""
    dynamic: bool = False
    """SynthStreet: moving vehicles."""
    every: int = 2
    """Train on every k-th timestep (real scenes: every k-th image)."""
    holdout_camera: int = 2
    """Camera id left out of training (cross-camera samples); ignored when it is the only camera."""
    steps: int = 3000
    """Reconstruction steps (checkpoints at 25, 50, 75 and 100 %)."""
    device: str = "auto"
    scale: float = 1.0
    """Image resolution factor of the reconstruction and of every sample."""
    random_points: int = 50_000
    """Random initial Gaussians of the reconstruction (InitConfig.random_points)."""
    max_points: int = 300_000
    underfit_stride: int = 4
    """Under-fitted checkpoints render every n-th view of the trained cameras (a different offset each)."""
    shift_stride: int = 2
    """Lane-shift image samples at every n-th timestep."""
    video_windows: bool = False
    """Also write video samples (EIGent / GenFusion)."""
    video_frames: int = 16
    """Frames per video window."""
    video_ramp: int = 9
    """Frames of the lateral ramp from 0 to the full shift (the first window frames)."""
    video_shifts: tuple[float, ...] = ()
    """Shift magnitudes of the lane-shift windows (both signs); empty = every shift."""
    kinds: tuple[str, ...] = ()
    """Sample kinds to write, of underfit, sparse, cross_camera, lane_shift, video; empty = the four per-frame kinds,
    plus video with --video-windows. `--kinds video`: the video windows only (no under-fitted snapshot renders)."""
    with_eig: bool = True
    """Write calibrated EIG maps (faithfusion.eig) per sample."""
    eig_calib_views: int = 16
    seed: int = 0
    max_seconds: float = 0.0
    """Start no new scene after this many seconds (0 = no limit); a re-run resumes."""
    overwrite: bool = False
    """Replace the samples of a non-empty `out` written with another config."""
    progress: bool = True
    workers: int = 1
    """Scenes curated at once, each in its own process (they share the device); the index lists them all."""
    only: tuple[str, ...] = ()
    """Curate only these scenes (names such as synth_3) in this process; the index still lists every complete one."""

    def resolved_kinds(self) -> tuple[str, ...]:
        """The kinds this run writes, in KINDS order."""
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown sample kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        wanted = set(self.kinds) if self.kinds else {*IMAGE_KINDS, *(("video",) if self.video_windows else ())}
        return tuple(k for k in KINDS if k in wanted)

    def default_kinds(self) -> tuple[str, ...]:
        return dataclasses.replace(self, kinds=()).resolved_kinds()


# --- config, folders and resume ----------------------------------------------------------------


def plain(x: Any) -> Any:
    """Dataclass values as YAML/JSON-friendly plain types."""
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    return x


def config_record(cfg: CurateConfig) -> dict:
    """What must match for a run to resume another: the config less its runtime fields.

    `kinds` is recorded as the kinds written, and only where they differ from the default ones (so that
    folders curated before the field existed resume, and listing the default kinds changes nothing)."""
    d = plain(dataclasses.asdict(cfg))
    kinds = cfg.resolved_kinds()
    d.pop("kinds")
    if kinds != cfg.default_kinds():
        d["kinds"] = list(kinds)
    return {k: v for k, v in d.items() if k not in RUNTIME_FIELDS}


def prepare_out(cfg: CurateConfig) -> None:
    """Create `out`; refuse a non-empty one written with another config unless `overwrite`."""
    out = Path(cfg.out)
    path = out / "curate_config.yaml"
    record = config_record(cfg)
    if out.exists() and any(out.iterdir()):
        old = yaml.safe_load(path.read_text()) if path.is_file() else None
        if old != record:
            if not cfg.overwrite:
                why = "holds another config (curate_config.yaml)" if old is not None else "is not a curation folder"
                raise FileExistsError(f"{out}: not empty and {why}; pass --overwrite to replace its samples")
            for name in ("samples", "recon", "index.json", "summary.json"):
                p = out / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.safe_dump(record, sort_keys=False), "curation config")


@dataclass
class SceneJob:
    """One scene to curate: its name, folder, split and whether it is a SynthStreet scene."""

    name: str
    path: Path
    split: str
    synth: bool
    seed: int | None = None


def scene_jobs(cfg: CurateConfig) -> list[SceneJob]:
    both = set(cfg.synth_seeds) & set(cfg.test_seeds)
    if both:
        raise ValueError(f"seeds {sorted(both)} are in both synth_seeds and test_seeds: the split is by scene")
    out = Path(cfg.out)
    jobs = [SceneJob(f"synth_{s}", out / "scenes" / f"seed_{s}", split, True, s)
            for seeds, split in ((cfg.synth_seeds, "train"), (cfg.test_seeds, "test")) for s in seeds]
    jobs += [SceneJob(f"real_{Path(p).name}", Path(p), cfg.real_split, False) for p in cfg.real_scenes]
    if len({j.name for j in jobs}) != len(jobs):
        raise ValueError("two scenes share a name: " + ", ".join(j.name for j in jobs))
    return jobs


def synth_matches(path: Path, cfg: CurateConfig) -> bool:
    """Whether a SynthStreet folder was generated with this config's size, frames, cameras and shifts."""
    meta = path / "scene.json"
    if not meta.is_file():
        return False
    s = json.loads(meta.read_text())
    names = [c["name"] for c in s["cameras"].values()]
    wanted = {0.0, *(float(d) for d in cfg.shifts), *(-float(d) for d in cfg.shifts)}
    return (s["width"], s["height"], s["frames"], bool(s["dynamic"])) == (cfg.synth_width, cfg.synth_height, cfg.synth_frames, cfg.dynamic) \
        and sorted(names) == sorted(cfg.synth_cameras) and wanted <= {float(d) for d in s["shifts_m"]}


def ensure_synth(job: SceneJob, cfg: CurateConfig) -> None:
    if synth_matches(job.path, cfg):
        return
    from faithfusion.synth import generate

    if job.path.exists():
        shutil.rmtree(job.path)
    generate(job.path, int(job.seed), frames=cfg.synth_frames, cameras=cfg.synth_cameras, width=cfg.synth_width,
             height=cfg.synth_height, shifts=cfg.shifts, dynamic=cfg.dynamic, overwrite=True)


# --- the scene and its sparse split ----------------------------------------------------------------


def synth_camera_ids(cfg: CurateConfig) -> list[int]:
    return sorted(SYNTH_CAMERA_IDS[n] for n in cfg.synth_cameras)


def load_sparse_scene(job: SceneJob, cfg: CurateConfig) -> SceneData:
    """The scene with train_ids = every k-th timestep (image) without the held-out camera; test_ids = the rest."""
    from faithfusion.data.load import load_scene

    if not job.synth:
        scene = load_scene(job.path, holdout_every=0)
        n = len(scene.frames)
        scene.train_ids = list(range(0, n, cfg.every))
        scene.test_ids = [i for i in range(n) if i % cfg.every]
        return scene
    cams = synth_camera_ids(cfg)
    scene = load_scene(job.path, holdout_every=0, cameras=tuple(cams), color_points=False, max_points=cfg.max_points)
    left_out = cfg.holdout_camera if len(cams) > 1 else None
    scene.train_ids = [i for i, f in enumerate(scene.frames) if f.timestep % cfg.every == 0 and int(f.cam_name) != left_out]
    scene.test_ids = [i for i in range(len(scene.frames)) if i not in set(scene.train_ids)]
    scene.point_colors = colour_from_training(scene)
    return scene


def colour_from_training(scene: SceneData) -> Tensor:
    """Point colours from the training images only (each point from the training timestep whose ego is nearest)."""
    from faithfusion.data.drivestudio import _color_points

    pts = scene.points.numpy()  # [N, 3]
    steps = sorted({scene.frames[i].timestep for i in scene.train_ids})
    ego = {f.timestep: f.ego_to_world[:3, 3].numpy() for f in scene.frames}
    centres = np.stack([ego[t] for t in steps])  # [S, 3]
    nearest = np.empty(len(pts), dtype=np.int64)
    for a in range(0, len(pts), 65536):  # chunks keep the distance matrix small
        d = ((pts[a:a + 65536, None, :] - centres[None]) ** 2).sum(-1)  # [n, S]
        nearest[a:a + 65536] = np.asarray(steps)[d.argmin(1)]
    return torch.from_numpy(_color_points(pts, nearest, scene.frames, scene.train_ids, 480))


# --- reconstruction with snapshots ----------------------------------------------------------------

FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def recon_config(job: SceneJob, cfg: CurateConfig):
    from faithfusion.train.config import InitConfig, ReconConfig

    return ReconConfig(data=job.path, out=Path(cfg.out) / "recon" / job.name, steps=cfg.steps, device=cfg.device,
                       scale=cfg.scale, holdout_every=0, progress=False, seed=cfg.seed,
                       init=InitConfig(max_points=cfg.max_points, random_points=cfg.random_points))


def snapshot_steps(steps: int) -> list[int]:
    return sorted({max(1, round(steps * f)) for f in FRACTIONS})


def train_with_snapshots(job: SceneJob, scene: SceneData, cfg: CurateConfig) -> tuple[Any, dict[int, Path]]:
    """Train (resuming from the newest snapshot) and save a checkpoint at every snapshot step."""
    from faithfusion.train.checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint
    from faithfusion.train.trainer import Trainer, resolve_device

    rcfg = recon_config(job, cfg)
    trainer = Trainer(scene, rcfg, resolve_device(cfg.device))
    ckpt_dir = Path(rcfg.out) / "ckpt"
    last = latest_checkpoint(ckpt_dir)
    if last is not None:
        trainer.load_state_dict(load_checkpoint(last, trainer.device))
    paths = {}
    for until in snapshot_steps(cfg.steps):
        path = checkpoint_path(ckpt_dir, until)
        if trainer.step < until:
            trainer.fit(until, progress=False)
            save_checkpoint(path, trainer.state_dict(), keep_last=len(FRACTIONS))
        paths[until] = path
    return trainer, paths


def load_weights(trainer: Any, state: dict) -> None:
    """Put a checkpoint's Gaussians (and sky) into the trainer, for rendering."""
    from faithfusion.gaussians.model import GaussianModel

    trainer.model = GaussianModel({k: v.to(trainer.device) for k, v in state["params"].items()}, state["sh_degree"])
    if trainer.sky is not None and state.get("sky") is not None:
        trainer.sky.load_state_dict(state["sky"])
    trainer.step = int(state["step"])


# --- rendering, references, EIG ---------------------------------------------------------------------


@dataclass
class Render:
    rgb: Tensor  # [H, W, 3] in [0, 1]
    depth: Tensor  # [H, W] metres (world units)
    alpha: Tensor  # [H, W]


class Renderer:
    """Renders (and EIG maps, when asked) of the trainer's current weights."""

    def __init__(self, trainer: Any, scene: SceneData, with_eig: bool, calib_views: int) -> None:
        self.trainer, self.scene = trainer, scene
        self.session = None
        if with_eig:
            from faithfusion.eig.session import build_session

            self.session = build_session(trainer, calib_views=calib_views, progress=False)

    @torch.no_grad()
    def render(self, cam: Camera) -> Render:
        tr = self.trainer
        rgb, out = tr.render_camera(cam.to(tr.device), tr.active_sh_degree())
        depth = out.depth[0, ..., 0] / self.scene.transform.scale  # scene units -> metres
        return Render(rgb.clamp(0, 1).cpu(), depth.cpu(), out.alpha[0, ..., 0].cpu())

    def eig(self, cam: Camera) -> Tensor | None:  # [H, W] calibrated g
        if self.session is None:
            return None
        return self.session.eig(cam.to(self.trainer.device))[1].detach().cpu()


class References:
    """The training image nearest to a camera: nearest centre among training views facing the same half-space."""

    def __init__(self, scene: SceneData, train_ids: list[int], scale: float, folder: Path, root: Path) -> None:
        self.scene, self.ids, self.scale, self.folder, self.root = scene, list(train_ids), scale, folder, root
        cams = [scene.camera(i) for i in self.ids]
        self.centres = torch.stack([c.center for c in cams])  # [V, 3]
        self.axes = torch.stack([c.camtoworld[:3, 2] for c in cams])  # [V, 3] optical axes

    def nearest(self, cam: Camera, prefer: int | None = None) -> int:
        """Frame index of the reference; `prefer` wins when it is a training view."""
        if prefer is not None and prefer in self.ids:
            return prefer
        dist = (self.centres - cam.center[None]).norm(dim=-1)  # [V]
        facing = (self.axes @ cam.camtoworld[:3, 2]) > 0
        if facing.any():
            dist = torch.where(facing, dist, torch.full_like(dist, float("inf")))
        return self.ids[int(dist.argmin())]

    def path(self, index: int) -> str:
        """Relative path of the reference PNG of training frame `index` (written once)."""
        f = self.scene.frames[index]
        p = self.folder / f"{f.timestep:03d}_{f.cam_name}_{index:04d}.png"
        if not p.is_file():
            save_png(p, self.scene.load_image(index, self.scale))
        return rel(p, self.root)


# --- files ---------------------------------------------------------------------------------------


def rel(p: Path, root: Path) -> str:
    return Path(p).relative_to(root).as_posix()


def save_png(path: Path, img: Tensor | np.ndarray) -> None:
    """[H, W, 3] float in [0, 1] or uint8 -> PNG, written atomically."""
    arr = img.detach().cpu().numpy() if isinstance(img, Tensor) else np.asarray(img)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"), "curated image")


def save_map(path: Path, m: Tensor | np.ndarray) -> None:
    """[H, W] -> float16 .npy."""
    arr = m.detach().cpu().numpy() if isinstance(m, Tensor) else np.asarray(m)
    save_npy_atomic(path, np.clip(arr.astype(np.float32), -65000, 65000).astype(np.float16), "curated map")


def write_frame(folder: Path, stem: str, root: Path, r: Render, target: Tensor, g: Tensor | None) -> dict[str, str]:
    """One degraded/target pair and its maps -> relative paths."""
    files = {"degraded": folder / f"{stem}_degraded.png", "target": folder / f"{stem}_target.png",
             "depth": folder / f"{stem}_depth.npy", "alpha": folder / f"{stem}_alpha.npy"}
    save_png(files["degraded"], r.rgb)
    save_png(files["target"], target)
    save_map(files["depth"], r.depth)
    save_map(files["alpha"], r.alpha)
    if g is not None:
        files["eig"] = folder / f"{stem}_eig.npy"
        save_map(files["eig"], g)
    return {k: rel(p, root) for k, p in files.items()}


# --- SynthStreet ground truth at any shift ------------------------------------------------------------


class SynthOracle:
    """The SynthStreet renderer of a generated scene: exact RGB and depth at any lateral shift."""

    def __init__(self, path: Path) -> None:
        from faithfusion.synth.rig import rig_cameras
        from faithfusion.synth.scene import SynthScene
        from faithfusion.synth.world import make_world

        self.meta = json.loads((Path(path) / "scene.json").read_text())
        m = self.meta
        max_shift = max([abs(float(d)) for d in m["shifts_m"]], default=0.0)
        self.world = make_world(int(m["seed"]), frames=int(m["frames"]), dynamic=bool(m["dynamic"]), max_shift=max_shift)
        self.scene = SynthScene(self.world)
        self.cams = {c.cam_id: c for c in rig_cameras([c["name"] for c in m["cameras"].values()])}

    def render(self, t: int, d: float, cam_id: int, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """RGB `[H, W, 3]` in [0, 1] and depth `[H, W]` metres (0 = sky) at shift d, resized to size (H, W)."""
        from faithfusion.synth.render import render
        from faithfusion.synth.rig import shift_ego

        w, h = int(self.meta["width"]), int(self.meta["height"])
        c = self.cams[cam_id]
        w2c = np.linalg.inv(shift_ego(self.world.ego_pose(t), d) @ c.cam_to_ego())[None]
        rgb, depth, _ = render(self.scene.arrays_at(t), w2c, c.intrinsics(w, h)[None], w, h, int(self.meta["supersample"]))
        img = Image.fromarray(rgb[0])
        if img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.BOX)
        dep = torch.from_numpy(depth[0].copy())
        if tuple(dep.shape) != tuple(size):
            dep = torch.nn.functional.interpolate(dep[None, None], size=size, mode="nearest")[0, 0]
        return torch.from_numpy(np.asarray(img).copy()).float() / 255.0, dep


def load_gt_depth(root: Path, d: float, t: int, cam: str, size: tuple[int, int]) -> Tensor:
    """`gt_shifted` depth `[H, W]` in metres (KITTI uint16 / 256; 0 = sky), nearest-resized to size."""
    with Image.open(shift_folder(root, d) / "depth" / f"{t:03d}_{cam}.png") as im:
        dep = torch.from_numpy(np.asarray(im).astype(np.float32) / 256.0)
    if tuple(dep.shape) != tuple(size):
        dep = torch.nn.functional.interpolate(dep[None, None], size=size, mode="nearest")[0, 0]
    return dep


# --- the strategies -------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What every strategy of one scene needs."""

    job: SceneJob
    cfg: CurateConfig
    scene: SceneData
    refs: References
    root: Path  # out/
    folder: Path  # out/samples/<scene>
    tick: Callable[[str], None]

    def sample(self, kind: str, frame: int, cam: str, shift: float | None, files: dict[str, Any], **extra: Any) -> dict:
        return {**files, "scene": self.job.name, "split": self.job.split, "kind": kind, "shift": shift,
                "frame": frame, "cam": cam, **extra}

    def size(self, i: int) -> tuple[int, int]:
        c = self.scene.camera(i, self.cfg.scale)
        return c.height, c.width

    def frame_index(self) -> dict[tuple[int, str], int]:
        return {(f.timestep, f.cam_name): i for i, f in enumerate(self.scene.frames)}


def image_sample(ctx: Ctx, rd: Renderer, kind: str, i: int, cam: Camera, target: Tensor, stem: str,
                 shift: float | None, prefer_ref: int | None = None) -> dict:
    f = ctx.scene.frames[i]
    r = rd.render(cam)
    files = write_frame(ctx.folder / kind, stem, ctx.root, r, target, rd.eig(cam))
    files["reference"] = ctx.refs.path(ctx.refs.nearest(cam, prefer_ref))
    ctx.tick(kind)
    return ctx.sample(kind, f.timestep, f.cam_name, shift, files)


def trained_cam_frames(ctx: Ctx) -> list[int]:
    """Frames of the cameras that took part in training, ordered by (timestep, camera)."""
    cams = {ctx.scene.frames[i].cam_name for i in ctx.scene.train_ids}
    return [i for i, f in enumerate(ctx.scene.frames) if f.cam_name in cams]


def sparse_samples(ctx: Ctx, rd: Renderer) -> list[dict]:
    """(1) held-out timesteps of the trained cameras (real scenes: the held-out images) -> the real images."""
    test = set(ctx.scene.test_ids)
    ids = [i for i in trained_cam_frames(ctx) if i in test] if ctx.job.synth else sorted(test)
    return [image_sample(ctx, rd, "sparse", i, ctx.scene.camera(i, ctx.cfg.scale), ctx.scene.load_image(i, ctx.cfg.scale),
                         f"{i:04d}", None) for i in ids]


def underfit_samples(ctx: Ctx, rd: Renderer, level: int, pct: int) -> list[dict]:
    """(2) views of the trained cameras from an under-fitted checkpoint (every n-th, offset by level)."""
    ids = trained_cam_frames(ctx) if ctx.job.synth else list(range(len(ctx.scene.frames)))
    ids = ids[level % ctx.cfg.underfit_stride::ctx.cfg.underfit_stride]
    return [image_sample(ctx, rd, "underfit", i, ctx.scene.camera(i, ctx.cfg.scale), ctx.scene.load_image(i, ctx.cfg.scale),
                         f"{i:04d}_p{pct:02d}", None) | {"checkpoint": pct} for i in ids]


def cross_camera_samples(ctx: Ctx, rd: Renderer) -> list[dict]:
    """(3) the camera left out of training -> its real images."""
    trained = {ctx.scene.frames[i].cam_name for i in ctx.scene.train_ids}
    ids = [i for i, f in enumerate(ctx.scene.frames) if f.cam_name not in trained]
    return [image_sample(ctx, rd, "cross_camera", i, ctx.scene.camera(i, ctx.cfg.scale), ctx.scene.load_image(i, ctx.cfg.scale),
                         f"{i:04d}", None) for i in ids]


def signed_shifts(shifts: tuple[float, ...]) -> list[float]:
    return [s for d in shifts for s in (abs(float(d)), -abs(float(d)))]


def lane_shift_samples(ctx: Ctx, rd: Renderer) -> list[dict]:
    """(4) the final model at +-d for every `shift_stride`-th timestep -> gt_shifted ground truth."""
    ids = [i for i in trained_cam_frames(ctx) if ctx.scene.frames[i].timestep % ctx.cfg.shift_stride == 0]
    out = []
    for d in signed_shifts(ctx.cfg.shifts):
        for i in ids:
            f = ctx.scene.frames[i]
            gt = load_gt_image(ctx.job.path, d, f.timestep, f.cam_name, ctx.size(i))
            out.append(image_sample(ctx, rd, "lane_shift", i, ctx.scene.shifted_camera(i, d, ctx.cfg.scale), gt,
                                    f"{i:04d}_{d:+.1f}m", d, prefer_ref=i))
    return out


# --- video windows ---------------------------------------------------------------------------------


def window_starts(n_steps: int, frames: int) -> list[int]:
    return list(range(0, n_steps - frames + 1, frames))


def video_target(ctx: Ctx, oracle: SynthOracle | None, i: int, d: float) -> tuple[Tensor, Tensor | None]:
    """Target RGB and depth of frame i at shift d: the photo (0), gt_shifted (generated shifts), else the oracle."""
    f, size = ctx.scene.frames[i], ctx.size(i)
    generated = {float(x) for x in signed_shifts(ctx.cfg.shifts)} | {0.0}
    if oracle is None:
        return ctx.scene.load_image(i, ctx.cfg.scale), None
    if round(d, 6) in generated:
        dd = round(d, 6)
        img = ctx.scene.load_image(i, ctx.cfg.scale) if dd == 0.0 else load_gt_image(ctx.job.path, dd, f.timestep, f.cam_name, size)
        return img, load_gt_depth(ctx.job.path, dd, f.timestep, f.cam_name, size)
    return oracle.render(f.timestep, d, int(f.cam_name), size)


def camera_record(cam: Camera, scene_scale: float) -> dict[str, list]:
    """A frame's intrinsics and its camera-to-world pose in metres (the scene's rotation kept, its scale undone)."""
    c2w = cam.camtoworld.double().clone()
    c2w[:3, 3] /= scene_scale
    return {"K": cam.K.double().tolist(), "camtoworld_m": c2w.tolist(), "width": cam.width, "height": cam.height}


def video_window(ctx: Ctx, rd: Renderer, oracle: SynthOracle | None, ids: list[int], shifts: list[float], stem: str,
                 tag: str) -> dict:
    """One window: degraded / target / maps per frame; the reference nearest to its first frame."""
    folder = ctx.folder / "video" / stem
    lists: dict[str, list[str]] = {"degraded": [], "target": [], "depth": [], "alpha": [], "eig": [], "target_depth": []}
    cameras = []
    for j, (i, d) in enumerate(zip(ids, shifts)):
        cam = ctx.scene.shifted_camera(i, d, ctx.cfg.scale)
        cameras.append(camera_record(cam, ctx.scene.transform.scale))
        tgt, tdepth = video_target(ctx, oracle, i, d)
        files = write_frame(folder, f"{j:02d}", ctx.root, rd.render(cam), tgt, rd.eig(cam))
        if tdepth is not None:
            p = folder / f"{j:02d}_target_depth.npy"
            save_map(p, tdepth)
            files["target_depth"] = rel(p, ctx.root)
        for k in lists:
            if k in files:
                lists[k].append(files[k])
    first = ctx.scene.frames[ids[0]]
    ref = ctx.refs.nearest(ctx.scene.camera(ids[0]), prefer=ids[0])
    ref_depth = folder / "reference_depth.npy"
    save_map(ref_depth, rd.render(ctx.scene.camera(ref, ctx.cfg.scale)).depth)
    ctx.tick("video")
    return ctx.sample("video", first.timestep, first.cam_name, shifts[-1],
                      {**{k: v for k, v in lists.items() if len(v) == len(ids)}, "reference": ctx.refs.path(ref),
                       "reference_depth": rel(ref_depth, ctx.root)}, window=tag, shifts=[round(s, 4) for s in shifts],
                      cameras=cameras)


def video_samples(ctx: Ctx, rd: Renderer, oracle: SynthOracle | None) -> list[dict]:
    """Lane-shift ramp windows of the trained cameras and windows of the left-out camera."""
    cfg, idx = ctx.cfg, ctx.frame_index()
    steps = sorted({f.timestep for f in ctx.scene.frames})
    trained = sorted({ctx.scene.frames[i].cam_name for i in ctx.scene.train_ids})
    others = sorted({f.cam_name for f in ctx.scene.frames} - set(trained))
    out = []
    for s in window_starts(len(steps), cfg.video_frames):
        ts = steps[s:s + cfg.video_frames]
        for cam in trained:
            ids = [idx[(t, cam)] for t in ts]
            for d in signed_shifts(cfg.video_shifts or cfg.shifts):
                out.append(video_window(ctx, rd, oracle, ids, ramp_shifts(d, len(ids), cfg.video_ramp),
                                        f"t{ts[0]:03d}_{cam}_{d:+.1f}m", "lane_shift"))
        for cam in others:
            ids = [idx[(t, cam)] for t in ts]
            out.append(video_window(ctx, rd, oracle, ids, [0.0] * len(ids), f"t{ts[0]:03d}_{cam}_cross", "cross_camera"))
    return out


# --- one scene, the whole run ------------------------------------------------------------------------


def planned_counts(ctx_scene: SceneData, job: SceneJob, cfg: CurateConfig) -> int:
    """Rough number of samples of a scene (for the progress bar)."""
    n = len(ctx_scene.frames)
    per = len(ctx_scene.test_ids) + 3 * max(1, n // cfg.underfit_stride)
    if job.synth:
        per += len(signed_shifts(cfg.shifts)) * max(1, n // cfg.shift_stride)
    return per


def curate_scene(job: SceneJob, cfg: CurateConfig, tick: Callable[[str], None]) -> list[dict]:
    """Reconstruct one scene sparsely and write all of its samples; returns their index entries."""
    from faithfusion.train.checkpoint import load_checkpoint

    root = Path(cfg.out)
    folder = root / "samples" / job.name
    if folder.exists():
        shutil.rmtree(folder)  # an incomplete earlier attempt
    if job.synth:
        ensure_synth(job, cfg)
    scene = load_sparse_scene(job, cfg)
    trainer, ckpts = train_with_snapshots(job, scene, cfg)
    refs = References(scene, scene.train_ids, cfg.scale, folder / "reference", root)
    ctx = Ctx(job, cfg, scene, refs, root, folder, tick)
    kinds = set(cfg.resolved_kinds())
    samples: list[dict] = []
    steps = sorted(ckpts)
    if "underfit" in kinds:  # renders (and EIG sessions) of the 25-75 % snapshots
        for level, step in enumerate(steps[:-1]):
            load_weights(trainer, load_checkpoint(ckpts[step], trainer.device))
            rd = Renderer(trainer, scene, cfg.with_eig, cfg.eig_calib_views)
            samples += underfit_samples(ctx, rd, level, round(100 * step / cfg.steps))
    final = kinds & ({"sparse", "cross_camera", "lane_shift", "video"} if job.synth else {"sparse"})
    if final:
        load_weights(trainer, load_checkpoint(ckpts[steps[-1]], trainer.device))
        rd = Renderer(trainer, scene, cfg.with_eig, cfg.eig_calib_views)
        if "sparse" in final:
            samples += sparse_samples(ctx, rd)
        if "cross_camera" in final:
            samples += cross_camera_samples(ctx, rd)
        if "lane_shift" in final:
            samples += lane_shift_samples(ctx, rd)
        if "video" in final:
            samples += video_samples(ctx, rd, SynthOracle(job.path))
    save_json_atomic(folder / "samples.json", {"samples": samples})
    save_json_atomic(folder / MARKER, {"scene": job.name, "samples": len(samples), "steps": trainer.step,
                                       "train_views": len(scene.train_ids), "gaussians": len(trainer.model)})
    return samples


def is_complete(root: Path, job: SceneJob) -> bool:
    return (root / "samples" / job.name / MARKER).is_file() and (root / "samples" / job.name / "samples.json").is_file()


def summarise(samples: list[dict]) -> dict:
    """Counts per kind and split, and per (kind, split)."""
    out: dict[str, Any] = {"total": len(samples), "by_kind": {}, "by_split": {}, "by_kind_split": {}, "scenes": {}}
    for s in samples:
        k, sp = s["kind"], s["split"]
        out["by_kind"][k] = out["by_kind"].get(k, 0) + 1
        out["by_split"][sp] = out["by_split"].get(sp, 0) + 1
        key = f"{k}/{sp}"
        out["by_kind_split"][key] = out["by_kind_split"].get(key, 0) + 1
        out["scenes"].setdefault(s["scene"], s["split"])
    return out


def print_summary(summary: dict, done: list[str], skipped: list[str], pending: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"fixer dataset: {summary['total']} samples")
    splits = sorted(summary["by_split"])
    table.add_column("kind")
    for sp in splits:
        table.add_column(sp, justify="right")
    for k in sorted(summary["by_kind"]):
        table.add_row(k, *[str(summary["by_kind_split"].get(f"{k}/{sp}", 0)) for sp in splits])
    con = Console()
    con.print(table)
    con.print(f"scenes curated now: {done or '-'}; skipped (complete): {skipped or '-'}; not reached: {pending or '-'}")


def write_index(root: Path, jobs: list[SceneJob]) -> list[dict]:
    """Merge the per-scene sample lists of the complete scenes into out/index.json (atomically)."""
    samples = []
    for job in jobs:
        if is_complete(root, job):
            samples += json.loads((root / "samples" / job.name / "samples.json").read_text())["samples"]
    save_json_atomic(root / "index.json", {"root": ".", "version": 1, "samples": samples})
    return samples


class _Progress:
    """A rich bar over samples, with the current scene and kind."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("[bold]curate {task.fields[what]}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), disable=not enabled)
        self.task = self.bar.add_task("curate", total=None, what="")

    def __enter__(self) -> "_Progress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def start(self, what: str, total: int) -> None:
        self.bar.reset(self.task, total=total, what=what)

    def tick(self, what: str) -> None:
        self.bar.advance(self.task)


def _worker(cfg: CurateConfig) -> None:
    curate_scenes(cfg, scene_jobs(cfg), time.perf_counter())


def curate_in_workers(cfg: CurateConfig, jobs: list[SceneJob]) -> None:
    """Curate the incomplete scenes in `cfg.workers` spawned processes (round-robin); raise if any failed."""
    import multiprocessing as mp

    todo = [j.name for j in jobs if not is_complete(Path(cfg.out), j)]
    shares = [tuple(todo[w::cfg.workers]) for w in range(cfg.workers)]
    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    procs = [ctx.Process(target=_worker, args=(dataclasses.replace(cfg, workers=1, only=share, progress=False),))
             for share in shares if share]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [share for p, share in zip(procs, [s for s in shares if s]) if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"curation workers failed on scenes {failed}; re-run to resume (complete scenes are kept)")


def curate_scenes(cfg: CurateConfig, jobs: list[SceneJob], t0: float) -> tuple[list[str], list[str], list[str]]:
    """Curate the incomplete scenes of `jobs` (those in `cfg.only`, when given) in this process."""
    root = Path(cfg.out)
    done, skipped, pending = [], [], []
    with _Progress(cfg.progress) as bar:
        for job in jobs:
            if cfg.only and job.name not in cfg.only:
                continue
            if is_complete(root, job):
                skipped.append(job.name)
                continue
            if cfg.max_seconds > 0 and time.perf_counter() - t0 > cfg.max_seconds:
                pending.append(job.name)
                continue
            bar.start(f"{job.name} ({job.split})", total=None)
            curate_scene(job, cfg, bar.tick)
            done.append(job.name)
    return done, skipped, pending


def curate(cfg: CurateConfig) -> dict:
    """Curate every scene not yet complete, then write index.json and summary.json; returns the summary."""
    root = Path(cfg.out)
    jobs = scene_jobs(cfg)
    cfg.resolved_kinds()  # unknown kinds fail before anything is written
    unknown = set(cfg.only) - {j.name for j in jobs}
    if unknown:
        raise ValueError(f"--only names scenes that are not in this curation: {sorted(unknown)}")
    prepare_out(cfg)
    remove_stale_temps(root)  # left by a killed curation
    t0 = time.perf_counter()
    if cfg.workers > 1:
        before = {j.name for j in jobs if is_complete(root, j)}
        curate_in_workers(cfg, jobs)
        done = [j.name for j in jobs if is_complete(root, j) and j.name not in before]
        skipped, pending = sorted(before), [j.name for j in jobs if not is_complete(root, j)]
    else:
        done, skipped, pending = curate_scenes(cfg, jobs, t0)
    samples = write_index(root, jobs)
    summary = {**summarise(samples), "curated": done, "skipped": skipped, "pending": pending,
               "seconds": time.perf_counter() - t0}
    save_json_atomic(root / "summary.json", summary)
    print_summary(summary, done, skipped, pending)
    return summary
