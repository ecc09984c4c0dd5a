"""Difix on the SD-Turbo backbone, with tiny random SD-like weights laid out like the hub repo (no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from faithfusion.fixers import Difix, DifixConfig, load_fixer  # noqa: E402
from faithfusion.fixers.difix_sdturbo import JointViewsAttnProcessor, one_step_x0  # noqa: E402
from tests.fixer_fixtures import tiny_sd_turbo_difix, write_tiny_sd_turbo  # noqa: E402


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    return write_tiny_sd_turbo(tmp_path_factory.mktemp("tiny-sd-turbo"))


@pytest.fixture(scope="module")
def model(tiny_repo) -> Difix:
    return tiny_sd_turbo_difix(tiny_repo)


pytestmark = pytest.mark.usefixtures("single_thread")


def test_loads_offline_from_a_hub_layout(model, tiny_repo, monkeypatch):
    net = model.net
    assert net.timestep == 199 and net.num_joint == 4  # every transformer self-attention is joint over views
    assert net.multiple == 8  # VAE /4 x UNet /2
    assert net.prompt_embeds.shape == (1, 16, 16)
    assert all(isinstance(p, JointViewsAttnProcessor) for n, p in net.unet.attn_processors.items() if ".attn1." in n)
    assert not any(isinstance(p, JointViewsAttnProcessor) for n, p in net.unet.attn_processors.items() if ".attn2." in n)
    assert len(net.skip_convs) == 3 and {"decoder.skip_conv_1", "decoder.skip_conv_3"} <= set(net.lora_targets)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    Difix(DifixConfig(backbone="sd-turbo", pretrained=str(tiny_repo)))  # the env var alone keeps it offline


def test_fix_with_and_without_reference(model):
    torch.manual_seed(1)
    x = torch.rand(2, 2, 20, 28, 3)  # padded to multiples of 8 inside, cropped back
    ref = torch.rand(2, 20, 28, 3)
    plain, with_ref = model.fix(x).images, model.fix(x, ref).images
    assert plain.shape == with_ref.shape == x.shape
    assert 0 <= float(plain.min()) and float(plain.max()) <= 1
    assert not torch.allclose(plain, with_ref, atol=1e-5)  # the reference enters through attn1
    # joint attention over a view and its copy is attention over the view alone: ref = render changes nothing,
    # and no tokens leak between the pairs of a batch
    same = model.fix(x[:, :1], x[:, 0]).images
    assert torch.allclose(same, model.fix(x[:, :1]).images, atol=1e-5)


def test_one_step_x0_is_the_ddpm_step_at_199():
    from diffusers import DDPMScheduler

    for pred_type in ("epsilon", "v_prediction"):
        sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                              prediction_type=pred_type)
        sched.set_timesteps(timesteps=[199])  # one step from 199 to "-1": alpha_prev = 1, as Difix's set_timesteps(1)
        z, out = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
        want = sched.step(out, 199, z, generator=torch.Generator().manual_seed(0)).prev_sample
        got = one_step_x0(out, z, float(sched.alphas_cumprod[199]), pred_type, None)
        assert torch.allclose(got, want, atol=1e-5)


def test_training_step_reaches_lora_skips_and_unet_only(tiny_repo):
    from faithfusion.fixers.losses import FixerLoss

    for train_unet in (False, True):
        torch.manual_seed(0)
        m = Difix(DifixConfig(backbone="sd-turbo", pretrained=str(tiny_repo), local_files_only=True, train_unet=train_unet)).train()
        x, tgt, ref = torch.rand(2, 16, 16, 3), torch.rand(2, 16, 16, 3), torch.rand(2, 16, 16, 3)
        loss_fn = FixerLoss(use_lpips=False)
        opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-2)
        losses = []
        for _ in range(4):
            loss, _ = loss_fn(m(x, ref), tgt)
            opt.zero_grad()
            loss.backward()
            if not losses:
                grads = {n: p.grad for n, p in m.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
            opt.step()
            losses.append(float(loss.detach()))
        assert losses[-1] < losses[0]
        trainable = {n for n, p in m.named_parameters() if p.requires_grad}
        for n in trainable:
            assert "lora_" in n or "skip_conv" in n or (train_unet and n.startswith("net.unet.")), n
        assert not any(n.startswith("net.vae.encoder.") for n in trainable)
        assert any("lora_B" in n for n in grads) and any("skip_conv" in n and "lora" not in n for n in grads)
        assert any(n.startswith("net.unet.") for n in grads) == train_unet


def test_save_load_round_trip(tiny_repo, tmp_path):
    m = Difix(DifixConfig(backbone="sd-turbo", pretrained=str(tiny_repo), local_files_only=True)).eval()
    with torch.no_grad():  # make the trained parts non-trivial
        for n, p in m.named_parameters():
            if "lora_B" in n or "skip_conv" in n:
                p.normal_(0, 0.02)
    m.save_pretrained(tmp_path / "fx")
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "fx" / "model.safetensors"))
    assert not any(k.startswith("net.vae.encoder.") for k in saved)  # base weights come from `pretrained`
    assert any("lora_A" in k for k in saved) and any(k.startswith("net.unet.") for k in saved)
    x, ref = torch.rand(1, 1, 16, 24, 3), torch.rand(1, 16, 24, 3)
    loaded = load_fixer(tmp_path / "fx")
    assert isinstance(loaded, Difix) and loaded.config.backbone == "sd-turbo"
    assert torch.equal(loaded.fix(x, ref).images, m.fix(x, ref).images)


def test_train_command_runs_on_sd_turbo(tiny_repo, tmp_path):
    from test_fixers import write_fake_dataset

    from faithfusion.fixers.train import FixerTrainConfig, train_fixer

    index = write_fake_dataset(tmp_path / "data", n_train=2, n_test=1, h=32, w=40)
    cfg = FixerTrainConfig(index=index, out=tmp_path / "run", backbone="sd-turbo", pretrained=str(tiny_repo),
                           local_files_only=True, steps=2, batch_size=1, crop=32, ckpt_every=1, num_workers=0,
                           progress=False, val_samples=1, val_grid=1)
    summary = train_fixer(cfg)
    assert summary["steps"] == 2 and (tmp_path / "run" / "val" / "epoch_001.png").is_file()
    assert isinstance(load_fixer(tmp_path / "run" / "model"), Difix)
