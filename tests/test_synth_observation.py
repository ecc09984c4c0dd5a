"""SynthStreet's observation ground truth: exact on an analytic scene of boxes, and written where gt_masks reads it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from faithfusion.eval.gt_masks import MASK_KINDS, has_gt_masks, load_gt_mask
from faithfusion.synth import generate
from faithfusion.synth.observation import NEAR, TrainingViews, depth_maps, observation_masks, recorded_views
from faithfusion.synth.render import render
from faithfusion.synth.rig import rig_cameras
from faithfusion.synth.scene import SynthScene
from faithfusion.synth.world import make_world
from PIL import Image

W, H, F = 64, 48, 40.0
K = np.array([F, F, W / 2, H / 2])  # 77 degrees across
# world axes = OpenCV camera axes (x right, y down, z forward); every camera looks along +z
WALL = (np.array([-60.0, -60.0, 20.0]), np.array([60.0, 60.0, 21.0]))


def _translation(p) -> np.ndarray:  # [4, 4]
    T = np.eye(4)
    T[:3, 3] = p
    return T


def _slab(o, r, lo, hi):
    """Entry and exit parameters of rays o + s r [N, 3] through the box [lo, hi] (entry > exit: missed)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = (lo - o) / r, (hi - o) / r
    a = np.where(np.isnan(a), -np.inf, a)
    b = np.where(np.isnan(b), np.inf, b)
    return np.minimum(a, b).max(-1), np.maximum(a, b).min(-1)


def _cast(boxes, centre, width=W, height=H):
    """Ray cast at the pixel centres of a camera at `centre`: depth [H, W] (0 = nothing), box index [H, W] (-1)."""
    j, i = np.mgrid[0:height, 0:width]
    r = np.stack([(i + 0.5 - K[2]) / K[0], (j + 0.5 - K[3]) / K[1], np.ones(i.shape)], -1).reshape(-1, 3)  # camera z = 1
    best = np.full(len(r), np.inf)
    idx = np.full(len(r), -1)
    for k, (lo, hi) in enumerate(boxes):
        s_in, s_out = _slab(centre, r, lo, hi)
        hit = (s_in <= s_out) & (s_in > 0) & (s_in < best)
        best[hit], idx[hit] = s_in[hit], k
    depth = np.where(idx >= 0, best, 0.0)  # s is the camera-axis depth since r_z = 1
    return depth.reshape(height, width).astype(np.float32), idx.reshape(height, width)


