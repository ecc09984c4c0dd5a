"""Difix conditioned on the calibrated EIG map (`DifixConfig.eig_condition`, `fixer train --difix-eig`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from faithfusion.fixers import Difix, load_fixer
from faithfusion.fixers.base import WEIGHTS_NAME
from faithfusion.fixers.dataset import FixerDataError
from faithfusion.fixers.difix import DifixConfig, condition_on_eig
from faithfusion.fixers.eigent import EIGent
from faithfusion.fixers.train import FixerTrainConfig, build_model, train_fixer
from faithfusion.fusion.pools import fix_frames
from tests.fixer_fixtures import TINY_DIFIX, TINY_EIGENT_DIFIX, randomise, tiny_difix
from tests.test_fixers import smooth_images, write_fake_dataset

pytestmark = pytest.mark.usefixtures("single_thread")

SHIPPED_DIFIX = Path(__file__).resolve().parents[1] / "faithfusion" / "fixers" / "weights" / "difix"
TINY_EIG_DIFIX = dataclasses.replace(TINY_DIFIX, eig_condition=True)


def stem_eig_weights(model: Difix) -> torch.Tensor:  # the stem conv's weights on the EIG sub-pixel channels
    return model.net.stem[1].weight[:, 12:]


def frames(seed: int = 0):  # images [1, 3, 24, 32, 3], ref [1, 24, 32, 3], eig [1, 3, 24, 32]
    g = torch.Generator().manual_seed(seed)
    return smooth_images(3, 24, 32, seed=seed)[None], smooth_images(1, 24, 32, seed=seed + 1), torch.rand(1, 3, 24, 32, generator=g)


# --- the model -------------------------------------------------------------------------------


def test_fresh_conditioned_difix_ignores_the_map_until_trained():
    torch.manual_seed(0)
    m = randomise(Difix(TINY_EIG_DIFIX))  # random heads: the output depends on the encoder
    assert m.net.stem[1].in_channels == 16 and float(stem_eig_weights(m).detach().abs().max()) == 0.0
    x, ref, eig = frames()
    base = m.fix(x, ref).images
    assert not torch.allclose(base, x, atol=1e-3)  # not the identity: the comparison below means something
    for e in (eig, torch.zeros_like(eig), torch.ones_like(eig)):
        assert torch.allclose(m.fix(x, ref, eig=e).images, base, atol=1e-6)
    with torch.no_grad():
        stem_eig_weights(m).normal_(std=0.5)
    assert not torch.allclose(m.fix(x, ref, eig=eig).images, base, atol=1e-3)  # the channel is wired to the map


def test_conditioned_copy_of_a_trained_difix_fixes_as_it_does():
    plain = tiny_difix(seed=2)
    cond = condition_on_eig(plain)
    assert cond.eig_conditioned and cond.config == dataclasses.replace(plain.config, eig_condition=True)
    x, ref, eig = frames(3)
    assert torch.allclose(cond.fix(x, ref, eig=eig).images, plain.fix(x, ref).images, atol=1e-6)
    assert torch.allclose(cond.fix(x, None, eig=eig).images, plain.fix(x, None).images, atol=1e-6)


def test_eig_channel_gets_gradient():
    torch.manual_seed(0)
    m = randomise(Difix(TINY_EIG_DIFIX)).train()
    x, ref, eig = frames(4)
    out = m(x[0], ref.expand(3, -1, -1, -1), eig[0])
    out.square().mean().backward()
    assert float(m.net.stem[1].weight.grad[:, 12:].abs().sum()) > 0


def test_fix_passes_the_map_per_frame_and_fusion_reaches_it():
    m = tiny_difix(seed=5, config=TINY_EIG_DIFIX)
    with torch.no_grad():
        stem_eig_weights(m).normal_(std=0.5)
    x, ref, eig = frames(6)
    got = m.fix(x, ref, eig=eig).images[0]  # [3, H, W, 3]
    direct = m(x[0], ref.expand(3, -1, -1, -1), eig[0])
    assert torch.allclose(got, direct, atol=1e-6)
    assert torch.allclose(m.fix(x, ref).images[0], m(x[0], ref.expand(3, -1, -1, -1), torch.ones_like(eig[0])), atol=1e-6)
    # fusion's per-frame path (fix_frames, as FaithFusion's Difix branch calls it with eig=cond)
    fused = fix_frames(m, x[0], ref.expand(3, -1, -1, -1), eig=eig[0], chunk=2)
    assert torch.allclose(fused, direct, atol=1e-6)
    assert not torch.allclose(fix_frames(m, x[0], ref.expand(3, -1, -1, -1), eig=None), direct, atol=1e-3)
    with pytest.raises(ValueError, match="eig must be"):
        m.fix(x, ref, eig=eig[..., :-1])  # the protocol's shape check stays


def test_conditioned_difix_saves_and_loads(tmp_path):
    m = tiny_difix(seed=7, config=TINY_EIG_DIFIX)
    with torch.no_grad():
        stem_eig_weights(m).normal_(std=0.5)
    m.save_pretrained(tmp_path / "fx")
    assert json.loads((tmp_path / "fx" / "config.json").read_text())["eig_condition"] is True
    loaded = load_fixer(tmp_path / "fx")
    x, ref, eig = frames(8)
    assert loaded.eig_conditioned and torch.equal(loaded.fix(x, ref, eig=eig).images, m.fix(x, ref, eig=eig).images)


def test_shipped_difix_loads_exactly_as_before():
    if not (SHIPPED_DIFIX / WEIGHTS_NAME).is_file():
        pytest.skip("shipped Difix weights absent")
    assert "eig_condition" not in json.loads((SHIPPED_DIFIX / "config.json").read_text())
    m = load_fixer(SHIPPED_DIFIX)
    assert type(m) is Difix and not m.eig_conditioned and m.net.stem[1].in_channels == 12
    saved = load_file(str(SHIPPED_DIFIX / WEIGHTS_NAME))
    own = m.state_dict()
    assert set(saved) == set(own) and all(torch.equal(saved[k].float(), own[k].float()) for k in saved)
    x, ref, eig = frames(9)
    before = m.fix(x, ref).images
    assert torch.equal(m.fix(x, ref, eig=eig).images, before)  # an unconditioned Difix ignores EIG
    cond = condition_on_eig(m)  # the route to fine-tune the shipped Difix with EIG
    assert torch.allclose(cond.fix(x, ref, eig=eig).images, before, atol=1e-5)


def test_conditioning_needs_the_compact_backbone_and_eigent_refuses_it():
    with pytest.raises(ValueError, match="compact backbone"):
        Difix(DifixConfig(backbone="sd-turbo", eig_condition=True))
    cond = Difix(dataclasses.replace(TINY_EIGENT_DIFIX, eig_condition=True))
    with pytest.raises(ValueError, match="unconditioned compact Difix"):
        EIGent.on_difix(cond)


# --- training ---------------------------------------------------------------------------------


def _cfg(index: Path, out: Path, *args: str) -> FixerTrainConfig:
    import tyro

    return tyro.cli(FixerTrainConfig, args=[
        "--index", str(index), "--out", str(out), "--steps", "2", "--batch-size", "2", "--crop", "32", "--lr", "1e-2",
        "--warmup", "0", "--gram-warmup", "0", "--num-workers", "0", "--no-progress", "--log-every", "1",
        "--val-samples", "1", "--val-grid", "1", "--device", "cpu", "--w-lpips", "0", "--w-gram", "0",
        "--lpips-weights", str(out.parent / "no_lpips.npz"), *args])


def test_train_difix_eig_two_steps_from_a_saved_difix(tmp_path, monkeypatch):
    index = write_fake_dataset(tmp_path / "data", n_train=2, n_test=1, h=32, w=40)
    tiny_difix(seed=1).save_pretrained(tmp_path / "init")
    cfg = _cfg(index, tmp_path / "run", "--difix-eig", "--init", str(tmp_path / "init"))
    assert cfg.difix_eig
    fresh = build_model(dataclasses.replace(cfg, init=None))  # without --init: a fresh conditioned Difix
    assert fresh.eig_conditioned and float(stem_eig_weights(fresh).detach().abs().max()) == 0.0
    seen = []  # the EIG maps each forward got: the samples' own maps, cropped with the images
    forward = Difix.forward
    monkeypatch.setattr(Difix, "forward", lambda self, images, ref=None, eig=None: (
        seen.append(None if eig is None else (tuple(images.shape[:3]), eig.detach().clone())), forward(self, images, ref, eig))[1])
    with pytest.warns(UserWarning, match="L2 only"):
        summary = train_fixer(cfg)
    assert summary["steps"] == 2
    assert len(seen) == 4 and all(s is not None and s[1].shape == s[0] for s in seen)  # 2 steps, 2 one-frame validations
    maps = [np.load(p) for p in sorted((tmp_path / "data").glob("eig_*.npy"))]
    assert all(any(_is_window_of(s[1][k], m) for m in maps) for s in seen for k in range(s[1].shape[0]))
    out = load_fixer(tmp_path / "run" / "model")
    assert out.eig_conditioned and float(stem_eig_weights(out).abs().max()) > 0  # the EIG channel trained
    ckpt = torch.load(sorted((tmp_path / "run" / "ckpt").glob("step_*.pt"))[-1], map_location="cpu", weights_only=False)
    assert ckpt["backbone"] == "compact+eig"
    # resuming this run without the flag is refused by name rather than mis-loaded
    with pytest.raises(ValueError, match=r"a compact\+eig checkpoint, but this run trains compact"):
        train_fixer(dataclasses.replace(cfg, difix_eig=False, steps=3))
    # and a conditioned Difix as --init needs the flag
    with pytest.raises(ValueError, match="holds a Difix conditioned on EIG"):
        train_fixer(dataclasses.replace(cfg, out=tmp_path / "run2", init=tmp_path / "run" / "model", difix_eig=False))


def _is_window_of(crop: torch.Tensor, full: np.ndarray) -> bool:
    """Whether `crop [h, w]` is a window of `full [H, W]`."""
    h, w = crop.shape
    c = crop.numpy()
    return any(np.allclose(full[y:y + h, x:x + w], c) for y in range(full.shape[0] - h + 1) for x in range(full.shape[1] - w + 1))


def test_train_difix_eig_refuses_a_dataset_without_eig_maps(tmp_path):
    index = write_fake_dataset(tmp_path / "data", n_train=2, n_test=1, h=32, w=40)
    data = json.loads(index.read_text())
    for s in data["samples"][1:]:
        s.pop("eig")
    index.write_text(json.dumps(data))
    with pytest.raises(FixerDataError, match=r"index\.json.*--difix-eig needs an 'eig' map per sample.*1 of 2 train"):
        train_fixer(_cfg(index, tmp_path / "run", "--difix-eig"))
    with pytest.raises(ValueError, match="needs --model difix"):
        train_fixer(_cfg(index, tmp_path / "run2", "--difix-eig", "--model", "eigent"))


def test_faithfusion_difix_branch_feeds_the_condition_map_to_the_model():
    """`FaithFusionMethod.fix_window` (Difix rounds): the window's condition c reaches a conditioned Difix."""
    from types import SimpleNamespace

    from faithfusion.fusion.faithfusion import FaithFusionMethod, WindowEig
    from faithfusion.fusion.fixers import ChosenFixer
    from faithfusion.utils.timing import NO_TIMER

    m = tiny_difix(seed=11, config=TINY_EIG_DIFIX)
    with torch.no_grad():
        stem_eig_weights(m).normal_(std=0.5)
    x, ref, eig = frames(12)
    rgb, refs = x[0], ref.expand(3, -1, -1, -1)  # [T, H, W, 3]
    method = object.__new__(FaithFusionMethod)  # only what fix_window reads
    method.timer, method.video = NO_TIMER, None
    method.difix = ChosenFixer(m, "difix", "test")
    method.refs = SimpleNamespace(for_cameras=lambda cameras, ids=None: refs)
    method.sched = SimpleNamespace(difix_blend=False)
    window = SimpleNamespace(renders=SimpleNamespace(rgb=rgb), cameras=[None] * 3, ids=[0, 1, 2])
    got = method.fix_window(window, WindowEig(weight=None, cond=eig[0]), use_video=False)
    assert torch.allclose(got, m(rgb, refs, eig[0]), atol=1e-6)
    ones = method.fix_window(window, WindowEig(weight=None, cond=torch.ones_like(eig[0])), use_video=False)
    assert not torch.allclose(got, ones, atol=1e-3)  # the `none` arm's c = 1 is a different condition
