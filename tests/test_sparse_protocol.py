"""GenFusion's sparse-view protocol: which views train and which are scored, the novel path between training views,
the refusals, and a tiny end-to-end run with its JSON, --resume and the report's table (CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from faithfusion.data.sparse_views import SparseViewsError, check_view_counts, sparse_split
from scene_fixtures import write_nerfstudio_scene


def test_holdout_split_is_every_8th_and_training_views_span_the_rest():
    s = sparse_split(67, 3)  # fox: 67 frames
    assert s.test_ids == list(range(0, 67, 8))
    assert s.train_ids == [1, 33, 66]  # first, middle and last of the 58 frames left
    for n in (3, 6, 9):
        split = sparse_split(67, n)
        assert len(split.train_ids) == n == len(set(split.train_ids))
        assert not set(split.train_ids) & set(split.test_ids)
        assert split.test_ids == s.test_ids  # the same evaluated frames for every N
        assert split.train_ids == sorted(split.train_ids) and split == sparse_split(67, n)  # deterministic
        gaps = [b - a for a, b in zip(split.train_ids, split.train_ids[1:])]
        assert max(gaps) - min(gaps) <= 2  # evenly spread (a skipped held-out frame at most, plus rounding)


def test_rest_evaluates_every_frame_not_trained_on():
    s = sparse_split(10, 3, eval_views="rest")
    assert s.train_ids == [0, 4, 9] or s.train_ids == [0, 5, 9]
    assert sorted(s.train_ids + s.test_ids) == list(range(10))


@pytest.mark.parametrize("n_frames, views, kwargs, needle", [
    (3, 3, {}, "needs 4 frames or more"),
    (9, 9, {"eval_views": "rest"}, "needs 10 frames"),
    (10, 9, {}, "leave 8 after holding out every 8-th"),
    (20, 1, {}, "at least 2"),
    (20, 3, {"holdout_every": 1}, "k >= 2"),
    (20, 3, {"eval_views": "all"}, "expected holdout or rest"),
])
def test_bad_splits_are_refused_with_the_reason(n_frames, views, kwargs, needle):
    with pytest.raises(SparseViewsError, match=needle):
        sparse_split(n_frames, views, source="scene", **kwargs)


@pytest.mark.parametrize("views, needle", [((), "at least one"), ((3, 3), "repeated"), ((3, 1), "at least 2")])
def test_bad_view_counts(views, needle):
    with pytest.raises(SparseViewsError, match=needle):
        check_view_counts(views)


@pytest.fixture
def scene_dir(tmp_path):
    write_nerfstudio_scene(tmp_path / "scene", n=11)
    return tmp_path / "scene"


def test_novel_cameras_lie_between_training_views(scene_dir):
    from faithfusion.data.load import load_scene
    from faithfusion.fusion.paths import sequences

    scene = load_scene(scene_dir, holdout_every=0)
    scene.train_ids, scene.test_ids = [1, 5, 9], [0, 8]
    path = scene.use_interpolated_path()
    c = {i: scene.frames[i].camera.center for i in (1, 5, 9)}
    mid = scene.shifted_camera(5, 6.0).center  # 6 path metres = the midpoint to the next training view
    assert torch.allclose(mid, (c[5] + c[9]) / 2, atol=1e-5)
    back = scene.shifted_camera(5, -3.0).center  # a quarter of the way back
    assert torch.allclose(back, 0.75 * c[5] + 0.25 * c[1], atol=1e-5)
    past = scene.shifted_camera(1, -6.0).center  # before the first view: mirrored away from the next one
    assert torch.allclose(past, 1.5 * c[1] - 0.5 * c[5], atol=1e-5)
    assert scene.shifted_camera(5, 0.0) is scene.frames[5].camera
    gap = float(((c[5] - c[1]).norm() + (c[9] - c[5]).norm()) / 2)
    assert scene.metres_to_scene(12.0) == pytest.approx(gap, rel=1e-5) == path.metres_to_scene(12.0)
    assert sequences(scene, scene.train_ids) == [[1, 5, 9]]  # one path for the video fixers


def run_protocol(scene_dir, out, **kw):
    from faithfusion.protocols.sparse import SparseProtocolConfig, run_sparse_protocol

    settings = dict(data=scene_dir, out=out, views=(2, 3), methods=("3dgs",), steps=12, random_points=200,
                    device="cpu", fid=False, progress=False, ckpt_every=0) | kw
    return run_sparse_protocol(SparseProtocolConfig(**settings))


def test_end_to_end_json_resume_and_report(scene_dir, tmp_path, single_thread):
    import yaml

    from faithfusion.eval.report_html import collect_run, write_html_report
    from faithfusion.protocols.sparse import SparseProtocolError

    out = tmp_path / "proto"
    result = run_protocol(scene_dir, out)
    stored = json.loads((out / "eval" / "sparse_views.json").read_text())
    assert stored["results"].keys() == {"2", "3"} and stored["splits"]["3"]["train_ids"] == [1, 5, 10]
    cell = stored["results"]["3"]["3dgs"]
    assert cell["mean"]["count"] == 2 and [r["frame"] for r in cell["per_view"]] == [0, 8]
    assert 5.0 < cell["mean"]["psnr"] < 60.0 and cell["steps"] == 12
    run_cfg = yaml.safe_load((out / "views_3" / "3dgs" / "config.yaml").read_text())
    assert run_cfg["_run"]["scene"]["train"] == 3 and run_cfg["_run"]["scene"]["novel_path"]["order"] == [1, 5, 10]
    assert result["results"] == stored["results"]

    with pytest.raises(SparseProtocolError, match="not empty"):
        run_protocol(scene_dir, out)
    with pytest.raises(SparseProtocolError, match="--steps 12 but --resume was given --steps 13"):
        run_protocol(scene_dir, out, steps=13, resume=True)
    before = (out / "views_3" / "3dgs" / "metrics.json").stat().st_mtime_ns
    again = run_protocol(scene_dir, out, resume=True)  # finished cells are kept, not trained again
    assert again["results"] == stored["results"]
    assert (out / "views_3" / "3dgs" / "metrics.json").stat().st_mtime_ns == before

    page = write_html_report(tmp_path / "r.html", [collect_run(out)]).read_text()
    assert "Sparse views (GenFusion" in page and page.count("<td>3dgs</td>") == 2 and "frame_005.png" in page


def test_cli_names_the_scene_that_is_too_small(scene_dir, tmp_path, capsys):
    from faithfusion.cli import main

    with pytest.raises(SystemExit) as e:
        main(["protocol", "sparse", "--data", str(scene_dir), "--out", str(tmp_path / "o"), "--views", "11", "--no-fid"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert str(scene_dir) in err and "11 frames cannot give 11 training views" in err
