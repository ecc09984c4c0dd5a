"""The fusion methods as schedules over the shared trainer, on a tiny SynthStreet scene (CPU, identity fixers)."""

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from faithfusion.errors import UserError
from faithfusion.cameras import interpolate_pose, quat_to_rotmat, rotmat_to_quat, slerp
from faithfusion.fusion.config import Difix3DSchedule, FaithFusionSchedule, FuseConfig, GenFusionSchedule, fuse_config
from faithfusion.fusion.fixers import MissingFixerError, choose_fixer
from faithfusion.fusion.genfusion import sine_weight
from faithfusion.fusion.paths import progressive_poses, step_pose_toward
from faithfusion.fusion.presets import PRESETS
from faithfusion.fusion.runner import run_method
from faithfusion.train.config import ReconConfig
from faithfusion.synth import generate
from faithfusion.train.config import InitConfig, StrategyConfig


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return generate(tmp_path_factory.mktemp("fusion") / "scene", 0, frames=6, cameras=("front",), width=64, height=48,
                    shifts=(1.0, 2.0))


def tiny(scene_dir, out, method, **kw) -> FuseConfig:
    """The config of preset `method`: 60 steps, rounds every 20 (schedules written for 60 steps: no scaling)."""
    recon = ReconConfig(
        data=scene_dir, out=out, steps=60, device="cpu", progress=False, holdout_every=3, cameras=(0,),
        save_renders=False, init=InitConfig(max_points=1500, random_points=150),
        strategy=StrategyConfig(refine_start=10, refine_every=10, refine_stop=50),
    )
    settings = dict(
        fixer="identity",
        difix3d=Difix3DSchedule(reference_steps=60, warmup=20, every=20, target_shifts=(2.0,)),
        genfusion=GenFusionSchedule(reference_steps=60, warmup=20, every=20, window=3, shifts=(2.0,), lam=0.5),
        faithfusion=FaithFusionSchedule(reference_steps=60, first=20, every=20, max_shift=2.0, video_until=1.0,
                                        window=3, calib_views=2),
    )
    if method == "genfusion":
        settings["video_fixer"] = "identity"
    cfg = fuse_config(PRESETS[method].config, recon, **settings)
    return replace(cfg, **kw)


def run_fusion(name, cfg):
    """(trainer, scene, method, metrics) of a run of preset `name`."""
    run = run_method(name, cfg)
    return run.trainer, run.scene, run.method, run.metrics


def test_schedule_scales_with_steps():
    s = FaithFusionSchedule()
    assert (s.at(s.first, 30_000), s.at(s.every, 30_000)) == (3000, 2000)
    assert (s.at(s.first, 60), s.at(s.every, 60)) == (6, 4)


