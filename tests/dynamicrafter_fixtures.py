"""A tiny random GenFusion / DynamiCrafter checkpoint in exactly the published layout: a Lightning-style `.ckpt`
(`{"epoch", "global_step", "pytorch-lightning_version", "state_dict"}`) whose state dict holds `model.diffusion_model.*`
(the 3D UNet), `first_stage_model.*` (a stock diffusers AutoencoderKL with 4 image channels, as Intel/ldm3d-4c's),
`cond_stage_model.model.*` (the OpenCLIP text tower), `embedder.model.*` (the OpenCLIP model less its text
transformer), `image_proj_model.*` (the Resampler) and the schedule buffers; beside it a `generation_infer.yaml` in
GenFusion's format with the tiny sizes (and the `faithfusion:` section for the tiny VAE and CLIP tower).

The UNet / CLIP / Resampler tensors are drawn from faithfusion's modules (their names were checked against the
published code, docs/record/2026-12-05-dynamicrafter.md); the VAE's from diffusers; the text tower's from the shape
table; a few published names are asserted literally in tests/test_dynamicrafter.py.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

TINY_UNET = dict(in_channels=8, out_channels=4, model_channels=32, attention_resolutions=[1], num_res_blocks=1,
                 channel_mult=[1, 2], dropout=0.0, num_head_channels=16, transformer_depth=1, context_dim=32,
                 use_linear=True, use_checkpoint=True, temporal_conv=True, temporal_attention=True,
                 temporal_selfatt_only=True, use_relative_position=False, use_causal_attention=False,
                 temporal_length=4, addition_attention=True, image_cross_attention=True, default_fs=10,
                 fs_condition=True)
TINY_RESAMPLER = dict(dim=32, depth=1, dim_head=8, heads=2, num_queries=4, embedding_dim=32, output_dim=32, ff_mult=2,
                      video_length=4)
TINY_CLIP = dict(embed_dim=16, image_size=28, patch_size=14, vision_width=32, vision_layers=1, vision_head_width=16,
                 text_width=16, text_layers=1, text_heads=2, context_length=77, vocab_size=64)
TINY_VAE = dict(in_channels=4, out_channels=4, down_block_types=["DownEncoderBlock2D"] * 2,
                up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16], latent_channels=4,
                layers_per_block=1, norm_num_groups=4, sample_size=32, scaling_factor=0.18215)


def genfusion_yaml(unet: dict | None = None) -> dict:
    """GenFusion's generation_infer.yaml with the tiny sizes (same keys as the published file)."""
    return {"model": {
        "pretrained_checkpoint": "checkpoints/dynamicrafter_512_interp_v1/model.ckpt",
        "base_learning_rate": 1.0e-05, "scale_lr": False, "target": "lvdm.models.ddpm3d.LatentVisualDiffusion",
        "params": {
            "rescale_betas_zero_snr": True, "parameterization": "v", "linear_start": 0.00085, "linear_end": 0.012,
            "num_timesteps_cond": 1, "log_every_t": 200, "timesteps": 1000, "first_stage_key": "gt_rgb",
            "cond_stage_trainable": False, "image_proj_model_trainable": True, "conditioning_key": "hybrid",
            "image_size": [64, 120], "channels": 4, "scale_by_std": False, "scale_factor": 0.18215, "use_ema": False,
            "uncond_prob": 0.05, "uncond_type": "empty_seq", "use_dynamic_rescale": True, "base_scale": 0.7,
            "fps_condition_type": "fps", "perframe_ae": True, "interp_mode": True,
            "unet_config": {"target": "lvdm.modules.networks.openaimodel3d.UNetModel", "params": unet or TINY_UNET},
            "cond_stage_config": {"target": "lvdm.modules.encoders.condition.FrozenOpenCLIPEmbedder",
                                  "params": {"freeze": True, "layer": "penultimate"}},
            "img_cond_stage_config": {"target": "lvdm.modules.encoders.condition.FrozenOpenCLIPImageEmbedderV2",
                                      "params": {"freeze": True}},
            "image_proj_stage_config": {"target": "lvdm.modules.encoders.resampler.Resampler", "params": TINY_RESAMPLER},
            "faithfusion": {"vae": TINY_VAE, "clip": TINY_CLIP},
        }}}


def tiny_state(seed: int = 0, out_std: float = 0.05) -> dict[str, torch.Tensor]:
    """Every tensor of the tiny checkpoint, random; the zero-initialised output layers get `out_std` noise so that
    each part shows in the output."""
    from diffusers import AutoencoderKL

    from faithfusion.fixers.dynamicrafter import DynamiCrafterArch, DynamiCrafterRGBD
    from faithfusion.fixers.dynamicrafter_cond import CLIPConfig, unused_clip_shapes

    torch.manual_seed(seed)
    cfg = genfusion_yaml()["model"]["params"]
    arch = DynamiCrafterArch.from_dict({"unet": cfg["unet_config"]["params"], "resampler": TINY_RESAMPLER,
                                        "clip": TINY_CLIP, "vae": TINY_VAE})
    model = DynamiCrafterRGBD(arch)
    state = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("first_stage_model.")}
    for k, v in state.items():
        if k.startswith(("model.", "image_proj_model.")) and v.is_floating_point() and v.ndim > 0 and float(v.abs().max()) == 0:
            state[k] = torch.randn_like(v) * out_std
    vae = AutoencoderKL(**TINY_VAE)
    state.update({f"first_stage_model.{k}": v for k, v in vae.state_dict().items()})
    for prefix, shapes in unused_clip_shapes(CLIPConfig(**TINY_CLIP)).items():
        for name, shape in shapes.items():
            state[prefix + name] = torch.randn(shape) * 0.02
    return state


def write_tiny_genfusion_ckpt(root: Path, state: dict[str, torch.Tensor] | None = None, with_yaml: bool = True,
                              name: str = "epoch=59-step=34000.ckpt", deepspeed: bool = False) -> Path:
    """The checkpoint file (and its yaml) in `root`; returns the checkpoint's path."""
    root.mkdir(parents=True, exist_ok=True)
    state = tiny_state() if state is None else state
    if deepspeed:
        raw = {"module": {"_forward_module." + k: v for k, v in state.items()}}
    else:
        raw = {"epoch": 59, "global_step": 34000, "pytorch-lightning_version": "2.1.0", "state_dict": state}
    path = root / name
    torch.save(raw, path)
    if with_yaml:
        (root / "generation_infer.yaml").write_text(yaml.safe_dump(genfusion_yaml(), sort_keys=False))
    return path
