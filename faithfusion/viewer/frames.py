"""What the viewer shows, without any UI: a run's recorded drive from any lane shift, as one of five layers.

    render   the run's model, rasterised (gsplat on CUDA, the project's torch rasterizer on the CPU)
    fixed    the render repaired by the run's single-frame fixer (Difix; fusion runs only)
    eig      the calibrated per-pixel EIG g = log2(1 + EIG / EIG_ref), inferno over [0, EIG_DISPLAY_MAX = 16]
    depth    expected depth in metres, turbo over [0, the drive's 99th percentile at shift 0]
    gt       the captured image (shift 0) or SynthStreet's exact ground truth (gt_shifted/<d>m)

`RunView.layer(name, frame, shift)` returns a `LayerImage` (uint8 `[H, W, 3]` plus a note); a layer that
cannot be shown (no fixer, no ground truth at that shift, a free camera) comes back as a grey card naming why.
EIG and the fixer work at the run's own resolution (where they were calibrated and trained) and are resized to
the view's size; the render and depth are rasterised at the view's size.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.errors import UserError

LAYERS: tuple[str, ...] = ("render", "fixed", "eig", "depth", "gt")
LAYER_TITLES = {
    "render": "render",
    "fixed": "fixed view (the run's fixer)",
    "eig": "EIG heatmap (calibrated g)",
    "depth": "depth (m)",
    "gt": "ground truth",
}
EIG_DISPLAY_MAX = 16.0
"""Top of the viewer's EIG colour scale (g = 16: 2^16 times the reference EIG). `faithfusion eig`'s heatmaps span
[0, 4], which off the recorded lane is saturated almost everywhere (g reaches 15-18 at 3-6 m on SynthStreet)."""
SHIFT_RANGE = (-6.0, 6.0)
"""Lane shifts the viewer offers, metres (positive = left)."""


class ViewerError(UserError, ValueError):
    """A layer name, frame or size the viewer cannot show."""


@dataclass
class LayerImage:
    """One layer of one view."""

    image: np.ndarray  # [H, W, 3] uint8
    layer: str
    available: bool = True
    note: str = ""


def check_layer(layer: str) -> str:
    if layer not in LAYERS:
        raise ViewerError(f"unknown layer {layer!r}: choose from {', '.join(LAYERS)}")
    return layer


def fit_camera(camera: Camera, width: int, height: int) -> Camera:
    """`camera` at exactly `width` x `height` pixels (intrinsics scaled per axis)."""
    if width < 1 or height < 1:
        raise ViewerError(f"view size {width}x{height}: both sides must be at least 1 pixel")
    K = camera.K.clone()
    K[0] *= width / camera.width
    K[1] *= height / camera.height
    return replace(camera, K=K, width=int(width), height=int(height))


def fit_long_side(camera: Camera, max_side: int | None) -> Camera:
    """`camera` shrunk (never enlarged) so that its longer side is at most `max_side` (None: unchanged)."""
    if max_side is None or max(camera.width, camera.height) <= max_side:
        return camera
    f = max_side / max(camera.width, camera.height)
    return fit_camera(camera, max(1, round(camera.width * f)), max(1, round(camera.height * f)))


def to_uint8(rgb: Tensor | np.ndarray) -> np.ndarray:
    """float `[H, W, 3]` in [0, 1] -> uint8 `[H, W, 3]`."""
    a = rgb.detach().float().cpu().numpy() if isinstance(rgb, Tensor) else np.asarray(rgb, dtype=np.float32)
    return (np.clip(a, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 `[h, w, 3]` -> uint8 `[height, width, 3]` (bilinear; unchanged when the size already fits)."""
    if image.shape[:2] == (height, width):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def card(height: int, width: int, text: str) -> np.ndarray:
    """A grey `[H, W, 3]` uint8 image with `text` written on it (what an unavailable layer shows)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (60, 60, 60))
    draw = ImageDraw.Draw(img)
    words, lines, line = text.split(), [], ""
    per_line = max(8, width // 7)
    for w in words:
        if line and len(line) + 1 + len(w) > per_line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    for k, ln in enumerate(lines):
        draw.text((6, 6 + 12 * k), ln, fill=(230, 230, 230))
    return np.asarray(img)


def _resize_map(x: Tensor, height: int, width: int) -> Tensor:
    """`[h, w]` float map -> `[height, width]` (area when shrinking, bilinear when growing)."""
    if tuple(x.shape) == (height, width):
        return x
    mode = "area" if height <= x.shape[0] and width <= x.shape[1] else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x[None, None].float(), size=(height, width), mode=mode, **kw)[0, 0]


class RunView:
    """A trained run opened for viewing: its scene, model, and (lazily) its EIG session and fixer."""

    def __init__(self, run: Path | str, device: str = "auto", max_side: int | None = None,
                 calib_views: int = 16, progress: bool = False) -> None:
        from faithfusion.train.run import load_run
        from faithfusion.utils.device import resolve_device

        self.run = Path(run)
        self.device = resolve_device(device)
        loaded = load_run(self.run, self.device)
        self.cfg, self.scene, self.trainer = loaded.cfg, loaded.scene, loaded.trainer
        self.scale = float(self.cfg.scale)
        self.max_side = max_side
        self.calib_views = calib_views
        self.progress = progress
        self.info = run_info(self.run)
        self._lock = threading.RLock()
        self._session = None
        self._fixer: object | None = None
        self._fixer_note: str | None = None
        self._refs = None
        self._eig_cache: OrderedDict[tuple, Tensor] = OrderedDict()
        self._depth_max: float | None = None

    # --- the drive ----------------------------------------------------------------------------

    @property
    def cam_names(self) -> list[str]:
        """Camera names of the scene, in the order they first appear."""
        return list(dict.fromkeys(f.cam_name for f in self.scene.frames))

    def drive(self, cam_name: str | None = None) -> list[int]:
        """Frame indices of camera `cam_name` (default: the first) in timestep order: the recorded drive."""
        name = self.cam_names[0] if cam_name is None else str(cam_name)
        ids = [i for i, f in enumerate(self.scene.frames) if f.cam_name == name]
        if not ids:
            raise ViewerError(f"{self.run}: the scene has no camera {name!r} (cameras: {', '.join(self.cam_names)})")
        return sorted(ids, key=lambda i: self.scene.frames[i].timestep)

    def native_camera(self, frame: int, shift: float) -> Camera:
        """Frame `frame`'s camera moved `shift` metres left, at the run's training resolution."""
        if not 0 <= frame < len(self.scene.frames):
            raise ViewerError(f"frame {frame} out of range: the scene has {len(self.scene.frames)} frames")
        return self.scene.shifted_camera(frame, float(shift), self.scale)

    def camera(self, frame: int, shift: float, size: tuple[int, int] | None = None) -> Camera:
        """The view's camera: `native_camera` at `size` = (width, height), else shrunk to `max_side`."""
        cam = self.native_camera(frame, shift)
        return fit_camera(cam, *size) if size is not None else fit_long_side(cam, self.max_side)

    # --- layers -------------------------------------------------------------------------------

    def render(self, camera: Camera) -> tuple[Tensor, Tensor]:
        """RGB `[H, W, 3]` in [0, 1] (sky composited) and depth in metres `[H, W]` from `camera`."""
        with self._lock, torch.no_grad():
            rgb, out = self.trainer.render_camera(camera.to(self.device))
            depth = out.depth[0, ..., 0] / self.scene.transform.scale
        return rgb.clamp(0, 1), depth

    def layer(self, layer: str, frame: int | None, shift: float = 0.0, *, camera: Camera | None = None,
              size: tuple[int, int] | None = None) -> LayerImage:
        """Layer `layer` of drive frame `frame` seen from `shift` metres left, or of a free `camera` (frame None)."""
        check_layer(layer)
        if camera is None:
            if frame is None:
                raise ViewerError("RunView.layer: give a frame index or a camera")
            camera = self.camera(frame, shift, size)
        H, W = camera.height, camera.width
        if layer == "render":
            rgb, _ = self.render(camera)
            return LayerImage(to_uint8(rgb), layer)
        if layer == "depth":
            _, depth = self.render(camera)
            return LayerImage(self.colour_depth(depth), layer, note=f"0 to {self.depth_max():.1f} m")
        if layer == "gt":
            return self.ground_truth(frame, shift, H, W)
        if layer == "eig":
            return self.eig_layer(frame, shift, camera)
        return self.fixed_layer(frame, shift, camera)

    def depth_max(self) -> float:
        """The depth colour scale's top: the 99th percentile of the drive's first frame at shift 0 (metres)."""
        if self._depth_max is None:
            _, d = self.render(self.camera(self.drive()[0], 0.0))
            v = d[torch.isfinite(d) & (d > 0)]
            self._depth_max = float(torch.quantile(v.float().cpu(), 0.99)) if v.numel() else 1.0
        return max(self._depth_max, 1e-3)

    def colour_depth(self, depth: Tensor) -> np.ndarray:
        from faithfusion.eig.heatmap import colorize

        return colorize(depth, 0.0, self.depth_max(), "turbo")

    def ground_truth(self, frame: int | None, shift: float, height: int, width: int) -> LayerImage:
        """The captured image at shift 0, SynthStreet's gt_shifted/<d>m image elsewhere, else a card saying why."""
        if frame is None:
            return self.unavailable("gt", height, width, "no ground truth for a free camera")
        f = self.scene.frames[frame]
        if float(shift) == 0.0:
            img = to_uint8(self.scene.load_image(frame, self.scale))
            return LayerImage(resize_image(img, height, width), "gt", note="captured image")
        from faithfusion.eval.lane_shift import available_shifts, load_gt_image, shift_folder

        root = Path(self.cfg.data)
        if not shift_folder(root, shift).is_dir():
            have = available_shifts(root)
            where = ("shifts with ground truth: " + ", ".join(f"±{d:g} m" for d in have)) if have else \
                "this scene has no gt_shifted/ folder (SynthStreet scenes do)"
            return self.unavailable("gt", height, width, f"no ground truth at {shift:+g} m; {where}")
        try:
            gt = load_gt_image(root, float(shift), f.timestep, f.cam_name, (height, width))
        except FileNotFoundError as e:
            return self.unavailable("gt", height, width, str(e))
        return LayerImage(to_uint8(gt), "gt", note=f"SynthStreet ground truth at {shift:+g} m")

    def unavailable(self, layer: str, height: int, width: int, why: str) -> LayerImage:
        return LayerImage(card(height, width, f"{LAYER_TITLES[layer]} unavailable: {why}"), layer, False, why)

    # --- EIG ----------------------------------------------------------------------------------

    def eig_session(self):
        """The run's EIG session (H_train over its training views and the calibration), built on first use."""
        with self._lock:
            if self._session is None:
                from faithfusion.eig.session import build_session

                self._session = build_session(self.trainer, calib_views=self.calib_views, progress=self.progress)
            return self._session

    def eig_values(self, frame: int | None, shift: float, camera: Camera) -> Tensor:
        """Calibrated g `[H, W]` at the run's resolution (drive frames are cached), for `camera`'s view."""
        key = None if frame is None else (frame, float(shift))
        if key is not None and key in self._eig_cache:
            self._eig_cache.move_to_end(key)
            return self._eig_cache[key]
        session = self.eig_session()
        native = self.native_camera(frame, shift) if frame is not None else self.at_run_resolution(camera)
        with self._lock:
            _, g = session.eig(native.to(self.device))
        g = g.detach().float().cpu()
        if key is not None:
            self._eig_cache[key] = g
            while len(self._eig_cache) > 64:
                self._eig_cache.popitem(last=False)
        return g

    def at_run_resolution(self, camera: Camera) -> Camera:
        """A free camera grown or shrunk to the height of the run's own frames (aspect kept)."""
        h = self.native_camera(self.drive()[0], 0.0).height
        return fit_camera(camera, max(1, round(camera.width * h / camera.height)), h)

    def eig_layer(self, frame: int | None, shift: float, camera: Camera) -> LayerImage:
        from faithfusion.eig.heatmap import colorize

        g = self.eig_values(frame, shift, camera)
        g = _resize_map(g, camera.height, camera.width)
        return LayerImage(colorize(g, 0.0, EIG_DISPLAY_MAX), "eig",
                          note=f"median g {float(g.median()):.2f} (scale 0 to {EIG_DISPLAY_MAX:g})")

    # --- the fixer ----------------------------------------------------------------------------

    def fixer(self):
        """The run's single-frame fixer (Difix) and None, or None and the reason there is none (loaded once)."""
        with self._lock:
            if self._fixer is None and self._fixer_note is None:
                self._fixer, self._fixer_note = load_run_fixer(self.run, self.device)
            return self._fixer, self._fixer_note

    def fixed_layer(self, frame: int | None, shift: float, camera: Camera) -> LayerImage:
        """The render at the run's resolution, repaired by the run's fixer with the nearest captured image as
        reference (what Difix3D+'s post-render step does), resized to the view."""
        fixer, why = self.fixer()
        if fixer is None:
            return self.unavailable("fixed", camera.height, camera.width, why or "no fixer")
        from faithfusion.fusion.pools import ReferenceImages, fix_frames

        native = self.native_camera(frame, shift) if frame is not None else self.at_run_resolution(camera)
        with self._lock:
            if self._refs is None:
                self._refs = ReferenceImages(self.scene, self.scene.train_ids, self.scale)
            rgb, _ = self.render(native)
            ref = self._refs.image(self._refs.nearest_id(native, frame))  # [h, w, 3]
            if tuple(ref.shape[:2]) != (native.height, native.width):
                ref = F.interpolate(ref.permute(2, 0, 1)[None], size=(native.height, native.width), mode="area")[0].permute(1, 2, 0)
            with torch.no_grad():
                fixed = fix_frames(fixer, rgb[None], ref[None].to(rgb.device))[0]
        return LayerImage(resize_image(to_uint8(fixed), camera.height, camera.width), "fixed", note=why)