def test_difix3d_progressive_poses(scene_dir, tmp_path):
    trainer, scene, method, metrics = run_fusion("difix3d", tiny(scene_dir, tmp_path / "run", "difix3d"))
    assert trainer.step == 60 and metrics["fusion"]["completed_rounds"] == 2
    assert metrics["fusion"]["identity_fixer"] and "warning" in metrics["fusion"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["fusion"]["identity_fixer"] is True
    n = len(method.targets)
    assert len(method.novel) == 2 * n and len(method.pool.views) == 2 * n
    assert method.pool.probability == 0.3 and method.pool.loss_weight == 0.3
    for k, target in enumerate(method.targets):
        start = scene.camera(scene.train_ids[k])
        gap0 = float((target.center - start.center).norm())
        for r in range(2):  # 0.5 m closer per round
            gap = float((method.novel[r * n + k].center - target.center).norm())
            assert gap == pytest.approx(gap0 - 0.5 * (r + 1), abs=1e-4)
    assert all(v.mask is not None and v.mask.dtype == torch.bool for v in method.pool.views)


def test_pose_steps_slerp_rotation():
    a = torch.eye(4)
    b = torch.eye(4)
    b[:3, :3] = quat_to_rotmat(torch.tensor([math.cos(0.4), 0.0, math.sin(0.4), 0.0]))
    b[:3, 3] = torch.tensor([2.0, 0.0, 0.0])
    mid = step_pose_toward(a, b, 0.5)
    assert torch.allclose(mid[:3, 3], torch.tensor([0.5, 0.0, 0.0]), atol=1e-6)
    q = slerp(rotmat_to_quat(a[:3, :3]), rotmat_to_quat(b[:3, :3]), 0.25)
    assert torch.allclose(mid[:3, :3], quat_to_rotmat(q), atol=1e-5)
    assert torch.allclose(mid, interpolate_pose(a, b, 0.25), atol=1e-6)
    assert torch.equal(step_pose_toward(a, b, 5.0), b)  # reached, not overshot
    # the nearest known pose is the one that moves
    from faithfusion.cameras import Camera

    K = torch.eye(3)
    far = torch.eye(4)
    far[:3, 3] = torch.tensor([-3.0, 0.0, 0.0])
    cams = [Camera(K, torch.linalg.inv(far), 4, 4), Camera(K, torch.linalg.inv(a), 4, 4)]
    out = progressive_poses(cams, [Camera(K, torch.linalg.inv(b), 4, 4)], 0.5)
    assert torch.allclose(out[0].camtoworld, mid, atol=1e-5)


class InvertingFixer:
    """A deterministic fixer that changes every image: 1 - image."""

    def fix(self, images, ref=None, eig=None, depth=None, ref_depth=None):
        from faithfusion.fixers.base import FixerOutput

        return FixerOutput(images=1.0 - images)


def test_difix3d_plus_evaluates_through_its_render_hook(scene_dir, tmp_path, monkeypatch):
    import faithfusion.fusion.presets as presets
    from faithfusion.eval.metrics import psnr
    from faithfusion.fusion.fixers import ChosenFixer

    monkeypatch.setattr(presets, "choose_fixer", lambda spec, kind, device, flag="--fixer": ChosenFixer(InvertingFixer(), kind, "test"))
    cfg = tiny(scene_dir, tmp_path / "run", "difix3d+", difix3d=Difix3DSchedule(reference_steps=60, warmup=30, every=30, target_shifts=(1.0,)))
    run = run_method("difix3d+", cfg)
    trainer, scene = run.trainer, run.scene
    cam = scene.camera(scene.test_ids[0])
    with torch.no_grad():
        plain, _ = trainer.render_camera(cam)
        assert torch.allclose(run.render(cam), 1.0 - plain.clamp(0, 1), atol=1e-5)  # the hook, not the render
        hooked = [float(psnr(run.render(scene.camera(i))[None].clamp(0, 1), scene.load_image(i)[None])) for i in scene.test_ids]
    figures = run.metrics["fusion"]["test_with_render_hook"]
    assert figures["psnr"] == pytest.approx(sum(hooked) / len(hooked), abs=1e-4)
    assert abs(figures["psnr"] - run.metrics["test"]["psnr"]) > 1.0  # the plain render's figures differ


def test_plain_difix3d_evaluates_its_plain_render(scene_dir, tmp_path):
    run = run_method("difix3d", tiny(scene_dir, tmp_path / "run", "difix3d",
                                     difix3d=Difix3DSchedule(reference_steps=60, warmup=30, every=30, target_shifts=(1.0,))))
    cam = run.scene.camera(run.scene.test_ids[0])
    with torch.no_grad():
        plain, _ = run.trainer.render_camera(cam)
        assert torch.equal(run.render(cam), plain)
    assert "test_with_render_hook" not in run.metrics["fusion"]


def test_genfusion_sine_weight_and_pool(scene_dir, tmp_path):
    cfg = tiny(scene_dir, tmp_path / "run", "genfusion")
    seen = []
    from faithfusion.fusion import genfusion as gf

    orig = gf.GenFusionMethod.on_step

    def spy(self, trainer, stats):
        orig(self, trainer, stats)
        seen.append((trainer.step, self.pool.loss_weight))

    gf.GenFusionMethod.on_step = spy
    try:
        trainer, scene, method, _ = run_fusion("genfusion", cfg)
    finally:
        gf.GenFusionMethod.on_step = orig
    assert (method.start, method.until) == (20, 60)
    for step, w in seen:
        assert w == pytest.approx(sine_weight(step, 20, 60, 0.5))
    assert max(w for _, w in seen) == pytest.approx(0.5, abs=1e-6)  # the peak at (20 + 60) / 2
    assert sine_weight(20, 20, 60, 0.5) == 0.0 and sine_weight(10, 20, 60, 0.5) == 0.0
    # the pool was replaced (not grown) each cycle: one view per training frame at the one shift
    assert len(method.pool.views) == len(scene.train_ids)
    assert all(v.depth is not None and (v.depth >= 0).all() for v in method.pool.views)
    assert type(trainer.strategy).__name__ == "SparsityStrategy"


def test_genfusion_crop_trains_on_the_centre_only_and_repairs_the_captured_path(scene_dir, tmp_path):
    from faithfusion.fusion.genfusion import SSIM_RADIUS, centre_crop_mask

    cfg = tiny(scene_dir, tmp_path / "run", "genfusion")
    cfg = replace(cfg, genfusion=replace(cfg.genfusion, crop=True))
    trainer, scene, method, metrics = run_fusion("genfusion", cfg)
    view = trainer.real.views[0]
    h, w = view.camera.height, view.camera.width
    crop, keep = centre_crop_mask(h, w), centre_crop_mask(h, w, SSIM_RADIUS)
    assert int(crop.sum()) == (h // 2) * (w // 2) and bool(crop[h // 2, w // 2]) and not bool(crop[0, 0])
    assert int(keep.sum()) == (h // 2 - 2 * SSIM_RADIUS) * (w // 2 - 2 * SSIM_RADIUS) and not (keep & ~crop).any()
    assert all(torch.equal(v.mask.cpu(), keep) and v.lidar is None and v.sky_mask is None for v in trainer.real.views)
    loss = trainer.view_loss(view, trainer.real)[0].detach()
    outside = view.image.clone()
    outside[~crop.to(outside.device)] = 255 - outside[~crop.to(outside.device)]  # what the crop hides, changed
    hidden = replace(view, image=outside)
    assert float(trainer.view_loss(hidden, trainer.real)[0].detach()) == pytest.approx(float(loss), rel=1e-6)
    inside = view.image.clone()
    inside[keep.to(inside.device)] = 255 - inside[keep.to(inside.device)]
    assert float(trainer.view_loss(replace(view, image=inside), trainer.real)[0].detach()) > float(loss) + 1e-3
    assert len(method.pool.views) == 2 * len(scene.train_ids)  # shift 0 (the hidden borders) and the 2 m path
    ref = method.refs.image(scene.train_ids[0])
    assert torch.all(ref[~crop] == 0.5) and torch.equal(ref[crop], scene.load_image(scene.train_ids[0], cfg.scale)[crop])
    assert metrics["test"]  # evaluated on full held-out frames


def test_sparsity_strategy_gates_growth_and_never_resets(scene_dir):
    from faithfusion.data.load import load_scene
    from faithfusion.train.config import ReconConfig
    from faithfusion.train.sparsity import SparsityStrategy
    from faithfusion.train.trainer import Trainer

    scene = load_scene(scene_dir, holdout_every=3, cameras=(0,))
    cfg = ReconConfig(data=scene_dir, device="cpu", progress=False, init=InitConfig(max_points=500, random_points=50),
                      strategy=StrategyConfig(name="sparsity", refine_start=0, refine_every=10, reset_every=5))
    tr = Trainer(scene, cfg, torch.device("cpu"))
    st = tr.strategy
    assert isinstance(st, SparsityStrategy)
    assert st.min_seen(0) == 50 and st.min_seen(2500) == 75 and st.min_seen(10_000) == 100
    n = len(tr.model)
    st.state["grad2d"] = torch.full((n,), 1.0)  # every Gaussian has a high gradient ...
    count = torch.zeros(n)
    count[: n // 2] = 60.0  # ... but only the first half was seen >= 50 times
    st.state["count"] = count
    params, opt = tr.model.params, tr.optimizers
    opa = params["opacities"].detach().clone()
    stats = st.refine(params, opt, step=0)
    grown = stats["duplicated"] + stats["split"]
    assert grown == n // 2
    # new Gaussians are copies of the seen half only: the unseen half is untouched
    assert torch.equal(params["opacities"].detach()[n // 2 : n], opa[n // 2 :])
    # training through reset steps (5, 10) never caps opacity at 2 * prune_opa; the default strategy does
    for name, resets in (("sparsity", False), ("default", True)):
        c = replace(cfg, strategy=replace(cfg.strategy, name=name, refine_start=1000))
        t = Trainer(scene, c, torch.device("cpu"))
        t.fit(11, progress=False)  # the last step is 10, a reset step
        top = float(torch.sigmoid(t.model.params["opacities"].detach()).max())
        assert (top <= 2 * c.strategy.prune_opa + 1e-6) == resets


def test_faithfusion_shift_grows_and_eig_weights(scene_dir, tmp_path):
    trainer, scene, method, metrics = run_fusion("faithfusion", tiny(scene_dir, tmp_path / "run", "faithfusion"))
    assert method.shifts == [1.0, 2.0]
    rows = [json.loads(l) for l in (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()]
    assert [r["fixer"] for r in rows] == ["eigent", "difix"]  # video fixer while shift <= video_until
    assert method.pool.probability == 0.4
    w_min = method.calibration.w_min
    # round 1 (EIGent): each camera path opens with a lateral ramp 0 -> 1 m over the first 3 frames, whose shift-0
    # frame is context only; round 2 (Difix): every frame at 2 m. Both sides.
    from faithfusion.fusion.paths import sequences

    paths = sequences(scene, scene.train_ids)
    assert len(method.pool.views) == 2 * (len(scene.train_ids) - len(paths)) + 2 * len(scene.train_ids)
    first_round = method.pool.views[: len(scene.train_ids) - len(paths)]  # the left side of round 1
    lateral = [float((v.camera.center - scene.camera(i).center).norm()) / scene.transform.metres_to_scene(1.0)
               for v, i in zip(first_round, [i for p in paths for i in p[1:]])]
    assert lateral[:2] == pytest.approx([0.5, 1.0], abs=1e-4) and all(abs(x - 1.0) < 1e-4 for x in lateral[2:len(paths[0]) - 1])
    for v in method.pool.views:
        assert v.weight is not None and v.weight.shape == v.image.shape[:2]
        assert float(v.weight.min()) >= w_min - 1e-6 and float(v.weight.max()) <= 1.0 + 1e-6
    # every fused view is part of H_train (weighted by its EIG loss weight): recomputed with it next round
    assert sum(fv.name.startswith("fused") for fv in method.acc.views) == len(method.pool.views)
    # every round's row times its stages: disjoint, so they add up to no more than the round's wall time
    common = {"train", "h_train", "eig", "render", "references", "pool_insert", "checkpoint"}
    assert set(rows[0]["stages"]) == common | {"fix_video"} and set(rows[1]["stages"]) == common | {"fix_difix"}
    for r in rows:
        assert all(v >= 0 for v in r["stages"].values())
        assert sum(r["stages"].values()) <= r["wall_seconds"] + 1e-9
        own = sum(v for k, v in r["stages"].items() if k not in ("train", "checkpoint"))
        assert own <= r["seconds"] + 1e-9 and r["seconds"] <= r["wall_seconds"]
    assert [r["train_steps"] for r in rows] == [20, 20]


def test_stage_timing_changes_no_result(scene_dir, tmp_path, monkeypatch):
    import faithfusion.fusion.rounds as rounds
    from faithfusion.utils.timing import StageTimer

    timed = run_method("faithfusion", tiny(scene_dir, tmp_path / "timed", "faithfusion", stop_after_rounds=2))
    monkeypatch.setattr(rounds, "StageTimer", lambda device: StageTimer(device, enabled=False))
    untimed = run_method("faithfusion", tiny(scene_dir, tmp_path / "untimed", "faithfusion", stop_after_rounds=2))
    rows = [json.loads(line) for line in (tmp_path / "untimed" / "rounds.jsonl").read_text().splitlines()]
    assert [r["stages"] for r in rows] == [{}, {}]  # the timer really was off; two rounds, with training between
    for k, v in timed.trainer.model.params.items():
        assert torch.equal(v, untimed.trainer.model.params[k]), k
    assert len(timed.method.pool.views) == len(untimed.method.pool.views) > 0
    for a, b in zip(timed.method.pool.views, untimed.method.pool.views):
        assert torch.equal(a.image, b.image) and torch.equal(a.weight, b.weight)


def test_faithfusion_no_eig(scene_dir, tmp_path):
    _, _, method, _ = run_fusion("faithfusion-no-eig", tiny(scene_dir, tmp_path / "run", "faithfusion-no-eig",
                                                            faithfusion=FaithFusionSchedule(reference_steps=60, first=30, every=30, max_shift=1.0, window=3)))
    assert method.acc is None and all(v.weight is None for v in method.pool.views)


def test_faithfusion_difix_only_loads_no_video_fixer(scene_dir, tmp_path):
    from faithfusion.fusion.paths import sequences

    sched = FaithFusionSchedule(reference_steps=60, first=30, every=30, max_shift=1.0, video_until=0.0, window=3,
                                calib_views=2, view_stride=2)
    cfg = tiny(scene_dir, tmp_path / "run", "faithfusion", video_fixer=str(tmp_path / "nowhere"), faithfusion=sched)
    _, scene, method, _ = run_fusion("faithfusion", cfg)  # a missing --video-fixer is never looked at
    rows = [json.loads(l) for l in (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()]
    assert method.video is None and [r["fixer"] for r in rows] == ["difix"]
    per_side = sum(len(seq[::2]) for seq in sequences(scene, scene.train_ids))  # every 2nd frame of each camera
    assert len(method.pool.views) == 2 * per_side < 2 * len(scene.train_ids)


def test_resume_at_round_boundary_matches(scene_dir, tmp_path):
    full = tiny(scene_dir, tmp_path / "a", "difix3d")
    tr_a, _, m_a, _ = run_fusion("difix3d", full)
    part = tiny(scene_dir, tmp_path / "b", "difix3d", stop_after_rounds=1)
    _, _, m_b, res = run_fusion("difix3d", part)
    assert res["stopped"] and len(m_b.novel) == len(m_b.targets)
    tr_c, _, m_c, _ = run_fusion("difix3d", replace(part, stop_after_rounds=0, resume=True))
    assert tr_c.step == tr_a.step == 60
    assert len(m_c.novel) == len(m_a.novel)
    for x, y in zip(m_a.novel, m_c.novel):
        assert torch.allclose(x.viewmat, y.viewmat)
    for va, vc in zip(m_a.pool.views, m_c.pool.views):
        assert torch.equal(va.image, vc.image) and torch.equal(va.mask, vc.mask)
    assert len(tr_a.model) == len(tr_c.model)
    assert torch.allclose(tr_a.model.params["means"], tr_c.model.params["means"], atol=1e-5)


@pytest.mark.parametrize("method", ["difix3d", "genfusion", "faithfusion"])
def test_fusion_loads_its_fixers_on_the_training_device(scene_dir, tmp_path, monkeypatch, method):
    import faithfusion.fixers.load as load_module
    from faithfusion.fusion.fixers import identity_fixer
    from faithfusion.train.recon import load_scene_for

    for kind in ("difix", "eigent", "genfusion"):
        identity_fixer(kind).save_pretrained(tmp_path / kind)
    asked = []

    def loader(directory, map_location="cpu", **overrides):
        asked.append((Path(directory).name, map_location))
        return identity_fixer(Path(directory).name)

    monkeypatch.setattr(load_module, "load_fixer", loader)
    folders = {"difix3d": {"fixer": "difix"}, "genfusion": {"video_fixer": "genfusion"},
               "faithfusion": {"fixer": "difix", "video_fixer": "eigent"}}[method]
    cfg = tiny(scene_dir, tmp_path / "run", method, **{k: str(tmp_path / v) for k, v in folders.items()})
    device = torch.device("cpu", 0)  # an index the default "cpu" lacks: the very device object must arrive
    PRESETS[method].build(cfg, load_scene_for(cfg), device)
    assert asked and all(d == device and d.index == 0 for _, d in asked)
    assert sorted(k for k, _ in asked) == sorted(folders.values())


def test_h_train_refresh_carries_h_through_densification_between_exact_rounds(scene_dir, tmp_path):
    from faithfusion.fusion.runner import method_trainer
    from faithfusion.train.densify import lineage_since_mark
    from faithfusion.train.recon import load_scene_for

    sched = FaithFusionSchedule(reference_steps=60, first=20, every=20, max_shift=2.0, video_until=0.0, window=3,
                                calib_views=2, h_train_refresh=2)
    cfg = tiny(scene_dir, tmp_path / "run", "faithfusion", faithfusion=sched,
               strategy=StrategyConfig(refine_start=2, refine_every=4, refine_stop=50))
    scene = load_scene_for(cfg)
    method, _ = PRESETS["faithfusion"].build(cfg, scene, torch.device("cpu"))
    trainer = method_trainer(method, cfg, scene, torch.device("cpu"))

    def exact() -> dict:
        fresh = method._accumulator_empty(trainer)
        fresh.views = list(method.acc.views)
        fresh.recompute()
        return fresh.H

    trainer.fit(5, progress=False)
    assert method.update_h_train(trainer, 0)  # the first round builds it
    before = {g: h.clone() for g, h in method.acc.H.items()}
    n0 = len(trainer.model)
    trainer.fit(9, progress=False)  # densification at step 8
    assert len(trainer.model) != n0
    ancestors = lineage_since_mark(trainer.strategy, len(trainer.model))
    assert not method.update_h_train(trainer, 1)  # carried
    for g, h in method.acc.H.items():
        assert h.shape == trainer.model.params[g].shape and torch.equal(h, before[g][ancestors])
    assert not torch.equal(method.acc.H["means"], exact()["means"])  # an approximation, not a recompute
    trainer.fit(13, progress=False)  # densification at step 12
    assert method.update_h_train(trainer, 2)  # a refresh round: exact again
    ref = exact()
    assert all(torch.equal(h, ref[g]) for g, h in method.acc.H.items())
    method.sched = replace(sched, h_train_refresh=1)  # the default: exact at every round, as before the option
    trainer.fit(17, progress=False)
    assert method.update_h_train(trainer, 3)
    ref = exact()
    assert all(torch.equal(h, ref[g]) for g, h in method.acc.H.items())
    with pytest.raises(ValueError, match="h_train_refresh"):
        method.sched = replace(sched, h_train_refresh=0)
        method.update_h_train(trainer, 4)


def test_missing_fixer_is_named(tmp_path, monkeypatch):
    import faithfusion.fusion.fixers as fixers_module

    monkeypatch.setattr(fixers_module, "WEIGHTS_ROOT", tmp_path / "weights")  # no shipped weights there
    with pytest.raises(MissingFixerError, match="weights/eigent"):
        choose_fixer(None, "eigent")
    with pytest.raises(MissingFixerError, match=str(tmp_path)):
        choose_fixer(tmp_path, "difix")


@pytest.mark.parametrize("kind,cls", [("difix", "Difix"), ("eigent", "EIGent"), ("genfusion", "GenFusion")])
def test_shipped_fixers_are_the_trained_defaults(kind, cls):
    chosen = choose_fixer(None, kind)
    size = sum(p.stat().st_size for p in Path(chosen.source).iterdir())
    assert not chosen.identity and type(chosen.fixer).__name__ == cls and size <= 15 * 2**20
    g = torch.Generator().manual_seed(0)
    T = 1 if kind == "difix" else 16
    img = torch.rand(1, T, 32, 48, 3, generator=g)  # [B, T, H, W, 3]
    kw = {} if kind == "difix" else {"ref": img[:, 0], "eig": torch.rand(1, T, 32, 48, generator=g),
                                     "depth": torch.rand(1, T, 32, 48, generator=g) * 10 + 1}
    with torch.no_grad():
        out = chosen.fixer.fix(img, **kw).images
    assert out.shape == img.shape and (out - img).abs().mean() > 1e-3  # trained: not the identity it starts as


def test_fuse_subcommand_parses_only_its_own_flags(tmp_path):
    import tyro

    from faithfusion.commands import fuse_table
    from faithfusion.fusion.config import Difix3DConfig, FaithFusionConfig

    table = fuse_table()
    assert list(table) == list(PRESETS)
    cmd = table["faithfusion-no-eig"]
    cfg = tyro.cli(cmd.config, args=["--data", str(tmp_path), "--out", str(tmp_path / "r"), "--fixer", "identity",
                                     "--steps", "60", "--faithfusion.every", "20"])
    assert type(cfg) is FaithFusionConfig and cfg.fixer == "identity" and cfg.steps == 60 and cfg.faithfusion.every == 20
    assert cmd.run.args == ("faithfusion-no-eig",)
    with pytest.raises(SystemExit):  # difix3d has no faithfusion schedule
        tyro.cli(table["difix3d"].config, args=["--data", str(tmp_path), "--faithfusion.every", "20"])
    assert table["difix3d+"].config is Difix3DConfig and not hasattr(Difix3DConfig(), "faithfusion")


def test_a_method_name_is_resolved_by_its_preset_only():
    from faithfusion.fusion.presets import UnknownMethodError, preset

    assert preset("faithfusion+").training == "faithfusion" and preset("difix3d").training == "difix3d"
    assert preset("faithfusion+-no-eig").training == "faithfusion-no-eig" and preset("3dgs").build is None
    with pytest.raises(UnknownMethodError, match="faithfusion-no-eig"):
        preset("nerf")


def test_demo_rejects_unknown_methods_before_any_work(tmp_path):
    from faithfusion.commands.demo import DemoConfig, run_demo
    from faithfusion.errors import UserError

    with pytest.raises(UserError, match="faithfusion-no-eig"):
        run_demo(DemoConfig(out=tmp_path / "d", quick=True, methods=("3dgs", "nerf")))
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("blend", [True, False])
def test_faithfusion_difix_blend_keeps_the_render_where_eig_is_low(scene_dir, tmp_path, monkeypatch, blend):
    import faithfusion.fusion.faithfusion as ff

    monkeypatch.setattr(ff, "fix_frames", lambda fixer, images, refs, eig=None: torch.ones_like(images))  # a white fixer
    sched = FaithFusionSchedule(reference_steps=60, first=30, every=30, max_shift=1.0, video_until=0.0, window=3,
                                calib_views=2, difix_blend=blend)
    _, _, method, _ = run_fusion("faithfusion", tiny(scene_dir, tmp_path / "run", "faithfusion", faithfusion=sched))
    images = torch.stack([v.image.float() / (255.0 if v.image.dtype == torch.uint8 else 1.0) for v in method.pool.views])
    white = float((images > 0.999).all(-1).float().mean())
    assert white == 1.0 if not blend else white < 0.9


def test_paired_pool_adds_to_the_step_and_alternating_pool_replaces_it():
    from faithfusion.train.views import ViewPool, choose_paired, choose_pool

    real, g = ViewPool("real", [object()]), torch.Generator().manual_seed(0)
    paired = ViewPool("fused", [object()], probability=0.4, paired=True)
    alternating = ViewPool("novel", [object()], probability=0.4)
    n = 4000
    assert all(choose_pool(real, [paired], g) is real for _ in range(n))  # the step's own view stays captured
    share = sum(bool(choose_paired([paired, alternating], g)) for _ in range(n)) / n
    assert abs(share - 0.4) < 0.03
    assert not choose_paired([alternating], g) and not choose_paired([ViewPool("empty", [], 1.0, paired=True)], g)
    taken = sum(choose_pool(real, [alternating], g) is alternating for _ in range(n)) / n
    assert abs(taken - 0.4) < 0.03


def test_paired_faithfusion_trains_every_step_on_a_captured_view(scene_dir, tmp_path, monkeypatch):
    from faithfusion.train.trainer import Trainer

    seen: list[tuple[str, list[str]]] = []
    original = Trainer.train_step

    def spy(self):
        stats = original(self)
        seen.append((stats["pool"], stats["paired"]))
        return stats

    monkeypatch.setattr(Trainer, "train_step", spy)
    sched = FaithFusionSchedule(reference_steps=60, first=20, every=20, max_shift=2.0, video_until=0.0, window=3,
                                calib_views=2, paired=True, probability=0.5)
    _, _, method, _ = run_fusion("faithfusion", tiny(scene_dir, tmp_path / "run", "faithfusion", faithfusion=sched))
    assert method.pool.paired and len(seen) == 60
    assert all(pool == "real" for pool, _ in seen)
    extra = [bool(p) for _, p in seen]
    assert not any(extra[:20]) and 10 <= sum(extra[20:]) <= 30  # fused views join after the first round, ~half the steps


def test_faithfusion_plus_fixes_final_renders_only_where_eig_is_high(scene_dir, tmp_path, monkeypatch):
    import faithfusion.fusion.pools as pools
    from faithfusion.fusion.runner import load_fusion_run

    sched = FaithFusionSchedule(reference_steps=60, first=30, every=30, max_shift=1.0, video_until=0.0, window=3,
                                calib_views=2)
    run = tmp_path / "run"
    trainer, scene, method, metrics = run_fusion("faithfusion", tiny(scene_dir, run, "faithfusion", faithfusion=sched))
    assert method.render_fn(trainer) is None and "test_with_render_hook" not in metrics["fusion"]
    monkeypatch.setattr(pools, "fix_frames", lambda fixer, images, refs, eig=None, chunk=8: torch.ones_like(images))
    with pytest.raises(ValueError, match="cannot stand for"):
        load_fusion_run(run, "difix3d+")
    loaded = load_fusion_run(run, "faithfusion+")  # the same training, rebuilt from its final round
    tr, plus = loaded.trainer, loaded.method
    assert plus.name == "faithfusion+" and torch.equal(tr.model.params["means"], trainer.model.params["means"])
    cam = scene.shifted_camera(scene.train_ids[0], 2.0)
    with torch.no_grad():
        rgb, _ = tr.render_camera(cam)
        out = plus.render_fn(tr)(cam)
        m, g = plus.eig_session(tr).eig(cam)
        gate = plus.calibration.soft_mask(g, m.covered)[..., None]  # [H, W, 1]
    assert torch.allclose(out, gate + (1 - gate) * rgb.clamp(0, 1), atol=1e-5)  # white fix blended by EIG
    assert 0.0 < float(gate.mean()) < 1.0
    plus.sched.post_fix_floor = 0.5  # half the fix everywhere, the EIG gate the rest
    with torch.no_grad():
        half = plus.render_fn(tr)(cam)
    g2 = 0.5 + 0.5 * gate
    assert torch.allclose(half, g2 + (1 - g2) * rgb.clamp(0, 1), atol=1e-5)
    with pytest.raises(ValueError, match="post_fix_floor"):
        plus.post_fix_gate(tr, floor=1.5)
    no_eig = tiny(scene_dir, tmp_path / "b", "faithfusion+-no-eig", faithfusion=sched)
    tr_b, _, method_b, _ = run_fusion("faithfusion+-no-eig", no_eig)  # the ablation fixes everywhere, like Difix3D+
    with torch.no_grad():
        assert torch.allclose(method_b.render_fn(tr_b)(cam), torch.ones_like(out))


def test_demo_resume_loads_a_finished_method_instead_of_training_it_again(tmp_path, monkeypatch):
    import json

    import faithfusion.commands.demo as demo

    tiny_sizes = {"frames": 6, "width": 64, "height": 48, "shifts": (1.0,), "steps": 20, "max_points": 500,
                  "random_points": 100, "frame_stride": 3, "fuse_view_stride": 3}
    monkeypatch.setattr(demo, "demo_sizes", lambda cfg: dict(tiny_sizes))
    out = tmp_path / "d"
    demo.run_demo(demo.DemoConfig(out=out, quick=True, methods=("3dgs",), device="cpu"))
    first = json.loads((out / "demo.json").read_text())
    with pytest.raises(UserError, match="--resume"):  # the user's folder is never replaced unasked
        demo.run_demo(demo.DemoConfig(out=out, quick=True, methods=("3dgs",), device="cpu"))
    stale = out / ".demo_seconds.json.123.abcd.tmp"  # what a kill during a write leaves
    stale.write_text("{")
    demo.run_demo(demo.DemoConfig(out=out, quick=True, methods=("3dgs",), device="cpu", resume=True))
    assert not stale.exists()
    again = json.loads((out / "demo.json").read_text())
    assert again["resumed"] and again["train_seconds"]["3dgs"] == first["train_seconds"]["3dgs"]  # nothing trained
    assert again["by_magnitude"] == first["by_magnitude"]  # the same final model, evaluated again
    assert again["seconds_all_commands"]["3dgs"] == pytest.approx(first["seconds"]["3dgs"] + again["seconds"]["3dgs"])


def test_demo_records_the_steps_that_ran_checkpoints_while_training_and_refuses_another_seed(tmp_path, monkeypatch):
    import json

    import faithfusion.commands.demo as demo
    from faithfusion.errors import UserError

    tiny_sizes = {"frames": 6, "width": 64, "height": 48, "shifts": (1.0,), "steps": 20, "max_points": 500,
                  "random_points": 100, "frame_stride": 3, "fuse_view_stride": 3}
    monkeypatch.setattr(demo, "demo_sizes", lambda cfg: dict(tiny_sizes))
    out = tmp_path / "d"
    demo.run_demo(demo.DemoConfig(out=out, quick=True, methods=("3dgs",), device="cpu", steps=10))
    record = json.loads((out / "demo.json").read_text())
    assert record["sizes"]["steps"] == 10 and "10 training steps" in (out / "report.md").read_text()
    assert "10 training steps" in (out / "report.html").read_text()  # the same report as one page
    assert len(list((out / "3dgs" / "ckpt").glob("*.pt"))) > 1  # checkpoints during training, not only at its end
    with pytest.raises(UserError, match=r"demo\.json.*seed 0 \(asked 5\)"):
        demo.run_demo(demo.DemoConfig(out=out, quick=True, methods=("3dgs",), device="cpu", steps=10, seed=5, resume=True))
    with pytest.raises(UserError, match=r"demo\.json.*steps 10 \(asked 20\)"):
        demo.run_demo(demo.DemoConfig(out=out, quick=True, methods=("3dgs",), device="cpu", resume=True))
    (out / "demo.json").unlink()  # a demo interrupted before its end: the scene still tells its seed
    with pytest.raises(UserError, match=r"scene\.json.*seed 0 \(asked 5\)"):
        demo.run_demo(demo.DemoConfig(out=out, quick=True, methods=("3dgs",), device="cpu", steps=10, seed=5, resume=True))


def test_demo_honours_a_view_stride_the_user_sets(tmp_path, monkeypatch):
    import faithfusion.commands.demo as demo
    import faithfusion.fusion.runner as runner

    seen = {}

    def fake_run_method(name, cfg):
        seen[name] = cfg.faithfusion.view_stride
        raise KeyboardInterrupt  # stop before any training

    monkeypatch.setattr(demo, "demo_sizes", lambda cfg: {"frames": 4, "width": 32, "height": 24, "shifts": (1.0,), "steps": 4,
                                                         "max_points": 100, "random_points": 10, "frame_stride": 3,
                                                         "fuse_view_stride": 3})
    monkeypatch.setattr(runner, "run_method", fake_run_method)
    for stride, expected in ((None, 3), (1, 1)):
        with pytest.raises(KeyboardInterrupt):
            demo.run_demo(demo.DemoConfig(out=tmp_path / f"d{stride}", quick=True, methods=("faithfusion",), device="cpu",
                                          fixer="identity", faithfusion=FaithFusionSchedule(view_stride=stride)))
        assert seen["faithfusion"] == expected


def test_faithfusion_loop_options_uniform_weights_replace_pool_frozen_geometry_lidar_and_share(scene_dir, tmp_path):
    from faithfusion.fusion.gradient_share import loss_weight_for_share

    sched = FaithFusionSchedule(reference_steps=60, first=20, every=20, max_shift=2.0, video_until=1.0, window=3,
                                calib_views=2, weighting="uniform", pool="replace", freeze_original=True,
                                fused_lidar=True, fused_share=0.5, share_views=2)
    _, scene, method, _ = run_fusion("faithfusion", tiny(scene_dir, tmp_path / "run", "faithfusion", faithfusion=sched))
    assert method.pool.loss_weight == pytest.approx(loss_weight_for_share(0.5, 0.4, True, views=2))
    assert method.pool.draws == 2
    assert method.pool.grad_guard is not None
    # replace: only the last round's views (2 m, every training frame, both sides), and only they are in H_train
    assert len(method.pool.views) == 2 * len(scene.train_ids)
    assert sum(fv.name.startswith("fused") for fv in method.acc.views) == len(method.pool.views)
    assert {fv.name for fv in method.acc.views if fv.name.startswith("fused")} == {"fused_+2.0"}
    for v in method.pool.views:
        assert float(v.weight.max() - v.weight.min()) < 1e-6  # uniform: one weight per view
        assert v.lidar is not None and v.lidar.shape[1] == 3 and len(v.lidar) > 0
