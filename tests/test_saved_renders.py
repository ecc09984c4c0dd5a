"""Saved renders: a run evaluated once with --save-renders is measured again from its PNGs, without its checkpoint."""

import json
import shutil

import pytest
import torch

from faithfusion.commands.eval import EvalConfig, run_eval
from faithfusion.eval.saved_renders import SavedRenderError, load_render, render_path, save_render
from faithfusion.synth import generate
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
from faithfusion.train.recon import release_run_lock, train_run


def test_png_round_trip_and_clear_errors(tmp_path):
    rgb = torch.rand(6, 8, 3)  # [H, W, 3]
    path = save_render(tmp_path, -3.0, 7, "front", rgb)
    assert path == render_path(tmp_path, -3.0, 7, "front") and path.name == "007_front.png" and path.parent.name == "-3.0m"
    back = load_render(tmp_path, -3.0, 7, "front", (6, 8))
    assert (back - rgb).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit rounding, nothing more
    with pytest.raises(SavedRenderError, match="8x6, the view is 4x6"):
        load_render(tmp_path, -3.0, 7, "front", (6, 4))
    with pytest.raises(SavedRenderError, match="001_front.png: saved render missing"):
        load_render(tmp_path, -3.0, 1, "front", (6, 8))
    path.write_bytes(b"not a png")
    with pytest.raises(SavedRenderError, match="not a readable image"):
        load_render(tmp_path, -3.0, 7, "front", (6, 8))


def test_saved_renders_give_the_same_figures_without_the_checkpoint(tmp_path):
    torch.set_num_threads(1)
    root = generate(tmp_path / "scene", 3, frames=6, cameras=("front",), width=48, height=32, shifts=(2.0,))
    run = tmp_path / "run"
    cfg = ReconConfig(data=root, out=run, steps=5, device="cpu", progress=False, cameras=(0,), holdout_every=3,
                      init=InitConfig(max_points=1000, random_points=100), strategy=StrategyConfig(refine_start=1000))
    train_run(cfg)
    release_run_lock(run)
    first = run_eval(EvalConfig(run=run, device="cpu", fid=False, save_renders=True))
    saved = run / "eval" / "renders"
    assert len(list((saved / "+2.0m").glob("*.png"))) == 6 and (saved / "+0.0m").is_dir()

    moved = tmp_path / "elsewhere"  # the run's config and renders only: no checkpoint
    (moved / "eval").mkdir(parents=True)
    shutil.copy(run / "config.yaml", moved / "config.yaml")
    shutil.copytree(saved, moved / "eval" / "renders")
    again = run_eval(EvalConfig(run=moved, device="cpu", fid=False, renders=moved / "eval" / "renders", data=root))
    for mag, m in first["by_magnitude"].items():
        assert again["by_magnitude"][mag]["count"] == m["count"]
        assert again["by_magnitude"][mag]["psnr"] == pytest.approx(m["psnr"], abs=0.05)  # 8-bit rounding only
    assert json.loads((moved / "eval" / "lane_shift.json").read_text())["renders"] == str(moved / "eval" / "renders")

    gone = sorted((moved / "eval" / "renders" / "+2.0m").glob("*.png"))[0]
    gone.unlink()
    with pytest.raises(SavedRenderError, match=f"{gone.name}: saved render missing"):
        run_eval(EvalConfig(run=moved, device="cpu", fid=False, renders=moved / "eval" / "renders", data=root))
