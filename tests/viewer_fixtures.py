"""One tiny SynthStreet run (front camera, 6 frames, 64x48, ground truth at +-3 m) shared by the viewer tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

_RUNS: dict[str, Path] = {}


def make_tiny_run(root: Path, steps: int = 30) -> Path:
    """Generate the scene under `root` and train `steps` CPU steps into root/run; returns the run folder."""
    from faithfusion.synth import generate
    from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
    from faithfusion.train.recon import run_recon

    scene = generate(root / "scene", 3, frames=6, cameras=("front",), width=64, height=48, shifts=(3.0,))
    cfg = ReconConfig(data=scene, out=root / "run", steps=steps, device="cpu", progress=False, holdout_every=3,
                      ckpt_every=0, cameras=(0,), save_renders=False,
                      init=InitConfig(max_points=2000, random_points=200), strategy=StrategyConfig(refine_start=1000))
    run_recon(cfg)
    return root / "run"


@pytest.fixture(scope="session")
def tiny_view_run(tmp_path_factory) -> Path:
    """The run folder (made once per test session, one torch thread while it trains)."""
    if "run" not in _RUNS:
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _RUNS["run"] = make_tiny_run(tmp_path_factory.mktemp("viewer"))
        finally:
            torch.set_num_threads(n)
    return _RUNS["run"]
