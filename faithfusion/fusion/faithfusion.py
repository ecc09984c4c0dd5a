"""FaithFusion as a schedule: lane shift grows 1 m per round; EIG conditions the fixer and weights the loss.

Round k (first at 3000 published steps, then every 2000) works at shift min(6, k m) on each side:

1. H_train is recomputed at the current parameters over the captured views (sky excluded) AND the
   fused views of earlier rounds (FisherAccumulator), and the EIG scale is re-calibrated on the
   captured views' own maps (eig/calibrate.py);
2. for each shifted camera: its calibrated EIG g, the loss weight w = cal.weight(g) in [w_min, 1]
   and the fixer's condition c = g itself, the calibrated map the fixers were trained on (curation writes
   the same `EigSession.eig` output; EIGent clamps it to [0, 1] and derives its own mask);
3. the renders are repaired: by EIGent (video, windows along the path, conditioned on c) while the
   shift is <= 3 m, by Difix (per frame, its own captured image as reference) after; Difix, which takes no
   EIG, is blended with the render by the calibrated soft mask (`difix_blend`): repainted where EIG is high,
   left alone where the reconstruction is already constrained;
4. the repaired views join the fused pool with View.weight = w, and are added to H_train with pixel
   weights w. A fused view is drawn with probability 0.4 on top of the step's captured view (`paired`): its
   weighted loss is added to the step, so the captured views keep the whole step budget.

`faithfusion-no-eig` (the ablation): w = 1 and c = 1 everywhere, no Fisher at all. `--faithfusion.weighting`
chooses the arm of the cleaner ablation (fusion/weighting.py: uniform, shuffled, none); `--faithfusion.fused-share`,
`--faithfusion.freeze-original`, `--faithfusion.fused-lidar` and `--faithfusion.pool replace` are the loop's
options (fusion/gradient_share.py, anti_drift.py, pool_policy.py); their defaults keep the behaviour above.

`faithfusion+` also fixes the final renders, as Difix3D+ does, but only where EIG is high: the Difix fix of
a render is blended with it by the calibrated soft mask of its EIG against the final H_train (captured and
fused views); `faithfusion+-no-eig` takes the fix everywhere, as Difix3D+ does.
"""

from __future__ import annotations

import math

import torch

