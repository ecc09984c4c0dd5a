"""`faithfusion eig` and the EIG-vs-error analysis end to end on a tiny DriveStudio run (CPU, torch backend)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from faithfusion.commands.eig_analysis import AnalysisConfig, run_analysis
from faithfusion.eig.calibrate import Calibration
from faithfusion.commands.eig import EigConfig, run_eig
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
from faithfusion.train.recon import run_recon
from tests.scene_fixtures import write_drivestudio_scene


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 20-step DriveStudio run (3 cameras x 6 timesteps, 32x24) with a fake lane-shift ground truth."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: one thread avoids OpenMP oversubscription
    root = tmp_path_factory.mktemp("eig")
    data = root / "ds"
    write_drivestudio_scene(data, n_steps=6, cams=(0, 1, 2), size=(64, 48))
    for d in (3.0, -3.0):  # SynthStreet's layout; any image will do to exercise the plumbing
        shutil.copytree(data / "images", data / "gt_shifted" / f"{d:+.1f}m" / "images")
    cfg = ReconConfig(data=data, out=root / "run", steps=20, device="cpu", holdout_every=3, progress=False, scale=0.5,
                      ckpt_every=0, init=InitConfig(random_points=50), strategy=StrategyConfig(refine_start=1000),
                      save_renders=False)
    run_recon(cfg)
    yield root
    torch.set_num_threads(n)


def test_eig_command_writes_maps_heatmaps_and_calibration(tiny_run):
    out = tiny_run / "eig"
    summary = run_eig(EigConfig(run=tiny_run / "run", out=out, shift=1.0, frames=(0, 4), device="cpu",
                                calib_views=4, progress=False))
    assert [r["frame"] for r in summary["frames"]] == [0, 4]
    for stem in ("0000_0", "0004_1"):
        assert (out / f"{stem}.png").is_file() and (out / f"{stem}_eig.png").is_file() and (out / f"{stem}_mask.png").is_file()
        eig, g, w = (np.load(out / f"{stem}_{k}.npy") for k in ("eig", "eig_cal", "weight"))
        assert eig.shape == g.shape == w.shape == (24, 32)
        assert np.isfinite(eig).all() and (eig >= 0).all() and (w >= 0.1 - 1e-6).all() and (w <= 1).all()
    cal = Calibration.load(out / "calibration.json")
    assert cal.ref > 0 and cal.n_views == 4 and cal.form == "fisherrf"
    assert json.loads((out / "summary.json").read_text())["timings"]["h_train_views"] > 0
    with pytest.raises(FileExistsError):
        run_eig(EigConfig(run=tiny_run / "run", out=out, device="cpu", progress=False))


def test_eig_vs_error_analysis_writes_json_and_curves(tiny_run):
    cfg = AnalysisConfig(run=tiny_run / "run", out=tiny_run / "analysis", shifts=(3.0,), max_frames=2, device="cpu",
                         jitter_renders=2, samples_per_view=500, calib_views=2, progress=False)
    result = run_analysis(cfg)
    assert set(result["per_shift"]) == {"+3.0", "-3.0"}
    mag = result["by_magnitude"]["3.0"]
    assert set(mag["spearman"]["all"]) >= {"eig~l1", "one_minus_alpha~l1", "jitter_std~dssim"}
    curve = mag["retained"]["by_fraction"]["error"]
    assert curve[0]["psnr"] >= curve[-1]["psnr"]  # ranking by the error itself: PSNR falls as pixels are admitted
    assert mag["retained"]["by_g_threshold"][-1]["fraction"] == 1.0
    assert (tiny_run / "analysis" / "eig_vs_error.png").is_file()


def test_eig_analysis_variants_match_the_session_form_and_report_each(tiny_run):
    from faithfusion.eig.analysis import parse_variant

    assert parse_variant("faithfusion+log+floor=0.1+gtrain+box=5") == parse_variant(
        "faithfusion+log+floor=0.1+gtrain+box=5")
    v = parse_variant("diag+log+floor=0.1+gmean+box=5+lam=1e-4")
    assert (v.form, v.acq, v.h_floor, v.group_norm, v.smooth, v.lam) == ("diag", "log", 0.1, "mean", 5, 1e-4)
    with pytest.raises(ValueError):
        parse_variant("fisherrf+bogus")
    names = ("fisherrf", "faithfusion+log+gtrain+box=3", "pvar+floor=0.1")
    cfg = AnalysisConfig(run=tiny_run / "run", out=tiny_run / "analysis_v", shifts=(3.0,), max_frames=2, device="cpu",
                         jitter_renders=2, samples_per_view=500, calib_views=2, progress=False, variants=names)
    result = run_analysis(cfg)
    mag = result["by_magnitude"]["3.0"]
    assert set(mag["variants"]) == set(names) and set(result["variant_calibrations"]) == set(names)
    # the variant "fisherrf" is the session's own form: same calibration, same statistics
    assert result["variant_calibrations"]["fisherrf"]["ref"] == pytest.approx(result["calibration"]["ref"], rel=1e-6)
    for subset in ("all", "covered"):
        assert mag["variants"]["fisherrf"]["spearman"][subset]["eig~l1"] == pytest.approx(
            mag["spearman"][subset]["eig~l1"], abs=1e-9, nan_ok=True)
    assert "render_grad~l1" in mag["spearman"]["all"]
    row = mag["variants"]["faithfusion+log+gtrain+box=3"]
    assert {"monotone_g", "monotone_fraction", "by_g_threshold"} <= set(row)
