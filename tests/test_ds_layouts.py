"""Every DriveStudio dataset layout: detected from the folder, read with its own conventions, and a
known world point lands on its known pixel in every camera (the projection check of docs/data_layouts.md)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

from faithfusion.data import SceneError, detect_format, load_scene
from faithfusion.data.ds_layouts import LAYOUTS, detect_layout
from tests import ds_layout_fixtures as lf
from tests import scene_fixtures as fx

NAMES = tuple(LAYOUTS)


def names(path) -> str:
    return re.escape(str(path))


def to_scene(scene, X: np.ndarray) -> np.ndarray:  # [N, 3] world -> scene, float64
    tf = scene.transform
    return tf.scale * (X - tf.center.double().numpy()) @ tf.rotation.double().numpy().T


def pixel_errors(scene) -> list[float]:
    """For every frame, the distance (px) between the projection of its camera's known world point and the known pixel."""
    errors = []
    for frame in scene.frames:
        cam, t = int(frame.camera.meta["cam_id"]), frame.timestep
        X = to_scene(scene, lf.known_point(t, cam)[None])[0]
        V = frame.camera.viewmat.double().numpy()
        Kc = frame.camera.K.double().numpy()
        x = V[:3, :3] @ X + V[:3, 3]
        assert x[2] > 0, f"{frame.camera.name}: the known point is behind the camera"
        uv = (Kc @ (x / x[2]))[:2]
        errors.append(float(np.linalg.norm(uv - np.array(lf.KNOWN_PIXEL[cam]))))
    return errors


@pytest.fixture(scope="module", params=NAMES)
def layout_scene(request, tmp_path_factory):
    name = request.param
    truth = lf.write_layout_scene(tmp_path_factory.mktemp(name), name, fine_masks=name == "kitti")
    return truth, load_scene(truth["root"], cameras=truth["cams"], holdout_every=0, color_points=False, max_points=None)


def test_layout_is_detected(layout_scene):
    truth, scene = layout_scene
    assert detect_format(truth["root"]) == "drivestudio"
    assert detect_layout(truth["root"]).name == truth["layout"]
    assert scene.extra["layout"] == truth["layout"]
    assert len(scene.frames) == 2 * len(truth["cams"])


def test_known_point_lands_on_known_pixel_in_every_camera(layout_scene):
    truth, scene = layout_scene
    errors = pixel_errors(scene)
    assert len(errors) == 4 and max(errors) < 0.5, (truth["layout"], errors)


def test_lidar_columns_and_pose_files(layout_scene):
    """Each sweep comes back at its world positions: the right columns, read in the pose file's frame."""
    truth, scene = layout_scene
    for frame in scene.frames:
        expected = to_scene(scene, lf.lidar_points(frame.timestep))
        np.testing.assert_allclose(frame.lidar_points.double().numpy(), expected, atol=2e-3)
    assert scene.points.shape == (2 * len(lf.lidar_points(0)), 3)


def test_vehicle_frame_is_forward_left_up(layout_scene):
    """Lane shifts move along the vehicle's left, also for PandaSet and nuScenes whose pose files are not x-forward."""
    truth, scene = layout_scene
    R = scene.transform.rotation.double().numpy()
    for frame in scene.frames:
        V = lf.vehicle_pose(frame.timestep)
        np.testing.assert_allclose(frame.ego_to_world[:3, :3].double().numpy(), R @ V[:3, :3], atol=1e-5)
    shifted = scene.shifted_camera(0, 2.0)
    moved = shifted.camtoworld[:3, 3] - scene.frames[0].camera.camtoworld[:3, 3]
    left = torch.from_numpy(R @ lf.vehicle_pose(0)[:3, 1]).float()
    torch.testing.assert_close(moved, 2.0 * left, atol=1e-4, rtol=0)


