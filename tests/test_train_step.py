"""The training step without host synchronisations (issue 22): each cached or masked piece against the
boolean-indexing, rebuilt-every-step version it replaces, a few trainer steps against the old step, and (GPU only)
a step under torch's sync debug mode."""

from __future__ import annotations

import math
import traceback
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import faithfusion
from faithfusion.cameras import Camera
from faithfusion.eval.metrics import gaussian_window, ssim_kernels, ssim_map
from faithfusion.train.densify_stats import accumulate_stats, masked_default_strategy_class
from faithfusion.train.losses import (
    dense_depth_loss, dense_depth_target, lidar_depth_loss, lidar_target_loss, lidar_targets, project_points,
    sky_opacity_loss)
from faithfusion.train.optim import adam
from faithfusion.train.sky import SkyModel
from faithfusion.train.views import View

# --- references: the pre-issue-22 code, with its boolean indexing and host syncs -----------------------------


def ref_lidar_loss(depth, alpha, points, camera):
    uv, z = project_points(points, camera)
    h, w = depth.shape[:2]
    inside = (z > 0.1) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    if inside.sum() < 8:
        return None
    px = uv[inside].long()
    pred = depth[px[:, 1], px[:, 0], 0]
    weight = alpha[px[:, 1], px[:, 0], 0].detach()
    return ((1.0 / pred.clamp_min(1e-3) - 1.0 / z[inside]).abs() * weight).mean()


def ref_dense_depth_loss(pred, depth):
    valid = torch.isfinite(depth) & (depth > 0)
    if not valid.any():
        return None
    return ((pred - depth).abs() / depth.clamp_min(1e-3))[valid].mean()


def ref_ssim_map(pred, target, window=11, sigma=1.5, k1=0.01, k2=0.03):
    h, w = pred.shape[-3:-1]
    x = pred.reshape(-1, h, w, 3).permute(0, 3, 1, 2)
    y = target.reshape(-1, h, w, 3).permute(0, 3, 1, 2)
    g = gaussian_window(window, sigma, torch.float32, pred.device)
    gx, gy = g.view(1, 1, 1, window).repeat(15, 1, 1, 1), g.view(1, 1, window, 1).repeat(15, 1, 1, 1)
    pad = window // 2
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    blur = F.conv2d(F.conv2d(stack, gx, padding=(0, pad), groups=15), gy, padding=(pad, 0), groups=15)
    mu_x, mu_y, e_xx, e_yy, e_xy = blur.split(3, dim=1)
    var_x, var_y, cov = e_xx - mu_x**2, e_yy - mu_y**2, e_xy - mu_x * mu_y
    c1, c2 = k1**2, k2**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.permute(0, 2, 3, 1).reshape(*pred.shape[:-3], h, w, 3)


