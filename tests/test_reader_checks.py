"""Readers answer each bad input with a UserError naming the file, the item and the problem;
unusual but valid input (16-bit, grayscale, RGBA images; images.txt without POINTS2D lines) is read right."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from faithfusion.data.check import check_scene_images
from faithfusion.data.colmap import read_colmap
from faithfusion.data.drivestudio import read_drivestudio
from faithfusion.data.images import load_frame_image, load_mask
from faithfusion.data.nerfstudio import read_nerfstudio
from faithfusion.data.scene import SceneError
from faithfusion.errors import UserError
from faithfusion.gaussians.ply import PlyFormatError, load_ply, save_ply

try:
    from tests import scene_fixtures as fx
except ImportError:  # tests/ is not a package
    import scene_fixtures as fx


names = fx.names_path


@pytest.fixture
def ns(tmp_path):
    return fx.write_nerfstudio_scene(tmp_path / "ns")["root"]


@pytest.fixture
def ds(tmp_path):
    return fx.write_drivestudio_scene(tmp_path / "ds", n_steps=3)["root"]


def frame_index(scene, file_name: str) -> int:
    return next(i for i, f in enumerate(scene.frames) if f.image_path.name == file_name)


# --- image modes ---------------------------------------------------------------------------------


def test_16bit_grayscale_png_is_read_by_value(ns):
    path = ns / "images" / "frame_001.png"
    ramp = np.linspace(0, 65535, 48 * 36).reshape(36, 48).astype(np.uint16)  # [H, W]
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I;16")
    scene = read_nerfstudio(ns, holdout_every=0)
    image = scene.frames[frame_index(scene, "frame_001.png")]
    image.distortion = None  # compare raw pixels
    got = load_frame_image(image)  # [H, W, 3]
    want = torch.from_numpy(np.rint(ramp / 257.0) / 255.0).float()
    assert torch.allclose(got[..., 0], want, atol=1e-6) and torch.equal(got[..., 0], got[..., 2])
    assert 0.45 < float(got.mean()) < 0.55  # not "nearly white"


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA"])
def test_grayscale_rgba_and_palette_images_are_rgb(ns, mode):
    path = ns / "images" / "frame_001.png"
    rgb = Image.open(path).convert("RGB")
    rgb.convert(mode).save(path)
    scene = read_nerfstudio(ns, holdout_every=0)
    frame = scene.frames[frame_index(scene, "frame_001.png")]
    frame.distortion = None
    got = load_frame_image(frame)
    want = torch.from_numpy(np.asarray(rgb.convert(mode).convert("RGB"), dtype=np.float32) / 255.0)
    assert got.shape == (36, 48, 3) and torch.allclose(got, want)


def test_16bit_mask_is_thresholded_by_value(tmp_path):
    mask = np.zeros((8, 10), np.uint16)
    mask[:, 5:] = 65535
    mask[:, 3] = 20000  # below half of the 16-bit range: not sky
    Image.fromarray(mask).save(tmp_path / "m.png")
    got = load_mask(tmp_path / "m.png", (8, 10))
    assert got[:, 5:].all() and not got[:, :5].any()


# --- images checked before training -------------------------------------------------------------


def test_truncated_held_out_png_found_at_load(ns):
    scene = read_nerfstudio(ns, holdout_every=3)
    path = scene.frames[scene.test_ids[-1]].image_path
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(SceneError, match=names(path) + ".*decode"):
        check_scene_images(scene)


def test_truncated_held_out_jpeg_found_at_load(ds):
    scene = read_drivestudio(ds, holdout_every=2, color_points=False)
    path = scene.frames[scene.test_ids[-1]].image_path
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SceneError, match=names(path) + ".*[Tt]runcated"):
        check_scene_images(scene)


def test_zero_byte_image_found_at_load(ns):
    scene = read_nerfstudio(ns, holdout_every=0)
    path = scene.frames[4].image_path
    path.write_bytes(b"")
    with pytest.raises(SceneError, match=names(path) + ".*empty"):
        check_scene_images(scene)


def test_mislabelled_image_is_read_by_content(ns):
    path = ns / "images" / "frame_002.png"
    Image.open(path).convert("RGB").save(path, format="JPEG", quality=100)  # a JPEG named .png
    scene = read_nerfstudio(ns, holdout_every=0)
    assert check_scene_images(scene) is scene
    assert scene.load_image(frame_index(scene, "frame_002.png")).shape == (36, 48, 3)


def test_mixed_image_sizes_found_at_load(tmp_path):
    truth = fx.write_colmap_scene(tmp_path)
    path = truth["root"] / "images" / "img_05.png"  # camera 1, like img_00 (40x30)
    Image.new("RGB", (20, 15)).save(path)
    scene = read_colmap(tmp_path, holdout_every=0)
    with pytest.raises(SceneError, match=names(path) + ".*wrong image size 20x15.*40x30"):
        check_scene_images(scene)


def test_recon_checks_images_when_loading(ns):
    from faithfusion.train.config import ReconConfig
    from faithfusion.train.recon import load_scene_for

    path = ns / "images" / "frame_000.png"  # frame 0: held out
    path.write_bytes(b"not an image")
    with pytest.raises(SceneError, match=names(path)):
        load_scene_for(ReconConfig(data=ns, holdout_every=2))


# --- COLMAP -------------------------------------------------------------------------------------


def test_colmap_text_without_points2d_lines(tmp_path):
    truth = fx.write_colmap_scene(tmp_path, binary=False)
    path = truth["model"] / "images.txt"
    lines = path.read_text().splitlines()
    kept = [ln for ln in lines if ln.startswith("#") or ln.endswith(".png")]
    path.write_text("\n".join(kept) + "\n")
    scene = read_colmap(tmp_path, holdout_every=0)
    assert [f.image_path.name for f in scene.frames] == [f"img_{i:02d}.png" for i in range(6)]
    with_points = fx.write_colmap_scene(tmp_path / "ref", binary=False)
    ref = read_colmap(with_points["root"], holdout_every=0)
    for a, b in zip(scene.frames, ref.frames):
        assert torch.allclose(a.camera.viewmat, b.camera.viewmat, atol=1e-6)


@pytest.mark.parametrize(
    "line, words",
    [
        ("2 PINHOLE 40 30 nan 37.0 19.5 15.5", "camera 2.*NaN"),
        ("2 PINHOLE 40 30 -36.0 37.0 19.5 15.5", "camera 2.*non-positive focal"),
        ("2 PINHOLE 40 30 36.0 0.0 19.5 15.5", "camera 2.*non-positive focal"),
        ("2 PINHOLE 0 0 36.0 37.0 19.5 15.5", "camera 2.*invalid size 0x0"),
        ("2 PINHOLE 40 30 36.0 37.0 19.5", "camera 2.*needs 4 params, got 3"),
    ],
    ids=["nan-focal", "negative-focal", "zero-focal", "0x0", "short"],
)
def test_bad_colmap_camera(tmp_path, line, words):
    truth = fx.write_colmap_scene(tmp_path, binary=False)
    path = truth["model"] / "cameras.txt"
    path.write_text(path.read_text().replace("2 PINHOLE 40 30 36.0 37.0 19.5 15.5", line))
    with pytest.raises(SceneError, match=names(path) + ".*" + words):
        read_colmap(tmp_path)


def test_unknown_colmap_camera_id(tmp_path):
    truth = fx.write_colmap_scene(tmp_path, binary=False)
    path = truth["model"] / "cameras.txt"
    path.write_text("\n".join(ln for ln in path.read_text().splitlines() if not ln.startswith("3 ")) + "\n")
    with pytest.raises(SceneError, match=names(truth["model"] / "images.txt") + ".*img_02.png.*unknown camera 3"):
        read_colmap(tmp_path)


# --- DriveStudio --------------------------------------------------------------------------------


def test_far_lidar_outliers_are_dropped(ds):
    path = ds / "lidar" / "001.bin"
    sweep = np.fromfile(path, dtype=np.float32).reshape(-1, 14)
    bad = sweep[:5].copy()
    bad[:, 3:6] = 1e30
    np.concatenate([sweep, bad]).tofile(path)
    scene = read_drivestudio(ds, color_points=False)
    assert torch.isfinite(scene.points).all() and float(scene.points.abs().max()) < 1000.0
    assert scene.points.shape[0] == 3 * len(sweep)
    from faithfusion.gaussians.model import GaussianModel

    model = GaussianModel.from_points(scene.points, scene.point_colors)
    assert all(torch.isfinite(v).all() for v in model.params.values())


def test_deleted_ego_pose_is_an_error(ds):
    path = ds / "ego_pose" / "001.txt"
    path.unlink()
    with pytest.raises(SceneError, match=names(path) + ".*missing.*timestep 1"):
        read_drivestudio(ds)


@pytest.mark.parametrize(
    "value, words",
    [([[1.0, 0.0], [0.0, 1.0]], "4x4 matrix, got 4 numbers"), ("identity", "not a matrix of numbers")],
    ids=["2x2", "string"],
)
def test_instance_pose_of_wrong_shape(ds, value, words):
    path = ds / "instances" / "instances_info.json"
    info = json.loads(path.read_text())
    info["0"]["frame_annotations"]["obj_to_world"][1] = value
    path.write_text(json.dumps(info))
    with pytest.raises(SceneError, match=names(path) + r".*instance 0, frame 1.*" + words):
        read_drivestudio(ds)


def test_instances_file_of_wrong_type(ds):
    path = ds / "instances" / "instances_info.json"
    path.write_text("[1, 2]")
    with pytest.raises(SceneError, match=names(path) + ".*object of instances, got a list"):
        read_drivestudio(ds)


def test_intrinsics_with_non_positive_focal(ds):
    path = ds / "intrinsics" / "1.txt"
    path.write_text("-100 100 32 24 0 0 0 0 0\n")
    with pytest.raises(SceneError, match=names(path) + ".*positive focal"):
        read_drivestudio(ds)


def test_sky_mask_of_wrong_size(ds):
    scene = read_drivestudio(ds, color_points=False)
    path = scene.frames[1].sky_mask_path
    Image.new("L", (30, 30)).save(path)
    with pytest.raises(SceneError, match=names(path) + ".*wrong mask size 30x30"):
        scene.load_sky_mask(1)


# --- nerfstudio ---------------------------------------------------------------------------------


def edit_transforms(root, edit) -> object:
    path = root / "transforms.json"
    meta = json.loads(path.read_text())
    meta = edit(meta) or meta
    path.write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda m: m.update(frames={"a": m["frames"][0]}), "frames must be a list, got a dict"),
        (lambda m: m.update(frames=[]), "no frames listed"),
        (lambda m: [m], "expected a JSON object"),
        (lambda m: m.update(fl_x="wide"), "fl_x of frame_000.png must be a number, got 'wide'"),
        (lambda m: m.update(fl_x=-5.0), "positive focal"),
        (lambda m: m["frames"][1].update(transform_matrix=[[1, 0], [0, 1, 0]]), "transform_matrix is not a matrix"),
        (lambda m: m["frames"][1].update(transform_matrix=np.eye(3).tolist()), "must be 4x4"),
        (lambda m: m["frames"][1].pop("file_path") and None, "frame 1 is not an object with a file_path"),
        (lambda m: m.update(camera_model="EQUIRECTANGULAR"), "EQUIRECTANGULAR.*not supported"),
    ],
    ids=["frames-dict", "frames-empty", "not-object", "string-focal", "negative-focal", "ragged-pose", "3x3-pose", "no-file-path", "model"],
)
def test_bad_transforms_json(ns, edit, words):
    path = edit_transforms(ns, edit)
    with pytest.raises(UserError, match=names(path) + ".*" + words):
        read_nerfstudio(ns)


def test_malformed_json(ns):
    path = ns / "transforms.json"
    path.write_text(path.read_text()[:-20])
    with pytest.raises(SceneError, match=names(path) + ".*cannot read JSON"):
        read_nerfstudio(ns)


def test_numeric_string_focal_is_read(ns):
    edit_transforms(ns, lambda m: m.update(fl_x="45.0"))
    scene = read_nerfstudio(ns, holdout_every=0)
    assert float(scene.frames[0].camera.K[0, 0]) == 45.0


# --- PLY import ---------------------------------------------------------------------------------


def test_ply_with_nan_values_is_refused(tmp_path):
    from faithfusion.gaussians.model import GaussianModel

    model = GaussianModel.from_points(torch.rand(20, 3), torch.rand(20, 3))
    model.params["means"].data[7, 1] = float("nan")
    path = save_ply(model, tmp_path / "nan.ply")
    with pytest.raises(PlyFormatError, match=names(path) + ".*NaN or infinite means in 1 Gaussians.*vertex 7"):
        load_ply(path)


def test_missing_ply_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="nothere.ply.*does not exist"):
        load_ply(tmp_path / "nothere.ply")
    with pytest.raises(FileNotFoundError):  # still what callers of a missing file expect
        load_ply(tmp_path / "nothere.ply")


# --- fixer datasets -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, words",
    [("{not json", "cannot read the fixer index"), ('{"samples": {}}', "not a fixer index"), ("[]", "not a fixer index")],
    ids=["malformed", "samples-dict", "list"],
)
def test_bad_fixer_index(tmp_path, text, words):
    from faithfusion.fixers.dataset import read_index

    path = tmp_path / "index.json"
    path.write_text(text)
    with pytest.raises(UserError, match=names(path) + ".*" + words):
        read_index(path)


def test_fixer_sample_without_target(tmp_path):
    from faithfusion.fixers.dataset import read_index

    path = tmp_path / "index.json"
    path.write_text(json.dumps({"samples": [{"degraded": "a.png"}]}))
    with pytest.raises(UserError, match=names(path) + ".*sample 0 has no 'target'"):
        read_index(path)


def test_fixer_images_and_maps(tmp_path):
    from faithfusion.fixers.dataset import load_image, load_map

    (tmp_path / "bad.png").write_bytes(b"\x89PNG junk")
    with pytest.raises(UserError, match=names(tmp_path / "bad.png") + ".*cannot decode"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(UserError, match=names(tmp_path / "gone.png") + ".*missing"):
        load_image(tmp_path / "gone.png")
    Image.fromarray(np.full((4, 5), 65535, np.uint16)).save(tmp_path / "white16.png")
    assert torch.equal(load_image(tmp_path / "white16.png"), torch.ones(4, 5, 3))
    (tmp_path / "map.npy").write_bytes(b"not numpy")
    with pytest.raises(UserError, match=names(tmp_path / "map.npy") + ".*cannot read the per-pixel map"):
        load_map(tmp_path / "map.npy")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    with pytest.raises(UserError, match=names(tmp_path / "cube.npy") + r".*must be \[H, W\]"):
        load_map(tmp_path / "cube.npy")


# --- run folders --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, words",
    [
        (None, "config.yaml missing"),
        ("a: [1, 2", "cannot read the run's config"),
        ("run: runs/recon\nsteps: 3\n", "not the config of a reconstruction or fusion run"),
        ("- 1\n- 2\n", "not the config of a reconstruction or fusion run"),
    ],
    ids=["no-config", "malformed-yaml", "eig-output", "list"],
)
def test_folder_that_is_not_a_run(tmp_path, config, words):
    from faithfusion.train.run import load_run

    if config is not None:
        (tmp_path / "config.yaml").write_text(config)
    with pytest.raises(UserError, match=names(tmp_path / "config.yaml") + ".*" + words):
        load_run(tmp_path)


def test_run_without_checkpoint(tmp_path, ns):
    from faithfusion.train.run import load_run

    (tmp_path / "config.yaml").write_text(f"data: {ns}\nout: {tmp_path}\n")
    with pytest.raises(UserError, match=names(tmp_path / "ckpt") + ".*no checkpoint"):
        load_run(tmp_path)


# --- LLFF and the remaining DriveStudio items ---------------------------------------------------


def test_llff_bad_focal_and_file(tmp_path):
    from faithfusion.data.llff import read_llff

    fx.write_llff_scene(tmp_path)
    path = tmp_path / "poses_bounds.npy"
    arr = np.load(path)
    arr[2, 14] = np.nan  # row 2's focal
    np.save(path, arr)
    with pytest.raises(SceneError, match=names(path) + r".*row 2.*invalid \[height, width, focal\]"):
        read_llff(tmp_path)
    np.save(path, arr[:, :16])
    with pytest.raises(SceneError, match=names(path) + r".*expected an \[N, 17\] array"):
        read_llff(tmp_path)
    path.write_bytes(b"not numpy")
    with pytest.raises(SceneError, match=names(path) + ".*cannot read"):
        read_llff(tmp_path)


def test_drivestudio_unknown_camera_and_empty_range(ds):
    with pytest.raises(SceneError, match=names(ds / "intrinsics" / "7.txt") + ".*missing"):
        read_drivestudio(ds, cameras=(0, 7))
    with pytest.raises(SceneError, match=names(ds / "ego_pose") + r".*no ego poses in the timestep range \[5, None\)"):
        read_drivestudio(ds, start=5)


def test_jpeg_with_data_after_its_end_marker_is_accepted(ds):
    scene = read_drivestudio(ds, holdout_every=0, color_points=False)
    path = scene.frames[2].image_path
    path.write_bytes(path.read_bytes() + b"\x00trailer" * 20)  # some cameras append metadata after the image
    assert check_scene_images(scene) is scene
