"""`faithfusion convert waymo`: raw Waymo v1 TFRecord frames into the DriveStudio layout, without TensorFlow.

The synthetic records are encoded here by hand from the field numbers of Waymo's `dataset.proto` /
`label.proto` (not through the package's schema), so a wrong field number in the package fails them.
The real frame (../shared/data/waymo, or $FAITHFUSION_SHARED/data/waymo) is checked against its own
calibration and against facts the dataset documents.
"""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faithfusion.data.drivestudio import read_drivestudio
from faithfusion.data.waymo_raw import TFRecordError, convert_waymo, read_records, write_records
from faithfusion.data.waymo_raw.lidar import WaymoRecordError, range_image_to_points, row_inclinations
from faithfusion.data.waymo_raw.tfrecord import masked_crc32c
from faithfusion.errors import UserError

SHARED = Path(os.environ.get("FAITHFUSION_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
REAL = SHARED / "data" / "waymo" / "pvps_data_one_frame.tfrecord"
needs_real = pytest.mark.skipif(not REAL.is_file(), reason=f"shared Waymo frame absent ({REAL})")


# --- protobuf wire format, by hand ------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(num: int, v: int) -> bytes:
    return _varint(num << 3) + _varint(v)


def _dbl(num: int, v: float) -> bytes:
    return _varint(num << 3 | 1) + struct.pack("<d", v)


def _len(num: int, payload: bytes | str) -> bytes:
    payload = payload.encode() if isinstance(payload, str) else payload
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _dbls(num: int, values) -> bytes:  # proto2 repeated double: one field per value
    return b"".join(_dbl(num, float(v)) for v in np.ravel(values))


def _matrix_float(array: np.ndarray) -> bytes:  # MatrixFloat {data = 1 packed; shape = 2 {dims = 1}}
    shape = b"".join(_int(1, d) for d in array.shape)
    return _len(1, np.asarray(array, "<f4").tobytes()) + _len(2, shape)


def _transform(T: np.ndarray) -> bytes:  # Transform {transform = 1}
    return _dbls(1, T)


def _pose(yaw: float, t) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    T = np.eye(4)
    T[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    T[:3, 3] = t
    return T


def _jpeg(w: int, h: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


CAMS = {  # CameraName -> (intrinsic, camera-to-vehicle in Waymo camera axes, width, height)
    1: ([100.0, 100.0, 32.0, 24.0, 0.01, -0.02, 0.001, 0.002, 0.0], _pose(0.0, (1.5, 0.0, 2.0)), 64, 48),
    4: ([80.0, 80.0, 32.0, 15.0, 0.0, 0.0, 0.0, 0.0, 0.0], _pose(np.pi / 2, (1.0, 0.9, 2.0)), 64, 30),
}
TOP_EXT, FRONT_EXT = _pose(0.4, (1.4, 0.0, 2.2)), _pose(0.0, (4.0, 0.0, 0.7))
TOP_INCL = [-0.3, -0.1, 0.0, 0.05]  # LaserCalibration.beam_inclinations, lowest first


def _range_image(frame: int, h: int, w: int) -> np.ndarray:  # [H, W, 4] range, intensity, elongation, nlz
    rng = np.random.default_rng(100 + frame + h)
    ri = np.zeros((h, w, 4), np.float32)
    ri[..., 0] = rng.uniform(3.0, 40.0, (h, w))
    ri[0, :2, 0] = -1.0  # no return
    ri[..., 1] = rng.uniform(0.0, 1.0, (h, w))
    ri[..., 2] = rng.uniform(0.0, 0.5, (h, w))
    return ri


def _frame_bytes(t: int, jpegs: dict[int, bytes], lidar: bool = True) -> bytes:
    """One Frame, field numbers from dataset.proto / label.proto."""
    import zlib

    calibs = b"".join(
        _len(2, _int(1, name) + _dbls(2, K) + _len(3, _transform(E)) + _int(4, w) + _int(5, h))  # CameraCalibration
        for name, (K, E, w, h) in CAMS.items()
    )
    lasers_calib = _len(3, _int(1, 1) + _dbls(2, TOP_INCL) + _len(5, _transform(TOP_EXT)))  # LaserCalibration TOP
    lasers_calib += _len(3, _int(1, 2) + _dbl(3, -0.5) + _dbl(4, 0.5) + _len(5, _transform(FRONT_EXT)))  # FRONT
    stats = _len(4, _len(5, _int(1, 1) + _int(2, 1)) + _len(2, "Day") + _len(3, "location_test") + _len(4, "sunny"))
    context = _len(1, _len(1, "synthetic_segment") + calibs + lasers_calib + stats)
    pose = _pose(np.deg2rad(30), (1000.0 + 5 * t, 2000.0, 10.0))
    out = context + _int(2, 1_000_000 * t) + _len(3, _transform(pose))
    for name in (4, 1):  # images in another order than the calibrations, as in the real files
        out += _len(4, _int(1, name) + _len(2, jpegs[name]) + _len(3, _transform(pose)))  # CameraImage
    if lidar:
        top = _range_image(t, 4, 8)
        pixel_pose = np.zeros((4, 8, 6), np.float32)
        pixel_pose[..., 2], pixel_pose[..., 3:] = np.deg2rad(30), pose[:3, 3]  # the frame pose at every pixel
        ri1 = _len(2, zlib.compress(_matrix_float(top))) + _len(4, zlib.compress(_matrix_float(pixel_pose)))
        out += _len(5, _int(1, 1) + _len(2, ri1))  # Laser TOP, ri_return1
        ri1 = _len(2, zlib.compress(_matrix_float(_range_image(t, 2, 6))))
        out += _len(5, _int(1, 2) + _len(2, ri1))  # Laser FRONT
    car = _dbl(1, 10.0 + 2 * t) + _dbl(2, 2.0) + _dbl(3, 0.8) + _dbl(4, 2.0) + _dbl(5, 4.5) + _dbl(6, 1.6) + _dbl(7, 0.3)
    speed = _dbl(1, 5.0 if t == 0 else 0.5)  # Metadata.speed_x: moving in frame 0, not in frame 1
    out += _len(6, _len(1, car) + _len(2, speed) + _int(3, 1) + _len(4, "car-1") + _int(7, 50))  # Label, 50 lidar points
    sign = _dbl(1, 5.0) + _dbl(4, 0.1) + _dbl(5, 0.6) + _dbl(6, 0.6)
    out += _len(6, _len(1, sign) + _int(3, 3) + _len(4, "sign-1"))  # a sign: not an instance
    return out


@pytest.fixture
def synthetic(tmp_path):
    jpegs = {name: _jpeg(w, h, name) for name, (_, _, w, h) in CAMS.items()}
    path = tmp_path / "segment.tfrecord"
    write_records(path, [_frame_bytes(t, jpegs) for t in range(2)])
    return path, jpegs


# --- TFRecord framing ------------------------------------------------------------------------


def test_masked_crc_matches_the_crc32c_check_value():
    crc = 0xE3069283  # CRC-32C of b"123456789" (RFC 3720's check value)
    expected = ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
    assert masked_crc32c(b"123456789") == expected


def test_records_round_trip_and_a_corrupt_crc_names_file_and_record(tmp_path):
    path = tmp_path / "r.tfrecord"
    payloads = [b"first", b"", b"third record" * 100]
    write_records(path, payloads)
    assert [p for _, p in read_records(path)] == payloads
    raw = bytearray(path.read_bytes())
    offset = (12 + 5 + 4) + (12 + 0 + 4) + 12 + 7  # a byte inside record 2's payload
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=r"r\.tfrecord: record 2 is corrupt \(CRC32C mismatch"):
        list(read_records(path))
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw[:-3]))
    with pytest.raises(TFRecordError, match="record 2 is truncated"):
        list(read_records(path))


def test_corrupt_length_header_is_reported(tmp_path):
    path = tmp_path / "r.tfrecord"
    write_records(path, [b"abc"])
    raw = bytearray(path.read_bytes())
    raw[0] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match="record 0 has a corrupt length"):
        list(read_records(path))