def ref_sky(sky: SkyModel, dirs):
    up = sky.up
    helper = torch.tensor([1.0, 0.0, 0.0])
    if abs(float(torch.dot(helper, up))) > 0.9:
        helper = torch.tensor([0.0, 1.0, 0.0])
    e1 = F.normalize(helper - torch.dot(helper, up) * up, dim=0)
    e2 = torch.linalg.cross(up, e1)
    grid = torch.stack([torch.atan2(dirs @ e2, dirs @ e1) / math.pi,
                        -torch.asin((dirs @ up).clamp(-1, 1)) / (math.pi / 2)], dim=-1)
    rgb = F.grid_sample(sky.texture, grid.reshape(1, -1, 1, 2), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return torch.sigmoid(rgb[0, :, :, 0].T.reshape(*dirs.shape[:-1], 3))


def camera(w: int = 20, h: int = 16) -> Camera:
    K = torch.tensor([[18.0, 0.0, w / 2], [0.0, 18.0, h / 2], [0.0, 0.0, 1.0]])
    return Camera(K=K, viewmat=torch.eye(4), width=w, height=h)


# --- densification statistics ------------------------------------------------------------------------------


def stats_info(c: int, n: int, w: int = 40, h: int = 30, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    means2d = torch.zeros(c, n, 2, requires_grad=True)
    means2d.grad = torch.randn(c, n, 2, generator=g)
    means2d.absgrad = means2d.grad.abs() * 2
    radii = torch.randint(0, 4, (c, n, 2), generator=g, dtype=torch.int32)
    radii[..., 1] = torch.where(radii[..., 0] > 0, radii[..., 1], torch.zeros_like(radii[..., 1]))
    radii[:, :3] = 0  # a few never visible
    return {"means2d": means2d, "radii": radii, "width": w, "height": h, "n_cameras": c, "gaussian_ids": None}


@pytest.mark.parametrize("c,absgrad,scale2d", [(1, False, False), (1, True, True), (2, False, True)])
def test_masked_stats_equal_gsplats_boolean_indexing(c, absgrad, scale2d):
    from gsplat.strategy import DefaultStrategy

    n = 50
    kw = dict(absgrad=absgrad, refine_scale2d_stop_iter=100 if scale2d else 0)
    ref, ours = DefaultStrategy(**kw), masked_default_strategy_class()(**kw)
    params = {"means": torch.zeros(n, 3)}
    s_ref, s_ours = ref.initialize_state(scene_scale=1.0), ours.initialize_state(scene_scale=1.0)
    for seed in range(3):  # accumulate over steps, from the None start
        info = stats_info(c, n, seed=seed)
        ref._update_state(params, s_ref, info, packed=False)
        ours._update_state(params, s_ours, info, packed=False)
    assert s_ours["count"].sum() > 0 and (s_ours["count"] == 0).any()
    torch.testing.assert_close(s_ours["count"], s_ref["count"], rtol=0, atol=0)
    torch.testing.assert_close(s_ours["grad2d"], s_ref["grad2d"], rtol=1e-6, atol=1e-6)
    if scale2d and c == 1:  # with several cameras gsplat's indexed write keeps one camera's radius, ours the max
        torch.testing.assert_close(s_ours["radii"], s_ref["radii"], rtol=0, atol=0)
    if scale2d and c > 1:
        assert (s_ours["radii"] >= s_ref["radii"]).all()


def test_masked_stats_ignore_non_finite_gradients_of_invisible_gaussians():
    from gsplat.strategy import DefaultStrategy

    info = stats_info(1, 10)
    info["radii"][0, 0] = 0
    info["means2d"].grad[0, 0] = float("nan")
    strategy = DefaultStrategy()
    state = strategy.initialize_state(scene_scale=1.0)
    accumulate_stats(strategy, {"means": torch.zeros(10, 3)}, state, info)
    assert torch.isfinite(state["grad2d"]).all() and state["grad2d"][0] == 0


# --- cached loss targets -----------------------------------------------------------------------------------


def test_lidar_targets_match_the_per_step_projection():
    cam = camera()
    g = torch.Generator().manual_seed(1)
    points = torch.randn(200, 3, generator=g) * torch.tensor([3.0, 3.0, 1.0]) + torch.tensor([0.0, 0.0, 4.0])
    depth = (torch.rand(16, 20, 1, generator=g) * 5 + 0.5).requires_grad_()
    alpha = torch.rand(16, 20, 1, generator=g)
    targets = lidar_targets(points, cam)
    assert targets is not None and 8 <= targets.pixels.numel() < 200
    ours = lidar_target_loss(depth, alpha, targets)
    (g_ours,) = torch.autograd.grad(ours, depth)
    ref = ref_lidar_loss(depth, alpha, points, cam)
    (g_ref,) = torch.autograd.grad(ref, depth)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    torch.testing.assert_close(g_ours, g_ref)
    torch.testing.assert_close(lidar_depth_loss(depth, alpha, points, cam), ref, rtol=0, atol=0)
    behind = points * torch.tensor([1.0, 1.0, -1.0])
    assert lidar_targets(behind, cam) is None and ref_lidar_loss(depth, alpha, behind, cam) is None


def test_dense_depth_target_matches_boolean_indexing():
    g = torch.Generator().manual_seed(2)
    depth = torch.rand(16, 20, generator=g) * 4
    depth[0, :5] = float("inf")
    depth[1, :5] = float("nan")
    depth[2, :5] = 0.0
    depth[3, :5] = -1.0
    pred = (torch.rand(16, 20, generator=g) * 4).requires_grad_()
    target = dense_depth_target(depth)
    ours = dense_depth_loss(pred, target)
    (g_ours,) = torch.autograd.grad(ours, pred)
    ref = ref_dense_depth_loss(pred, depth)
    (g_ref,) = torch.autograd.grad(ref, pred)
    assert torch.isfinite(ours)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    nan = torch.isnan(depth)  # the old path sent NaN gradients to pixels of NaN depth (0 * NaN); ours sends 0
    assert torch.isnan(g_ref[nan]).all() and (g_ours[nan] == 0).all() and torch.isfinite(g_ours).all()
    torch.testing.assert_close(g_ours[~nan], g_ref[~nan])
    assert dense_depth_target(torch.full((4, 4), float("nan"))) is None


def test_sky_loss_with_a_kept_target_is_the_same():
    alpha = torch.rand(8, 9, 1)
    sky = torch.rand(8, 9) > 0.5
    torch.testing.assert_close(sky_opacity_loss(alpha, sky, target=(~sky).float()), sky_opacity_loss(alpha, sky))


def test_view_derived_cache_is_kept_and_invalidated():
    calls = []
    view = View(camera=camera(), image=torch.zeros(16, 20, 3), mask=torch.ones(16, 20, dtype=torch.bool))

    def build():
        calls.append(1)
        return view.mask.float().sum()

    assert view.derived("n", build) == 320 and view.derived("n", build) == 320 and len(calls) == 1
    view.mask = torch.zeros(16, 20, dtype=torch.bool)  # reassigned
    assert view.derived("n", build) == 0 and len(calls) == 2
    view.mask[0, 0] = True  # edited in place
    assert view.derived("n", build) == 1 and len(calls) == 3
    view.camera = replace(view.camera, width=20)  # any data field reassigned
    view.derived("n", build)
    assert len(calls) == 4
    other = replace(view, mask=torch.ones(16, 20, dtype=torch.bool))  # a copy does not share the cache
    assert other._derived == {} and other.derived("n", lambda: other.mask.float().sum()) == 320
    assert view.derived("n", build) == 1 and len(calls) == 4


def test_ssim_kernels_are_cached_and_give_the_same_map():
    a, b = torch.rand(2, 24, 30, 3), torch.rand(2, 24, 30, 3)
    assert ssim_kernels(11, 1.5, torch.float32, a.device) is ssim_kernels(11, 1.5, torch.float32, a.device)
    torch.testing.assert_close(ssim_map(a, b), ref_ssim_map(a, b), rtol=0, atol=0)


def test_ssim_kernels_built_in_inference_mode_serve_autograd():
    with torch.inference_mode():
        ssim_map(torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16, 3), window=7, sigma=1.1)
    x = torch.rand(1, 16, 16, 3, requires_grad=True)
    ssim_map(x, torch.rand(1, 16, 16, 3), window=7, sigma=1.1).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_sky_frame_is_kept_and_follows_a_loaded_up():
    dirs = F.normalize(torch.randn(5, 7, 3), dim=-1)
    sky = SkyModel(torch.tensor([0.0, 0.0, 1.0]))
    with torch.no_grad():
        sky.texture.normal_()
    torch.testing.assert_close(sky(dirs), ref_sky(sky, dirs), rtol=0, atol=0)
    e1 = sky.frame()[0]
    assert sky.frame()[0] is e1
    other = SkyModel(torch.tensor([1.0, 0.0, 0.0]))  # up along the first helper: the other branch
    sky.load_state_dict(other.state_dict())
    torch.testing.assert_close(sky.up, torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(sky(dirs), ref_sky(sky, dirs), rtol=0, atol=0)
    assert not torch.equal(sky.frame()[0], e1)


def test_adam_is_plain_on_cpu():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = adam([{"params": p, "lr": 0.1, "name": "x"}], eps=1e-15)
    assert not opt.defaults.get("fused") and opt.param_groups[0]["name"] == "x"
    assert opt.param_groups[0]["params"][0] is p
    from faithfusion.train.trainer import Trainer  # noqa: F401 - the trainer's optimizers come from adam()
    from faithfusion.gaussians.model import GaussianModel
    from faithfusion.train.config import LearningRates
    from faithfusion.train.optim import build_optimizers

    model = GaussianModel({"means": torch.zeros(4, 3), "scales": torch.zeros(4, 3), "quats": torch.ones(4, 4),
                           "opacities": torch.zeros(4), "sh0": torch.zeros(4, 1, 3), "shN": torch.zeros(4, 3, 3)}, 1)
    opts = build_optimizers(model, LearningRates(), 1.0)
    assert not any(o.defaults.get("fused") for o in opts.values())


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_adam_is_fused_on_cuda():
    p = torch.nn.Parameter(torch.zeros(3, device="cuda"))
    assert adam([p], lr=0.1).defaults["fused"]


# --- a few trainer steps, against the old step ------------------------------------------------------------


def old_view_loss(trainer, view, pool):
    """The trainer's view loss before issue 22 (targets rebuilt and boolean-indexed every step)."""
    from faithfusion.train.losses import photometric_loss

    cfg = trainer.cfg
    target = view.image_float(trainer.device)[None]
    rgb, out = trainer.render_camera(view.camera, trainer.active_sh_degree())
    if trainer.appearance is not None and pool is trainer.real:
        rgb = trainer.appearance(rgb, view.index)
    pred = rgb[None]
    weight = view.weight
    if view.mask is not None:
        weight = view.mask.float() if weight is None else weight * view.mask.float()
    loss = pool.loss_weight * photometric_loss(pred, target, cfg.ssim_lambda, None if weight is None else weight[None])
    if view.lidar is not None and cfg.depth_lambda > 0:
        term = ref_lidar_loss(out.depth[0], out.alpha[0], view.lidar, view.camera)
        if term is not None:
            loss = loss + cfg.depth_lambda * term
    if view.depth is not None:
        term = ref_dense_depth_loss(out.depth[0, ..., 0], view.depth)
        if term is not None:
            loss = loss + pool.loss_weight * cfg.depth_lambda * term
    if view.sky_mask is not None and cfg.sky_lambda > 0:
        a = out.alpha[0][..., 0].clamp(1e-5, 1 - 1e-5)
        loss = loss + cfg.sky_lambda * F.binary_cross_entropy(a, (~view.sky_mask).float())
    return loss, out, pred, target


@pytest.fixture(scope="module")
def driving_scene(tmp_path_factory):
    from faithfusion.data.load import load_scene
    from tests.scene_fixtures import write_drivestudio_scene

    root = write_drivestudio_scene(tmp_path_factory.mktemp("ds"), n_steps=2, size=(32, 24))["root"]
    return root, load_scene(root, holdout_every=0)


def make_trainer(root, scene, old: bool):
    from gsplat.strategy import DefaultStrategy

    from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
    from faithfusion.train.trainer import Trainer

    cfg = ReconConfig(data=root, steps=6, device="cpu", holdout_every=0, progress=False, sh_degree=1,
                      sh_degree_interval=2, backend="torch", seed=5, init=InitConfig(random_points=150),
                      strategy=StrategyConfig(refine_start=1, refine_every=3, refine_stop=100, reset_every=1000,
                                              grow_grad2d=1e-6))
    t = Trainer(scene, cfg, torch.device("cpu"))
    g = torch.Generator().manual_seed(9)
    for k, v in enumerate(t.real.views):  # every loss term: mask, EIG-like weight, dense depth with holes
        h, w = v.image.shape[:2]
        v.mask = torch.rand(h, w, generator=g) > 0.2
        v.weight = torch.rand(h, w, generator=g) + 0.5
        depth = torch.rand(h, w, generator=g) * 10 + 1
        depth[: h // 3] = float("inf")
        v.depth = depth
    if old:
        t.view_loss = lambda view, pool: old_view_loss(t, view, pool)
        inner = t.strategy.inner
        inner._update_state = lambda *a, **k: DefaultStrategy._update_state(inner, *a, **k)
    return t


def run_steps(root, scene, old: bool, steps: int = 5):
    """A trainer (its constructor seeds torch's generator, which the split of a refinement draws from) and each
    step's loss and densification statistics; trainers run one after the other so that they draw alike."""
    t = make_trainer(root, scene, old)
    t.n0 = len(t.model)
    record = []
    for _ in range(steps):
        loss = t.train_step()["loss"]
        record.append((loss, t.strategy.state["grad2d"].clone(), t.strategy.state["count"].clone()))
    return t, record


def test_trainer_steps_match_the_old_step(driving_scene, single_thread):
    root, scene = driving_scene
    new, rec_new = run_steps(root, scene, old=False)
    old, rec_old = run_steps(root, scene, old=True)
    assert new.sky is not None and all(v.lidar is not None and v.sky_mask is not None for v in new.real.views)
    assert lidar_targets(new.real.views[0].lidar, new.real.views[0].camera) is not None
    for (la, ga, ca), (lb, gb, cb) in zip(rec_new, rec_old):
        torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ca, cb, rtol=0, atol=0)
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-9)
    assert len(new.model) == len(old.model) != new.n0  # both densified alike (refinement at step 3)
    for k in new.model.params:
        torch.testing.assert_close(new.model.params[k], old.model.params[k], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(new.sky.texture, old.sky.texture, rtol=1e-4, atol=1e-5)
    keys = {"weight", "depth_target", "lidar_targets", "sky_target"}
    assert any(keys <= set(v._derived) for v in new.real.views)  # the targets were kept on the views


# --- GPU: no host synchronisation in a step -----------------------------------------------------------------


@pytest.mark.gpu
@needs_cuda
def test_gpu_step_has_no_host_sync(driving_scene):
    from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
    from faithfusion.train.trainer import Trainer

    root, scene = driving_scene
    cfg = ReconConfig(data=root, steps=50, device="cuda", holdout_every=0, progress=False, backend="gsplat", seed=5,
                      init=InitConfig(random_points=500),
                      strategy=StrategyConfig(refine_start=1000, refine_every=1000, refine_stop=2000))
    t = Trainer(scene, cfg, torch.device("cuda"))
    for _ in range(2 * len(t.real.views)):  # every view's targets built once, outside the checked steps
        t.train_step()
    torch.cuda.synchronize()
    import gsplat

    stacks = []

    def keep_stack(message, *args, **kwargs):  # warnings.showwarning, called where the op was called
        if "synchroniz" in str(message):
            stacks.append(traceback.extract_stack())

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = keep_stack
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(3):
                t.train_step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    ours_pkg, gsplat_pkg = (str(Path(m.__file__).resolve().parent) for m in (faithfusion, gsplat))

    def owner(stack) -> str:  # the innermost frame of ours or gsplat's: who asked for the synchronisation
        for frame in reversed(stack):
            path = str(Path(frame.filename).resolve())
            if path.startswith(gsplat_pkg):
                return "gsplat"
            if path.startswith(ours_pkg):
                return f"{frame.filename}:{frame.lineno}"
        return "other"

    # gsplat's tile intersection reads its intersection count back (as in any gsplat loop); none may come from ours
    ours = [o for o in map(owner, stacks) if o not in ("gsplat", "other")]
    assert not ours, f"host synchronisations in the training step: {ours}"
