"""The viewer's library part on a tiny SynthStreet run (CPU): layers, shifts, ground truth, free camera, fixer."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
import yaml

from faithfusion.cameras import rotmat_to_quat
from faithfusion.viewer.frames import LAYERS, RunView, ViewerError, fit_camera
from faithfusion.viewer.server import browser_camera, letterbox
from tests.viewer_fixtures import tiny_view_run  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def view(tiny_view_run):  # noqa: F811
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield RunView(tiny_view_run, "cpu", max_side=48, calib_views=4)
    torch.set_num_threads(n)


def test_every_layer_has_the_view_size_and_the_shift_moves_the_render(view):
    frame = view.drive()[1]
    for layer in LAYERS:
        out = view.layer(layer, frame, 3.0)
        assert out.image.shape == (36, 48, 3) and out.image.dtype == np.uint8, layer
    a, b = view.layer("render", frame, 0.0).image, view.layer("render", frame, 3.0).image
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 2.0
    size = view.layer("render", frame, 0.0, size=(40, 20)).image
    assert size.shape == (20, 40, 3)


def test_ground_truth_is_the_capture_at_zero_and_synthstreet_at_its_shifts_only(view):
    frame = view.drive()[2]
    at0 = view.layer("gt", frame, 0.0)
    assert at0.available and at0.note == "captured image"
    at3 = view.layer("gt", frame, 3.0)
    assert at3.available and "+3 m" in at3.note
    assert np.abs(at0.image.astype(int) - at3.image.astype(int)).mean() > 2.0
    at2 = view.layer("gt", frame, 2.0)
    assert not at2.available and "±3 m" in at2.note


def test_eig_and_depth_layers_are_colour_maps_that_grow_off_the_recorded_lane(view):
    frame = view.drive()[0]
    on_lane = view.eig_values(frame, 0.0, view.camera(frame, 0.0))
    off_lane = view.eig_values(frame, 6.0, view.camera(frame, 6.0))
    assert on_lane.shape == (48, 64)  # the run's own resolution, resized for display
    assert float(off_lane.mean()) > float(on_lane.mean())
    depth = view.layer("depth", frame, 0.0)
    assert depth.available and depth.note.startswith("0 to") and depth.image.std() > 5


def test_a_run_without_a_fixer_says_so_and_bad_requests_are_user_errors(view):
    fixed = view.layer("fixed", view.drive()[0], 0.0)
    assert not fixed.available and "no fixer" in fixed.note
    with pytest.raises(ViewerError, match="unknown layer 'albedo'"):
        view.layer("albedo", 0, 0.0)
    with pytest.raises(ViewerError, match="frame 99 out of range"):
        view.layer("render", 99, 0.0)
    with pytest.raises(ViewerError, match="no camera 'rear'"):
        view.drive("rear")


def test_a_run_with_an_identity_fixer_shows_the_fixed_view(tiny_view_run, tmp_path):  # noqa: F811
    run = tmp_path / "fused"
    shutil.copytree(tiny_view_run, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["_run"] = {"method": "difix3d+", "fixers": {"difix": "identity"}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    torch.manual_seed(0)
    v = RunView(run, "cpu")
    out = v.layer("fixed", 1, 0.0)
    assert out.available and "identity" in out.note
    render = v.layer("render", 1, 0.0).image.astype(int)
    assert np.abs(out.image.astype(int) - render).mean() < 3.0  # an identity fixer returns its input


def test_the_browser_camera_built_from_a_drive_pose_renders_the_drive_view(view):
    cam = view.camera(view.drive()[3], 1.5)
    c2w = cam.camtoworld
    fov = 2 * math.atan(0.5 * cam.height / float(cam.K[1, 1]))
    free = browser_camera(rotmat_to_quat(c2w[:3, :3]).numpy(), c2w[:3, 3].numpy(), fov, cam.width / cam.height, cam.height)
    assert torch.allclose(free.viewmat, cam.viewmat, atol=1e-4)
    drive = view.layer("render", None, camera=fit_camera(cam, cam.width, cam.height)).image.astype(int)
    browser = view.layer("render", None, camera=free).image.astype(int)
    assert np.abs(drive - browser).mean() < 1.5  # same pose; the principal point is centred in the browser's
    assert not view.layer("gt", None, camera=free).available


def test_letterbox_pads_to_the_browser_aspect():
    img = np.full((30, 40, 3), 200, np.uint8)
    wide = letterbox(img, 2.0)
    assert wide.shape == (30, 60, 3) and wide[:, :10].max() == 16 and wide[:, 10:50].min() == 200
    tall = letterbox(img, 1.0)
    assert tall.shape == (40, 40, 3)


def test_bench_viewer_writes_fps_per_layer(tiny_view_run, tmp_path):  # noqa: F811
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_viewer import main

    n = torch.get_num_threads()
    out = tmp_path / "bench.json"
    try:
        main(["--run", str(tiny_view_run), "--width", "32", "--height", "24", "--device", "cpu", "--frames", "3",
              "--warmup", "1", "--layers", "render", "depth", "--threads", "1", "--result", str(out)])
    finally:
        torch.set_num_threads(n)
    data = json.loads(out.read_text())
    assert set(data["layers"]) == {"render", "depth"} and data["threads"] == 1 and data["width"] == 32
    assert all(v["fps_median"] > 0 and v["frames"] == 3 for v in data["layers"].values())
    assert data["commit"] and data["gaussians"] > 0