def _truth(boxes_at, moving, train_centres, train_frames, centre, frame):
    """Exact labels at the pixel centres of the view at `centre`, `frame`: (unobserved, disoccluded) [H, W].

    boxes_at(f): the boxes at frame f; moving: index of the box that moves (or None)."""
    depth, idx = _cast(boxes_at(frame), centre)
    j, i = np.mgrid[0:H, 0:W]
    P = centre + np.stack([(i + 0.5 - K[2]) / K[0] * depth, (j + 0.5 - K[3]) / K[1] * depth, depth], -1)  # [H, W, 3]
    seen = np.zeros((H, W), bool)
    hidden = np.zeros((H, W), bool)
    for C, f in zip(train_centres, train_frames):
        Pf = P.copy()
        if moving is not None:  # the moving box's points go with it
            on = idx == moving
            Pf[on] += boxes_at(f)[moving][0] - boxes_at(frame)[moving][0]
        q = Pf - C
        z = q[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u, v = K[0] * q[..., 0] / z + K[2], K[1] * q[..., 1] / z + K[3]
        inside = (z > NEAR) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
        blocked = np.zeros((H, W), bool)
        for lo, hi in boxes_at(f):  # the segment C -> P crosses a box before reaching P
            s_in, s_out = _slab(C, q.reshape(-1, 3), lo, hi)
            blocked |= ((s_in <= s_out) & (s_out > 0) & (s_in < 1 - 1e-6)).reshape(H, W)
        seen |= inside & ~blocked
        hidden |= inside & blocked
    surface = depth > 0
    return surface & ~seen, surface & ~seen & hidden


def _training(boxes_at, centres, frames) -> TrainingViews:
    depth = np.stack([_cast(boxes_at(f), C)[0] for C, f in zip(centres, frames)])
    w2c = np.stack([_translation(-np.asarray(C)) for C in centres])
    return TrainingViews(depth, w2c, np.tile(K, (len(centres), 1)), np.array(frames, np.int64), np.zeros(len(centres), np.int64))


def _near_a_label_edge(label: np.ndarray) -> np.ndarray:
    """Pixels whose 3 x 3 neighbourhood holds both labels (where pixel sampling decides)."""
    p = np.pad(label, 1, mode="edge")
    win = np.stack([p[dj:dj + H, di:di + W] for dj in range(3) for di in range(3)])
    return win.any(0) != win.all(0)


def _run(boxes_at, moving, centres, frames, centre, frame, poses=None, inst_of_box=None):
    depth, idx = _cast(boxes_at(frame), centre)
    inst = np.zeros((H, W), np.uint16) if inst_of_box is None else inst_of_box[idx + 1].astype(np.uint16)
    train = _training(boxes_at, centres, frames)
    u, o = observation_masks(depth[None], inst[None], _translation(centre)[None], K[None], np.array([0]), frame, train, poses)
    return u[0], o[0], depth


def test_a_box_in_front_of_a_wall_hides_exactly_its_shadow():
    box = (np.array([-1.0, -1.0, 8.0]), np.array([1.0, 1.0, 10.0]))
    boxes_at = lambda f: [WALL, box]  # noqa: E731
    centres = [np.array([0.0, 0.0, float(f)]) for f in range(3)]  # the recorded drive: straight ahead, one camera
    frames = [0, 1, 2]
    view = np.array([3.0, 0.0, 1.0])  # frame 1, 3 m to the right
    u_true, o_true = _truth(boxes_at, None, centres, frames, view, 1)
    u, o, depth = _run(boxes_at, None, centres, frames, view, 1)
    # every kind of pixel is there: the wall behind the box and the box's right side (hidden), the wall's right end
    # (outside every recorded frustum: unobserved, not hidden), and plenty seen
    assert o_true.sum() > 60 and (u_true & ~o_true).sum() > 60 and (~u_true).sum() > 1000
    # exact at every pixel, the edges included: a point belongs to the training pixel it falls in, as the ray cast has it
    assert np.array_equal(u, u_true) and np.array_equal(o, o_true)
    # a recorded view is seen everywhere
    u0, o0, _ = _run(boxes_at, None, centres, frames, centres[1], 1)
    assert not u0.any() and not o0.any()


def test_the_depth_test_refuses_a_surface_off_by_more_than_the_tolerance():
    """The same view as its training view, with the recorded depths 5 % nearer: every point is hidden, not seen."""
    box = (np.array([-1.0, -1.0, 8.0]), np.array([1.0, 1.0, 10.0]))
    centres = [np.array([0.0, 0.0, 0.0])]
    train = _training(lambda f: [WALL, box], centres, [0])
    depth, _ = _cast([WALL, box], centres[0])
    ident = _translation(np.zeros(3))[None]
    u, _ = observation_masks(depth[None], np.zeros((1, H, W), np.uint16), ident, K[None], np.array([0]), 0, train)
    assert not u.any()
    train.depth = train.depth * np.float32(0.95)
    u, o = observation_masks(depth[None], np.zeros((1, H, W), np.uint16), ident, K[None], np.array([0]), 0, train)
    assert u[0][depth > 0].all() and o[0][depth > 0].all()  # a surface 5 % in front of every point: hidden
    u, _ = observation_masks(depth[None], np.zeros((1, H, W), np.uint16), ident, K[None], np.array([0]), 0, train, rel=0.06)
    assert not u.any()


def test_a_moving_object_is_observed_where_it_was_seen_at_another_frame():
    # frame 0: the box right of the drive (its left face seen); frame 1: left of it (its left face turned away)
    at = {0: np.array([4.0, -2.0, 8.0]), 1: np.array([-6.0, -2.0, 8.0])}  # the box's lowest corner
    boxes_at = lambda f: [WALL, (at[f], at[f] + np.array([2.0, 4.0, 8.0]))]  # noqa: E731
    centres = [np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.0])]
    frames = [0, 1]
    view = np.array([-10.0, 0.0, 0.0])  # frame 1, 10 m to the left: sees the box's left face
    poses = np.stack([np.stack([_translation(at[f])]) for f in (0, 1)])  # [F, 1 object, 4, 4]
    inst_of_box = np.array([0, 0, 1])  # by box index + 1: nothing, wall (static), the box (object 0)
    u_true, o_true = _truth(boxes_at, 1, centres, frames, view, 1)
    u, o, depth = _run(boxes_at, 1, centres, frames, view, 1, poses, inst_of_box)
    _, idx = _cast(boxes_at(1), view)
    x = view[0] + (np.arange(W) + 0.5 - K[2]) / K[0] * depth  # [H, W] world x of every pixel's point
    left = (idx == 1) & (np.abs(x - at[1][0]) < 1e-3)  # the box's left face (its front face the drive saw at frame 1 too)
    face = left & ~_near_a_label_edge(left)
    assert face.sum() > 30 and not u_true[face].any()  # seen at frame 0, where the box was
    assert not u[face].any()
    edge_u = _near_a_label_edge(u_true)
    assert np.array_equal(u[~edge_u], u_true[~edge_u])
    # taken as static, the same pixels would count as never seen (the box was elsewhere at frame 0)
    u_static, _, _ = _run(boxes_at, None, centres, frames, view, 1)
    assert u_static[face].mean() > 0.9


