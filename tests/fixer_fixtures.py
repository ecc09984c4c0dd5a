"""Tiny fixers of every kind, shared by the fixer tests (as diffusers tests its models on tiny dummy components).

Each builder returns a small model in eval mode whose zero-initialised parts (adaLN modulations, output heads)
are given random weights, so that its output depends on every input it takes; `identity=True` keeps them zero
(an untrained fixer returns its input). SD-Turbo Difix and EIGent on CogVideoX are built on tiny random
repos (hub layout) written to disk.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from faithfusion.fixers.difix import Difix, DifixConfig
from faithfusion.fixers.eigent import EIGent, EIGentConfig
from faithfusion.fixers.genfusion import GenFusion, GenFusionConfig

TINY_DIFIX = DifixConfig(channels=(8, 16), dim=32, depth=2, heads=2, mlp_ratio=2.0, chunk=3)
TINY_EIGENT = EIGentConfig(difix_channels=(8, 16), difix_dim=16, difix_depth=1, difix_heads=2, latent_channels=4, dim=16,
                           heads=2, coarse_depth=1, fine_depth=1, mlp_ratio=2.0, context_width=8)
TINY_EIGENT_DIFIX = DifixConfig(channels=TINY_EIGENT.difix_channels, dim=TINY_EIGENT.difix_dim, depth=TINY_EIGENT.difix_depth,
                                heads=TINY_EIGENT.difix_heads, mlp_ratio=TINY_EIGENT.mlp_ratio)  # fits EIGent's Difix branch
TINY_GENFUSION_FIELDS = dict(channels=(8, 16), dim=16, heads=2, coarse_depth=1, fine_depth=1, mlp_ratio=2.0)
TINY_GENFUSION = GenFusionConfig(**TINY_GENFUSION_FIELDS)


def randomise(model: torch.nn.Module, std: float = 0.1) -> torch.nn.Module:
    """Give the zero-initialised parts (adaLN, heads) weights, so that outputs depend on everything."""
    for name, mod in model.named_modules():
        if name.endswith("ada") or name.endswith("head.1"):
            torch.nn.init.normal_(mod.weight, std=std)
    return model.eval()


def tiny_difix(seed: int = 0, identity: bool = False, config: DifixConfig = TINY_DIFIX) -> Difix:
    torch.manual_seed(seed)
    m = Difix(config)
    return m.eval() if identity else randomise(m)


def tiny_eigent(seed: int = 0, identity: bool = False) -> EIGent:
    torch.manual_seed(seed)
    m = EIGent(TINY_EIGENT)
    return m.eval() if identity else randomise(m)


def tiny_genfusion(seed: int = 0, identity: bool = False) -> GenFusion:
    torch.manual_seed(seed)
    m = GenFusion(TINY_GENFUSION)
    return m.eval() if identity else randomise(m)


def write_tiny_sd_turbo(root: Path) -> Path:
    """A tiny SD-like repo: unet/, vae/, text_encoder/, tokenizer/, scheduler/ written with save_pretrained."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    max_len = 16
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    tok_dir = root / "_tok_src"
    tok_dir.mkdir(parents=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=max_len).save_pretrained(root / "tokenizer")
    CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=max_len, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )).save_pretrained(root / "text_encoder")
    UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4,
    ).save_pretrained(root / "unet")
    AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 16, 16), latent_channels=4, layers_per_block=1, norm_num_groups=4, sample_size=32,
    ).save_pretrained(root / "vae")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                  prediction_type="epsilon").save_pretrained(root / "scheduler")
    return root


def tiny_sd_turbo_difix(repo: Path, seed: int = 0, **fields) -> Difix:
    """SD-Turbo Difix on the tiny repo `repo` (offline); its LoRA and skips as the backbone initialises them."""
    torch.manual_seed(seed)
    return Difix(DifixConfig(backbone="sd-turbo", pretrained=str(repo), local_files_only=True, chunk=2, **fields))


def write_tiny_cogvideox(root: Path) -> Path:
    """A tiny random CogVideoX laid out like the hub repo (transformer/, vae/, scheduler/), via save_pretrained."""
    diffusers = pytest.importorskip("diffusers")
    try:
        torch.manual_seed(0)
        diffusers.AutoencoderKLCogVideoX(
            block_out_channels=(8, 16, 16, 16), latent_channels=4, layers_per_block=1, norm_num_groups=4,
            sample_height=32, sample_width=32,
        ).save_pretrained(root / "vae")
        diffusers.CogVideoXTransformer3DModel(
            num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4, time_embed_dim=8,
            text_embed_dim=16, num_layers=1, sample_width=4, sample_height=4, sample_frames=9, patch_size=2,
            max_text_seq_length=8, use_rotary_positional_embeddings=True,
        ).save_pretrained(root / "transformer")
        diffusers.CogVideoXDDIMScheduler(prediction_type="v_prediction", rescale_betas_zero_snr=True, clip_sample=False,
                                         timestep_spacing="trailing").save_pretrained(root / "scheduler")
    except (TypeError, ValueError, AttributeError) as err:
        pytest.skip(f"diffusers cannot build a tiny CogVideoX config here: {err}")
    return root


def tiny_eigent_cogvideox(repo: Path, seed: int = 0, **fields):
    """EIGent on the tiny CogVideoX `repo` (offline), with LoRA on its attention."""
    from faithfusion.fixers.eigent import EIGentCogVideoX, EIGentCogVideoXConfig

    torch.manual_seed(seed)
    return EIGentCogVideoX(EIGentCogVideoXConfig(pretrained=str(repo), local_files_only=True, lora_rank=2, **fields)).eval()


def smooth_video(b: int, t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:  # [b, t, h, w, 3], drifting slowly
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(b, 3, max(2, h // 8), max(2, w // 8) + t, generator=g)
    frames = [low[..., i:i + max(2, w // 8)] for i in range(t)]
    x = torch.stack([F.interpolate(f, size=(h, w), mode="bicubic", align_corners=False) for f in frames], dim=1)
    return x.clamp(0, 1).permute(0, 1, 3, 4, 2)