def load_run_fixer(run: Path, device: torch.device) -> tuple[object | None, str]:
    """(fixer, note): the Difix fixer recorded in RUN/config.yaml's `_run.fixers`, or (None, why not)."""
    import yaml

    from faithfusion.fusion.fixers import choose_fixer

    data = yaml.safe_load((Path(run) / "config.yaml").read_text()) or {}
    fixers = (data.get("_run") or {}).get("fixers") or {}
    if not fixers:
        return None, "this run has no fixer (a plain reconstruction; fusion runs record theirs)"
    if "difix" not in fixers:
        return None, f"the run's fixers ({', '.join(fixers)}) are video fixers; the viewer applies single-frame Difix only"
    source = str(fixers["difix"])
    try:
        chosen = choose_fixer(source, "difix", device)
    except UserError as e:
        return None, f"the run's fixer could not be loaded: {e}"
    note = "UNTRAINED identity fixer (plumbing only)" if chosen.identity else f"Difix from {source}"
    return chosen.fixer, note


def run_info(run: Path) -> dict:
    """What the viewer and the videos state about a run: its path, method, steps, and the code's commit."""
    import yaml

    from faithfusion.bench.info import git_commit

    data = yaml.safe_load((Path(run) / "config.yaml").read_text()) or {}
    meta = data.get("_run") or {}
    return {"run": str(Path(run).resolve()), "method": meta.get("method", "3dgs"), "steps": data.get("steps"),
            "scene": str(data.get("data", "")), "commit": git_commit()}
