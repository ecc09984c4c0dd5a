"""FaithFusion as a schedule: lane shift grows 1 m per round; EIG conditions the fixer and weights the loss.

Round k (first at 3000 published steps, then every 2000) works at shift min(6, k m) on each side:

1. H_train is recomputed at the current parameters over the captured views (sky excluded) AND the
   fused views of earlier rounds (FisherAccumulator; with `h_train_refresh` K > 1 only every K rounds,
   carried through densification in between), and the EIG scale is re-calibrated on the captured views'
   own maps (eig/calibrate.py);
2. for each shifted camera: its calibrated EIG g, the loss weight w = cal.weight(g) in [w_min, 1]
   and the fixer's condition c = g itself, the calibrated map the fixers were trained on (curation writes
   the same `EigSession.eig` output; EIGent clamps it to [0, 1] and derives its own mask);
3. the renders are repaired: by EIGent (video, windows along the path, conditioned on c) while the
   shift is <= 3 m, by Difix (per frame, its own captured image as reference, and c as well: a Difix trained
   with `--difix-eig` takes it as an input channel, the shipped one ignores it) after; Difix's output is blended
   with the render by the calibrated soft mask (`difix_blend`): repainted where EIG is high, left alone where
   the reconstruction is already constrained;
4. the repaired views join the fused pool with View.weight = w, and are added to H_train with pixel
   weights w (each camera projected and planned once, for its EIG map and this Fisher pass). A fused view is drawn with probability 0.4 on top of the step's captured view (`paired`): its
   weighted loss is added to the step, so the captured views keep the whole step budget.

`faithfusion-no-eig` (the ablation): w = 1 and c = 1 everywhere, no Fisher at all. `--faithfusion.weighting`
chooses the arm of the cleaner ablation (fusion/weighting.py: uniform, shuffled, none); `--faithfusion.fused-share`,
`--faithfusion.share-views K`, `--faithfusion.freeze-original`, `--faithfusion.fused-lidar` and `--faithfusion.pool replace` are the loop's
options (fusion/gradient_share.py, anti_drift.py, pool_policy.py); their defaults keep the behaviour above.

`faithfusion+` also fixes the final renders, as Difix3D+ does, but only where EIG is high: the Difix fix of
a render is blended with it by the calibrated soft mask of its EIG against the final H_train (captured and
fused views); `faithfusion+-no-eig` takes the fix everywhere, as Difix3D+ does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.data.scene import SceneData
from faithfusion.eig.accumulator import PreparedView
from faithfusion.eig.calibrate import Calibration
from faithfusion.eig.maps import EigMap
from faithfusion.fusion.anti_drift import attach_lidar, freeze_geometry_guard
from faithfusion.fusion.config import FaithFusionConfig, FuseConfig
from faithfusion.fusion.fixers import ChosenFixer
from faithfusion.fixers.windows import ramp_shifts
from faithfusion.fusion.gradient_share import pool_loss_weight
from faithfusion.fusion.paths import sequences, windows
from faithfusion.fusion.pool_policy import insert_round_views
from faithfusion.fusion.pools import ReferenceImages, Renders, fix_frames, make_views, post_render_fixer, render_cameras
from faithfusion.fusion.rounds import Round
from faithfusion.fusion.weighting import Weighting
from faithfusion.train.views import ViewPool
from faithfusion.utils.timing import NO_TIMER, StageTimer


@dataclass
class FusedWindow:
    """One window of a round's shifted cameras, prepared once and handed from stage to stage."""

    ids: list[int]  # the captured frames
    offsets: list[float]  # [T] lateral shift of each frame (metres; 0 = context only)
    cameras: list[Camera]  # [T] on the trainer's device
    renders: Renders  # rgb [T, H, W, 3]
    prepared: list[PreparedView] | None = None  # [T] pair passes, shared by the EIG maps and the Fisher

    @property
    def kept(self) -> list[int]:
        """The frames that join the pool: the shifted ones (shift-0 frames of a ramp are context only)."""
        return [k for k, d in enumerate(self.offsets) if abs(d) > 1e-6]


