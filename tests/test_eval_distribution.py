"""FID / KID in the lane-shift protocol on a tiny SynthStreet scene, with a cheap stand-in feature network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faithfusion.data.load import load_scene
from faithfusion.eval.distribution import DistributionEval
from faithfusion.eval.fid import FeatureCache
from faithfusion.eval.lane_shift import evaluate_lane_shift, shift_views
from faithfusion.synth import generate


class PixelFeatures:
    """8x8 thumbnails as features: cheap, and zero distance only for equal image sets."""

    def __init__(self):
        self.images = 0

    def __call__(self, images):
        self.images += len(images)
        x = torch.stack([F.interpolate(i.permute(2, 0, 1)[None], size=(8, 8), mode="area")[0] for i in images])
        return x.reshape(len(images), -1).double().numpy()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = generate(tmp_path_factory.mktemp("fid") / "scene", 4, frames=6, cameras=("front",), width=48, height=32,
                    shifts=(2.0,), supersample=1, lidar_azimuths=90)
    return root, load_scene(root, holdout_every=3, cameras=(0,))


def oracle(scene, root):
    """A renderer that returns the ground truth of each evaluated view (looked up by camera centre)."""
    table = {}
    for d in (0.0, 2.0, -2.0):
        for _, cam, gt in shift_views(scene, root, d, list(range(len(scene.frames))), 1.0).items:
            table[tuple(np.round(cam.center.numpy(), 4))] = gt
    return lambda cam: table[tuple(np.round(cam.center.cpu().numpy(), 4))]


def test_lane_shift_gains_fid_and_kid_per_shift_and_magnitude(tiny, tmp_path, single_thread):
    root, scene = tiny
    feats = PixelFeatures()
    dist = DistributionEval(feats, FeatureCache(tmp_path / "cache.npz"), kid_subset_size=100)
    perfect = evaluate_lane_shift(oracle(scene, root), scene, root, [2.0], distribution=dist)
    n_frames = len(scene.frames)
    for key in ("+2.0", "-2.0"):
        m = perfect["per_shift"][key]["mean"]
        assert m["fid"] == pytest.approx(0.0, abs=1e-9) and m["fid_n"] == n_frames
        assert m["fid_train"] > 0 and m["train_n"] == len(scene.train_ids)  # other views than the captured ones
    pooled = perfect["by_magnitude"]["2.0"]
    assert pooled["fid"] == pytest.approx(0.0, abs=1e-9) and pooled["fid_n"] == 2 * n_frames
    # a flat grey renderer is far from the ground truth; the references come from the cache this time
    used = feats.images
    grey = evaluate_lane_shift(lambda cam: torch.full((cam.height, cam.width, 3), 0.5), scene, root, [2.0], distribution=
                               DistributionEval(feats, FeatureCache(tmp_path / "cache.npz"), kid_subset_size=100))
    renders = sum(v["mean"]["count"] for v in grey["per_shift"].values())
    assert feats.images - used == renders  # only the renders went through the network
    assert grey["by_magnitude"]["2.0"]["fid"] > 0.1 and grey["by_magnitude"]["2.0"]["kid"] > 0
    assert abs(pooled["kid"]) < 0.05 * grey["by_magnitude"]["2.0"]["kid"]  # equal sets: unbiased MMD near 0, not exactly
    assert grey["by_magnitude"]["2.0"]["psnr"] < perfect["by_magnitude"]["2.0"]["psnr"]
    # without a distribution evaluator nothing changes in the result
    plain = evaluate_lane_shift(oracle(scene, root), scene, root, [2.0])
    assert "fid" not in plain["by_magnitude"]["2.0"]


def test_report_is_one_self_contained_page(tiny, tmp_path, single_thread):
    import re

    import yaml

    from faithfusion.cli import main
    from faithfusion.eval.lane_shift import view_strip
    from faithfusion.eval.report_html import ReportInputError, collect_run, save_view_strip
    from faithfusion.utils.jsonio import save_json_atomic

    root, scene = tiny
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"data": str(root), "steps": 5, "_run": {"method": "difix3d+"}}))
    render = oracle(scene, root)
    result = evaluate_lane_shift(render, scene, root, [2.0], distribution=DistributionEval(PixelFeatures(), kid_subset_size=100))
    result["command"] = f"faithfusion eval --run {run} --protocol lane-shift"
    save_json_atomic(run / "eval" / "lane_shift.json", result)
    strip = view_strip(render, scene, root, [2.0], fixed_fn=lambda cam: render(cam) * 0.5)
    assert sorted(strip) == [0.0] and sorted(strip[0.0]) == ["fixed", "gt", "render"]  # 3 and 6 m not in this scene
    save_view_strip(run / "eval" / "views", strip)
    assert set(collect_run(run).strips["+0.0"]) == {"gt", "render", "fixed"}

    out = tmp_path / "page" / "report.html"
    main(["report", str(run), "--out", str(out)])
    page = out.read_text()
    assert "<td>difix3d+</td><td>2 m</td>" in page and "<td>difix3d+</td><td>0 m</td>" in page
    assert page.count("data:image/png;base64,") == 3 and "<svg" in page and "FID (gt)" in page
    assert f"faithfusion fuse difix3d+ --data {root}" in page and "faithfusion eval --run" in page
    assert not re.search(r"(src|href)=[\"'](?!data:|#)", page)  # nothing linked: images inlined (SVG's own #refs)
    with pytest.raises(ReportInputError, match="no evaluation"):
        collect_run(tmp_path / "page")