# --- range images ------------------------------------------------------------------------------


def test_range_image_points_land_on_known_points():
    """Known vehicle-frame points written into a range image by the documented pixel layout come back within
    the column's angular resolution, and exactly at their range from the lidar origin."""
    rng = np.random.default_rng(0)
    E = _pose(0.7, (1.4, 0.2, 2.2))
    W = 2000
    n = 6
    truth = np.stack([rng.uniform(-40, 40, n), rng.uniform(-40, 40, n), rng.uniform(-1.5, 4.0, n)], 1)  # vehicle
    local = (truth - E[:3, 3]) @ E[:3, :3]  # lidar frame
    r = np.linalg.norm(local, axis=1)
    inc = np.arcsin(local[:, 2] / r)
    order = np.argsort(inc)  # beam_inclinations are stored lowest first; row 0 is the highest
    beams = inc[order]
    rows = n - 1 - np.argsort(order)
    # documented: column j looks at azimuth pi - (2j + 1) pi / W, minus the extrinsic's yaw
    az = np.arctan2(local[:, 1], local[:, 0]) + np.arctan2(E[1, 0], E[0, 0])
    cols = np.round(((np.pi - az) * W / np.pi - 1) / 2).astype(int) % W
    ranges = np.zeros((n, W))
    ranges[rows, cols] = r
    points, origins = range_image_to_points(ranges, E, row_inclinations(beams, 0, 0, n))
    got = points[rows, cols]
    assert np.allclose(np.linalg.norm(got - origins[rows, cols], axis=1), r, atol=1e-9)
    assert np.all(np.linalg.norm(got - truth, axis=1) <= r * np.pi / W * 1.01 + 1e-9)
    assert np.allclose(origins, E[:3, 3])


