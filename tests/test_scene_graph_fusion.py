"""The fusion methods on a scene graph: node Fisher against brute-force autograd, one round of every method on a
tiny dynamic DriveStudio scene with a moving car as a node (CPU, identity fixers), resume with nodes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from faithfusion.cameras import rotmat_to_quat
from faithfusion.eig.fisher import PARAM_GROUPS, fisher_diagonal
from faithfusion.eig.toy import toy_scene
from faithfusion.fusion.config import Difix3DSchedule, FaithFusionSchedule, GenFusionSchedule, fuse_config
from faithfusion.fusion.presets import PRESETS
from faithfusion.fusion.runner import run_method
from faithfusion.gaussians.model import GaussianModel
from faithfusion.render import render
from faithfusion.scene_graph.fisher import GraphFrames
from faithfusion.scene_graph.graph import SceneGraph
from faithfusion.scene_graph.tracks import Track
from faithfusion.train.config import InitConfig, ReconConfig, SceneGraphConfig, StrategyConfig
from tests.scene_fixtures import rigid, rot_z, write_drivestudio_scene
from tests.test_scene_graph import _add_lidar_on_the_car

pytestmark = pytest.mark.usefixtures("single_thread")

# --- the node Fisher against autograd through the composition ------------------------------------------


def _graph_over_toy(yaw: float, present_at_1: bool = True):
    """The toy scene's Gaussians 6.. as one node whose box is turned `yaw` degrees at timestep 1: its local
    parameters are set so that the composition at timestep 1 is exactly the toy scene. float64."""
    world, cams = toy_scene(dtype=torch.float64)
    n = len(world)
    ids = torch.full((n,), -1, dtype=torch.long)
    ids[6:] = 0
    box = torch.from_numpy(rigid(rot_z(yaw), [0.3, -0.2, 0.1])).double()
    poses = torch.stack([torch.eye(4, dtype=torch.float64), box])
    track = Track("0", "car", "Vehicle", [0, 1] if present_at_1 else [0], poses if present_at_1 else poses[:1],
                  torch.tensor([9.0, 9.0, 9.0], dtype=torch.float64))
    graph = SceneGraph([0, 1], [track], ids).double()
    local = {k: v.detach().clone() for k, v in world.params.items()}
    R, t = box[:3, :3], box[:3, 3]
    node = ids >= 0
    local["means"][node] = (world.params["means"].detach()[node] - t) @ R  # R^T (x - t)
    q_box = rotmat_to_quat(R[None])[0]
    q_inv = q_box * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    from faithfusion.cameras import quat_multiply

    qw = world.params["quats"].detach()[node]
    local["quats"][node] = 1.7 * quat_multiply(q_inv.expand_as(qw), qw / qw.norm(dim=-1, keepdim=True))  # |q| = 1.7
    model = GaussianModel({k: v.requires_grad_(True) for k, v in local.items()}, world.sh_degree)
    return model, graph, world, cams


def _oracle_through_compose(model: GaussianModel, graph: SceneGraph, cams, t: int) -> dict[str, torch.Tensor]:
    """sum_pixels sum_k (d c_pk / d theta_local)^2 by autograd through `graph.compose` (one backward per pixel)."""
    H = {g: torch.zeros_like(model.params[g]) for g in PARAM_GROUPS}
    params = [model.params[g] for g in PARAM_GROUPS]
    for cam in cams:
        out = render(graph.compose(model, t), cam.viewmat[None], cam.K[None], cam.width, cam.height, backend="torch")
        rgb = out.rgb[0]
        for y in range(cam.height):
            for x in range(cam.width):
                for k in range(3):
                    grads = torch.autograd.grad(rgb[y, x, k], params, retain_graph=True, allow_unused=True)
                    for g, gr in zip(PARAM_GROUPS, grads):
                        if gr is not None:
                            H[g] += gr.detach() ** 2
    return H


def _frames_fisher(model, graph, cams, t: int) -> dict[str, torch.Tensor]:
    frames = GraphFrames(graph, lambda cam: t)
    total = None
    for cam in cams:
        h = frames.to_local(model, cam, fisher_diagonal(frames.model_for(model, cam), [cam]))
        total = h if total is None else {g: total[g] + h[g] for g in h}
    return total


def test_node_fisher_equals_autograd_through_the_composition_for_a_box_turned_180_degrees():
    """180 degrees of yaw: R and the quaternion product permute axes (with signs), so the diagonal carries exactly."""
    model, graph, world, cams = _graph_over_toy(180.0)
    composed = graph.compose(model, 1)
    assert torch.allclose(composed.means, world.means) and torch.allclose(
        composed.quats / composed.quats.norm(dim=-1, keepdim=True), world.quats / world.quats.norm(dim=-1, keepdim=True))
    ref = _oracle_through_compose(model, graph, cams[:1], 1)
    got = _frames_fisher(model, graph, cams[:1], 1)
    for g in PARAM_GROUPS:
        assert ref[g][6:].norm() > 0, g
        assert torch.allclose(got[g], ref[g], rtol=1e-8, atol=1e-12 * float(ref[g].abs().max())), g


def test_node_fisher_keeps_each_gaussians_trace_for_any_box_rotation_and_hidden_nodes_get_none():
    """At 30 degrees the per-axis diagonal is an approximation (the off-diagonal of the world Fisher is not
    known), but the sum over x, y, z of the means and over the quaternion's 4 entries is exact."""
    model, graph, _, cams = _graph_over_toy(30.0)
    ref = _oracle_through_compose(model, graph, cams[:1], 1)
    got = _frames_fisher(model, graph, cams[:1], 1)
    for g in ("scales", "opacities", "sh0", "shN"):
        assert torch.allclose(got[g], ref[g], rtol=1e-8, atol=1e-12 * float(ref[g].abs().max())), g
    for g in ("means", "quats"):
        assert torch.allclose(got[g].sum(-1), ref[g].sum(-1), rtol=1e-8, atol=1e-12 * float(ref[g].abs().max())), g
        assert not torch.allclose(got[g][6:], ref[g][6:], rtol=1e-3), g  # per axis it is not exact: the test can fail
    hidden, graph_h, _, _ = _graph_over_toy(30.0, present_at_1=False)
    h = _frames_fisher(hidden, graph_h, cams[:1], 1)
    assert all(float(h[g][6:].abs().max()) == 0.0 for g in PARAM_GROUPS)
    assert h["means"][:6].abs().sum() > 0  # the background still gets its information


# --- every method on a tiny dynamic scene ------------------------------------------------------------


@pytest.fixture(scope="module")
def dynamic_scene(tmp_path_factory):
    """A DriveStudio (Waymo layout) scene: 6 timesteps, 2 cameras, a car 7 m ahead moving with the ego, lidar on it."""
    torch.set_num_threads(1)
    written = write_drivestudio_scene(tmp_path_factory.mktemp("graphfuse") / "ds", n_steps=6, cams=(0, 1), size=(32, 24))
    _add_lidar_on_the_car(written, per_step=20)
    return written["root"]


def tiny_graph(root: Path, out: Path, method: str, **kw):
    """`method` with --scene-graph: 30 steps, one round at step 15 (two for faithfusion: 1 m, then 2 m)."""
    recon = ReconConfig(
        data=root, out=out, steps=30, device="cpu", progress=False, holdout_every=3, cameras=(0, 1), backend="torch",
        save_renders=False, sh_degree=1, init=InitConfig(random_points=100),
        strategy=StrategyConfig(refine_start=5, refine_every=5, refine_stop=25), scene_graph=True,
        graph=SceneGraphConfig(min_points=100),
    )
    settings = dict(
        fixer="identity",
        difix3d=Difix3DSchedule(reference_steps=30, warmup=15, every=30, target_shifts=(2.0,)),
        genfusion=GenFusionSchedule(reference_steps=30, warmup=15, every=30, window=3, shifts=(2.0,), lam=0.5),
        faithfusion=FaithFusionSchedule(reference_steps=30, first=10, every=10, max_shift=2.0, video_until=1.0,
                                        window=3, calib_views=2),
    )
    if method == "genfusion":
        settings["video_fixer"] = "identity"
    return replace(fuse_config(PRESETS[method].config, recon, **settings), **kw)


def _frame_timestep(scene, camera) -> int:
    """The timestep of the captured frame a fused camera was made from (its name: 'TTT_C' or 'IIII@+S.SSm')."""
    name = camera.name
    return scene.frames[int(name[:4])].timestep if "@" in name else int(name[:3])


@pytest.mark.parametrize("method", ["3dgs", "difix3d+", "genfusion", "faithfusion+", "faithfusion-no-eig"])
def test_every_method_fuses_a_round_on_the_scene_graph(dynamic_scene, tmp_path, method):
    run = run_method(method, tiny_graph(dynamic_scene, tmp_path / "run", method))
    trainer, scene, metrics = run.trainer, run.scene, run.metrics
    assert trainer.has_nodes and trainer.graph.num_nodes == 1 and trainer.step == 30
    assert torch.equal(trainer.graph.node_ids, trainer.strategy.state["scene_graph_node_ids"])
    assert (trainer.graph.node_ids == 0).sum() > 0
    assert all(v == v for v in metrics["test"].values() if isinstance(v, float))  # finite held-out figures
    if method == "3dgs":
        return
    assert metrics["fusion"]["completed_rounds"] >= 1
    views = [v for pool in run.method.pools for v in pool.views]
    assert views
    for v in views:  # each fused view renders the scene at its captured frame's timestep: the actors keep their tracks
        assert v.camera.meta["timestep"] == _frame_timestep(scene, v.camera)
        assert trainer.timestep_of(v.camera) == v.camera.meta["timestep"]
    if method.startswith("faithfusion+"):
        assert "test_with_render_hook" in metrics["fusion"]
    if method == "faithfusion+":
        acc = run.method.acc
        assert acc.frames is not None and acc.H["means"].shape == trainer.model.params["means"].shape
        node = trainer.graph.node_ids == 0
        assert acc.H["means"][node].sum() > 0  # the node's Gaussians are in H_train, in their own frame
        for fv in acc.views:
            assert "timestep" in fv.camera.meta


def test_faithfusion_resumes_with_nodes_as_it_runs_through(dynamic_scene, tmp_path):
    full = run_method("faithfusion", tiny_graph(dynamic_scene, tmp_path / "a", "faithfusion"))
    part_cfg = tiny_graph(dynamic_scene, tmp_path / "b", "faithfusion", stop_after_rounds=1)
    assert run_method("faithfusion", part_cfg).stopped
    resumed = run_method("faithfusion", replace(part_cfg, stop_after_rounds=0, resume=True))
    a, b = full.trainer, resumed.trainer
    assert b.step == a.step == 30 and torch.equal(a.graph.node_ids, b.graph.node_ids)
    assert torch.allclose(a.graph.pose_translation, b.graph.pose_translation, atol=1e-6)
    assert torch.allclose(a.model.params["means"], b.model.params["means"], atol=1e-5)
    for va, vb in zip(full.method.pool.views, resumed.method.pool.views):
        assert va.camera.meta == vb.camera.meta and torch.equal(va.image, vb.image)
    for g in full.method.acc.H:
        assert torch.allclose(full.method.acc.H[g], resumed.method.acc.H[g], rtol=1e-4, atol=1e-8), g
    rows = [json.loads(line) for line in (tmp_path / "b" / "rounds.jsonl").read_text().splitlines()]
    assert [r["shift"] for r in rows] == [1.0, 2.0]


# --- the command line on a DriveStudio-layout dynamic scene ---------------------------------------------


def test_fuse_faithfusion_scene_graph_from_the_command_line_places_the_car_on_its_track(dynamic_scene, tmp_path):
    """`faithfusion fuse faithfusion --scene-graph` on the DriveStudio (Waymo layout) scene the tests wrote: it loads,
    trains, and the node, loaded back from the run folder, is placed on the car's track at every timestep."""
    from faithfusion.cli import main
    from faithfusion.fusion.runner import load_fusion_run
    from faithfusion.scene_graph.tracks import tracks_from_scene

    out = tmp_path / "run"
    main(["fuse", "faithfusion", "--data", str(dynamic_scene), "--out", str(out), "--scene-graph", "--steps", "12",
          "--device", "cpu", "--backend", "torch", "--no-progress", "--fixer", "identity", "--video-fixer", "identity",
          "--cameras", "0", "1", "--holdout-every", "3", "--init.random-points", "100", "--graph.min-points", "100",
          "--faithfusion.reference-steps", "12", "--faithfusion.first", "6", "--faithfusion.every", "6",
          "--faithfusion.max-shift", "1.0", "--faithfusion.calib-views", "2", "--faithfusion.window", "3"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fusion"]["completed_rounds"] == 1
    run = load_fusion_run(out)
    tr = run.trainer
    assert tr.has_nodes and tr.graph.track_ids == ["abc"]
    track = tracks_from_scene(run.scene).moving_vehicles(1.0)[0]
    node = tr.graph.node_ids == 0
    local = tr.model.means[node].detach().mean(0)  # [3] the node's centroid in its box frame
    for t in track.timesteps:
        world = tr.graph.compose(tr.model, t).means[node].detach().mean(0)
        box = track.pose_at(t)
        expected = box[:3, :3] @ local + box[:3, 3]
        assert float((world - expected).norm()) < 0.05 * float(track.size.norm()), t  # only the small pose delta
