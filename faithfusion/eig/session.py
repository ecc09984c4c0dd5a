"""A trained run made ready for EIG: its model, H_train over its training views, and the calibration.

`build_session` is the one builder of both, used by `faithfusion eig`, the EIG-vs-error analysis, fixer-data
curation, the benchmarks and FaithFusion's rounds (which pass their own growing accumulator):

- H_train: the Fisher of every training view at the run's resolution, with the run's sky model as the
  background the Gaussians are composited over (what the trainer renders), sky-mask pixels excluded
  (weight 0) as FaithFusion does when it accumulates H over the training set;
- calibration: the EIG maps of up to `calib_views` evenly spaced training views against H_train
  (16 for the eig command, the schedule's `calib_views` in FaithFusion).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.eig.accumulator import BackgroundFn, FisherAccumulator, PreparedView
from faithfusion.eig.calibrate import Calibration, fit_calibration
from faithfusion.eig.fisher import PARAM_GROUPS
from faithfusion.eig.combined import COMBINED, INPUT_FORM, combined_map, image_gradient
from faithfusion.eig.maps import ALPHA_MIN, FORMS, LAMBDA, EigMap, Form, eig_map
from faithfusion.eig.pixel import PixelPrior

SessionForm = Literal["fisherrf", "faithfusion", "pixel", "combined"]
SESSION_FORMS: tuple[str, ...] = (*FORMS, COMBINED)
"""The maps a session makes: `maps.FORMS`, and `combined` (`eig/combined.py`: the `pixel` map and the image
gradient of the session's render, rank-normalised per view and averaged)."""


def track(items, description: str, enabled: bool = True):
    """A rich progress bar over `items` (or the items themselves when disabled)."""
    if not enabled:
        return items
    from rich.progress import track as rich_track

    return rich_track(items, description=description)


def sky_background(trainer) -> BackgroundFn | None:
    """camera -> the trainer's sky colour per pixel `[H, W, 3]` (None for scenes without a sky model)."""
    if getattr(trainer, "sky", None) is None:
        return None
    from faithfusion.train.sky import pixel_directions

    def fn(camera: Camera) -> Tensor:
        with torch.no_grad():
            return trainer.sky(pixel_directions(camera.to(trainer.device)))

    return fn


def evenly_spaced(items: list, n: int) -> list:
    """At most `n` items spread over the list (all of them for n <= 0)."""
    if n <= 0 or len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(k * step)] for k in range(n)]


@dataclass
class EigSession:
    trainer: object  # faithfusion.train.trainer.Trainer holding the run's weights
    acc: FisherAccumulator
    calibration: Calibration
    form: SessionForm = "fisherrf"
    lam: float = LAMBDA
    alpha_min: float = ALPHA_MIN
    max_pairs: int | None = None
    compiled: bool = False
    timings: dict = field(default_factory=dict)
    prior: PixelPrior = field(default_factory=PixelPrior)  # the "pixel" form's prior and noise

    @property
    def model(self):
        return self.trainer.model

    def model_for(self, camera: Camera):
        """The Gaussian set `camera` sees (a scene graph's composition at its timestep, else the model)."""
        return self.acc.model_for(camera)

    def background(self, camera: Camera) -> Tensor | None:
        return self.acc.background_fn(camera) if self.acc.background_fn is not None else None

    def prepare(self, camera: Camera) -> PreparedView:
        """`camera` prepared once for its EIG map and, after, its Fisher (`acc.add_view(..., prepared=)`)."""
        return self.acc.prepare(camera)

    def eig(self, camera: Camera, prepared: PreparedView | None = None) -> tuple[EigMap, Tensor]:
        """EIG map of `camera` and its calibrated value g `[H, W]`; `prepared` = `prepare(camera)` at the
        current parameters, when the caller has it."""
        kw = self.acc.fisher_kw
        if prepared is not None and (kw.get("max_pairs") != self.max_pairs
                                     or any(kw.get(k) is not None for k in ("sh_degree", "eps2d", "near_plane", "far_plane"))):
            prepared = None  # planned with the accumulator's settings, which are not the map's
        form: Form = INPUT_FORM if self.form == COMBINED else self.form
        bg = self.background(camera) if prepared is None else prepared.background
        H_train, to_local = self.acc.H, None
        if self.acc.frames is not None:  # a scene graph: the view's set in its timestep's frame, H_train node-local
            if form == "pixel":
                H_train = self.acc.frames.to_world(self.model, camera, H_train)
            else:
                to_local = lambda H: self.acc.to_local(camera, H)  # noqa: E731
        m = eig_map(self.model_for(camera), camera, H_train, form=form, lam=self.lam, alpha_min=self.alpha_min,
                    background=bg, max_pairs=self.max_pairs, compiled=self.compiled, prior=self.prior,
                    vp=None if prepared is None else prepared.vp, to_local=to_local)
        if self.form == COMBINED:
            rgb, _ = self.render(camera)  # [H, W, 3]
            m = EigMap(combined_map(m.eig, image_gradient(rgb).to(m.eig.device)), m.covered, m.alpha, m.count, COMBINED)
        return m, self.calibration.calibrate(m.eig)

    def render(self, camera: Camera) -> tuple[Tensor, Tensor]:
        """RGB `[H, W, 3]` (sky composited) and alpha `[H, W]` as the trainer renders them."""
        with torch.no_grad():
            rgb, out = self.trainer.render_camera(camera.to(self.trainer.device))
        return rgb.clamp(0, 1), out.alpha[0, ..., 0]


