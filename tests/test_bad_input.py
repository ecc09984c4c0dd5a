"""Bad scenes on disk: every error names the file and the problem."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from faithfusion.cameras import PoseError
from faithfusion.data import load_scene
from faithfusion.data.colmap import read_colmap
from faithfusion.data.drivestudio import read_drivestudio, write_drivestudio_frame
from faithfusion.data.llff import read_llff
from faithfusion.data.nerfstudio import read_nerfstudio
from faithfusion.data.scene import SceneError

try:
    from tests import scene_fixtures as fx
except ImportError:  # tests/ is not a package
    import scene_fixtures as fx


names = fx.names_path


@pytest.fixture
def ds(tmp_path):
    return fx.write_drivestudio_scene(tmp_path, n_steps=3)["root"]


def write_matrix(path, M) -> None:
    np.savetxt(path, M)


# --- images ------------------------------------------------------------------------------------


def test_missing_image(ds):
    bad = ds / "images" / "001_2.jpg"
    bad.unlink()
    with pytest.raises(SceneError, match=names(bad) + ".*missing"):
        read_drivestudio(ds)


def test_missing_image_nerfstudio_and_colmap(tmp_path):
    fx.write_nerfstudio_scene(tmp_path / "ns")
    (tmp_path / "ns" / "images" / "frame_003.png").unlink()
    with pytest.raises(SceneError, match="frame_003.png.*missing"):
        read_nerfstudio(tmp_path / "ns")
    fx.write_colmap_scene(tmp_path / "cm")
    (tmp_path / "cm" / "images" / "img_04.png").unlink()
    with pytest.raises(SceneError, match=names(tmp_path / "cm" / "images" / "img_04.png") + ".*missing"):
        read_colmap(tmp_path / "cm")


def test_truncated_jpeg(ds):
    scene = read_drivestudio(ds, color_points=False)
    i = next(k for k, f in enumerate(scene.frames) if f.image_path.name == "002_0.jpg")
    path = scene.frames[i].image_path
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SceneError, match=names(path) + ".*(truncated|decode)"):
        scene.load_image(i)
    assert scene.load_image(0).shape == (48, 64, 3)  # the others still load


def test_truncated_jpeg_fails_point_colouring(ds):
    path = ds / "images" / "001_0.jpg"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(SceneError, match=names(path)):
        read_drivestudio(ds, holdout_every=0)


def test_unreadable_image(ds):
    scene = read_drivestudio(ds, color_points=False)
    path = scene.frames[1].image_path
    path.write_bytes(b"this is not an image")
    with pytest.raises(SceneError, match=names(path) + ".*decode"):
        scene.load_image(1)


def test_wrong_size_image(ds):
    from PIL import Image

    scene = read_drivestudio(ds, color_points=False)
    path = scene.frames[4].image_path
    Image.new("RGB", (50, 40)).save(path, format="JPEG")
    with pytest.raises(SceneError, match=names(path) + ".*wrong image size 50x40"):
        scene.load_image(4)


# --- poses -------------------------------------------------------------------------------------


def test_nan_in_ego_pose(ds):
    path = ds / "ego_pose" / "001.txt"
    M = np.loadtxt(path)
    M[0, 3] = np.nan
    write_matrix(path, M)
    with pytest.raises(PoseError, match=names(path) + ".*NaN"):
        read_drivestudio(ds)


def test_scaled_extrinsics_are_not_rigid(ds):
    path = ds / "extrinsics" / "1.txt"
    M = np.loadtxt(path)
    M[:3, :3] *= 2.0
    write_matrix(path, M)
    with pytest.raises(PoseError, match=names(path) + ".*not rigid"):
        read_drivestudio(ds)


def test_sheared_ego_pose_is_not_rigid(ds):
    path = ds / "ego_pose" / "002.txt"
    M = np.loadtxt(path)
    M[:3, :3] = M[:3, :3] @ np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    write_matrix(path, M)
    with pytest.raises(PoseError, match=names(path) + ".*not rigid"):
        read_drivestudio(ds)


def test_bad_instance_pose(ds):
    path = ds / "instances" / "instances_info.json"
    info = json.loads(path.read_text())
    info["0"]["frame_annotations"]["obj_to_world"][1][0][0] = float("nan")
    path.write_text(json.dumps(info))
    with pytest.raises(PoseError, match=names(path) + r".*instance 0, frame 1"):
        read_drivestudio(ds)


def test_writer_rejects_bad_pose_and_lidar(tmp_path):
    with pytest.raises(PoseError, match="timestep 0"):
        write_drivestudio_frame(tmp_path, 0, np.eye(4) * 2, {}, np.zeros((1, 14), np.float32))
    with pytest.raises(ValueError, match=r"\[M, 14\]"):
        write_drivestudio_frame(tmp_path, 0, np.eye(4), {}, np.zeros((5, 3), np.float32))


def test_nan_in_nerfstudio_pose(tmp_path):
    fx.write_nerfstudio_scene(tmp_path)
    path = tmp_path / "transforms.json"
    meta = json.loads(path.read_text())
    meta["frames"][1]["transform_matrix"][1][2] = float("nan")
    path.write_text(json.dumps(meta))
    with pytest.raises(PoseError, match=names(path) + ".*NaN"):
        read_nerfstudio(tmp_path)


@pytest.mark.parametrize("binary", [True, False], ids=["bin", "txt"])
def test_non_unit_colmap_quaternion(tmp_path, binary):
    truth = fx.write_colmap_scene(tmp_path, binary=binary)
    iid, q, t, cid, name = truth["images"][2]
    truth["images"][2] = (iid, 2.0 * q, t, cid, name)  # a scaled quaternion is no rotation
    writer = fx._write_colmap_bin if binary else fx._write_colmap_txt
    writer(truth["model"], truth["images"], truth["points"], truth["rgb"], *truth["size"])
    path = truth["model"] / ("images.bin" if binary else "images.txt")
    with pytest.raises(PoseError, match=names(path) + ".*img_02.png.*not rigid"):
        read_colmap(tmp_path)


def test_non_rigid_llff_pose(tmp_path):
    fx.write_llff_scene(tmp_path)
    path = tmp_path / "poses_bounds.npy"
    arr = np.load(path)
    arr[3, :15] = (arr[3, :15].reshape(3, 5) * [2, 1, 1, 1, 1]).ravel()
    np.save(path, arr)
    with pytest.raises(PoseError, match=names(path) + r".*row 3.*not rigid"):
        read_llff(tmp_path)


# --- intrinsics, points, formats ---------------------------------------------------------------


def test_intrinsics_with_three_numbers(ds):
    path = ds / "intrinsics" / "0.txt"
    path.write_text("100 100 32\n")
    with pytest.raises(SceneError, match=names(path) + ".*at least 4 numbers.*got 3"):
        read_drivestudio(ds)


def test_empty_lidar_file(ds):
    path = ds / "lidar" / "002.bin"
    path.write_bytes(b"")
    with pytest.raises(SceneError, match=names(path) + ".*no points"):
        read_drivestudio(ds)


def test_lidar_file_of_wrong_width(ds):
    path = ds / "lidar" / "001.bin"
    np.zeros((5, 13), np.float32).tofile(path)
    with pytest.raises(SceneError, match=names(path) + ".*multiple of 14"):
        read_drivestudio(ds)


def test_empty_colmap_points(tmp_path):
    truth = fx.write_colmap_scene(tmp_path)
    path = truth["model"] / "points3D.bin"
    path.write_bytes(struct.pack("<Q", 0))
    with pytest.raises(SceneError, match=names(path) + ".*no points"):
        read_colmap(tmp_path)


def test_truncated_colmap_binary(tmp_path):
    truth = fx.write_colmap_scene(tmp_path)
    path = truth["model"] / "cameras.bin"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(SceneError, match=names(path) + ".*ends early"):
        read_colmap(tmp_path)


def test_empty_ply(tmp_path):
    fx.write_nerfstudio_scene(tmp_path)
    fx.write_ply(tmp_path / "points.ply", np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    with pytest.raises(SceneError, match=names(tmp_path / "points.ply") + ".*no points"):
        read_nerfstudio(tmp_path)


def test_unsupported_colmap_model(tmp_path):
    truth = fx.write_colmap_scene(tmp_path, binary=False)
    path = truth["model"] / "cameras.txt"
    path.write_text(path.read_text().replace("1 SIMPLE_PINHOLE 40 30 35.0 20.0 15.0", "1 OPENCV_FISHEYE 40 30 35 35 20 15 0 0 0 0"))
    with pytest.raises(SceneError, match=names(path) + ".*OPENCV_FISHEYE is not supported"):
        read_colmap(tmp_path)


def test_llff_image_count_mismatch(tmp_path):
    fx.write_llff_scene(tmp_path)
    (tmp_path / "images" / "IMG_0001.png").unlink()
    with pytest.raises(SceneError, match=names(tmp_path / "poses_bounds.npy") + ".*5 poses but 4 images"):
        read_llff(tmp_path)


def test_unknown_format(tmp_path):
    (tmp_path / "something.txt").write_text("hi")
    with pytest.raises(SceneError, match=names(tmp_path) + ".*no known scene format"):
        load_scene(tmp_path)
    with pytest.raises(SceneError, match="does not exist"):
        load_scene(tmp_path / "nope")