def test_top_lidar_pixel_pose_compensates_motion():
    """A pixel seen from the vehicle 1 m further along its x than the frame pose lands 1 m further along x."""
    E, frame_pose = np.eye(4), _pose(0.5, (100.0, 50.0, 3.0))
    ranges = np.full((2, 4), 10.0)
    incl = row_inclinations([], -0.2, 0.2, 2)
    still, _ = range_image_to_points(ranges, E, incl)
    pixel_pose = np.zeros((2, 4, 6))
    pixel_pose[..., 2] = 0.5
    pixel_pose[..., 3:] = frame_pose[:3, :3] @ [1.0, 0.0, 0.0] + frame_pose[:3, 3]
    moved, origins = range_image_to_points(ranges, E, incl, pixel_pose, frame_pose)
    assert np.allclose(moved - still, [1.0, 0.0, 0.0], atol=1e-9)
    assert np.allclose(origins, [1.0, 0.0, 0.0], atol=1e-9)


def test_uniform_inclinations_follow_the_documented_formula():
    incl = row_inclinations([], -0.4, 0.2, 3)
    assert np.allclose(incl, [0.1, -0.1, -0.3])  # min + (k + 0.5) / H * (max - min), highest row first


# --- a synthetic record, end to end ------------------------------------------------------------


def test_synthetic_segment_converts_and_loads(synthetic, tmp_path):
    path, jpegs = synthetic
    out = tmp_path / "scene"
    s = convert_waymo(path, out, log=None)
    assert (s.frames, s.context, s.cameras) == (2, "synthetic_segment", {0: "FRONT", 3: "SIDE_LEFT"})
    assert (out / "images" / "001_3.jpg").read_bytes() == jpegs[4]  # the record's JPEG bytes as they are
    for name, (K, E, _, _) in CAMS.items():
        assert np.allclose(np.loadtxt(out / "intrinsics" / f"{name - 1}.txt"), K)
        assert np.allclose(np.loadtxt(out / "extrinsics" / f"{name - 1}.txt"), E)
    pose1 = _pose(np.deg2rad(30), (1005.0, 2000.0, 10.0))
    assert np.allclose(np.loadtxt(out / "ego_pose" / "001.txt"), pose1)

    cloud = np.fromfile(out / "lidar" / "000.bin", dtype=np.float32).reshape(-1, 14)
    top, front = _range_image(0, 4, 8), _range_image(0, 2, 6)
    assert len(cloud) == (top[..., 0] > 0).sum() + (front[..., 0] > 0).sum()
    assert set(cloud[:, 13].tolist()) == {0.0, 1.0}  # laser id = LaserName - 1
    for laser, ri, E in ((0, top, TOP_EXT), (1, front, FRONT_EXT)):
        rows = cloud[cloud[:, 13] == laser]
        assert np.allclose(rows[:, 0:3], E[:3, 3], atol=1e-5)  # origin: the lidar in the vehicle frame
        assert np.allclose(np.linalg.norm(rows[:, 3:6] - rows[:, 0:3], axis=1), ri[..., 0][ri[..., 0] > 0], atol=1e-4)
        assert np.allclose(rows[:, 11], ri[..., 1][ri[..., 0] > 0])  # intensity
        assert np.all(rows[:, 9] == -1)  # no flow in the record: DriveStudio's "no flow label"

    info = json.loads((out / "instances" / "instances_info.json").read_text())
    frames = json.loads((out / "instances" / "frame_instances.json").read_text())
    assert list(info) == ["0"] and info["0"]["class_name"] == "Vehicle" and info["0"]["id"] == "car-1"
    ann = info["0"]["frame_annotations"]
    assert ann["frame_idx"] == [0, 1] and ann["box_size"][1] == [4.5, 2.0, 1.6]
    assert np.allclose(np.array(ann["obj_to_world"][1])[:3, 3], (pose1 @ [12.0, 2.0, 0.8, 1.0])[:3])
    assert frames == {"0": [0], "1": [0]}

    def mask(group, t, cam):
        return np.array(Image.open(out / "dynamic_masks" / group / f"{t:03d}_{cam}.png")) > 0

    # the moving car's centre (8.5 m ahead, 2 m left, 1.2 m below FRONT) projects near pixel (8.5, 38)
    assert mask("all", 0, 0)[38, 8] and mask("vehicle", 0, 0)[38, 8] and not mask("all", 0, 0)[5, 60]
    assert not mask("human", 0, 0).any() and not mask("all", 1, 0).any()  # no person; 0.5 m/s is not dynamic

    scene = read_drivestudio(out, cameras=(0, 3), holdout_every=0, color_points=False)
    assert len(scene.frames) == 4 and scene.points.shape[0] == 2 * len(cloud)
    for frame in scene.frames:  # a point 20 m along the camera's optical axis lands on its principal point
        name = int(frame.cam_name) + 1
        K, E, w, h = CAMS[name]
        pose = np.loadtxt(out / "ego_pose" / f"{frame.timestep:03d}.txt")
        world = pose @ E @ [20.0, 0.0, 0.0, 1.0]  # Waymo camera axes: x forward
        scene_pt = scene.transform.rotation.double().numpy() @ (world[:3] - scene.transform.center.double().numpy())
        V = frame.camera.viewmat.double().numpy()
        x = V[:3, :3] @ scene_pt + V[:3, 3]
        assert (frame.camera.width, frame.camera.height) == (w, h)
        assert np.allclose([K[0] * x[0] / x[2] + K[2], K[1] * x[1] / x[2] + K[3]], [K[2], K[3]], atol=1e-3)


