"""`faithfusion render --video` on a tiny SynthStreet run: plain, beside the EIG heatmap, and A/B (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faithfusion.commands.render import RenderConfig, render_run
from faithfusion.errors import UserError
from faithfusion.viewer.video import pad_even, side_by_side, write_mp4
from tests.viewer_fixtures import tiny_view_run  # noqa: F401  (fixture)


def read_mp4(path) -> list[np.ndarray]:
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = gen.__next__()
    w, h = meta["size"]
    return [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in gen]


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_a_drive_video_has_one_frame_per_timestep_and_moves_with_the_shift(tiny_view_run, tmp_path, one_thread):  # noqa: F811
    a = render_run(RenderConfig(run=tiny_view_run, video=tmp_path / "a.mp4", shift=0.0, device="cpu", fps=5))[0]
    b = render_run(RenderConfig(run=tiny_view_run, video=tmp_path / "b.mp4", shift=3.0, device="cpu", fps=5, max_frames=3))[0]
    fa, fb = read_mp4(a), read_mp4(b)
    assert len(fa) == 6 and len(fb) == 3 and fa[0].shape == (48, 64, 3)
    assert np.abs(fa[0].astype(int) - fb[0].astype(int))[20:].mean() > 2.0  # below the label band


def test_side_by_side_with_eig_and_with_a_second_run(tiny_view_run, tmp_path, one_thread):  # noqa: F811
    eig = render_run(RenderConfig(run=tiny_view_run, video=tmp_path / "eig.mp4", shift=3.0, device="cpu",
                                  side_by_side="eig", max_frames=2))[0]
    ab = render_run(RenderConfig(run=tiny_view_run, video=tmp_path / "ab.mp4", shift=3.0, device="cpu",
                                 side_by_side=str(tiny_view_run), max_frames=2))[0]
    fe, fab = read_mp4(eig), read_mp4(ab)
    assert len(fe) == 2 and fe[0].shape == (48, 64 + 4 + 64, 3)
    left, right = fab[0][20:, :64].astype(int), fab[0][20:, 68:].astype(int)
    assert np.abs(left - right).mean() < 4.0  # the same run on both sides (up to H.264)
    assert np.abs(fe[0][20:, :64].astype(int) - fe[0][20:, 68:].astype(int)).mean() > 10.0  # EIG is not the render


def test_bad_video_requests_are_user_errors(tiny_view_run, tmp_path):  # noqa: F811
    with pytest.raises(UserError, match="--side-by-side needs --video"):
        render_run(RenderConfig(run=tiny_view_run, side_by_side="eig", device="cpu"))
    with pytest.raises(UserError, match="must end in .mp4"):
        render_run(RenderConfig(run=tiny_view_run, video=tmp_path / "a.avi", device="cpu"))
    with pytest.raises(UserError, match="neither `eig` nor a run folder"):
        render_run(RenderConfig(run=tiny_view_run, video=tmp_path / "a.mp4", side_by_side="nope", device="cpu"))
    with pytest.raises(UserError, match="no frames to encode"):
        write_mp4(tmp_path / "empty.mp4", [])
    assert not (tmp_path / "empty.mp4").exists()


def test_odd_frames_are_padded_and_panels_share_a_height():
    assert pad_even(np.zeros((5, 7, 3), np.uint8)).shape == (6, 8, 3)
    joined = side_by_side([np.zeros((10, 20, 3), np.uint8), np.zeros((20, 20, 3), np.uint8)], gap=2)
    assert joined.shape == (10, 20 + 2 + 10, 3)


def test_the_demo_report_links_a_short_video_per_method_and_names_runs_and_commit(tiny_view_run, tmp_path, one_thread):  # noqa: F811
    from faithfusion.commands.demo_report import write_report
    from faithfusion.viewer.frames import RunView

    view = RunView(tiny_view_run, "cpu")

    def render(camera):
        return view.render(camera)[0]

    result = {"by_magnitude": {"0.0": {"psnr": 20.0, "ssim": 0.5}, "3.0": {"psnr": 15.0, "ssim": 0.4}}}
    results = {"3dgs": {"render": render, "scene": view.scene, "result": result}}
    sizes = {"frames": 6, "width": 64, "height": 48, "shifts": (3.0,), "steps": 30}
    report = write_report(tmp_path / "demo", results, sizes, {"3dgs": 1.0}, view.cfg.data,
                          video_frames=3)
    text = report.read_text()
    assert "[3dgs](report/3dgs_3m.mp4)" in text and "code commit `" in text
    frames = read_mp4(tmp_path / "demo" / "report" / "3dgs_3m.mp4")
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)
