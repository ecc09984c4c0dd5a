"""point_cloud.ply in a recentred local frame: the origin in the header, undone exactly on load."""

from __future__ import annotations

import pytest
import torch
import yaml
from plyfile import PlyData

from faithfusion.data.scene import SceneTransform
from faithfusion.gaussians.ply import PlyFormatError, load_ply, read_ply_origin, save_ply
from faithfusion.gaussians.ply_frame import local_origin, parse_frame_comments
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
from faithfusion.train.recon import run_recon
from tests.scene_fixtures import write_drivestudio_scene
from tests.test_ply import random_model

# a UTM-like world: the scene's centre is kilometres from the world origin
FAR = SceneTransform(torch.tensor([453_120.4, 3_215_870.6, 12.2], dtype=torch.float64), torch.eye(3, dtype=torch.float64), 0.1)


def test_local_origin_rounds_the_mean() -> None:
    c = torch.tensor([[10.2, -3.4, 0.1], [11.0, -4.0, 0.3]], dtype=torch.float64)
    assert local_origin(c) == (11.0, -4.0, 0.0)
    assert local_origin(c, step=10.0) == (10.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        local_origin(torch.zeros(0, 3))


def test_local_frame_is_recorded_and_undone_exactly(tmp_path) -> None:
    model = random_model(64, 1, seed=3)  # scene units, means ~N(0, 1)
    origin = local_origin(FAR.center[None])
    save_ply(model, tmp_path / "local.ply", transform=FAR, origin=origin)
    save_ply(model, tmp_path / "global.ply", transform=FAR)
    ply = PlyData.read(str(tmp_path / "local.ply"))
    assert "faithfusion_frame local" in ply.comments
    assert read_ply_origin(tmp_path / "local.ply") == origin == (453120.0, 3215871.0, 12.0)
    assert read_ply_origin(tmp_path / "global.ply") is None
    # the file's positions are near 0, where a viewer opens
    raw = torch.tensor([list(ply["vertex"][k]) for k in ("x", "y", "z")]).T  # [N, 3]
    assert raw.abs().max() < 100
    # load adds the origin back: world units, then the scene transform: back to scene units
    exact_world = model.means.detach().double() / FAR.scale + FAR.center  # [N, 3]
    world = load_ply(tmp_path / "local.ply")
    assert torch.allclose(world.means.double(), exact_world, atol=0.5)  # float32 at 3e6 has 0.25 m steps
    back = load_ply(tmp_path / "local.ply", transform=FAR)
    err_local = (back.means - model.means.detach()).abs().max()
    err_global = (load_ply(tmp_path / "global.ply", transform=FAR).means - model.means.detach()).abs().max()
    assert err_local < 1e-5  # scene units (1e-6 m * scale 0.1)
    assert err_global > 100 * err_local  # what recentring buys: float32 precision near the origin
    for key in ("scales", "quats", "opacities", "sh0", "shN"):
        assert torch.allclose(back.params[key], model.params[key].detach(), atol=1e-5), key


def test_bad_frame_comments_are_named(tmp_path) -> None:
    assert parse_frame_comments(["made by another tool"]) is None
    with pytest.raises(ValueError, match="faithfusion_origin"):
        parse_frame_comments(["faithfusion_frame local"])
    with pytest.raises(ValueError, match="three finite"):
        parse_frame_comments(["faithfusion_frame local", "faithfusion_origin 1 2"])
    path = save_ply(random_model(4, 0), tmp_path / "m.ply", origin=(1.0, 2.0, 3.0))
    data = path.read_bytes().replace(b"faithfusion_origin 1.0 2.0 3.0", b"faithfusion_origin 1.0 2.0 nan")
    path.write_bytes(data)
    with pytest.raises(PlyFormatError, match="m.ply"):
        load_ply(path)


@pytest.mark.parametrize("global_frame", [False, True])
def test_recon_writes_local_frame_by_default(tmp_path, global_frame: bool) -> None:
    data = tmp_path / "ds"
    write_drivestudio_scene(data, n_steps=3, cams=(0,), size=(32, 24))
    out = tmp_path / "run"
    cfg = ReconConfig(data=data, out=out, steps=2, device="cpu", holdout_every=0, progress=False, ckpt_every=0,
                      cameras=(0,), init=InitConfig(random_points=20), strategy=StrategyConfig(refine_start=1000),
                      save_renders=False, ply_global_frame=global_frame)
    run_recon(cfg)
    stored = yaml.safe_load((out / "config.yaml").read_text())
    origin = read_ply_origin(out / "point_cloud.ply")
    if global_frame:
        assert origin is None and stored["_run"]["ply"] == {"frame": "global"} and stored["ply_global_frame"]
    else:
        assert stored["_run"]["ply"]["frame"] == "local" and tuple(stored["_run"]["ply"]["origin"]) == origin
        assert 990 < origin[0] < 1020 and 1990 < origin[1] < 2020  # the fixture drives near (1000, 2000)
    assert len(load_ply(out / "point_cloud.ply")) > 0