def test_corrupt_record_names_file_and_index(synthetic, tmp_path):
    path, _ = synthetic
    raw = bytearray(path.read_bytes())
    (first,) = struct.unpack("<Q", raw[:8])
    raw[12 + first + 4 + 12 + 100] ^= 0xFF  # inside record 1's payload
    path.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=rf"{path.name}: record 1 is corrupt"):
        convert_waymo(path, tmp_path / "scene", log=None)


def test_bad_input_is_a_user_error(tmp_path, synthetic):
    path = tmp_path / "junk.tfrecord"
    write_records(path, [b"\xff\xff\xff"])
    with pytest.raises(WaymoRecordError, match=r"junk\.tfrecord: record 0 is not a Waymo Frame"):
        convert_waymo(path, tmp_path / "a", log=None)
    good, _ = synthetic
    out = tmp_path / "b"
    convert_waymo(good, out, log=None)
    with pytest.raises(UserError, match="not empty"):
        convert_waymo(good, out, log=None)
    convert_waymo(good, out, overwrite=True, max_frames=1, log=None)
    assert sorted(p.name for p in (out / "ego_pose").iterdir()) == ["000.txt"]  # the old frame 1 is gone
    with pytest.raises(TFRecordError, match="missing"):
        convert_waymo(tmp_path / "nope.tfrecord", tmp_path / "c", log=None)


def test_cli_convert_waymo(synthetic, tmp_path, capsys):
    from faithfusion.cli import main

    path, _ = synthetic
    main(["convert", "waymo", "--tfrecord", str(path), "--out", str(tmp_path / "scene"), "--no-lidar"])
    assert "2 frames" in capsys.readouterr().out
    assert (tmp_path / "scene" / "ego_pose" / "001.txt").is_file() and not (tmp_path / "scene" / "lidar").exists()


# --- the real frame ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    from faithfusion.data.waymo_raw.proto import messages

    out = tmp_path_factory.mktemp("waymo") / "scene"
    summary = convert_waymo(REAL, out, log=None)
    (_, payload), = list(read_records(REAL))
    return out, summary, messages().Frame.FromString(payload)


@needs_real
def test_real_frame_files_match_the_record(real):
    out, s, frame = real
    assert s.frames == 1 and s.lidar_points == []  # the fixture's lasers hold no range images
    for calib in frame.context.camera_calibrations:
        cam = calib.name - 1
        assert np.array_equal(np.loadtxt(out / "intrinsics" / f"{cam}.txt"), np.array(calib.intrinsic))
        assert np.array_equal(np.loadtxt(out / "extrinsics" / f"{cam}.txt"), np.array(calib.extrinsic.transform).reshape(4, 4))
    assert np.array_equal(np.loadtxt(out / "ego_pose" / "000.txt"), np.array(frame.pose.transform).reshape(4, 4))
    for image in frame.images:
        assert (out / "images" / f"000_{image.name - 1}.jpg").read_bytes() == image.image


