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


def _second_scene(tiny_run):
    """Two scenes from the tiny run: the run on its own data, and a copy of the run on a copy of the data whose
    lane-shift ground truth is noise; both with unobserved masks (a block) and sky masks, no disoccluded masks."""
    import yaml
    from PIL import Image

    rng = np.random.default_rng(0)
    ds, ds_b, run_b = tiny_run / "ds", tiny_run / "ds_b", tiny_run / "multi" / "run_b"
    if not run_b.is_dir():
        shutil.copytree(ds, ds_b)
        shutil.copytree(tiny_run / "run", run_b)
        cfg = yaml.safe_load((run_b / "config.yaml").read_text())
        cfg["data"] = str(ds_b)
        (run_b / "config.yaml").write_text(yaml.safe_dump(cfg))
        for root in (ds, ds_b):
            for d in (3.0, -3.0):
                base = root / "gt_shifted" / f"{d:+.1f}m"
                for img in sorted((base / "images").iterdir()):
                    w, h = Image.open(img).size
                    if root == ds_b:
                        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(img)
                    stem = img.name.rsplit(".", 1)[0]
                    unobserved = np.zeros((h, w), np.uint8)
                    unobserved[h // 3:, : w // 3] = 255
                    sky = np.zeros((h, w), np.uint8)
                    sky[: h // 4] = 255
                    for kind, m in (("unobserved", unobserved), ("sky_masks", sky)):
                        (base / kind).mkdir(exist_ok=True)
                        Image.fromarray(m).save(base / kind / f"{stem}.png")
    return [tiny_run / "run", run_b]


def test_multi_scene_analysis_writes_intervals_for_every_map_measure_and_shift(tiny_run, capsys):
    from faithfusion.commands.eig_analysis import AnalysisSettingsError

    runs = _second_scene(tiny_run)
    out = tiny_run / "multi" / "out"
    cfg = AnalysisConfig(runs=tuple(runs), out=out, shifts=(3.0,), max_frames=2, device="cpu", jitter_renders=2,
                         samples_per_view=300, calib_views=2, progress=False, forms=("fisherrf", "faithfusion", "pixel"),
                         bootstrap=200)
    summary = run_analysis(cfg)
    maps = ["fisherrf", "faithfusion", "pixel", "one_minus_alpha", "jitter_std", "render_grad", "unconstrained"]
    measures = ["auroc_unobserved", "ap_unobserved", "spearman_l1", "spearman_dssim", "partial_spearman_l1",
                "ause_l1", "retained_trend"]
    assert set(summary["per_shift"]) == {"+3.0", "-3.0", "3.0"}
    assert summary["masks"]["unobserved"] == "present" and summary["masks"]["disoccluded"].startswith("skipped")
    stats = [json.loads((out / "views" / f"{n}.json").read_text()) for n in ("run", "run_b")]
    for s in stats:
        assert len(s["views"]) == 4 and all(v["pixels"] == 300 for v in s["views"])  # 2 frames x 2 shifts
        # sky (the top 6 of 24 rows at the run's scale) excluded: the block (16 rows x 10 columns) is 160 of the
        # 576 non-sky pixels, 0.28 of a sample (0.22 with sky pixels sampled too)
        assert all(0.2 < v["positives"]["unobserved"] / 300 < 0.36 for v in s["views"])
        assert np.mean([v["positives"]["unobserved"] for v in s["views"]]) / 300 == pytest.approx(160 / 576, abs=0.03)
    e = summary["per_shift"]["3.0"]
    assert e["scenes"] == 2 and e["views"] == 8
    assert list(e["maps"]) == maps and list(e["maps"]["fisherrf"]) == measures
    for m in maps:
        for q in measures:
            c = e["maps"][m][q]
            if c["mean"] is not None and q != "partial_spearman_l1":
                assert c["lo"] - 1e-9 <= c["mean"] <= c["hi"] + 1e-9, (m, q, c)
    # paired differences: the reference is not among them, and the mean of differences is the difference of means
    assert set(e["differences"]) == set(maps) - {"fisherrf"}
    d = e["differences"]["unconstrained"]["ause_l1"]
    assert d["mean"] == pytest.approx(e["maps"]["unconstrained"]["ause_l1"]["mean"] - e["maps"]["fisherrf"]["ause_l1"]["mean"])
    # the oracle order by L1 gives a falling retained-pixel curve
    assert e["retained"]["error"]["monotone"] and len(e["retained"]["error"]["curve"]) == 20
    # each run is measured against its own data folder's ground truth
    assert stats[1]["data"] == str(tiny_run / "ds_b") and stats[0]["views"][0]["psnr"] != stats[1]["views"][0]["psnr"]
    md = (out / "eig_analysis.md").read_text()
    assert "## shift 3.0 m" in md and "| unconstrained - fisherrf |" in md and "disoccluded: skipped" in md
    assert (out / "retained.png").stat().st_size > 0
    # a second call reuses the per-view files and gives the same summary; other settings are refused
    capsys.readouterr()
    again = run_analysis(cfg)
    assert capsys.readouterr().out.count("reusing") == 2
    assert again["per_shift"] == summary["per_shift"]
    with pytest.raises(AnalysisSettingsError, match="other settings"):
        run_analysis(AnalysisConfig(**{**cfg.__dict__, "samples_per_view": 200}))
    with pytest.raises(AnalysisSettingsError, match="--forms bogus"):
        run_analysis(AnalysisConfig(**{**cfg.__dict__, "forms": ("bogus",)}))
    with pytest.raises(AnalysisSettingsError, match="--out"):
        run_analysis(AnalysisConfig(runs=tuple(runs), device="cpu"))


def test_combined_form_from_the_session_and_in_the_multi_scene_rows(tiny_run):
    """`combined` (eig/combined.py): the session's map is the rank mean of its pixel map and its render's gradient,
    and the multi-scene analysis reports it as one more map (it needs `pixel` among the forms)."""
    from faithfusion.commands.eig_analysis import AnalysisSettingsError
    from faithfusion.eig.combined import combined_map, image_gradient
    from faithfusion.eig.session import build_session
    from faithfusion.train.run import load_run

    loaded = load_run(tiny_run / "run", torch.device("cpu"))
    pix = build_session(loaded.trainer, form="pixel", calib_views=2, progress=False)
    comb = build_session(loaded.trainer, acc=pix.acc, form="combined", calib_views=2, progress=False)
    cam = loaded.scene.shifted_camera(0, 3.0, loaded.cfg.scale)
    m, g = comb.eig(cam)
    expected = combined_map(pix.eig(cam)[0].eig, image_gradient(comb.render(cam)[0]))
    assert m.form == "combined" and m.eig.shape == (cam.height, cam.width) and torch.equal(m.eig, expected)
    assert 0 < float(m.eig.min()) and float(m.eig.max()) <= 1 and comb.calibration.form == "combined"
    assert torch.isfinite(g).all()

    out = tiny_run / "combined_out"
    cfg = AnalysisConfig(runs=(tiny_run / "run",), out=out, shifts=(3.0,), max_frames=1, device="cpu", jitter_renders=2,
                         samples_per_view=200, calib_views=2, progress=False, forms=("pixel", "combined"),
                         reference="pixel", bootstrap=100)
    summary = run_analysis(cfg)
    e = summary["per_shift"]["3.0"]
    assert list(e["maps"])[:3] == ["pixel", "combined", "one_minus_alpha"] and "combined" in e["differences"]
    assert e["maps"]["combined"]["spearman_l1"]["views"] == 2
    with pytest.raises(AnalysisSettingsError, match="add 'pixel'"):
        run_analysis(AnalysisConfig(**{**cfg.__dict__, "forms": ("fisherrf", "combined"), "reference": "fisherrf"}))
