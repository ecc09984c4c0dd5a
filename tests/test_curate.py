"""`faithfusion fixer curate` on two tiny SynthStreet seeds (one held out): index format, splits, GT, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faithfusion.curation import CurateConfig, curate
from faithfusion.curation.ground_truth import SynthOracle
from faithfusion.fixers.windows import ramp_shifts
from faithfusion.fixers.dataset import read_index, read_video_index

H, W = 32, 48


def tiny_config(out: Path, **kw) -> CurateConfig:
    base = dict(out=out, synth_seeds=(0,), test_seeds=(1,), synth_frames=4, synth_width=W, synth_height=H,
                synth_cameras=("front", "front_right"), shifts=(2.0,), steps=8, device="cpu", random_points=100,
                max_points=400, underfit_stride=4, shift_stride=2, video_windows=True, video_frames=4, video_ramp=3,
                with_eig=True, eig_calib_views=2, progress=False)
    base.update(kw)
    return CurateConfig(**base)


@pytest.fixture(scope="module")
def curated(tmp_path_factory) -> tuple[CurateConfig, dict]:
    torch.set_num_threads(2)
    cfg = tiny_config(tmp_path_factory.mktemp("fixdata"))
    return cfg, curate(cfg)


def _size(p: Path) -> tuple[int, int]:
    if p.suffix == ".npy":
        return tuple(np.load(p).shape[:2])
    with Image.open(p) as im:
        return im.size[1], im.size[0]


def test_index_loads_with_the_dataset_readers(curated):
    cfg, summary = curated
    images, videos = read_index(cfg.out / "index.json"), read_video_index(cfg.out / "index.json")
    assert {s.kind for s in images} == {"sparse", "underfit", "cross_camera", "lane_shift"}
    assert videos and all(len(v.degraded) == cfg.video_frames == len(v.target) for v in videos)
    assert summary["total"] == len(images) + len(videos)
    assert json.loads((cfg.out / "summary.json").read_text())["by_kind"]["video"] == len(videos)
    for s in images:
        paths = [s.degraded, s.target, s.reference, *s.maps.values()]
        assert set(s.maps) == {"eig", "depth", "alpha"}
        assert {_size(p) for p in paths} == {(H, W)}, s
        assert np.load(s.maps["eig"]).dtype == np.float16
    for v in videos:
        assert {_size(p) for p in [*v.degraded, *v.target, *v.maps["eig"], *v.maps["depth"]]} == {(H, W)}
        assert v.reference is not None and v.reference_depth is not None and len(v.maps["target_depth"]) == cfg.video_frames


def test_split_is_by_scene(curated):
    cfg, _ = curated
    samples = read_index(cfg.out / "index.json") + read_video_index(cfg.out / "index.json")
    split_of: dict[str, set[str]] = {}
    for s in samples:
        split_of.setdefault(s.scene, set()).add(s.split)
    assert split_of == {"synth_0": {"train"}, "synth_1": {"test"}}


def test_lane_shift_targets_are_the_ground_truth(curated):
    cfg, _ = curated
    lane = [s for s in read_index(cfg.out / "index.json") if s.kind == "lane_shift"]
    assert {s.shift for s in lane} == {2.0, -2.0}
    raw = json.loads((cfg.out / "index.json").read_text())["samples"]
    for s in raw:
        if s["kind"] != "lane_shift":
            continue
        gt = cfg.out / "scenes" / f"seed_{s['scene'].split('_')[1]}" / "gt_shifted" / f"{s['shift']:+.1f}m" / "images" / f"{s['frame']:03d}_{s['cam']}.jpg"
        target = np.asarray(Image.open(cfg.out / s["target"]))
        assert np.array_equal(target, np.asarray(Image.open(gt).convert("RGB")))


def test_resume_skips_complete_scenes_and_refuses_another_config(curated):
    cfg, _ = curated
    marker = cfg.out / "samples" / "synth_0" / "samples.json"
    before = marker.stat().st_mtime_ns
    again = curate(tiny_config(cfg.out))
    assert again["skipped"] == ["synth_0", "synth_1"] and again["curated"] == []
    assert marker.stat().st_mtime_ns == before
    with pytest.raises(FileExistsError):
        curate(tiny_config(cfg.out, steps=9))


def test_identity_difix_leaves_renders_unchanged(curated):
    from faithfusion.fixers.difix import Difix
    from faithfusion.fixers.evaluate import evaluate_fixer_on_index

    cfg, _ = curated
    res = evaluate_fixer_on_index(Difix(), cfg.out / "index.json", split="test", kinds=("lane_shift",), shifts=(2.0,))
    assert res["samples"] == 4  # 2 timesteps x (+2 m, -2 m)
    assert res["fixed_ref_psnr"] == pytest.approx(res["degraded_psnr"], abs=1e-3)
    assert res["fixed_noref_psnr"] == pytest.approx(res["degraded_psnr"], abs=1e-3)
    if "degraded_lpips" in res:
        assert res["fixed_ref_lpips"] == pytest.approx(res["degraded_lpips"], abs=1e-4)


def test_ramp_and_oracle_match_the_generated_ground_truth(curated):
    assert ramp_shifts(3.0, 5, 3) == [0.0, 1.5, 3.0, 3.0, 3.0]
    assert ramp_shifts(-2.0, 2, 9) == [0.0, -2.0]
    cfg, _ = curated
    root = cfg.out / "scenes" / "seed_0"
    rgb, depth = SynthOracle(root).render(2, -2.0, 0, (H, W))
    gt = np.asarray(Image.open(root / "gt_shifted" / "-2.0m" / "images" / "002_0.jpg").convert("RGB")) / 255.0
    assert np.abs(rgb.numpy() - gt).mean() < 0.02  # JPEG q95 against the lossless render
    gt_depth = np.asarray(Image.open(root / "gt_shifted" / "-2.0m" / "depth" / "002_0.png")) / 256.0
    assert np.allclose(np.minimum(depth.numpy(), 65535 / 256), gt_depth, rtol=0, atol=1 / 256)  # PNG saturates at 256 m


def test_workers_curate_every_scene_into_one_index(curated, tmp_path):
    cfg, _ = curated
    par = curate(tiny_config(tmp_path / "par", workers=2, with_eig=False, video_windows=False))
    assert sorted(par["curated"]) == ["synth_0", "synth_1"] and par["pending"] == []
    key = lambda s: (s["scene"], s["kind"], s["frame"], s["cam"], s.get("shift"))  # noqa: E731
    seq = {key(s): s for s in json.loads((cfg.out / "index.json").read_text())["samples"] if s["kind"] != "video"}
    got = json.loads((tmp_path / "par" / "index.json").read_text())["samples"]
    assert {key(s) for s in got} == set(seq)
    for s in got:  # targets are ground truth: byte-identical whichever process wrote them
        assert np.array_equal(np.asarray(Image.open(tmp_path / "par" / s["target"])),
                              np.asarray(Image.open(cfg.out / seq[key(s)]["target"])))
    with pytest.raises(ValueError, match="synth_7"):
        curate(tiny_config(tmp_path / "par", only=("synth_7",)))
    # curated without EIG maps: a Difix conditioned on EIG cannot train on it, and the error names the dataset
    from faithfusion.fixers.dataset import FixerDataError
    from faithfusion.fixers.train import train_fixer

    with pytest.raises(FixerDataError, match=r"par/index\.json: --difix-eig needs an 'eig' map per sample"):
        train_fixer(difix_eig_train_config(tmp_path / "par" / "index.json", tmp_path / "run", tmp_path / "init"))


def difix_eig_train_config(index: Path, out: Path, init: Path):
    """`fixer train --difix-eig` for 2 steps, starting from a tiny saved unconditioned Difix written to `init`."""
    from faithfusion.fixers.train import FixerTrainConfig
    from tests.fixer_fixtures import tiny_difix

    tiny_difix(seed=1).save_pretrained(init)
    return FixerTrainConfig(index=index, out=out, init=init, difix_eig=True, steps=2, batch_size=2, crop=32, lr=1e-2,
                            warmup=0, gram_warmup=0, num_workers=0, progress=False, log_every=1, val_samples=1,
                            val_grid=1, device="cpu", w_lpips=0.0, w_gram=0.0, lpips_weights=out.parent / "no_lpips.npz")


def test_difix_eig_trains_and_evaluates_on_curated_eig_maps(curated, tmp_path):
    from faithfusion.fixers.evaluate import evaluate_fixer_on_index
    from faithfusion.fixers.load import load_fixer
    from faithfusion.fixers.train import train_fixer

    cfg, _ = curated
    with pytest.warns(UserWarning, match="L2 only"):
        summary = train_fixer(difix_eig_train_config(cfg.out / "index.json", tmp_path / "run", tmp_path / "init"))
    assert summary["steps"] == 2 and np.isfinite(summary["last"]["loss"])
    model = load_fixer(tmp_path / "run" / "model")
    assert model.eig_conditioned and float(model.net.stem[1].weight[:, 12:].abs().max()) > 0  # the EIG channel trained
    res = evaluate_fixer_on_index(model, cfg.out / "index.json", split="test", kinds=("lane_shift",), shifts=(2.0,))
    assert res["samples"] == 4 and np.isfinite(res["fixed_ref_psnr"])


def test_video_windows_record_cameras_that_explain_the_ground_truth(curated):
    from faithfusion.eval.temporal import warp_error
    from faithfusion.fixers.dataset import VideoFixerDataset
    from faithfusion.fixers.evaluate_video import evaluate_video_fixer_on_index
    from faithfusion.fusion.fixers import identity_fixer

    cfg, _ = curated
    data = VideoFixerDataset(cfg.out / "index.json", None, crop=None, frames=None)
    ramps = [i for i, s in enumerate(data.samples) if s.cameras is not None and s.shift]
    assert ramps
    item = data[ramps[0]]
    assert item["K"].shape == (cfg.video_frames, 3, 3) and item["camtoworld"].shape == (cfg.video_frames, 4, 4)
    gt = warp_error(item["target"], item["target_depth"], item["K"], item["camtoworld"])
    noisy = warp_error((item["target"] + 0.1 * torch.randn(item["target"].shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1),
                       item["target_depth"], item["K"], item["camtoworld"])
    assert gt["valid_fraction"] > 0.2 and gt["warp_error"] < 0.5 * noisy["warp_error"]  # the recorded poses are right
    res = evaluate_video_fixer_on_index(identity_fixer("eigent"), cfg.out / "index.json", "test", shifts=None,
                                        difix=identity_fixer("difix"))
    assert res["windows"] > 0
    for name in ("fixer", "difix"):  # identity models: the render, unchanged
        assert abs(res[f"{name}_psnr"] - res["render_psnr"]) < 1e-3 and res[f"{name}_low_eig_change"] < 1e-3
        assert abs(res[f"{name}_warp_error"] - res["render_warp_error"]) < 1e-3
    test = VideoFixerDataset(cfg.out / "index.json", "test", crop=None, frames=None).samples
    shifts = {"none" if s.shift is None else str(abs(s.shift)) for s in test if s.cameras is not None}
    assert set(res["by_shift"]) == shifts and sum(r["windows"] for r in res["by_shift"].values()) == res["windows"]
    pooled = sum(r["windows"] * r["render_psnr"] for r in res["by_shift"].values()) / res["windows"]
    assert pooled == pytest.approx(res["render_psnr"])  # each shift apart, weighted by its windows, is the pooled mean
    quick = evaluate_video_fixer_on_index(identity_fixer("eigent"), cfg.out / "index.json", "test", shifts=None, warp=False)
    assert not any("warp" in k for k in quick) and quick["fixer_psnr"] == pytest.approx(res["fixer_psnr"])


def test_merge_indexes_keeps_every_file_and_renames_clashing_scenes(curated, tmp_path):
    import os

    from faithfusion.cli import main
    from faithfusion.fixers.dataset import read_video_index

    cfg, _ = curated
    other = tmp_path / "other"
    other.mkdir()
    raw = json.loads((cfg.out / "index.json").read_text())
    (other / "index.json").write_text(json.dumps({"root": os.path.relpath(cfg.out, other), "samples": raw["samples"]}))
    merged = tmp_path / "m" / "index.json"
    main(["fixer", "merge", "--out", str(merged), "--indexes", str(cfg.out / "index.json"), str(other / "index.json")])
    a, m = read_index(cfg.out / "index.json"), read_index(merged)
    assert len(m) == 2 * len(a)
    assert [s.degraded.resolve() for s in m] == [s.degraded.resolve() for s in a + a]
    assert [s.maps.keys() for s in m[len(a):]] == [s.maps.keys() for s in a]
    assert {s.scene for s in m[len(a):]} == {f"other/{s.scene}" for s in a} and [s.split for s in m] == [s.split for s in a + a]
    assert all(p.is_file() for v in read_video_index(merged) for p in [*v.degraded, *v.maps["eig"]])
    with pytest.raises(FileExistsError):
        main(["fixer", "merge", "--out", str(merged), "--indexes", str(cfg.out / "index.json")])


def test_video_only_curation_writes_the_same_windows_and_nothing_else(curated, tmp_path, monkeypatch):
    import faithfusion.curation.scene_samples as curate_mod
    from faithfusion.fixers.dataset import VideoFixerDataset

    cfg, _ = curated
    built = []

    class CountingRenderer(curate_mod.Renderer):
        def __init__(self, *a, **kw):
            built.append(1)
            super().__init__(*a, **kw)

    monkeypatch.setattr(curate_mod, "Renderer", CountingRenderer)
    vcfg = tiny_config(tmp_path / "v", test_seeds=(), kinds=("video",))
    summary = curate(vcfg)
    assert len(built) == 1  # the final model's renderer only: no under-fitted snapshot renders
    index = vcfg.out / "index.json"
    assert read_index(index) == [] and summary["by_kind"] == {"video": summary["total"]} and summary["total"] > 0
    assert sorted(p.name for p in (vcfg.out / "samples" / "synth_0").iterdir()) == ["complete.json", "reference", "samples.json", "video"]
    key = lambda s: (s["scene"], s["frame"], s["cam"], s["window"], s["shift"])  # noqa: E731
    full = {key(s): s for s in json.loads((cfg.out / "index.json").read_text())["samples"]
            if s["kind"] == "video" and s["scene"] == "synth_0"}
    got = json.loads(index.read_text())["samples"]
    assert {key(s) for s in got} == set(full)  # the windows of the full curation, with the same maps
    for s in got:
        f = full[key(s)]
        assert s.keys() == f.keys()
        for a, b in zip(s["target"] + s["degraded"], f["target"] + f["degraded"]):
            x, y = np.asarray(Image.open(vcfg.out / a), dtype=np.float32), np.asarray(Image.open(cfg.out / b), dtype=np.float32)
            assert np.abs(x - y).mean() < 0.5  # targets are ground truth; renders come from the same final model
    item = VideoFixerDataset(index, "train", crop=None, frames=None)[0]  # what the video fixers' loader reads
    assert item["degraded"].shape == (vcfg.video_frames, H, W, 3) and item["K"].shape == (vcfg.video_frames, 3, 3)
    assert all(k in item for k in ("eig", "depth", "target_depth", "reference_depth"))
    # the kinds are part of the config record: a resume skips, another config (the default kinds) is refused
    assert curate(tiny_config(tmp_path / "v", test_seeds=(), kinds=("video",)))["skipped"] == ["synth_0"]
    with pytest.raises(FileExistsError):
        curate(tiny_config(tmp_path / "v", test_seeds=()))
    with pytest.raises(ValueError, match="unknown sample kinds"):
        curate(tiny_config(tmp_path / "w", kinds=("videos",)))


def test_config_record_of_the_default_kinds_is_unchanged(curated):
    from faithfusion.curation.config import IMAGE_KINDS, config_record

    cfg, _ = curated  # folders curated before `kinds` existed record no kinds, and resume
    assert "kinds" not in config_record(cfg) and "kinds" not in yaml_record(cfg.out)
    assert config_record(tiny_config(cfg.out, kinds=(*IMAGE_KINDS, "video"))) == config_record(cfg)
    assert config_record(tiny_config(cfg.out, kinds=IMAGE_KINDS))["kinds"] == list(IMAGE_KINDS)
    assert config_record(tiny_config(cfg.out, video_windows=False, kinds=("video",)))["kinds"] == ["video"]


def yaml_record(out: Path) -> dict:
    import yaml

    return yaml.safe_load((out / "curate_config.yaml").read_text())