@dataclass
class WindowEig:
    """A window's calibrated EIG as the fixers and the pool use it."""

    weight: Tensor | None  # [T, H, W] loss weight in [w_min, 1]; None without EIG
    cond: Tensor  # [T, H, W] the fixer's condition: calibrated EIG (1 without EIG)
    maps: list[tuple[EigMap, Tensor]] | None = None  # [T] (map, calibrated g); None without EIG
    soft_mask: Tensor | None = None  # [T, H, W] in [0, 1]: Difix's blend mask (the calibrated soft mask of high EIG)


class FaithFusionMethod:
    def __init__(self, cfg: FaithFusionConfig, scene: SceneData, difix: ChosenFixer, video: ChosenFixer | None,
                 plus: bool = False, use_eig: bool = True) -> None:
        self.name = "faithfusion"  # the preset's name, set by the runner
        self.plus = plus
        self.sched = cfg.faithfusion
        self.weighting = Weighting(self.sched.weighting if use_eig else "none", cfg.seed)  # the ablation arm
        self.use_eig = self.weighting.uses_eig
        self.scene, self.scale = scene, cfg.scale
        self.difix, self.video = difix, video
        self.pool = ViewPool("faithfusion_fused", [], probability=self.sched.probability, loss_weight=pool_loss_weight(self.sched),
                             paired=self.sched.paired, draws=self.sched.share_views,
                             grad_guard=freeze_geometry_guard() if self.sched.freeze_original else None)
        self.pools = [self.pool]
        self.refs = ReferenceImages(scene, scene.train_ids, cfg.scale)
        self.acc = None  # FisherAccumulator, built at the first round
        self.calibration = None
        self.h_train_exact = True  # whether the last H_train was recomputed (False: carried through densification)
        self.shifts: list[float] = []  # the shift of every completed round
        self.timer: StageTimer = NO_TIMER  # set by `run_rounds`: the round's stages (render, h_train, eig, fix_*, ...)

    def recon_config(self, cfg: FuseConfig) -> FuseConfig:
        return cfg

    def rounds(self, total: int) -> list[Round]:
        s = self.sched
        n = math.ceil(s.max_shift / s.step_metres - 1e-9)
        first, every = s.at(s.first, total), max(1, s.at(s.every, total))
        out = []
        for k in range(n):
            step = first + k * every
            if step >= total:
                break
            out.append(Round(k, step, {"shift": min(s.max_shift, (k + 1) * s.step_metres)}))
        return out

    # --- H_train and EIG --------------------------------------------------------------------------

    def update_h_train(self, trainer, round_index: int | None = None) -> bool:
        """Bring H_train (captured + fused views) to the current Gaussians; returns whether it is exact.

        Exact (recomputed over every remembered view at the current parameters) at the first round, at the
        final renders (`round_index` None) and every `h_train_refresh` rounds; in between, carried through
        densification by the lineage the strategy keeps since the last round (`train.densify.mark_lineage`)."""
        from faithfusion.eig.session import calibration_names, train_accumulator
        from faithfusion.train.densify import lineage_since_mark, mark_lineage

        every = self.sched.h_train_refresh
        if every < 1:
            raise ValueError(f"faithfusion.h_train_refresh must be at least 1, got {every}")
        with self.timer.stage("h_train"):
            carried = None
            keep = calibration_names(trainer, self.sched.calib_views)  # their passes serve the calibration maps too
            if self.acc is None:
                self.acc = train_accumulator(trainer, keep_prepared=keep)
            else:
                self.acc.keep_prepared = keep
                if round_index is not None and round_index % every != 0:
                    carried = lineage_since_mark(trainer.strategy, len(trainer.model))
                if carried is None:
                    self.acc.recompute(trainer.model)
                else:
                    self.acc.model = trainer.model
                    self.acc.remap(carried)  # [N_now] -> the Fisher of each Gaussian's ancestor
            if every > 1:
                mark_lineage(trainer.strategy, len(trainer.model), trainer.device)
        return carried is None

    def eig_session(self, trainer, round_index: int | None = None):
        """H_train at the current Gaussians (`update_h_train`), and a fresh calibration against it."""
        from faithfusion.eig.session import build_session

        self.h_train_exact = self.update_h_train(trainer, round_index)
        with self.timer.stage("eig"):
            session = build_session(trainer, acc=self.acc, form=self.sched.eig_form, calib_views=self.sched.calib_views,
                                    progress=False)
        self.calibration = session.calibration
        return session

    # --- one round --------------------------------------------------------------------------------

    def fused_windows(self, use_video: bool) -> list[tuple[list[int], bool]]:
        """The round's windows of captured frames along each camera's path, each with whether it opens its
        path (where a video round ramps the shift in)."""
        stride = max(1, self.sched.view_stride or 1)
        fused_ids = [i for seq in sequences(self.scene, self.scene.train_ids) for i in seq[::stride]]
        firsts = {seq[0] for seq in sequences(self.scene, fused_ids)}
        length = self.sched.window if use_video else 8
        return [(ids, ids[0] in firsts) for ids in windows(self.scene, fused_ids, length)]

    def prepare_window(self, trainer, ids: list[int], shift: float, ramp: bool) -> FusedWindow:
        """The window's shifted cameras and their renders (once per round)."""
        offsets = ramp_shifts(shift, len(ids), self.sched.ramp) if ramp else [shift] * len(ids)
        cams = [self.scene.shifted_camera(i, d, self.scale).to(trainer.device) for i, d in zip(ids, offsets)]
        with self.timer.stage("render"):
            renders = render_cameras(trainer, cams)
        return FusedWindow(ids, offsets, cams, renders)

    def window_eig(self, window: FusedWindow, session) -> WindowEig:
        """The window's calibrated EIG: loss weights and fixer condition; each camera prepared once, for its map
        here and its Fisher when the view joins H_train. Without EIG: weight None, condition 1."""
        rgb = window.renders.rgb
        if session is None:
            return WindowEig(None, rgb.new_ones(rgb.shape[:3]))
        with self.timer.stage("eig"):
            window.prepared = [session.prepare(c) for c in window.cameras]
            maps = [session.eig(c, p) for c, p in zip(window.cameras, window.prepared)]
            arm = self.weighting.maps(session.calibration, maps)  # loss weight, condition, blend mask [T, H, W] each
        return WindowEig(arm.weight, arm.cond, maps, arm.soft_mask)

    def fix_window(self, window: FusedWindow, eig: WindowEig, use_video: bool) -> Tensor:
        """The window's renders repaired `[T, H, W, 3]`: by EIGent as one video (the first frame's reference, as
        curated), or by Difix frame by frame, blended with the render by the EIG soft mask."""
        rgb = window.renders.rgb
        if use_video:
            with self.timer.stage("references"):
                ref = self.refs.for_cameras(window.cameras[:1], window.ids[:1]).to(rgb.device)
            with self.timer.stage("fix_video"):
                return self.video.fixer.fix(rgb[None], ref=ref, eig=eig.cond[None]).images[0]
        with self.timer.stage("references"):
            refs = self.refs.for_cameras(window.cameras, window.ids).to(rgb.device)
        with self.timer.stage("fix_difix"):
            fixed = fix_frames(self.difix.fixer, rgb, refs, eig=eig.cond)
            if eig.maps is not None and self.sched.difix_blend:  # repaint where EIG is high, keep the render elsewhere
                m = eig.soft_mask[..., None]  # [T, H, W, 1]
                fixed = m * fixed + (1 - m) * rgb
        return fixed

    def insert_window(self, trainer, window: FusedWindow, fixed: Tensor, eig: WindowEig, shift: float) -> list:
        """The window's shifted frames as fused views (shift-0 frames were context only); with EIG they join
        H_train weighted per pixel, through the passes their maps prepared."""
        keep = window.kept
        with self.timer.stage("pool_insert"):
            weight = eig.weight[keep] if eig.weight is not None else None
            new = make_views([window.cameras[k] for k in keep], fixed[keep], weights=weight, device=trainer.device)
            if self.sched.fused_lidar:
                attach_lidar(new, self.scene, [window.ids[k] for k in keep])
        if weight is not None:
            with self.timer.stage("h_train"):  # the fused views join H_train
                for k, v in zip(keep, new):
                    self.acc.add_view(v.camera, pixel_weights=v.weight * self.pool.loss_weight,
                                      name=f"fused_{shift:+.1f}", prepared=window.prepared[k])
        return new

    @torch.no_grad()
    def run_round(self, trainer, rnd: Round) -> dict:
        shift = float(rnd.params["shift"])
        self.weighting.start_round(rnd.index)
        session = self.eig_session(trainer, rnd.index) if self.use_eig else None
        use_video = self.video is not None and shift <= self.sched.video_until
        views, weights_mean = [], []
        for side in self.sched.sides:
            for ids, opens_path in self.fused_windows(use_video):
                window = self.prepare_window(trainer, ids, side * shift, use_video and opens_path and self.sched.ramp > 1)
                eig = self.window_eig(window, session)
                fixed = self.fix_window(window, eig, use_video)
                views.extend(self.insert_window(trainer, window, fixed, eig, shift))
                if eig.weight is not None:
                    weights_mean.append(float(eig.weight[window.kept].mean()))
        with self.timer.stage("pool_insert"):
            insert_round_views(self.pool, views, self.sched.pool, self.acc if session is not None else None)
        self.shifts.append(shift)
        stats = {"views": len(views), "pool": len(self.pool.views), "fixer": "eigent" if use_video else "difix",
                 "eig": self.use_eig, "weight_mean": sum(weights_mean) / len(weights_mean) if weights_mean else 1.0}
        if self.use_eig and self.sched.h_train_refresh > 1:
            stats["h_train"] = "exact" if self.h_train_exact else "carried"
        return stats

    def on_step(self, trainer, stats: dict) -> None:
        return None

    def state_dict(self) -> dict:
        return {"shifts": list(self.shifts), "acc": None if self.acc is None else self.acc.state_dict(),
                "calibration": None if self.calibration is None else self.calibration.to_dict()}

    def load_state_dict(self, state: dict, trainer) -> None:
        from faithfusion.eig.calibrate import Calibration

        self.shifts = [float(s) for s in state["shifts"]]
        self.acc = None
        if state.get("acc") is not None:
            self.acc = self._accumulator_empty(trainer)
            self.acc.load_state_dict(state["acc"])
        cal = state.get("calibration")
        if cal is not None:
            cal = dict(cal)
            cal.pop("version", None)
            self.calibration = Calibration(**cal)

    def _accumulator_empty(self, trainer):
        from faithfusion.eig.session import empty_accumulator

        return empty_accumulator(trainer)

    def render_fn(self, trainer):
        """FaithFusion+: the final renders fixed by Difix where their EIG is high (None for plain FaithFusion)."""
        if not self.plus:
            return None
        if not self.use_eig:
            return post_render_fixer(trainer, self.difix.fixer, self.refs)
        return post_render_fixer(trainer, self.difix.fixer, self.refs, gate=self.post_fix_gate(trainer))

    def eig_soft_mask(self, trainer):
        """camera -> `[H, W]` in [0, 1]: the calibrated EIG soft mask against the final H_train (fused views included)."""
        session = self.eig_session(trainer)

        def soft_mask(camera) -> torch.Tensor:
            m, g = session.eig(camera.to(trainer.device))
            return session.calibration.soft_mask(g, m.covered)

        return soft_mask

    def post_fix_gate(self, trainer, soft_mask=None, floor: float | None = None):
        """FaithFusion+'s gate, camera -> `[H, W]`: floor + (1 - floor) * EIG soft mask."""
        soft_mask = self.eig_soft_mask(trainer) if soft_mask is None else soft_mask
        floor = self.sched.post_fix_floor if floor is None else floor
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"faithfusion.post_fix_floor must be in [0, 1], got {floor}")
        return lambda camera: floor + (1.0 - floor) * soft_mask(camera)