def test_training_depth_is_the_renderers_depth():
    world = make_world(1, frames=2, dynamic=True, max_shift=1.0)
    scene = SynthScene(world, shadows=False)
    cams = rig_cameras(("front", "front_left"))
    Ks = {c.cam_id: c.intrinsics(40, 24) for c in cams}
    train = recorded_views(scene, cams, Ks, 40, 24)
    assert train.depth.shape == (4, 24, 40) and train.frame.tolist() == [0, 0, 1, 1] and train.cam.tolist() == [0, 1, 0, 1]
    _, depth, _ = render(scene.arrays_at(1), train.world_to_cam[2:], train.K[2:], 40, 24, 1)
    assert np.array_equal(depth, train.depth[2:]) and (depth > 0).mean() > 0.3


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("obs") / "s", 2, frames=3, cameras=("front", "front_left"), width=48, height=32,
                    shifts=(3.0,), dynamic=True)


def test_synth_writes_the_masks_that_gt_masks_reads(scene):
    for d in (0.0, 3.0, -3.0):
        for kind in MASK_KINDS:
            assert has_gt_masks(scene, d, kind)
        meta = json.loads((scene / "gt_shifted" / f"{d:+.1f}m" / "meta.json").read_text())
        assert "unobserved" in meta and "disoccluded" in meta
        for t in range(3):
            for cam in ("0", "1"):
                un = load_gt_mask(scene, d, "unobserved", t, cam, (32, 48)).numpy()
                dis = load_gt_mask(scene, d, "disoccluded", t, cam, (32, 48)).numpy()
                sky = np.array(Image.open(scene / "gt_shifted" / f"{d:+.1f}m" / "sky_masks" / f"{t:03d}_{cam}.png")) > 0
                raw = np.array(Image.open(scene / "gt_shifted" / f"{d:+.1f}m" / "unobserved" / f"{t:03d}_{cam}.png"))
                assert raw.dtype == np.uint8 and set(np.unique(raw)) <= {0, 255}
                assert not (dis & ~un).any() and not (un & sky).any()
                if d == 0.0:
                    assert not un.any()  # the recorded views are the training views
    shifted = [load_gt_mask(scene, d, "disoccluded", t, "0", (32, 48)).numpy().mean() for d in (3.0, -3.0) for t in range(3)]
    assert max(shifted) > 0  # 3 m off the recorded lane something is disoccluded


def test_synth_can_skip_the_masks(tmp_path):
    out = generate(tmp_path / "s", 2, frames=1, cameras=("front",), width=32, height=24, shifts=(1.0,), observation=False)
    assert not has_gt_masks(out, 1.0, "unobserved") and json.loads((out / "scene.json").read_text())["observation_masks"] is False
