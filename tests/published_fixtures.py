"""Tiny random checkpoints in exactly the layouts Difix3D+ publishes, and Difix3D's forward pass written out
from its source (nv-tlabs/Difix3D src/model.py, src/pipeline_difix.py), independent of faithfusion's loader.

- `write_tiny_difix_pipeline`: the hub folders `nvidia/difix` / `nvidia/difix_ref`: model_index.json naming
  DifixPipeline, a VAE whose state dict is that of AutoencoderKL + `decoder.skip_conv_1..N` + the peft LoRA
  adapter `vae_skip` (so `.base_layer` / `lora_A.vae_skip` names), its config with lora_rank, gamma, ignore_skip;
  difix_ref's UNet folder carries its own code file.
- `write_difix_pkl`: what Difix3D's `save_ckpt` writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import nn

from tests.fixer_fixtures import write_tiny_sd_turbo

DIFIX_TARGETS = ["conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out", "to_k", "to_q", "to_v", "to_out.0"]


def published_difix_vae(config: dict, rank: int = 4, seed: int = 0, randomise: bool = True):
    """AutoencoderKL built as Difix3D's model.py builds it: skip convs attached to the decoder, then LoRA
    (adapter `vae_skip`) on every decoder module whose name ends with a target (skip convs included)."""
    from diffusers import AutoencoderKL
    from peft import LoraConfig

    torch.manual_seed(seed)
    vae = AutoencoderKL.from_config({k: v for k, v in config.items() if k not in ("lora_rank", "gamma", "ignore_skip")})
    # channels as Difix's decoder uses them: skip i takes encoder activation [::-1][i] into up block i's input
    with torch.no_grad():
        h = vae.encoder.conv_in(torch.zeros(1, 3, 32, 32))
        acts = []
        for block in vae.encoder.down_blocks:
            acts.append(h.shape[1])
            h = block(h)
    ins = [blk.resnets[0].conv1.in_channels for blk in vae.decoder.up_blocks]
    names = []
    for i, (cin, cout) in enumerate(zip(acts[::-1], ins), start=1):
        setattr(vae.decoder, f"skip_conv_{i}", nn.Conv2d(cin, cout, kernel_size=1, bias=False))
        torch.nn.init.constant_(getattr(vae.decoder, f"skip_conv_{i}").weight, 1e-5)
        names.append(f"skip_conv_{i}")
    suffixes = DIFIX_TARGETS + names
    targets = [n for n, _ in vae.named_modules() if "decoder" in n and any(n.endswith(x) for x in suffixes)]
    vae.add_adapter(LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=targets), adapter_name="vae_skip")
    if randomise:  # trained-looking skips and LoRA, so that each tensor shows in the output
        with torch.no_grad():
            for n, p in vae.named_parameters():
                if "skip_conv" in n or "lora_B" in n:
                    p.normal_(0, 0.05)
    vae.difix_targets = targets
    return vae


def write_tiny_difix_pipeline(root: Path, ref: bool = False, seed: int = 0) -> Path:
    """A tiny nvidia/difix (ref=False) or nvidia/difix_ref (ref=True) folder with random weights."""
    from safetensors.torch import save_file

    write_tiny_sd_turbo(root)
    shutil.rmtree(root / "_tok_src")
    vae_dir = root / "vae"
    config = json.loads((vae_dir / "config.json").read_text())
    config.update(lora_rank=4, gamma=1.0, ignore_skip=False)
    shutil.rmtree(vae_dir)
    vae_dir.mkdir()
    vae = published_difix_vae(config, seed=seed)
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(vae_dir / "diffusion_pytorch_model.safetensors"))
    (vae_dir / "config.json").write_text(json.dumps(config, indent=2))
    (vae_dir / "autoencoder_kl.py").write_text("# stands in for Difix's custom AutoencoderKL code (never imported)\n")
    unet = ["diffusers", "UNet2DConditionModel"]
    if ref:
        unet = ["unet_2d_condition", "UNet2DConditionModel"]
        (root / "unet" / "unet_2d_condition.py").write_text("# stands in for difix_ref's multi-view UNet code\n")
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "DifixPipeline", "_diffusers_version": "0.25.1",
        "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False,
        "safety_checker": [None, None], "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": unet, "vae": ["autoencoder_kl", "AutoencoderKL"],
    }, indent=2))
    return root


def published_modules(root: Path):
    """(tokenizer, text encoder, unet, vae, scheduler) of a tiny Difix pipeline folder, loaded as the published
    pipeline does: stock diffusers/transformers classes, the VAE built the Difix way and loaded strictly."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from safetensors.torch import load_file
    from transformers import CLIPTextModel, CLIPTokenizer

    vae = published_difix_vae(json.loads((root / "vae" / "config.json").read_text()), randomise=False)
    vae.load_state_dict(load_file(str(root / "vae" / "diffusion_pytorch_model.safetensors")), strict=True)
    return (CLIPTokenizer.from_pretrained(root / "tokenizer"), CLIPTextModel.from_pretrained(root / "text_encoder"),
            UNet2DConditionModel.from_pretrained(root / "unet"), vae, DDPMScheduler.from_pretrained(root / "scheduler"))


@torch.no_grad()
def published_forward(tokenizer, text_encoder, unet, vae, sched, x: torch.Tensor, prompt: str = "remove degradation") -> torch.Tensor:
    """Difix3D's one-step fix of `x` [N, 3, H, W] in [-1, 1] (no reference), step by step as its model.py does;
    the posterior's mean stands in for its sample (the project's default; the std is tiny)."""
    ids = tokenizer(prompt, max_length=tokenizer.model_max_length, padding="max_length", truncation=True,
                    return_tensors="pt").input_ids
    caption = text_encoder(ids)[0].expand(x.shape[0], -1, -1)
    enc, dec = vae.encoder, vae.decoder
    h = enc.conv_in(x)
    down = []
    for block in enc.down_blocks:
        down.append(h)
        h = block(h)
    h = enc.conv_out(enc.conv_act(enc.conv_norm_out(enc.mid_block(h))))
    z = vae.quant_conv(h).chunk(2, dim=1)[0] * vae.config.scaling_factor
    sched.set_timesteps(timesteps=[199])  # = Difix's set_timesteps(1) stepping from 199 to x0
    pred = unet(z, torch.tensor([199]), encoder_hidden_states=caption).sample
    z = sched.step(pred, 199, z, return_dict=True).prev_sample
    s = dec.conv_in(vae.post_quant_conv(z / vae.config.scaling_factor))
    s = dec.mid_block(s, None)
    for i, block in enumerate(dec.up_blocks):
        s = block(s + getattr(dec, f"skip_conv_{i + 1}")(down[::-1][i] * 1.0), None)
    return dec.conv_out(dec.conv_act(dec.conv_norm_out(s))).clamp(-1, 1)


def write_difix_pkl(path: Path, unet: nn.Module, vae: nn.Module, targets: list[str], rank: int = 4) -> Path:
    """A checkpoint as Difix3D's save_ckpt writes it (with a real optimizer state)."""
    opt = torch.optim.AdamW([p for p in unet.parameters()][:2], lr=1e-5)
    torch.save({
        "vae_lora_target_modules": targets, "rank_vae": rank,
        "state_dict_unet": unet.state_dict(),
        "state_dict_vae": {k: v for k, v in vae.state_dict().items() if "lora" in k or "skip" in k},
        "optimizer": opt.state_dict(),
    }, path)
    return path
