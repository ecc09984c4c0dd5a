"""The fusion loop's options: EIG ablation arms, fused gradient share, anti-drift measures, pool replacement."""

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from faithfusion.eig.calibrate import Calibration
from faithfusion.fusion.anti_drift import freeze_geometry_guard, visible_lidar
from faithfusion.fusion.config import FaithFusionSchedule
from faithfusion.fusion.gradient_share import FusedShareError, fused_share, loss_weight_for_share, pool_loss_weight
from faithfusion.fusion.pool_policy import UnknownPoolModeError, insert_round_views
from faithfusion.fusion.pools import load_pool_state, pool_state
from faithfusion.fusion.weighting import FusedMaps, UnknownWeightingError, Weighting, apply_weighting
from faithfusion.train.views import View, ViewPool, choose_paired, choose_pool


def window_maps(t=3, h=5, w=7, seed=0) -> FusedMaps:
    g = torch.rand(t, h, w, generator=torch.Generator().manual_seed(seed)) * 3  # [T, H, W] a calibrated EIG
    return FusedMaps(weight=0.1 + 0.9 * g / 3, cond=g, soft_mask=g / 3)


# --- weighting arms ------------------------------------------------------------------------------


def test_uniform_arm_is_each_views_own_mean():
    maps = window_maps()
    arm = apply_weighting("uniform", maps)
    for a, m in ((arm.weight, maps.weight), (arm.cond, maps.cond), (arm.soft_mask, maps.soft_mask)):
        assert a.shape == m.shape
        for k in range(m.shape[0]):
            assert torch.allclose(a[k], m[k].mean().expand_as(m[k]))  # constant, equal to the view's mean
        assert not torch.allclose(a[0], a[1])  # per view, not one mean over the window


def test_shuffled_arm_permutes_each_view_with_one_permutation_for_all_maps():
    maps = window_maps()
    arm = apply_weighting("shuffled", maps, torch.Generator().manual_seed(1))
    for k in range(maps.weight.shape[0]):
        assert torch.equal(arm.weight[k].flatten().sort().values, maps.weight[k].flatten().sort().values)
        assert not torch.equal(arm.weight[k], maps.weight[k])
    # weight, condition and mask move together: the pixel's triple is kept
    assert torch.allclose(arm.weight, 0.1 + 0.9 * arm.cond / 3) and torch.allclose(arm.soft_mask, arm.cond / 3)
    # seeded per round: a resumed round draws the same shuffle, another round another one
    a, b = Weighting("shuffled", seed=3), Weighting("shuffled", seed=3)
    cal = Calibration(ref=1.0)
    eig = [(SimpleNamespace(covered=torch.ones(4, 6, dtype=torch.bool)), maps.cond[0, :4, :6])]
    a.start_round(2), b.start_round(2)
    assert torch.equal(a.maps(cal, eig).weight, b.maps(cal, eig).weight)
    b.start_round(3)
    assert not torch.equal(a.maps(cal, eig).weight, b.maps(cal, eig).weight)


def test_eig_arm_is_the_calibrated_maps_and_none_is_ones():
    cal = Calibration(ref=1.0, w_min=0.2)
    g = torch.tensor([[0.0, 0.5], [1.0, 4.0]])
    covered = torch.tensor([[True, True], [True, False]])
    arm = Weighting("eig").maps(cal, [(SimpleNamespace(covered=covered), g)])
    assert torch.equal(arm.weight[0], cal.weight(g, covered)) and torch.equal(arm.cond[0], g)
    assert torch.equal(arm.soft_mask[0], cal.soft_mask(g, covered))
    none = apply_weighting("none", window_maps())
    assert all(bool((x == 1).all()) for x in (none.weight, none.cond, none.soft_mask))
    assert not Weighting("none").uses_eig and Weighting("uniform").uses_eig
    with pytest.raises(UnknownWeightingError, match="weighting"):
        Weighting("random")


# --- gradient share ------------------------------------------------------------------------------


