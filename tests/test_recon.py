"""End-to-end reconstruction on tiny scenes written on the fly (CPU, torch backend)."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from faithfusion.data.load import load_scene
from faithfusion.gaussians.ply import load_ply
from faithfusion.train.checkpoint import latest_checkpoint
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
from faithfusion.train.recon import RunFolderError, run_recon
from faithfusion.train.trainer import Trainer
from tests.scene_fixtures import write_drivestudio_scene, write_nerfstudio_scene


def tiny_cfg(data: Path, out: Path, steps: int, **kw) -> ReconConfig:
    kw.setdefault("strategy", StrategyConfig(refine_start=5, refine_every=5))
    return ReconConfig(
        data=data, out=out, steps=steps, device="cpu", holdout_every=3, progress=False, ckpt_every=10,
        init=InitConfig(random_points=200), **kw,
    )


def test_drivestudio_scene_trains_and_lidar_initialises(tmp_path):
    write_drivestudio_scene(tmp_path / "ds", n_steps=6, cams=(0, 1, 2), size=(64, 48))
    scene = load_scene(tmp_path / "ds", holdout_every=3, cameras=(0, 1, 2))
    assert scene.kind == "driving" and scene.points.shape[0] > 0
    cfg = tiny_cfg(tmp_path / "ds", tmp_path / "run", steps=20)
    trainer = Trainer(scene, cfg, torch.device("cpu"))
    # every lidar point became a Gaussian (plus the random ones), at the same place
    n_lidar = scene.points.shape[0]
    assert len(trainer.model) == n_lidar + cfg.init.random_points
    assert torch.allclose(trainer.model.means[:n_lidar].detach(), scene.points.float())
    assert trainer.sky is not None  # driving scenes get a sky model
    metrics = run_recon(cfg, scene)
    out = tmp_path / "run"
    for name in ("config.yaml", "metrics.json", "point_cloud.ply"):
        assert (out / name).is_file(), name
    assert latest_checkpoint(out / "ckpt").name == "step_000020.pt"
    assert any((out / "renders").iterdir())
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 20 and saved["test"]["psnr"] > 5
    assert yaml.safe_load((out / "config.yaml").read_text())["steps"] == 20
    model = load_ply(out / "point_cloud.ply")
    assert len(model) == metrics["num_gaussians"]


def test_training_lowers_loss_on_nerfstudio_scene(tmp_path):
    write_nerfstudio_scene(tmp_path / "ns", n=6, size=(48, 36))
    scene = load_scene(tmp_path / "ns", holdout_every=0)
    cfg = tiny_cfg(tmp_path / "ns", tmp_path / "run", steps=60, strategy=StrategyConfig(refine_start=1000))
    trainer = Trainer(scene, cfg, torch.device("cpu"))
    steps = [trainer.train_step() for _ in range(6)]
    # the figures stay on the device as 0-dim tensors: no host synchronisation inside the step
    assert all(isinstance(s[k], torch.Tensor) and s[k].dim() == 0 for s in steps for k in ("loss", "psnr"))
    assert all(0 < float(s["psnr"]) < 100 for s in steps)
    first = sum(float(s["loss"]) for s in steps) / 6
    trainer.fit(54, progress=False)
    last = sum(float(trainer.train_step()["loss"]) for _ in range(6)) / 6
    assert last < 0.8 * first


def test_resume_continues_from_checkpoint_and_refuses_overwrite(tmp_path):
    write_nerfstudio_scene(tmp_path / "ns", n=6, size=(48, 36))
    cfg = tiny_cfg(tmp_path / "ns", tmp_path / "run", steps=10)
    run_recon(cfg)
    with pytest.raises(RunFolderError, match="run"):
        run_recon(cfg)  # no --resume, no --overwrite: the user's run is kept
    more = tiny_cfg(tmp_path / "ns", tmp_path / "run", steps=15, resume=True)
    metrics = run_recon(more)
    assert metrics["steps"] == 15
    assert latest_checkpoint(tmp_path / "run" / "ckpt").name == "step_000015.pt"


def test_resume_reproduces_uninterrupted_run(tmp_path):
    """Train 8 steps straight vs 4 + checkpoint + 4: same parameters."""
    write_nerfstudio_scene(tmp_path / "ns", n=6, size=(48, 36))
    scene = load_scene(tmp_path / "ns", holdout_every=0)
    cfg = tiny_cfg(tmp_path / "ns", tmp_path / "run", steps=8, strategy=StrategyConfig(refine_start=2, refine_every=3))
    a = Trainer(scene, cfg, torch.device("cpu"))
    a.fit(8, progress=False)
    b = Trainer(scene, cfg, torch.device("cpu"))
    b.fit(4, progress=False)
    state = b.state_dict()
    c = Trainer(scene, cfg, torch.device("cpu"))
    c.load_state_dict(state)
    c.fit(8, progress=False)
    assert len(a.model) == len(c.model)
    for k in a.model.params:
        assert torch.allclose(a.model.params[k], c.model.params[k], atol=1e-5), k


def test_appearance_learns_per_image_exposure_and_resumes(tmp_path):
    """Images darkened per view: the per-image affine absorbs it; novel renders use the identity."""
    write_nerfstudio_scene(tmp_path / "ns", n=6, size=(48, 36))
    scene = load_scene(tmp_path / "ns", holdout_every=0)
    cfg = tiny_cfg(tmp_path / "ns", tmp_path / "run", steps=30, appearance=True, appearance_lr=1e-2,
                   strategy=StrategyConfig(refine_start=1000))
    trainer = Trainer(scene, cfg, torch.device("cpu"))
    dark = 2  # one view is captured at half exposure
    trainer.real.views[dark].image = (trainer.real.views[dark].image.float() * 0.5).round().to(torch.uint8)
    trainer.fit(30, progress=False)
    gains = torch.stack([trainer.appearance.affine[v.index, :, :3].diagonal().mean() for v in trainer.real.views])
    assert gains[dark] < gains[[i for i in range(len(gains)) if i != dark]].min()
    state = trainer.state_dict()
    again = Trainer(scene, cfg, torch.device("cpu"))
    again.load_state_dict(state)
    assert torch.equal(again.appearance.affine, trainer.appearance.affine)


def test_densification_carries_the_lineage_of_every_gaussian():
    """After a mark, clone / split / prune (gsplat's ops, as the default and sparsity strategies call them) leave
    each Gaussian the index of its ancestor; mcmc, whose relocation overwrites Gaussians in place, carries none."""
    from gsplat.strategy.ops import duplicate, remove, split

    from faithfusion.train.densify import GsplatDefault, GsplatMCMC, lineage_since_mark, mark_lineage

    n = 6
    g = torch.Generator().manual_seed(0)
    params = torch.nn.ParameterDict({
        "means": torch.randn(n, 3, generator=g), "scales": torch.full((n, 3), -2.0), "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.zeros(n), "sh0": torch.arange(n, dtype=torch.float32)[:, None, None].repeat(1, 1, 3),
        "shN": torch.zeros(n, 3, 3),
    })  # sh0 = each Gaussian's own index: clone and split copy it, as they should copy the lineage
    optimizers = {k: torch.optim.Adam([p], lr=0.01) for k, p in params.items()}
    strategy = GsplatDefault(StrategyConfig())
    strategy.initialize(params, optimizers, 1.0)
    assert lineage_since_mark(strategy, n) is None
    assert mark_lineage(strategy, n, "cpu")
    duplicate(params=params, optimizers=optimizers, state=strategy.state, mask=torch.arange(n) == 1)  # 7
    split(params=params, optimizers=optimizers, state=strategy.state, mask=torch.arange(n + 1) == 2)  # 8
    remove(params=params, optimizers=optimizers, state=strategy.state, mask=torch.arange(n + 2) == 0)  # 7
    ancestors = lineage_since_mark(strategy, len(params["means"]))
    assert sorted(ancestors.tolist()) == [1, 1, 2, 2, 3, 4, 5]
    assert torch.equal(ancestors.float(), params["sh0"][:, 0, 0])
    assert lineage_since_mark(strategy, 8) is None  # another count: unknown, not guessed
    assert not mark_lineage(GsplatMCMC(StrategyConfig()), n, "cpu")
