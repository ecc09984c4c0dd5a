"""Tiny random checkpoints in exactly the layouts the video priors publish, written without faithfusion's loaders.

- `write_tiny_cogvideox_i2v`: a CogVideoX image-to-video folder as `THUDM/CogVideoX-5b-I2V` is laid out
  (model_index.json naming CogVideoXImageToVideoPipeline; transformer/ with in_channels = 2C, vae/,
  text_encoder/ (a T5 encoder), tokenizer/, scheduler/), written by diffusers' and transformers' save_pretrained.
- `write_tiny_videopainter_branch`: a VideoPainter branch folder (`VideoPainter/checkpoints/branch`): config.json
  naming CogvideoXBranchModel and the tensors of its class: a CogVideoX transformer's (patch embedding over
  2C + 1 channels, time embedding, n blocks, norm_final, norm_out, proj_out) plus `branch_blocks.{i}` and
  `branch_x_embedder`, built here from a stock diffusers transformer, not from faithfusion's branch class.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

C = 4  # latent channels of the tiny VAE
TRANSFORMER = dict(num_attention_heads=2, attention_head_dim=16, in_channels=2 * C, out_channels=C, time_embed_dim=8,
                   text_embed_dim=16, num_layers=2, sample_width=4, sample_height=4, sample_frames=9, patch_size=2,
                   max_text_seq_length=8, use_rotary_positional_embeddings=True)


def write_tiny_cogvideox_i2v(root: Path, seed: int = 0) -> Path:
    """A tiny random CogVideoX-5b-I2V-like folder in the hub layout."""
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    diffusers.AutoencoderKLCogVideoX(
        block_out_channels=(8, 16, 16, 16), latent_channels=C, layers_per_block=1, norm_num_groups=4,
        sample_height=32, sample_width=32,
    ).save_pretrained(root / "vae")
    diffusers.CogVideoXTransformer3DModel(**TRANSFORMER).save_pretrained(root / "transformer")
    diffusers.CogVideoXDDIMScheduler(prediction_type="v_prediction", rescale_betas_zero_snr=True, clip_sample=False,
                                     timestep_spacing="trailing").save_pretrained(root / "scheduler")
    transformers.T5EncoderModel(transformers.T5Config(
        vocab_size=32, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)).save_pretrained(root / "text_encoder")
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 8}))  # never read
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "CogVideoXImageToVideoPipeline", "_diffusers_version": "0.31.0.dev0",
        "scheduler": ["diffusers", "CogVideoXDDIMScheduler"], "text_encoder": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"], "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLCogVideoX"],
    }, indent=2))
    return root


def videopainter_branch_state(layers: int = 2, seed: int = 1, branch_std: float = 0.0) -> dict[str, torch.Tensor]:
    """The tensors of VideoPainter's CogvideoXBranchModel for the tiny I2V transformer: a stock transformer built
    with the branch's patch-embedding width (in_channels + 1 for I2V), plus branch_blocks and branch_x_embedder
    (zero, as VideoPainter initialises them, or normal(0, branch_std): a trained-looking branch)."""
    from diffusers import CogVideoXTransformer3DModel

    torch.manual_seed(seed)
    stock = CogVideoXTransformer3DModel(**{**TRANSFORMER, "in_channels": TRANSFORMER["in_channels"] + 1, "num_layers": layers})
    state = dict(stock.state_dict())
    inner = TRANSFORMER["num_attention_heads"] * TRANSFORMER["attention_head_dim"]
    for i in range(layers):
        state[f"branch_blocks.{i}.weight"] = torch.randn(inner, inner) * branch_std
        state[f"branch_blocks.{i}.bias"] = torch.randn(inner) * branch_std
    state["branch_x_embedder.weight"] = torch.zeros(inner, TRANSFORMER["in_channels"])
    state["branch_x_embedder.bias"] = torch.zeros(inner)
    return state


def write_tiny_videopainter_branch(folder: Path, layers: int = 2, branch_std: float = 0.0,
                                   state: dict[str, torch.Tensor] | None = None) -> Path:
    """A VideoPainter branch folder (config.json + diffusion_pytorch_model.safetensors) for the tiny I2V model."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = state if state is not None else videopainter_branch_state(layers, branch_std=branch_std)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "diffusion_pytorch_model.safetensors"))
    config = {"_class_name": "CogvideoXBranchModel", "_diffusers_version": "0.31.0.dev0",
              **{k: v for k, v in TRANSFORMER.items()}, "num_layers": layers, "flip_sin_to_cos": True, "freq_shift": 0,
              "dropout": 0.0, "attention_bias": True, "temporal_compression_ratio": 4, "activation_fn": "gelu-approximate",
              "timestep_activation_fn": "silu", "norm_elementwise_affine": True, "norm_eps": 1e-5,
              "spatial_interpolation_scale": 1.875, "temporal_interpolation_scale": 1.0,
              "use_learned_positional_embeddings": False, "wo_text": False, "id_pool_resample_learnable": False}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder
