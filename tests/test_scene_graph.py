"""The scene graph: composition math, track errors, static equivalence, a dynamic DriveStudio scene trained with nodes."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from faithfusion.cameras import quat_to_rotmat
from faithfusion.data.load import load_scene
from faithfusion.errors import UserError
from faithfusion.gaussians.model import GaussianModel
from faithfusion.render import render
from faithfusion.scene_graph.graph import HIDDEN_LOGIT, SceneGraph
from faithfusion.scene_graph.poses import quat_multiply
from faithfusion.scene_graph.tracks import Track, TrackError, parse_tracks, read_tracks
from faithfusion.train.config import InitConfig, ReconConfig, SceneGraphConfig, StrategyConfig
from faithfusion.train.trainer import Trainer
from tests.scene_fixtures import rigid, rot_z, write_drivestudio_scene

# --- composition ---------------------------------------------------------------------------------


def _yaw_pose(deg: float, t) -> torch.Tensor:
    return torch.from_numpy(rigid(rot_z(deg), t)).float()


def _one_node_graph():
    """Background Gaussian 0 at (5, 5, 5); node Gaussian 1 at local (1, 0, 0.5), box turned 90 deg at t=1."""
    track = Track("0", "car", "Vehicle", [0, 1], torch.stack([_yaw_pose(0, [10, 0, 0]), _yaw_pose(90, [20, 3, 1])]),
                  torch.tensor([4.0, 2.0, 1.5]))
    model = GaussianModel.random(2, sh_degree=1, seed=1)
    with torch.no_grad():
        model.params["means"].copy_(torch.tensor([[5.0, 5.0, 5.0], [1.0, 0.0, 0.5]]))
    return model, SceneGraph([0, 1, 2], [track], torch.tensor([-1, 0]))


def test_a_node_gaussian_lands_where_its_box_pose_puts_it_and_its_rotation_is_composed():
    model, graph = _one_node_graph()
    at0, at1 = graph.compose(model, 0), graph.compose(model, 1)
    assert torch.allclose(at0.means[0], torch.tensor([5.0, 5.0, 5.0]))  # background untouched
    assert torch.allclose(at1.means[0], torch.tensor([5.0, 5.0, 5.0]))
    assert torch.allclose(at0.means[1], torch.tensor([11.0, 0.0, 0.5]), atol=1e-5)
    assert torch.allclose(at1.means[1], torch.tensor([20.0, 4.0, 1.5]), atol=1e-5)  # x_local -> +y after 90 deg yaw
    R_box = torch.from_numpy(rot_z(90)).float()
    assert torch.allclose(quat_to_rotmat(at1.quats[1]), R_box @ quat_to_rotmat(model.quats[1]), atol=1e-5)
    assert torch.allclose(at1.quats[0], model.quats[0])
    assert torch.equal(at1.params["scales"], model.params["scales"])  # scales and colours are the node's own


def test_a_node_is_hidden_where_it_has_no_box_and_pose_deltas_move_it_in_its_box_frame():
    model, graph = _one_node_graph()
    hidden = graph.compose(model, 2)
    assert float(hidden.params["opacities"][1].detach()) == HIDDEN_LOGIT and hidden.opacities[1] < 1e-10
    assert torch.equal(hidden.params["opacities"][0], model.params["opacities"][0])
    with torch.no_grad():
        graph.pose_translation[1, 0] = torch.tensor([0.5, 0.0, 0.0])  # half a metre forward in the box frame
        graph.pose_rotation[1, 0] = torch.tensor([0.0, 0.0, 0.1])
    moved = graph.compose(model, 1)
    R = torch.from_numpy(rot_z(90)).float() @ quat_to_rotmat(torch.tensor([1.0, 0.0, 0.0, 0.05]))
    expected = torch.tensor([20.0, 3.0, 1.0]) + torch.from_numpy(rot_z(90)).float() @ torch.tensor([0.5, 0.0, 0.0]) \
        + R @ torch.tensor([1.0, 0.0, 0.5])
    assert torch.allclose(moved.means[1], expected, atol=1e-5)


def test_gradients_reach_the_node_parameters_and_its_pose_delta():
    model, graph = _one_node_graph()
    out = graph.compose(model, 1)
    (out.means.sum() + out.quats.sum()).backward()
    assert model.params["means"].grad[1].abs().sum() > 0 and model.params["quats"].grad[1].abs().sum() > 0
    assert graph.pose_translation.grad[1, 0].abs().sum() > 0 and graph.pose_rotation.grad[1, 0].abs().sum() > 0
    assert graph.pose_translation.grad[0].abs().sum() == 0  # other timesteps untouched


def test_quaternion_product_matches_the_matrix_product():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    assert torch.allclose(quat_to_rotmat(quat_multiply(a, b)), quat_to_rotmat(a) @ quat_to_rotmat(b), atol=1e-5)


def test_a_graph_without_nodes_renders_exactly_the_model():
    model = GaussianModel.random(50, sh_degree=1, seed=2)
    graph = SceneGraph([0], [], torch.full((50,), -1))
    assert graph.compose(model, 0) is model
    K = torch.tensor([[30.0, 0, 16], [0, 30.0, 12], [0, 0, 1]])
    V = torch.eye(4)
    V[2, 3] = 3.0
    a = render(model, V[None], K[None], 32, 24, backend="torch").rgb
    b = render(graph.compose(model, 0), V[None], K[None], 32, 24, backend="torch").rgb
    assert torch.equal(a, b)


# --- track files ---------------------------------------------------------------------------------


def _tracks_payload(n=3):
    poses = [rigid(rot_z(10.0 * f), [2.0 * f, 0.0, 0.8]).tolist() for f in range(n)]
    info = {"0": {"id": "a", "class_name": "Vehicle",
                  "frame_annotations": {"frame_idx": list(range(n)), "obj_to_world": poses, "box_size": [[4.0, 2.0, 1.6]] * n}}}
    return info, {str(f): [0] for f in range(n)}


def _write_tracks(root: Path, info, frames) -> None:
    (root / "instances").mkdir(parents=True, exist_ok=True)
    (root / "instances" / "instances_info.json").write_text(json.dumps(info))
    (root / "instances" / "frame_instances.json").write_text(json.dumps(frames))


def test_tracks_are_read_with_their_poses_and_mean_box_size(tmp_path):
    info, frames = _tracks_payload()
    info["0"]["frame_annotations"]["box_size"][2] = [4.3, 2.0, 1.6]
    info["1"] = {"id": "never", "class_name": "Vehicle", "frame_annotations": {"frame_idx": [], "obj_to_world": [], "box_size": []}}
    _write_tracks(tmp_path, info, frames)
    tracks = read_tracks(tmp_path)
    assert list(tracks.tracks) == ["0"]  # an instance never annotated is dropped, as DriveStudio does
    tr = tracks.tracks["0"]
    assert tr.timesteps == [0, 1, 2] and tr.rigid and math.isclose(tr.trajectory_length(), 4.0, rel_tol=1e-5)
    assert torch.allclose(tr.size, torch.tensor([4.1, 2.0, 1.6]))
    assert torch.allclose(tr.pose_at(2), torch.from_numpy(rigid(rot_z(20.0), [4.0, 0.0, 0.8])).float())
    assert [t.key for t in tracks.moving_vehicles(3.0)] == ["0"] and tracks.moving_vehicles(5.0) == []


@pytest.mark.parametrize("break_it, words", [
    (lambda info, fr: info["0"]["frame_annotations"]["obj_to_world"][1][0].__setitem__(3, float("nan")), "NaN"),
    (lambda info, fr: info["0"]["frame_annotations"]["obj_to_world"][1].__setitem__(0, [2.0, 0.0, 0.0, 0.0]), "not rigid"),
    (lambda info, fr: fr["1"].append(7), "instance 7"),
    (lambda info, fr: info["0"]["frame_annotations"]["frame_idx"].__setitem__(2, 9), "out of range"),
    (lambda info, fr: info["0"]["frame_annotations"]["box_size"].pop(), "one per frame"),
    (lambda info, fr: info["0"].pop("frame_annotations"), "no frame_annotations"),
])
def test_bad_tracks_raise_an_error_naming_the_file(tmp_path, break_it, words):
    info, frames = _tracks_payload()
    break_it(info, frames)
    _write_tracks(tmp_path, info, frames)
    with pytest.raises(TrackError) as err:
        read_tracks(tmp_path)
    assert isinstance(err.value, UserError) and "instances" in str(err.value) and ".json" in str(err.value)
    assert words in str(err.value)


def test_a_frame_listing_an_instance_without_its_annotation_is_refused():
    info, frames = _tracks_payload()
    info["0"]["frame_annotations"] = {k: v[:2] for k, v in info["0"]["frame_annotations"].items()}
    with pytest.raises(TrackError, match="frame_instances.json: frame 2 lists instance 0.*no obj_to_world"):
        parse_tracks(info, frames, Path("s/instances/instances_info.json"), Path("s/instances/frame_instances.json"))


def test_a_nan_box_pose_in_a_scene_folder_names_the_file(tmp_path):
    write_drivestudio_scene(tmp_path / "ds", n_steps=4, cams=(0,), size=(32, 24))
    path = tmp_path / "ds" / "instances" / "instances_info.json"
    info = json.loads(path.read_text())
    info["0"]["frame_annotations"]["obj_to_world"][2][1][3] = float("nan")
    path.write_text(json.dumps(info))
    with pytest.raises(UserError, match=r"instances_info\.json.*instance 0, frame 2.*NaN"):
        load_scene(tmp_path / "ds", holdout_every=0, cameras=(0,))


# --- training ------------------------------------------------------------------------------------


def _cfg(root: Path, use_graph: bool, **kw) -> ReconConfig:
    return ReconConfig(data=root, out=root / "run", steps=8, device="cpu", holdout_every=3, progress=False, backend="torch",
                       init=InitConfig(random_points=100), strategy=StrategyConfig(refine_start=3, refine_every=3),
                       sh_degree=1, scene_graph=use_graph, **kw)


def _add_lidar_on_the_car(written: dict, per_step: int = 40) -> np.ndarray:
    """Put the car 7 m ahead of the ego (so it moves with it, 2 m a timestep, in the front camera's view) and add
    lidar hits inside its box (vehicle frame of each timestep); returns their box-frame points."""
    from faithfusion.data.drivestudio import write_drivestudio_instances

    root = Path(written["root"])
    n = len(written["ego"])
    written["obj_to_world"] = [written["ego"][t] @ rigid(rot_z(5.0), [7.0, 0.5, 0.8]) for t in range(n)]
    write_drivestudio_instances(root, {"0": {"id": "abc", "class_name": "Vehicle", "frame_annotations": {
        "frame_idx": list(range(n)), "obj_to_world": [T.tolist() for T in written["obj_to_world"]],
        "box_size": [[4.0, 2.0, 1.6]] * n}}}, {str(t): [0] for t in range(n)})
    rng = np.random.default_rng(0)
    local = rng.uniform(-0.45, 0.45, size=(per_step, 3)) * np.array([4.0, 2.0, 1.6])  # inside the 4 x 2 x 1.6 box
    for t, o2w in enumerate(written["obj_to_world"]):
        path = root / "lidar" / f"{t:03d}.bin"
        sweep = np.fromfile(path, dtype=np.float32).reshape(-1, 14)
        world = local @ o2w[:3, :3].T + o2w[:3, 3]
        E = written["ego"][t]
        vehicle = (world - E[:3, 3]) @ E[:3, :3]
        rows = np.zeros((per_step, 14), np.float32)
        rows[:, 0:3] = [1.0, 0.0, 2.0]
        rows[:, 3:6] = vehicle
        np.concatenate([sweep, rows]).astype(np.float32).tofile(path)
    return local


def test_a_static_scene_trains_exactly_as_without_the_flag(tmp_path, single_thread):
    write_drivestudio_scene(tmp_path / "ds", n_steps=4, cams=(0, 1), size=(32, 24))
    scene = load_scene(tmp_path / "ds", holdout_every=3, cameras=(0, 1))
    runs = []
    for graph in (False, True):  # the car's 8 m track is below --graph.min-trajectory 100: no node, background only
        tr = Trainer(scene, _cfg(tmp_path / "ds", graph, graph=SceneGraphConfig(min_trajectory=100.0)), torch.device("cpu"))
        for _ in range(7):
            tr.train_step()
        runs.append(tr)
    assert runs[1].graph is not None and runs[1].graph.num_nodes == 0 and not runs[1].has_nodes
    for k, v in runs[0].model.params.items():
        assert torch.equal(v, runs[1].model.params[k]), k


def test_a_dynamic_drivestudio_scene_trains_with_a_node_that_stays_in_its_box(tmp_path, single_thread):
    written = write_drivestudio_scene(tmp_path / "ds", n_steps=6, cams=(0, 1), size=(64, 48))
    local = _add_lidar_on_the_car(written)
    scene = load_scene(tmp_path / "ds", holdout_every=3, cameras=(0, 1))
    cfg = _cfg(tmp_path / "ds", True, graph=SceneGraphConfig(min_points=300))
    tr = Trainer(scene, cfg, torch.device("cpu"))
    graph = tr.graph
    assert graph.num_nodes == 1 and graph.track_ids == ["abc"]
    node = graph.node_ids == 0
    n_lidar = 6 * len(local)
    assert int(node.sum()) >= max(300, n_lidar)
    # the lidar hits on the car became node Gaussians at their box-frame positions, at every timestep
    got = tr.model.means[node].detach()
    dist = torch.cdist(torch.from_numpy(local).float(), got)  # [40, M]
    assert (dist.min(dim=1).values < 1e-3).all() and ((dist < 1e-3).sum(dim=1) == 6).all()
    # no background Gaussian is left inside the car's box at any timestep
    from faithfusion.scene_graph.graph import inside_any_box
    from faithfusion.scene_graph.tracks import tracks_from_scene

    tracks = tracks_from_scene(scene).moving_vehicles(1.0)
    assert not inside_any_box(tr.model.means[~node].detach(), tracks).any()
    for _ in range(8):
        stats = tr.train_step()
        assert torch.isfinite(stats["loss"])
    assert torch.equal(tr.graph.node_ids, tr.strategy.state["scene_graph_node_ids"])
    node = tr.graph.node_ids == 0
    half = 0.5 * 1.1 * tracks[0].size
    assert (tr.model.means[node].detach().abs() <= half + 1e-4).all()  # pruned to the box after each refinement
    assert tr.graph.pose_translation.detach().abs().sum() > 0  # the pose refinement learned something
    for t in (0, 4):  # placed: the node's centre is inside its box at that timestep
        world = tr.graph.compose(tr.model, t).means[node].detach().mean(0)
        box = tracks[0].pose_at(t)
        assert ((world - box[:3, 3]) @ box[:3, :3]).abs().le(0.5 * tracks[0].size).all()
    # a checkpoint round trip keeps the node ids and the pose deltas
    state = tr.state_dict()
    tr2 = Trainer(scene, cfg, torch.device("cpu"))
    tr2.load_state_dict(state)
    assert torch.equal(tr2.graph.node_ids, tr.graph.node_ids)
    assert torch.equal(tr2.graph.pose_translation, tr.graph.pose_translation)
    assert tr.world_model().means.shape == tr.model.means.shape


def test_mcmc_is_refused_with_nodes(tmp_path):
    written = write_drivestudio_scene(tmp_path / "ds", n_steps=4, cams=(0,), size=(32, 24))
    scene = load_scene(written["root"], holdout_every=0, cameras=(0,))
    from faithfusion.scene_graph.densify import check_strategy
    from faithfusion.train.strategy import GsplatMCMC

    with pytest.raises(UserError, match="--strategy.name mcmc"):
        check_strategy(GsplatMCMC(StrategyConfig(name="mcmc")), "mcmc")
    assert scene.instances is not None