def view_name(view) -> str:
    """The name a captured view's Fisher pass carries in H_train."""
    return f"train_{view.index}"


def calibration_names(trainer, calib_views: int) -> set[str]:
    """Names of the captured views `build_session` calibrates on: keep their preparations where it pays
    (CPU: a preparation is a few MB at the quick size; on a GPU at 3M Gaussians it would be a GB each)."""
    if trainer.device.type != "cpu":
        return set()
    return {view_name(v) for v in evenly_spaced(trainer.real.views, calib_views)}


def view_frames(trainer):
    """The trainer's scene-graph frames (`scene_graph/fisher.py`) when it has vehicle nodes, else None."""
    from faithfusion.scene_graph.fisher import graph_frames

    return graph_frames(trainer)


def empty_accumulator(trainer, groups: tuple[str, ...] = PARAM_GROUPS, **fisher_kw) -> FisherAccumulator:
    """A FisherAccumulator over `trainer`'s Gaussians, its sky as the background, its scene graph's frames."""
    return FisherAccumulator(trainer.model, groups, background_fn=sky_background(trainer), frames=view_frames(trainer),
                             **fisher_kw)


def train_accumulator(
    trainer,
    *,
    exclude_sky: bool = True,
    groups: tuple[str, ...] = PARAM_GROUPS,
    max_pairs: int | None = None,
    compiled: bool = False,
    progress: bool = False,
    keep_prepared: set[str] | None = None,
) -> FisherAccumulator:
    """H_train: the Fisher of every captured view of `trainer`, over its sky background, with the sky-mask
    pixels weighted 0 (when `exclude_sky`); `keep_prepared`: names (`train_<index>`) of the views whose
    preparation to keep for their calibration maps (`FisherAccumulator.take_prepared`)."""
    acc = empty_accumulator(trainer, groups, max_pairs=max_pairs, compiled=compiled)
    acc.keep_prepared = set(keep_prepared or ())
    for v in track(trainer.real.views, "H_train", progress):
        w = (~v.sky_mask).float() if exclude_sky and v.sky_mask is not None else None
        acc.add_view(v.camera, pixel_weights=w, name=view_name(v))
    return acc


def build_session(
    trainer,
    *,
    acc: FisherAccumulator | None = None,
    form: SessionForm = "fisherrf",
    lam: float = LAMBDA,
    alpha_min: float = ALPHA_MIN,
    calib_views: int = 16,
    exclude_sky: bool = True,
    groups: tuple[str, ...] = PARAM_GROUPS,
    max_pairs: int | None = None,
    compiled: bool = False,
    progress: bool = True,
    prior: PixelPrior | None = None,
    **calib_opts,
) -> EigSession:
    """H_train over the trainer's captured views (`train_accumulator`, or the given `acc`, already at the
    model's current parameters), then the calibration over up to `calib_views` evenly spaced captured views."""
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    if acc is None:
        acc = train_accumulator(trainer, exclude_sky=exclude_sky, groups=groups, max_pairs=max_pairs,
                                compiled=compiled, progress=progress)
    sync()
    t1 = time.perf_counter()
    session = EigSession(trainer, acc, Calibration(ref=1.0), form, lam, alpha_min, max_pairs, compiled,
                         prior=prior or PixelPrior())
    views = evenly_spaced(trainer.real.views, calib_views)
    maps = [session.eig(v.camera, acc.take_prepared(view_name(v)))[0] for v in track(views, "calibration", progress)]
    session.calibration = fit_calibration(maps, form=form, lam=lam, alpha_min=alpha_min, groups=list(acc.groups),
                                          **calib_opts)
    sync()
    session.timings = {"h_train_s": t1 - t0, "h_train_views": len(trainer.real.views),
                       "calibration_s": time.perf_counter() - t1, "calibration_views": len(maps)}
    return session