def test_fused_share_of_the_defaults_and_its_inverse():
    assert fused_share(0.4, 0.1, paired=True) == pytest.approx(0.04 / 1.04)
    for paired in (True, False):
        for s in (0.0, 0.1, 0.5, 0.8):
            lam = loss_weight_for_share(s, 0.4, paired)
            assert fused_share(0.4, lam, paired) == pytest.approx(s)
    assert loss_weight_for_share(0.5, 0.4, paired=True) == pytest.approx(2.5)
    sched = FaithFusionSchedule()
    assert pool_loss_weight(sched) == sched.loss_weight  # None keeps the loss weight as given
    assert pool_loss_weight(replace(sched, fused_share=0.5)) == pytest.approx(2.5)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(FusedShareError, match="fused-share"):
            loss_weight_for_share(bad, 0.4, True)


@pytest.mark.parametrize("paired", [True, False])
def test_fused_share_is_the_fraction_of_loss_mass_the_trainer_draws(paired):
    """Monte Carlo over the trainer's own pool draws: the fused views' share of the summed loss weights is S."""
    lam = loss_weight_for_share(0.3, 0.4, paired)
    real = ViewPool("real", [object()])
    fused = ViewPool("fused", [object()], probability=0.4, loss_weight=lam, paired=paired)
    g, mass_fused, mass_all = torch.Generator().manual_seed(0), 0.0, 0.0
    for _ in range(6000):
        pool = choose_pool(real, [fused], g)
        extra = choose_paired([fused], g)
        step = [pool, *extra]
        mass_fused += sum(p.loss_weight for p in step if p is fused)
        mass_all += sum(p.loss_weight for p in step)
    assert mass_fused / mass_all == pytest.approx(0.3, abs=0.02)


def test_share_views_multiplies_the_fused_mass_and_needs_a_paired_pool():
    assert fused_share(0.4, 0.1, paired=True, views=3) == pytest.approx(0.12 / 1.12)
    lam = loss_weight_for_share(0.3, 0.4, True, views=3)
    assert fused_share(0.4, lam, True, views=3) == pytest.approx(0.3)
    assert lam == pytest.approx(loss_weight_for_share(0.3, 0.4, True) / 3)
    sched = FaithFusionSchedule()
    assert pool_loss_weight(replace(sched, share_views=3)) == sched.loss_weight  # K alone leaves lambda as given
    assert pool_loss_weight(replace(sched, share_views=2, fused_share=0.5)) == pytest.approx(2.5 / 2)
    for bad, match in ((0, "integer >= 1"), (1.5, "integer >= 1")):
        with pytest.raises(FusedShareError, match=match):
            pool_loss_weight(replace(sched, share_views=bad))
    with pytest.raises(FusedShareError, match="needs a paired pool"):
        pool_loss_weight(replace(sched, share_views=2, paired=False))


def test_a_paired_pool_with_share_views_adds_k_views_to_a_step(trainer_and_scene):
    from faithfusion.train.trainer import Trainer

    base, scene = trainer_and_scene
    state = base.state_dict()
    for k in (1, 3):
        t = Trainer(scene, base.cfg, base.device)
        t.load_state_dict(state)
        views = [fused_view(t, scene) for _ in range(4)]
        t.pools = [ViewPool("fused", views, probability=1.0, loss_weight=0.5, paired=True, draws=k)]
        seen = []
        original = t.view_loss
        t.view_loss = lambda view, pool: (seen.append((pool.name, id(view))), original(view, pool))[1]
        stats = t.train_step()
        assert stats["pool"] == "real" and stats["paired"] == ["fused"]
        fused = [v for name, v in seen if name == "fused"]
        assert len(fused) == k and len(set(fused)) == k  # K distinct views of the pool, one loss each
        assert [name for name, _ in seen].count("real") == 1
    back = ViewPool("fused", [])
    load_pool_state(back, pool_state(ViewPool("fused", [], paired=True, draws=3)), "cpu")
    assert back.draws == 3


# --- anti-drift ------------------------------------------------------------------------------------


def tiny_trainer(tmp_path):
    from faithfusion.data.load import load_scene
    from faithfusion.train.config import InitConfig, ReconConfig
    from faithfusion.train.trainer import Trainer
    from tests.scene_fixtures import write_nerfstudio_scene

    torch.set_num_threads(1)
    root = write_nerfstudio_scene(tmp_path / "scene", n=3, size=(24, 18))["root"]
    scene = load_scene(root, holdout_every=0)
    cfg = ReconConfig(data=root, device="cpu", progress=False, init=InitConfig(max_points=200, random_points=20))
    return Trainer(scene, cfg, torch.device("cpu")), scene


