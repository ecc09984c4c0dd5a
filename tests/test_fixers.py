"""Fixers: the protocol, the compact Difix, save/load and the registry, the loss, the dataset, training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import requires_lpips
import torch
import torch.nn.functional as F
from PIL import Image

from faithfusion.fixers import Difix, Fixer, FixerModel, FixerOutput, load_fixer, register_fixer, registered_fixers
from faithfusion.fixers.base import CONFIG_NAME, WEIGHTS_NAME
from faithfusion.fixers.dataset import FixerDataset, StepBatches, collate, read_index
from faithfusion.fixers.losses import FixerLoss
from faithfusion.fixers.train import FixerTrainConfig, train_fixer
from tests.fixer_fixtures import TINY_DIFIX, tiny_difix


pytestmark = pytest.mark.usefixtures("single_thread")


def smooth_images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:  # [n, h, w, 3]
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, max(2, h // 8), max(2, w // 8), generator=g)
    return F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1).permute(0, 2, 3, 1)


def degrade(img: torch.Tensor, seed: int = 0) -> torch.Tensor:  # blur + noise, [n, h, w, 3]
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(img.permute(0, 3, 1, 2), 5, 1, 2, count_include_pad=False).permute(0, 2, 3, 1)
    return (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)


# --- protocol, shapes -----------------------------------------------------------------------


def test_difix_is_a_fixer_and_shapes():
    m = tiny_difix()
    assert isinstance(m, Fixer)
    x = torch.rand(2, 3, 20, 30, 3)
    ref = torch.rand(2, 24, 36, 3)  # another size: resized to the render's
    out = m.fix(x, ref)
    assert isinstance(out, FixerOutput) and out.depth is None
    assert out.images.shape == x.shape and out.images.dtype == x.dtype
    assert 0 <= float(out.images.min()) and float(out.images.max()) <= 1
    assert m.fix(x).images.shape == x.shape  # no reference


def test_reference_enters_through_joint_attention():
    m = tiny_difix()
    x = torch.rand(1, 1, 16, 16, 3)
    a = m.fix(x, torch.rand(1, 16, 16, 3)).images
    b = m.fix(x, torch.rand(1, 16, 16, 3)).images
    c = m.fix(x).images
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


def test_frames_do_not_mix_and_chunking_is_exact():
    m = tiny_difix()
    x, ref = torch.rand(2, 4, 16, 24, 3), torch.rand(2, 16, 24, 3)
    whole = m.fix(x, ref).images  # chunk = 3: 8 frames in 3 passes
    single = torch.stack([m(x[b, t:t + 1], ref[b:b + 1])[0] for b in range(2) for t in range(4)]).reshape(x.shape)
    assert torch.allclose(whole, single, atol=1e-5)


def test_default_compact_size_and_timestep():
    m = Difix()
    n = m.num_parameters()
    assert 2_000_000 <= n <= 6_000_000, n
    assert n * 4 < 15e6  # fp32 bytes
    assert m.net.timestep == 199


# --- save / load / registry -------------------------------------------------------------------


def test_save_load_round_trip_identical(tmp_path):
    m = tiny_difix(seed=3)
    m.save_pretrained(tmp_path / "fx")
    cfg = json.loads((tmp_path / "fx" / CONFIG_NAME).read_text())
    assert cfg["_class_name"] == "Difix" and cfg["backbone"] == "compact" and cfg["channels"] == [8, 16]
    assert (tmp_path / "fx" / WEIGHTS_NAME).is_file()
    x, ref = torch.rand(1, 2, 24, 16, 3), torch.rand(1, 24, 16, 3)
    want = m.fix(x, ref).images
    for loaded in (Difix.from_pretrained(tmp_path / "fx"), load_fixer(tmp_path / "fx")):
        assert type(loaded) is Difix and loaded.config == m.config
        assert torch.equal(loaded.fix(x, ref).images, want)


def test_from_pretrained_moves_the_module_to_map_location(tmp_path, monkeypatch):
    """The loaded weights AND the module go to `map_location` (before, the module stayed on the CPU: on the GPU
    every fixer ran there). Without a second device here, the move itself is watched; test_fusion_gpu checks cuda."""
    tiny_difix(seed=1).save_pretrained(tmp_path / "fx")
    moved_to = []
    original = torch.nn.Module.to

    def spy(self, *args, **kwargs):
        if isinstance(self, FixerModel):
            moved_to.append(args[0] if args else kwargs.get("device"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", spy)
    device = torch.device("cpu")
    for loaded in (Difix.from_pretrained(tmp_path / "fx", map_location=device), load_fixer(tmp_path / "fx", map_location="cpu")):
        assert all(p.device == device for p in loaded.parameters()) and not loaded.training
    assert [torch.device(d) for d in moved_to] == [device, device]


def test_registry_rebuilds_the_named_class(tmp_path):
    assert registered_fixers()["Difix"] is Difix

    from dataclasses import dataclass

    @dataclass
    class GainConfig:
        gain: float = 1.0

    @register_fixer
    class GainFixer(FixerModel):
        config_class = GainConfig

        def __init__(self, config: GainConfig) -> None:
            super().__init__(config)
            self.w = torch.nn.Parameter(torch.tensor(config.gain))

        def fix(self, images, ref=None, eig=None, depth=None, ref_depth=None):
            return FixerOutput((images * self.w).clamp(0, 1))

    GainFixer(GainConfig(0.5)).save_pretrained(tmp_path / "g")
    g = load_fixer(tmp_path / "g")
    assert type(g) is GainFixer and g.config.gain == 0.5 and float(g.w.detach()) == 0.5
    with pytest.raises(ValueError):
        Difix.from_pretrained(tmp_path / "g")
    data = json.loads((tmp_path / "g" / CONFIG_NAME).read_text())
    data["_class_name"] = "NoSuchFixer"
    (tmp_path / "g" / CONFIG_NAME).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown fixer class"):
        load_fixer(tmp_path / "g")
    with pytest.raises(FileNotFoundError):
        load_fixer(tmp_path / "missing")


# --- loss -------------------------------------------------------------------------------------


def test_loss_terms_and_l2_fallback(tmp_path):
    t = smooth_images(2, 32, 32)
    loss = FixerLoss()
    if not loss.has_lpips:
        pytest.skip("LPIPS weights not available here")
    zero, terms0 = loss(t, t)
    assert float(zero) == 0 and terms0["lpips"] == 0 and terms0["gram"] == 0
    _, terms = loss(degrade(t), t)
    assert terms["l2"] > 0 and terms["lpips"] > 0 and terms["gram"] > 0
    assert terms["l2"] == pytest.approx(4 * float((degrade(t) - t).pow(2).mean()), rel=1e-5)  # [-1, 1] scale
    assert terms["loss"] == pytest.approx(terms["l2"] + terms["lpips"] + 0.5 * terms["gram"], rel=1e-5)
    _, no_gram = loss(degrade(t), t, gram=False)
    assert "gram" not in no_gram
    with pytest.raises(ValueError, match="at least 32"):
        loss(t[:, :16], t[:, :16])
    with pytest.warns(UserWarning, match="L2 only"):
        fb = FixerLoss(lpips_weights=tmp_path / "nope.npz")
    value, terms = fb(degrade(t), t)
    assert "fallback" in terms and float(value) == pytest.approx(terms["l2"])


def test_training_steps_reduce_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    m = Difix(TINY_DIFIX).train()
    tgt = smooth_images(2, 32, 32, seed=1)
    deg, ref = degrade(tgt, seed=2), smooth_images(2, 32, 32, seed=3)
    loss_fn = FixerLoss(use_lpips=False)
    opt = torch.optim.AdamW(m.trainable_parameters(), lr=2e-3)
    first = None
    for _ in range(25):
        loss, _ = loss_fn(m(deg, ref), tgt)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss_fn(m(deg, ref), tgt)[0].detach()) < 0.7 * first


# --- dataset ----------------------------------------------------------------------------------


def write_fake_dataset(root: Path, n_train: int = 6, n_test: int = 2, h: int = 40, w: int = 48) -> Path:
    """A tiny paired dataset: degraded = blurred + noised target, a reference of another size, EIG maps."""
    root.mkdir(parents=True, exist_ok=True)
    tgt = smooth_images(n_train + n_test, h, w, seed=10)
    deg = degrade(tgt, seed=11)
    refs = smooth_images(n_train + n_test, h + 8, w + 16, seed=12)
    samples = []
    for i in range(n_train + n_test):
        for name, img in (("deg", deg[i]), ("tgt", tgt[i]), ("ref", refs[i])):
            Image.fromarray((img.numpy() * 255 + 0.5).astype(np.uint8)).save(root / f"{name}_{i}.png")
        np.save(root / f"eig_{i}.npy", np.random.default_rng(i).random((h, w), dtype=np.float32))
        samples.append({"degraded": f"deg_{i}.png", "target": f"tgt_{i}.png", "reference": f"ref_{i}.png",
                        "eig": f"eig_{i}.npy", "scene": "synth_0", "split": "train" if i < n_train else "test",
                        "kind": "lane_shift", "shift": 1.0 * i})
    (root / "index.json").write_text(json.dumps({"root": ".", "samples": samples}))
    return root / "index.json"


def test_dataset_crops_match_and_reference_is_whole(tmp_path):
    index = write_fake_dataset(tmp_path / "data")
    assert len(read_index(index)) == 8
    ds = FixerDataset(index, "train", crop=16)
    assert len(ds) == 6 and len(FixerDataset(index, "test", crop=None)) == 2
    item = ds[(0, 123)]
    assert item["degraded"].shape == item["target"].shape == item["reference"].shape == (16, 16, 3)
    assert item["eig"].shape == (16, 16) and item["has_ref"] and item["kind"] == "lane_shift"
    again = ds[(0, 123)]
    assert torch.equal(item["target"], again["target"])  # the seed fixes the window
    # the same window in target and EIG: find the target crop inside the full target
    full = FixerDataset(index, "train", crop=None)[0]
    hits = [(y, x) for y in range(40 - 15) for x in range(48 - 15) if torch.equal(full["target"][y:y + 16, x:x + 16], item["target"])]
    assert hits and torch.equal(full["eig"][hits[0][0]:hits[0][0] + 16, hits[0][1]:hits[0][1] + 16], item["eig"])
    assert torch.equal(full["degraded"][hits[0][0]:hits[0][0] + 16, hits[0][1]:hits[0][1] + 16], item["degraded"])
    batch = collate([ds[(i, i)] for i in range(3)])
    assert batch["degraded"].shape == (3, 16, 16, 3) and batch["has_ref"].all()


def test_step_batches_resume_exactly():
    a = StepBatches(10, 3, total=9, seed=4)
    b = StepBatches(10, 3, total=9, start=5, seed=4)
    assert list(a)[5:] == list(b)
    assert all(len(x) == 3 for x in a)


# --- the training command --------------------------------------------------------------------


def _train_cfg(index: Path, out: Path, steps: int, **kw) -> FixerTrainConfig:
    return FixerTrainConfig(
        index=index, out=out, steps=steps, batch_size=2, crop=32, lr=2e-3, schedule="constant", warmup=0,
        gram_warmup=0, ckpt_every=3, num_workers=0, progress=False, log_every=1, val_samples=2, val_grid=2,
        **{"device": "cpu", **kw},
    )


@requires_lpips
def test_train_lowers_loss_checkpoints_and_resumes(tmp_path, monkeypatch):
    import faithfusion.fixers.train as train_mod

    monkeypatch.setattr(train_mod, "build_model", lambda cfg: Difix(TINY_DIFIX))
    index = write_fake_dataset(tmp_path / "data")
    torch.manual_seed(0)
    straight = train_fixer(_train_cfg(index, tmp_path / "a", steps=24))
    assert straight["steps"] == 24
    out = tmp_path / "a"
    assert (out / "config.json").is_file() and (out / "model" / WEIGHTS_NAME).is_file()
    assert sorted(p.name for p in (out / "ckpt").glob("step_*.pt")) == ["step_000021.pt", "step_000024.pt"]
    val = [json.loads(line) for line in (out / "val" / "metrics.jsonl").read_text().splitlines()]
    assert len(val) == 8 and (out / "val" / "epoch_001.png").is_file()  # 3 steps per epoch
    assert val[-1]["lpips"] < val[-1]["lpips_input"]  # it learned to repair (the loss is mostly perceptual)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert np.mean([r["loss"] for r in log[-3:]]) < np.mean([r["loss"] for r in log[:3]])

    # interrupted at step 12, then resumed to 24: the same weights as the straight run
    train_fixer(_train_cfg(index, tmp_path / "b", steps=12))
    resumed = train_fixer(_train_cfg(index, tmp_path / "b", steps=24))
    assert resumed["start"] == 12 and resumed["steps"] == 24
    a, b = load_fixer(tmp_path / "a" / "model"), load_fixer(tmp_path / "b" / "model")
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(va, vb, atol=1e-6), k
    x = smooth_images(1, 32, 32)[None]
    assert torch.allclose(a.fix(x).images, b.fix(x).images, atol=1e-6)


@pytest.mark.gpu
def test_compact_trains_on_cuda_with_bf16(tmp_path, monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    import faithfusion.fixers.train as train_mod

    monkeypatch.setattr(train_mod, "build_model", lambda cfg: Difix(TINY_DIFIX))
    index = write_fake_dataset(tmp_path / "data", h=64, w=80)
    summary = train_fixer(_train_cfg(index, tmp_path / "run", steps=30, device="cuda", bf16=True))
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert summary["steps"] == 30 and all(np.isfinite(r["loss"]) for r in log)
    assert np.mean([r["loss"] for r in log[-5:]]) < np.mean([r["loss"] for r in log[:5]])
    m = load_fixer(tmp_path / "run" / "model").cuda()
    x, ref = torch.rand(1, 2, 54, 96, 3, device="cuda"), torch.rand(1, 54, 96, 3, device="cuda")
    full = m.fix(x, ref).images
    with torch.autocast("cuda", dtype=torch.bfloat16):
        half = m.fix(x, ref).images
    assert half.dtype == x.dtype and (half - full).abs().max() < 0.05
