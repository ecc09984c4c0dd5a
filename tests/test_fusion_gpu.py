"""FaithFusion on CUDA (`-m gpu`): the fixers loaded from saved folders stay on the GPU through a round."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from faithfusion.fusion.config import FaithFusionSchedule, fuse_config
from faithfusion.fusion.fixers import identity_fixer
from faithfusion.fusion.presets import PRESETS
from faithfusion.fusion.runner import run_method
from faithfusion.synth import generate
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig

pytestmark = pytest.mark.gpu

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def faithfusion_rounds(tmp_path, device: str):
    """Two FaithFusion rounds (EIGent at 1 m, Difix at 2 m) with identity fixers saved and loaded back."""
    scene = generate(tmp_path / "scene", 0, frames=6, cameras=("front",), width=64, height=48, shifts=(1.0,))
    for kind in ("difix", "eigent"):
        identity_fixer(kind).save_pretrained(tmp_path / kind)  # loaded back through from_pretrained
    recon = ReconConfig(data=scene, out=tmp_path / "run", steps=60, device=device, progress=False, holdout_every=3,
                        cameras=(0,), save_renders=False, init=InitConfig(max_points=1500, random_points=150),
                        strategy=StrategyConfig(refine_start=10, refine_every=10, refine_stop=30))
    sched = FaithFusionSchedule(reference_steps=60, first=20, every=20, max_shift=2.0, video_until=1.0, window=3,
                                calib_views=2)
    cfg = fuse_config(PRESETS["faithfusion"].config, recon, fixer=str(tmp_path / "difix"),
                      video_fixer=str(tmp_path / "eigent"), faithfusion=sched)
    return run_method("faithfusion", replace(cfg, stop_after_rounds=2))


@needs_cuda
def test_faithfusion_round_on_cuda_keeps_fixers_on_cuda(tmp_path):
    run = faithfusion_rounds(tmp_path, "cuda")
    assert run.trainer.device.type == "cuda" and run.method.shifts == [1.0, 2.0] and run.method.pool.views
    for chosen in (run.method.difix, run.method.video):
        assert chosen.source != "identity"
        devices = {p.device.type for p in chosen.fixer.parameters()}
        assert devices == {"cuda"}, (chosen.kind, devices)
    assert all(v.image.is_cuda for v in run.method.pool.views)