def test_masks(layout_scene):
    truth, scene = layout_scene
    mask_dir = "fine_dynamic_masks" if truth["layout"] == "kitti" else "dynamic_masks"
    assert scene.extra["dynamic_mask_dir"] == mask_dir
    for i, frame in enumerate(scene.frames):
        name = f"{frame.timestep:03d}_{frame.cam_name}.png"
        assert frame.sky_mask_path == truth["root"] / "sky_masks" / name
        assert frame.dynamic_mask_path == truth["root"] / mask_dir / "all" / name
        for cls in ("human", "vehicle"):
            assert scene.extra["class_mask_paths"][cls][i] == truth["root"] / mask_dir / cls / name
    assert scene.load_sky_mask(0)[: lf.SIZE[1] // 4].all()


def test_existing_waymo_fixture_is_still_waymo(tmp_path):
    truth = fx.write_drivestudio_scene(tmp_path, n_steps=2, cams=(0, 1))
    assert detect_layout(tmp_path).name == "waymo"
    assert load_scene(tmp_path, cameras=(0, 1), color_points=False).extra["layout"] == "waymo"
    assert truth["root"] == tmp_path


# --- ambiguous and incomplete folders ------------------------------------------------------------


def test_ego_pose_and_lidar_pose_is_ambiguous(tmp_path):
    lf.write_layout_scene(tmp_path, "nuscenes")
    shutil.copytree(tmp_path / "lidar_pose", tmp_path / "ego_pose")
    with pytest.raises(SceneError, match=names(tmp_path) + ": ambiguous DriveStudio layout: both ego_pose/ and lidar_pose/"):
        load_scene(tmp_path)


def test_per_frame_and_per_camera_extrinsics_is_ambiguous(tmp_path):
    lf.write_layout_scene(tmp_path, "pandaset")
    shutil.copy(tmp_path / "extrinsics" / "000_0.txt", tmp_path / "extrinsics" / "0.txt")
    with pytest.raises(SceneError, match=names(tmp_path / "extrinsics") + ": ambiguous.*per-frame.*per-camera"):
        load_scene(tmp_path)


def test_kitti_or_argoverse_is_ambiguous_without_their_camera_sets(tmp_path):
    lf.write_layout_scene(tmp_path, "kitti", cams=(0,))
    (tmp_path / "intrinsics" / "1.txt").unlink()
    with pytest.raises(SceneError, match=names(tmp_path) + r": ambiguous.*KITTI or Argoverse 2.*cameras \[0\].*layout="):
        load_scene(tmp_path)
    scene = load_scene(tmp_path, layout="kitti", cameras=(0,), holdout_every=0, color_points=False)  # the way out
    assert scene.extra["layout"] == "kitti" and max(pixel_errors(scene)) < 0.5


def test_mixed_camera_axes_are_ambiguous(tmp_path):
    lf.write_layout_scene(tmp_path, "argoverse")
    waymo = lf.cam_to_vehicle(1) @ lf.OPENCV_TO_WAYMO_CAM.T
    np.savetxt(tmp_path / "extrinsics" / "1.txt", waymo)
    with pytest.raises(SceneError, match=names(tmp_path / "extrinsics") + r": ambiguous.*\['1.txt'\] have Waymo camera axes"):
        load_scene(tmp_path)


def test_missing_extrinsics_folder_is_incomplete(tmp_path):
    lf.write_layout_scene(tmp_path, "nuplan")
    shutil.rmtree(tmp_path / "extrinsics")
    with pytest.raises(SceneError, match=names(tmp_path / "extrinsics") + ": incomplete.*folder is missing"):
        load_scene(tmp_path)


def test_nuscenes_with_per_camera_extrinsics_is_incomplete(tmp_path):
    lf.write_layout_scene(tmp_path, "nuscenes")
    for p in (tmp_path / "extrinsics").glob("*_*.txt"):
        p.rename(p.with_name(p.name.split("_")[1]))
    with pytest.raises(SceneError, match=names(tmp_path / "extrinsics") + r": incomplete nuScenes scene.*\{t:03d\}_\{cam\}"):
        load_scene(tmp_path)


def test_missing_lidar_pose_and_camera_zero_extrinsic_are_named(tmp_path):
    lf.write_layout_scene(tmp_path, "nuscenes", n_steps=3)
    (tmp_path / "extrinsics" / "001_0.txt").unlink()
    with pytest.raises(SceneError, match=names(tmp_path / "extrinsics" / "001_0.txt") + ".*missing"):
        load_scene(tmp_path, cameras=(1,))  # camera 0 still defines the vehicle's forward
    (tmp_path / "lidar_pose" / "001.txt").unlink()
    with pytest.raises(SceneError, match=names(tmp_path / "lidar_pose" / "001.txt") + ": lidar pose is missing"):
        load_scene(tmp_path, cameras=(0, 1))


def test_wrong_lidar_columns_and_unknown_camera(tmp_path):
    lf.write_layout_scene(tmp_path, "pandaset")
    path = tmp_path / "lidar" / "000.bin"
    np.zeros(7, np.float32).tofile(path)
    with pytest.raises(SceneError, match=names(path) + ".*multiple of 5 float32 columns \\(x y z intensity laser_id\\)"):
        load_scene(tmp_path, cameras=(0,))
    with pytest.raises(SceneError, match=names(tmp_path / "intrinsics" / "6.txt") + ".*PandaSet cameras are 0: front_camera"):
        load_scene(tmp_path, cameras=(6,))
    with pytest.raises(SceneError, match="unknown DriveStudio layout 'panda'"):
        load_scene(tmp_path, layout="panda")