from faithfusion.data.scene import SceneData
from faithfusion.fusion.anti_drift import attach_lidar, freeze_geometry_guard
from faithfusion.fusion.config import FaithFusionConfig, FuseConfig
from faithfusion.fusion.fixers import ChosenFixer
from faithfusion.fixers.windows import ramp_shifts
from faithfusion.fusion.paths import sequences, windows
from faithfusion.fusion.gradient_share import pool_loss_weight
from faithfusion.fusion.pool_policy import insert_round_views
from faithfusion.fusion.pools import ReferenceImages, fix_frames, make_views, post_render_fixer, render_cameras
from faithfusion.fusion.rounds import Round
from faithfusion.fusion.weighting import Weighting
from faithfusion.train.views import ViewPool
from faithfusion.utils.timing import NO_TIMER, StageTimer


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
                             paired=self.sched.paired, grad_guard=freeze_geometry_guard() if self.sched.freeze_original else None)
        self.pools = [self.pool]
        self.refs = ReferenceImages(scene, scene.train_ids, cfg.scale)
        self.acc = None  # FisherAccumulator, built at the first round
        self.calibration = None
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

    # --- EIG ------------------------------------------------------------------------------------

    def eig_session(self, trainer):
        """H_train (captured + fused views) at the current parameters, and a fresh calibration."""
        from faithfusion.eig.session import build_session, train_accumulator

        with self.timer.stage("h_train"):
            if self.acc is None:
                self.acc = train_accumulator(trainer)
            else:
                self.acc.recompute(trainer.model)
        with self.timer.stage("eig"):
            session = build_session(trainer, acc=self.acc, form=self.sched.eig_form, calib_views=self.sched.calib_views,
                                    progress=False)
        self.calibration = session.calibration
        return session

    # --- one round --------------------------------------------------------------------------------

    @torch.no_grad()
    def run_round(self, trainer, rnd: Round) -> dict:
        shift = float(rnd.params["shift"])
        self.weighting.start_round(rnd.index)
        session = self.eig_session(trainer) if self.use_eig else None
        use_video = self.video is not None and shift <= self.sched.video_until
        length = self.sched.window if use_video else 8
        views, weights_mean = [], []
        fused_ids = [i for seq in sequences(self.scene, self.scene.train_ids) for i in seq[::max(1, self.sched.view_stride or 1)]]
        firsts = {seq[0] for seq in sequences(self.scene, fused_ids)}
        for side in self.sched.sides:
            for ids in windows(self.scene, fused_ids, length):
                ramp = use_video and ids[0] in firsts and self.sched.ramp > 1
                offsets = ramp_shifts(side * shift, len(ids), self.sched.ramp) if ramp else [side * shift] * len(ids)
                cams = [self.scene.shifted_camera(i, d, self.scale) for i, d in zip(ids, offsets)]
                with self.timer.stage("render"):
                    r = render_cameras(trainer, cams)
                h, w = r.rgb.shape[1:3]
                if session is not None:
                    with self.timer.stage("eig"):
                        maps = [session.eig(c.to(trainer.device)) for c in cams]
                        arm = self.weighting.maps(session.calibration, maps)  # loss weight, condition, blend mask
                        weight, cond = arm.weight, arm.cond  # [T, H, W] each
                else:
                    weight, cond = None, r.rgb.new_ones(len(cams), h, w)
                if use_video:
                    with self.timer.stage("references"):
                        ref = self.refs.for_cameras(cams[:1], ids[:1]).to(r.rgb.device)  # the first frame's, as curated
                    with self.timer.stage("fix_video"):
                        fixed = self.video.fixer.fix(r.rgb[None], ref=ref, eig=cond[None]).images[0]
                else:
                    with self.timer.stage("references"):
                        refs = self.refs.for_cameras(cams, ids).to(r.rgb.device)
                    with self.timer.stage("fix_difix"):
                        fixed = fix_frames(self.difix.fixer, r.rgb, refs, eig=cond)
                        if session is not None and self.sched.difix_blend:  # repaint where EIG is high, keep the render elsewhere
                            m = arm.soft_mask[..., None]  # [T, H, W, 1]
                            fixed = m * fixed + (1 - m) * r.rgb
                with self.timer.stage("pool_insert"):
                    keep = [k for k, d in enumerate(offsets) if abs(d) > 1e-6]  # shift-0 frames were context only
                    cams, fixed = [cams[k] for k in keep], fixed[keep]
                    weight = weight[keep] if weight is not None else None
                    new = make_views(cams, fixed, weights=weight, device=trainer.device)
                    if self.sched.fused_lidar:
                        attach_lidar(new, self.scene, [ids[k] for k in keep])
                    views.extend(new)
                if weight is not None:
                    with self.timer.stage("h_train"):  # the fused views join H_train
                        weights_mean.append(float(weight.mean()))
                        for v in new:
                            self.acc.add_view(v.camera, pixel_weights=v.weight * self.pool.loss_weight, name=f"fused_{shift:+.1f}")
        with self.timer.stage("pool_insert"):
            insert_round_views(self.pool, views, self.sched.pool, self.acc if session is not None else None)
        self.shifts.append(shift)
        return {"views": len(views), "pool": len(self.pool.views), "fixer": "eigent" if use_video else "difix",
                "eig": self.use_eig, "weight_mean": sum(weights_mean) / len(weights_mean) if weights_mean else 1.0}

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
        from faithfusion.eig.accumulator import FisherAccumulator
        from faithfusion.eig.session import sky_background

        return FisherAccumulator(trainer.model, background_fn=sky_background(trainer))

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