@pytest.fixture(scope="module")
def trainer_and_scene(tmp_path_factory):
    return tiny_trainer(tmp_path_factory.mktemp("loop"))


def fused_view(trainer, scene) -> View:
    """A novel view: the first camera moved sideways, with a random target image and weight map."""
    cam = scene.camera(scene.train_ids[0]).to(trainer.device)
    viewmat = cam.viewmat.clone()
    viewmat[0, 3] += 0.3
    cam = replace(cam, viewmat=viewmat)
    img = torch.rand(cam.height, cam.width, 3, generator=torch.Generator().manual_seed(5))
    return View(camera=cam, image=(img * 255).round().to(torch.uint8), weight=torch.rand(cam.height, cam.width))


def test_freeze_original_leaves_positions_and_rotations_after_a_fused_only_step(trainer_and_scene):
    from faithfusion.train.trainer import Trainer

    base, scene = trainer_and_scene
    state = base.state_dict()
    for freeze in (True, False):
        t = Trainer(scene, base.cfg, base.device)
        t.load_state_dict(state)
        guard = freeze_geometry_guard() if freeze else None
        t.pools = [ViewPool("fused", [fused_view(t, scene)], probability=1.0, loss_weight=1.0, grad_guard=guard)]
        before = {k: t.model.params[k].detach().clone() for k in ("means", "quats", "sh0", "opacities")}
        assert t.train_step()["pool"] == "fused"  # the step drew only the fused view
        after = t.model.params
        assert torch.equal(after["means"].detach(), before["means"]) == freeze
        assert torch.equal(after["quats"].detach(), before["quats"]) == freeze
        assert not torch.equal(after["sh0"].detach(), before["sh0"])  # colours still learn from it
        assert not torch.equal(after["opacities"].detach(), before["opacities"])


def test_freeze_original_keeps_the_captured_gradient_of_a_paired_step(trainer_and_scene):
    base, scene = trainer_and_scene
    view = fused_view(base, scene)
    real = base.real.views[0]
    pool = ViewPool("fused", [view], paired=True, grad_guard=freeze_geometry_guard())
    params = base.model.params
    for p in params.values():
        p.grad = None
    loss, *_ = base.view_loss(real, base.real)
    loss.backward()
    captured = {k: params[k].grad.clone() for k in ("means", "quats", "sh0")}
    with pool.guarded_backward(base):
        base.view_loss(view, pool)[0].backward()
    assert torch.equal(params["means"].grad, captured["means"]) and torch.equal(params["quats"].grad, captured["quats"])
    assert not torch.equal(params["sh0"].grad, captured["sh0"])
    # only the rows an `original` mask names are frozen
    rows = torch.zeros(len(base.model), dtype=torch.bool)
    rows[::2] = True
    for p in params.values():
        p.grad = None
    with freeze_geometry_guard(lambda tr: rows)(base):
        base.view_loss(view, pool)[0].backward()
    g = params["means"].grad
    assert bool((g[rows] == 0).all()) and bool((g[~rows] != 0).any())
    for p in params.values():
        p.grad = None


def test_visible_lidar_keeps_the_nearest_point_per_pixel():
    from faithfusion.cameras import Camera

    K = torch.tensor([[10.0, 0.0, 4.0], [0.0, 10.0, 3.0], [0.0, 0.0, 1.0]])
    cam = Camera(K=K, viewmat=torch.eye(4), width=8, height=6)  # at the origin, looking down +z
    near, far, behind = torch.tensor([0.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 5.0]), torch.tensor([0.0, 0.0, -2.0])
    aside = torch.tensor([0.5, 0.0, 5.0])  # another pixel: (4 + 1, 3)
    kept = visible_lidar(torch.stack([far, near, behind, aside]), cam)
    assert kept.tolist() == [near.tolist(), aside.tolist()]


