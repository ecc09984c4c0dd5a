"""NTA-IoU / NTL-IoU: box projection, IoU and matching, the user-model interface, the lane-line ground truth and the
shipped metric networks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faithfusion.eval.structure import LaneSegmenter, StructureEval, VehicleDetector, box_iou, mask_iou, match_ious, pool
from faithfusion.eval.structure_truth import split_vehicles, view_truth
from faithfusion.synth.annotations import box_corners, project_box


def test_projection_of_a_known_box():
    # camera at the origin looking down +z (OpenCV), fx = fy = 100, centre (50, 40); a 2 m cube centred 10 m ahead
    K = np.array([100.0, 100.0, 50.0, 40.0])
    pose = np.eye(4)
    pose[:3, 3] = [0.0, 0.0, 10.0]
    box = project_box(box_corners(pose, (2.0, 2.0, 2.0)), np.eye(4), K, 100, 80)
    # the nearest face (z = 9) spans the widest: x, y in [-1, 1] -> 50 +- 100/9, 40 +- 100/9
    np.testing.assert_allclose(box, [50 - 100 / 9, 40 - 100 / 9, 50 + 100 / 9, 40 + 100 / 9], atol=1e-9)
    # clipped to the image: moved 5 m to the right, the box leaves through the right edge
    pose[0, 3] = 5.0
    x0, y0, x1, y1 = project_box(box_corners(pose, (2.0, 2.0, 2.0)), np.eye(4), K, 100, 80)
    assert x0 == pytest.approx(50 + 100 * 4 / 11) and x1 == 100.0
    pose[2, 3] = -10.0  # behind the camera
    assert project_box(box_corners(pose, (2.0, 2.0, 2.0)), np.eye(4), K, 100, 80) is None


def test_iou_and_matching_on_hand_made_boxes():
    assert box_iou([[0, 0, 2, 2]], [[1, 1, 3, 3]])[0, 0] == pytest.approx(1 / 7)
    assert box_iou([[0, 0, 2, 2]], [[2, 0, 4, 2]])[0, 0] == 0.0
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    # one detection over both cars' gap counts once; the better-overlapping car gets it
    det = np.array([[2, 0, 12, 10, 0.9]])
    np.testing.assert_allclose(match_ious(gt, det), [8 / 12, 0.0])
    # one to one: a duplicate detection of car 0 does not serve car 1
    det = np.array([[0, 0, 10, 10, 0.9], [0, 0, 10, 10, 0.8]])
    np.testing.assert_allclose(match_ious(gt, det), [1.0, 0.0])
    assert match_ious(gt, np.zeros((0, 5))).tolist() == [0.0, 0.0]
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0, :2] = True
    b[0, 1:3] = True
    assert mask_iou(a, b) == pytest.approx(1 / 3)
    assert mask_iou(np.zeros((2, 2)), np.zeros((2, 2))) is None
    # pooled over vehicles, not views
    assert pool([{"nta_iou": 1.0, "nta_count": 3, "ntl_iou": 0.5}, {"nta_iou": 0.0, "nta_count": 1, "ntl_iou": None}]) == {
        "nta_iou": 0.75, "nta_vehicles": 4, "ntl_iou": 0.5, "ntl_views": 1}


def test_visibility_split():
    entries = [
        {"visible_pixels": 300, "box_projected": [0, 0, 30, 20]},  # kept
        {"visible_pixels": 10, "box_projected": [0, 0, 4, 4]},  # too few pixels
        {"visible_pixels": 60, "box_projected": [0, 0, 40, 40]},  # mostly hidden: 60 / 1600 < 0.2
        {"visible_pixels": 50, "box_projected": None},
    ]
    kept, ignored = split_vehicles(entries, 192, 128)
    assert kept.tolist() == [[0, 0, 30, 20]] and len(ignored) == 2


@pytest.fixture
def scene(tmp_path) -> Path:
    """A hand-made SynthStreet-like folder: one view with two vehicles and a lane line."""
    root = tmp_path / "scene"
    base = root / "gt_shifted" / "+3.0m"
    (base / "lane_masks").mkdir(parents=True)
    (root / "scene.json").write_text(json.dumps({"width": 96, "height": 64}))
    boxes = {"002_0": [{"visible_pixels": 200, "box_projected": [10, 20, 40, 40]},
                       {"visible_pixels": 150, "box_projected": [60, 25, 80, 45]}]}
    (base / "boxes_2d.json").write_text(json.dumps(boxes))
    lanes = np.zeros((64, 96), np.uint8)
    lanes[50:60, 30:34] = 255
    Image.fromarray(lanes).save(base / "lane_masks" / "002_0.png")
    return root


class Oracle:
    """The ground truth through the user interface, optionally shifted by `dx` pixels."""

    def __init__(self, root: Path, dx: float = 0.0):
        self.root, self.dx = root, dx

    def detect(self, image):
        truth = view_truth(self.root, 3.0, 2, 0, tuple(image.shape[:2]))
        return truth.boxes + [self.dx, 0, self.dx, 0]

    def segment(self, image):
        mask = view_truth(self.root, 3.0, 2, 0, tuple(image.shape[:2])).lanes
        return np.roll(mask, int(self.dx), axis=1)


def test_oracle_scores_one_and_a_shifted_one_less(scene):
    image = torch.zeros(64, 96, 3)
    perfect = Oracle(scene)
    assert isinstance(perfect, VehicleDetector) and isinstance(perfect, LaneSegmenter)
    v = StructureEval(scene, perfect, perfect).view(image, 3.0, 2, 0)
    assert v == {"nta_iou": 1.0, "nta_count": 2, "ntl_iou": 1.0}
    shifted = StructureEval(scene, Oracle(scene, 2.0), Oracle(scene, 2.0)).view(image, 3.0, 2, 0)
    # box widths 30 and 20 moved by 2 px: IoU 28/32 and 18/22; lane 4 px wide moved by 2: 2/6
    assert shifted["nta_iou"] == pytest.approx((28 / 32 + 18 / 22) / 2)
    assert shifted["ntl_iou"] == pytest.approx(2 / 6)
    # a render at half size: the truth scales with it
    half = StructureEval(scene, perfect, perfect).view(torch.zeros(32, 48, 3), 3.0, 2, 0)
    assert half["nta_iou"] == pytest.approx(1.0) and half["ntl_iou"] == pytest.approx(1.0)


def test_user_model_loader_checks_the_protocol():
    from faithfusion.errors import UserError
    from faithfusion.eval.structure import load_user_model

    with pytest.raises(UserError, match="MODULE:FACTORY"):
        load_user_model("nocolon", VehicleDetector)
    with pytest.raises(UserError, match="no detect"):
        load_user_model("collections:OrderedDict", VehicleDetector)


def test_lane_paint_agrees_with_the_shader():
    from faithfusion.synth.lane_mask import lane_paint
    from faithfusion.synth.scene import SynthScene
    from faithfusion.synth.shading import R_CROSS, road_albedo
    from faithfusion.synth.world import make_world

    arrays = SynthScene(make_world(1, frames=2), shadows=False).arrays_at(0)
    road_p = arrays.road_p.copy()
    road_p[R_CROSS] = -1e9  # no crosswalk: lane lines only
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 100, 4000)
    lr = road_p[0]
    l = rng.uniform(lr - 0.5, -lr + 0.5, 4000)
    ours = np.array([lane_paint(a, b, road_p) for a, b in zip(s, l)])
    cover = np.array([road_albedo(a, b, 1e-6, 1e-6, road_p, arrays.noise)[3] for a, b in zip(s, l)])
    assert ours.sum() > 50
    assert (ours == (cover > 0)).all()


def test_shipped_metricnets_load_and_run():
    from faithfusion.eval.metricnets.shipped import SHIPPED, load_metricnets

    for name in ("vehicles.safetensors", "lanes.safetensors"):
        assert (SHIPPED / name).stat().st_size < 1_000_000
    detector, segmenter = load_metricnets()
    assert isinstance(detector, VehicleDetector) and isinstance(segmenter, LaneSegmenter)
    image = torch.rand(100, 150, 3)
    boxes = detector.detect(image)
    assert boxes.ndim == 2 and boxes.shape[1] == 5 and (boxes[:, 2] <= 150).all()
    mask = segmenter.segment(image)
    assert mask.shape == (100, 150) and mask.dtype == bool


def test_report_table_shows_nta_and_ntl(tmp_path):
    from faithfusion.eval.report_html import RunReport, lane_shift_table

    by = {"0.0": {"psnr": 25.0, "count": 3, "nta_iou": 0.8125, "ntl_iou": 0.4375}, "3.0": {"psnr": 22.0, "count": 6}}
    table = lane_shift_table([RunReport("3dgs", tmp_path, {"lane-shift": {"by_magnitude": by}})])
    assert "NTA-IoU" in table and "NTL-IoU" in table and "0.812" in table and "0.438" in table


def test_lane_mask_pixels_lie_on_lane_boundaries():
    from faithfusion.synth.lane_mask import lane_masks
    from faithfusion.synth.rig import rig_cameras
    from faithfusion.synth.scene import SynthScene
    from faithfusion.synth.world import make_world

    world = make_world(2, frames=2)
    arrays = SynthScene(world, shadows=False).arrays_at(0)
    cam = rig_cameras(("front",))[0]
    W, H = 96, 64
    K = cam.intrinsics(W, H)
    w2c = np.linalg.inv(world.ego_pose(0) @ cam.cam_to_ego())
    mask = lane_masks(arrays, w2c[None], K[None], W, H)[0]
    assert mask.sum() > 20
    # every masked pixel's ray meets the road plane (z = 0) within 0.3 m of a lane boundary, in the image's lower half
    jj, ii = np.nonzero(mask)
    rays = np.stack([(ii + 0.5 - K[2]) / K[0], (jj + 0.5 - K[3]) / K[1], np.ones(len(ii))], -1) @ np.linalg.inv(w2c)[:3, :3].T
    origin = np.linalg.inv(w2c)[:3, 3]
    p = origin + rays * (-origin[2] / rays[:, 2])[:, None]
    road = world.road
    k = road.line.curvature
    l = p[:, 1] if abs(k) < 1e-9 else 1 / k - np.sign(k) * np.hypot(p[:, 0], p[:, 1] - 1 / k)
    bounds = road.l_right_lanes + road.lane_width * np.arange(road.n_lanes + 1)
    assert (np.abs(l[:, None] - bounds[None]).min(1) < 0.3).all()
    assert (jj >= H / 2).all()


def test_lane_shift_protocol_pools_nta_and_ntl(tmp_path):
    from faithfusion.data.load import load_scene
    from faithfusion.eval.lane_shift import evaluate_lane_shift
    from faithfusion.eval.metrics import Metrics
    from faithfusion.synth import generate

    root = generate(tmp_path / "scene", 4, frames=4, cameras=("front",), width=96, height=64, shifts=(2.0,), supersample=1,
                    lidar_azimuths=90, observation=False)
    scene = load_scene(root, holdout_every=2, cameras=(0,))

    class Everything:
        """One box over the whole image and every pixel a lane line."""

        def detect(self, image):
            return np.array([[0, 0, image.shape[1], image.shape[0], 1.0]])

        def segment(self, image):
            return np.ones(image.shape[:2], bool)

    structure = StructureEval(root, Everything(), Everything(), "everything")
    result = evaluate_lane_shift(lambda cam: torch.zeros(cam.height, cam.width, 3), scene, root, [2.0],
                                 metrics=Metrics(use_lpips=False), structure=structure)
    rows = [r for key in ("+2.0", "-2.0") for r in result["per_shift"][key]["frames"]]
    expect_n, expect_sum, lane_ious = 0, 0.0, []
    for key, d in (("+2.0", 2.0), ("-2.0", -2.0)):
        for r in result["per_shift"][key]["frames"]:
            truth = view_truth(root, d, r["timestep"], 0)
            expect_n += len(truth.boxes)
            expect_sum += match_ious(truth.boxes, np.array([[0, 0, 96, 64]])).sum()
            if truth.lanes is not None and truth.lanes.any():
                lane_ious.append(truth.lanes.mean())
    pooled = result["by_magnitude"]["2.0"]
    assert len(rows) == 8 and expect_n > 0 and pooled["nta_vehicles"] == expect_n
    assert pooled["nta_iou"] == pytest.approx(expect_sum / expect_n)
    assert pooled["ntl_iou"] == pytest.approx(np.mean(lane_ious)) and result["structure_models"] == "everything"


def test_eval_command_picks_the_models(tmp_path):
    from faithfusion.commands.eval import EvalConfig, eval_command, structure_eval
    from faithfusion.eval.metricnets.shipped import NetDetector, NetSegmenter

    assert structure_eval(EvalConfig(nta=False), tmp_path) is None
    s = structure_eval(EvalConfig(), tmp_path)
    assert isinstance(s.detector, NetDetector) and isinstance(s.segmenter, NetSegmenter) and "shipped" in s.name
    cfg = EvalConfig(lane_segmenter="nomodule_here:make")
    from faithfusion.errors import UserError

    with pytest.raises(UserError, match="cannot load"):
        structure_eval(cfg, tmp_path)
    assert "--lane-segmenter nomodule_here:make" in eval_command(cfg) and "--no-nta" in eval_command(EvalConfig(nta=False))