@needs_real
def test_real_frame_matches_the_documented_cameras(real):
    """The dataset's documentation: five cameras FRONT, FRONT_LEFT, FRONT_RIGHT (1920x1280), SIDE_LEFT,
    SIDE_RIGHT (1920x886), extrinsics camera-to-vehicle with the camera's x looking forward out of the lens,
    the vehicle frame x forward, y left, z up."""
    out, s, _ = real
    assert s.cameras == {0: "FRONT", 1: "FRONT_LEFT", 2: "FRONT_RIGHT", 3: "SIDE_LEFT", 4: "SIDE_RIGHT"}
    assert s.image_sizes == {0: (1920, 1280), 1: (1920, 1280), 2: (1920, 1280), 3: (1920, 886), 4: (1920, 886)}
    for cam, (w, h) in s.image_sizes.items():
        assert Image.open(out / "images" / f"000_{cam}.jpg").size == (w, h)
        fu, fv, cu, cv = np.loadtxt(out / "intrinsics" / f"{cam}.txt")[:4]
        assert 1500 < fu < 2500 and fu == fv and abs(cu - w / 2) < 0.05 * w and 0 < cv < h
    yaw = {cam: np.degrees(np.arctan2(E[1, 0], E[0, 0]))
           for cam in range(5) for E in [np.loadtxt(out / "extrinsics" / f"{cam}.txt")]}
    expected = {0: 0, 1: 45, 2: -45, 3: 90, 4: -90}  # where each optical axis looks, degrees left of forward
    assert all(abs(yaw[cam] - deg) < 10 for cam, deg in expected.items()), yaw
    heights = [np.loadtxt(out / "extrinsics" / f"{cam}.txt")[2, 3] for cam in range(5)]
    assert all(1.5 < z < 2.5 for z in heights)  # roof-mounted, about 2 m above the vehicle origin
    info = json.loads((out / "frame_info.json").read_text())
    assert (info["time_of_day"], info["weather"]) == ("Day", "sunny")
    for cam, (w, h) in s.image_sizes.items():  # the class groups: all = human + vehicle
        m = {g: np.array(Image.open(out / "dynamic_masks" / g / f"000_{cam}.png")) > 0 for g in ("all", "human", "vehicle")}
        assert m["all"].shape == (h, w) and np.array_equal(m["all"], m["human"] | m["vehicle"])
    assert (np.array(Image.open(out / "dynamic_masks" / "human" / "000_0.png")) > 0).any()  # people cross in front


@needs_real
def test_real_frame_instances_and_loader(real):
    out, s, frame = real
    info = json.loads((out / "instances" / "instances_info.json").read_text())
    kept = [l for l in frame.laser_labels if l.type in (1, 2, 4)]
    assert s.instances == len(info) == len({l.id for l in kept}) > 0
    pose = np.array(frame.pose.transform).reshape(4, 4)
    first = kept[0]
    ann = info["0"]["frame_annotations"]
    assert info["0"]["id"] == first.id
    assert np.allclose(np.array(ann["obj_to_world"][0])[:3, 3], (pose @ [first.box.center_x, first.box.center_y, first.box.center_z, 1])[:3])

    scene = read_drivestudio(out, cameras=(0, 1, 2, 3, 4), holdout_every=0, color_points=False)
    assert len(scene.frames) == len(scene.train_ids) == 5 and scene.points.shape[0] == 0
    cam0 = scene.frames[0].camera
    E = np.loadtxt(out / "extrinsics" / "0.txt")
    ahead = E @ [20.0, 0.0, 0.0, 1.0]  # 20 m along FRONT's optical axis, vehicle frame = scene frame at t = 0
    V = cam0.viewmat.double().numpy()
    x = V[:3, :3] @ ahead[:3] + V[:3, 3]
    K = cam0.K.double().numpy()
    assert np.allclose([K[0, 0] * x[0] / x[2] + K[0, 2], K[1, 1] * x[1] / x[2] + K[1, 2]], [K[0, 2], K[1, 2]], atol=1e-2)


@needs_real
def test_real_frame_corrupt_byte_is_reported(tmp_path):
    raw = bytearray(REAL.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    bad = tmp_path / "corrupt.tfrecord"
    bad.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=r"corrupt\.tfrecord: record 0 is corrupt"):
        convert_waymo(bad, tmp_path / "scene", log=None)