def test_fused_lidar_survives_the_pool_checkpoint():
    from faithfusion.cameras import Camera

    cam = Camera(K=torch.eye(3), viewmat=torch.eye(4), width=4, height=3)
    pts = torch.rand(5, 3)
    pool = ViewPool("faithfusion_fused", [View(cam, torch.zeros(3, 4, 3, dtype=torch.uint8), lidar=pts)])
    back = ViewPool("faithfusion_fused", [])
    load_pool_state(back, pool_state(pool), "cpu")
    assert torch.equal(back.views[0].lidar, pts)


# --- pool replacement ------------------------------------------------------------------------------


def test_replace_pool_keeps_only_the_rounds_views_and_drops_the_old_ones_from_h_train():
    old, new = [View(None, None, index=k) for k in range(3)], [View(None, None, index=10 + k) for k in range(2)]
    names = ["train_0", "train_1", "fused_+1.0", "fused_+1.0", "fused_+1.0", "fused_+2.0", "fused_+2.0"]
    acc = SimpleNamespace(views=[SimpleNamespace(name=n) for n in names])
    grown = ViewPool("p", list(old), _order=[0, 1])
    insert_round_views(grown, new, "grow", acc)
    assert grown.views == old + new and grown._order == [] and len(acc.views) == 7
    replaced = ViewPool("p", list(old), _order=[0, 1])
    insert_round_views(replaced, new, "replace", acc)
    assert replaced.views == new and replaced._order == []
    assert [v.name for v in acc.views] == ["train_0", "train_1", "fused_+2.0", "fused_+2.0"]
    with pytest.raises(UnknownPoolModeError, match="pool"):
        insert_round_views(replaced, new, "append")


# --- the ablation runner's statistics ----------------------------------------------------------------


def fake_arm(root, seed, arm, psnr_offset, demo_args=""):
    from faithfusion.utils.jsonio import save_json_atomic

    per_shift = {}
    for d in (0.0, 3.0, -3.0):
        frames = [{"frame": i, "psnr": 20.0 + i + psnr_offset + (0.5 if d < 0 else 0.0), "lpips": 0.3 - 0.01 * psnr_offset}
                  for i in range(4)]
        per_shift[f"{d:+.1f}"] = {"shift": d, "frames": frames}
    by_mag = {m: {"psnr": 21.0 + psnr_offset, "ssim": 0.8, "lpips": 0.3} for m in ("0.0", "3.0")}
    save_json_atomic(root / f"seed_{seed}" / arm / "arm.json",
                     {"seed": seed, "arm": arm, "demo_args": demo_args, "sizes": {"steps": 10}, "seconds": 1.0,
                      "threads": 1, "per_shift": per_shift, "by_magnitude": by_mag})


def test_ablation_pairs_views_and_bootstraps_over_seeds(tmp_path):
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    bench = importlib.import_module("bench_ablation")
    for s in (8, 9):
        fake_arm(tmp_path, s, "eig", 1.0)
        fake_arm(tmp_path, s, "uniform", 0.25 * (s - 8))  # (a) - (b): 1.0 on seed 8, 0.75 on seed 9
        fake_arm(tmp_path, s, "eig_repeat", 1.0)
    res = bench.aggregate(tmp_path, [8, 9, 10], ["eig", "uniform", "eig_repeat"], n=200)
    assert not res["complete"] and "10:eig" in res["missing"]
    row = res["paired"]["eig-uniform"]["3.0"]
    assert row["psnr"]["mean"] == pytest.approx(0.875) and row["scenes"] == 2 and row["views"] == 16  # 4 frames x 2 sides
    assert 0.75 - 1e-9 <= row["psnr"]["lo"] <= row["psnr"]["hi"] <= 1.0 + 1e-9
    assert row["lpips"]["mean"] == pytest.approx(-0.00875)
    assert res["noise"]["3.0"]["psnr"] == {"mean": 0.0, "lo": 0.0, "hi": 0.0}
    fake_arm(tmp_path, 9, "eig_repeat", 1.0, demo_args="--faithfusion.pool replace")
    with pytest.raises(bench.AblationError, match="demo-args"):
        bench.aggregate(tmp_path, [8, 9], ["eig", "uniform", "eig_repeat"], n=50)
