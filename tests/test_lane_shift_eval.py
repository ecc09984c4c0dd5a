"""The lane-shift protocol and the demo report on a tiny SynthStreet scene (CPU)."""

import json

import pytest
import torch

from faithfusion.data.load import load_scene
from faithfusion.eval.lane_shift import available_shifts, evaluate_lane_shift, write_lane_shift_report
from faithfusion.commands.demo_report import write_report
from faithfusion.synth import generate
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
from faithfusion.train.trainer import Trainer


def test_lane_shift_protocol_and_report(tmp_path):
    torch.set_num_threads(1)
    root = generate(tmp_path / "scene", 3, frames=6, cameras=("front",), width=64, height=48, shifts=(2.0,))
    assert available_shifts(root) == [2.0]
    scene = load_scene(root, holdout_every=3, cameras=(0,))
    cfg = ReconConfig(data=root, out=tmp_path / "run", steps=15, device="cpu", progress=False,
                      init=InitConfig(max_points=2000, random_points=200), strategy=StrategyConfig(refine_start=1000))
    trainer = Trainer(scene, cfg, torch.device("cpu"))
    trainer.fit(15, progress=False)

    def render_fn(camera):
        rgb, _ = trainer.render_camera(camera)
        return rgb

    result = evaluate_lane_shift(render_fn, scene, root)
    assert set(result["per_shift"]) == {"+0.0", "+2.0", "-2.0"}
    assert result["per_shift"]["+0.0"]["mean"]["count"] == len(scene.test_ids)
    assert result["per_shift"]["+2.0"]["mean"]["count"] == len(scene.frames)
    assert result["by_magnitude"]["2.0"]["count"] == 2 * len(scene.frames)
    for row in result["per_shift"]["-2.0"]["frames"]:
        assert 0 < row["psnr"] < 60 and 0 <= row["ssim"] <= 1
    # the shifted camera really is the one the ground truth was rendered from
    cam = scene.shifted_camera(0, 2.0)
    gt_pose = torch.tensor(
        [[float(x) for x in line.split()] for line in (root / "gt_shifted" / "+2.0m" / "ego_pose" / "000.txt").read_text().splitlines()]
    )
    ego = scene.frames[0].ego_to_world
    offset = cam.center - scene.camera(0).center
    assert torch.allclose(offset, 2.0 * ego[:3, 1], atol=1e-4)
    gt_ego_in_scene = scene.transform.points_to_scene(gt_pose[:3, 3].float())
    assert torch.allclose(gt_ego_in_scene, ego[:3, 3] + 2.0 * ego[:3, 1], atol=1e-3)

    run = tmp_path / "run"
    out = write_lane_shift_report(run, result)
    assert json.loads(out.read_text())["by_magnitude"]["0.0"]["count"] == len(scene.test_ids)
    assert out.with_suffix(".png").stat().st_size > 1000
    sizes = {"frames": 6, "width": 64, "height": 48, "shifts": (2.0,), "steps": 15}
    report = write_report(tmp_path / "demo", {"3dgs": {"render": render_fn, "scene": scene, "result": result}}, sizes, {"3dgs": 1.0}, root)
    text = report.read_text()
    assert "| 3dgs |" in text and (tmp_path / "demo" / "report" / "views.png").is_file()


def test_gt_masks_load_resized_and_refuse_missing_or_corrupt_files(tmp_path):
    import numpy as np
    from PIL import Image

    from faithfusion.data.frame import SceneError
    from faithfusion.eval.gt_masks import gt_mask_path, has_gt_masks, load_gt_mask

    path = gt_mask_path(tmp_path, -3.0, "unobserved", 4, "1")
    assert path == tmp_path / "gt_shifted" / "-3.0m" / "unobserved" / "004_1.png"
    assert not has_gt_masks(tmp_path, -3.0, "unobserved")
    path.parent.mkdir(parents=True)
    m = np.zeros((4, 6), np.uint8)
    m[:2, :4] = 255  # at half size: 2x2 blocks fully set -> True
    m[0, 4] = 255  # a block 1/4 set -> False
    m[2:, :2] = 255
    m[2, 2] = m[2, 3] = m[3, 2] = 255  # a block 3/4 set -> True
    Image.fromarray(m).save(path)
    assert has_gt_masks(tmp_path, -3.0, "unobserved")
    assert load_gt_mask(tmp_path, -3.0, "unobserved", 4, "1", (4, 6)).numpy().tolist() == (m >= 128).tolist()
    half = load_gt_mask(tmp_path, -3.0, "unobserved", 4, "1", (2, 3)).numpy()
    assert half.tolist() == [[True, True, False], [True, True, False]]
    with pytest.raises(SceneError, match="disoccluded mask missing"):
        load_gt_mask(tmp_path, -3.0, "disoccluded", 4, "1", (4, 6))
    path.write_bytes(b"not a png")
    with pytest.raises(SceneError, match="not a readable mask"):
        load_gt_mask(tmp_path, -3.0, "unobserved", 4, "1", (4, 6))
