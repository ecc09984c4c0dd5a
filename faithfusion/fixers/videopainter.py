"""A VideoPainter-style context branch for a CogVideoX transformer, in VideoPainter's own checkpoint layout.

Facts from TencentARC/VideoPainter (`diffusers/src/diffusers/models/branch_cogvideox.py`, its CogVideoX
transformer and `pipeline_cogvideox_inpainting_i2v_branch_anyl.py`):

- The published branch is a folder `VideoPainter/checkpoints/branch/` with `config.json`
  (`_class_name: CogvideoXBranchModel`, the transformer's fields with `num_layers` = the branch depth, 2
  in VideoPainter's training script, plus `wo_text`, `id_pool_resample_learnable`) and
  `diffusion_pytorch_model.safetensors`; it sits next to the CogVideoX-5b-I2V folder it was trained on.
- Its tensors: `patch_embed.*` (a CogVideoX patch embedding taking 2C + 1 channels: the noisy video
  latent, the masked video latent and the mask, C = 16; `in_channels * 2 + 1` when the config's
  in_channels is 16, `in_channels + 1` when it is 32), `time_embedding.linear_1/2`,
  `transformer_blocks.{i}.*` (CogVideoX blocks, copied from the transformer's first blocks at
  initialisation), `norm_final`, `norm_out.*`, `proj_out` (built, never used), `branch_blocks.{i}` (one
  zero-initialised `Linear(inner, inner)` per block) and `branch_x_embedder` (a zero-initialised
  `Linear(in_channels, inner)`, never used).
- Forward: the branch runs its blocks on [noisy latent, masked video latent, mask] with the prompt and
  timestep the transformer gets; block i's output through `branch_blocks[i]`, times the conditioning
  scale, is added to the transformer's hidden states after its block j for j // ceil(N / n) = i (N the
  transformer's blocks, n the branch's; VideoPainter's default, `add_first=False`).
- Initialisation (`from_transformer`): the patch embedding's weight holds the transformer's for the noisy
  latent and again for the masked latent, zero for the mask; the blocks are the transformer's first n.
  The zero `branch_blocks` make the transformer's output unchanged at initialisation.

This module is written here from those facts (diffusers' CogVideoX components, VideoPainter's key names);
`published.load_strictly` loads a published branch with every tensor accounted for.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from faithfusion.fixers.branch_layout import BRANCH_CLASS, BRANCH_WEIGHTS, is_branch_folder  # noqa: F401 (re-exported)
# transformer config fields the branch keeps (VideoPainter's CogvideoXBranchModel signature)
BRANCH_FIELDS = (
    "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "flip_sin_to_cos", "freq_shift",
    "time_embed_dim", "text_embed_dim", "num_layers", "dropout", "attention_bias", "sample_width", "sample_height",
    "sample_frames", "patch_size", "temporal_compression_ratio", "max_text_seq_length", "activation_fn",
    "timestep_activation_fn", "norm_elementwise_affine", "norm_eps", "spatial_interpolation_scale",
    "temporal_interpolation_scale", "use_rotary_positional_embeddings", "use_learned_positional_embeddings",
)
DEFAULTS: dict[str, Any] = dict(
    num_attention_heads=30, attention_head_dim=64, in_channels=16, out_channels=16, flip_sin_to_cos=True, freq_shift=0,
    time_embed_dim=512, text_embed_dim=4096, num_layers=30, dropout=0.0, attention_bias=True, sample_width=90,
    sample_height=60, sample_frames=49, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
    activation_fn="gelu-approximate", timestep_activation_fn="silu", norm_elementwise_affine=True, norm_eps=1e-5,
    spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0, use_rotary_positional_embeddings=False,
    use_learned_positional_embeddings=False, wo_text=False, id_pool_resample_learnable=False,
)


def branch_in_channels(in_channels: int, out_channels: int) -> int:
    """Channels of the branch's patch embedding: noisy latent + masked latent + mask, 2C + 1. VideoPainter writes it
    `in_channels * 2 + 1` for 16 (text-to-video) and `in_channels + 1` for 32 (I2V, whose in_channels is 2C)."""
    return in_channels + 1 if in_channels == 2 * out_channels else in_channels * 2 + 1


class CogVideoXBranch(nn.Module):
    """VideoPainter's context branch (`CogvideoXBranchModel`): same tensor names, same forward.

    `forward(z_noisy [B, F, C, h, w], cond [B, F, C + 1, h, w], text [B, L, text_dim], timestep [B], rope)`
    -> one `[B, F*h*w/p^2, inner]` tensor per branch block, to be added to the transformer's hidden states.
    """

    def __init__(self, **config: Any) -> None:
        super().__init__()
        from diffusers.models.attention import FeedForward  # noqa: F401  (CogVideoXBlock needs it importable)
        from diffusers.models.embeddings import CogVideoXPatchEmbed, TimestepEmbedding, Timesteps
        from diffusers.models.normalization import AdaLayerNorm
        from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock

        unknown = sorted(set(config) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"CogVideoXBranch: unknown config fields {unknown}")
        c = {**DEFAULTS, **config}
        if c["wo_text"] or c["id_pool_resample_learnable"]:
            raise ValueError("CogVideoXBranch: wo_text / id_pool_resample_learnable branches are not supported")
        self.config = c
        inner = c["num_attention_heads"] * c["attention_head_dim"]
        self.patch_embed = CogVideoXPatchEmbed(
            patch_size=c["patch_size"], in_channels=branch_in_channels(c["in_channels"], c["out_channels"]), embed_dim=inner,
            text_embed_dim=c["text_embed_dim"], bias=True, sample_width=c["sample_width"],
            sample_height=c["sample_height"], sample_frames=c["sample_frames"],
            temporal_compression_ratio=c["temporal_compression_ratio"], max_text_seq_length=c["max_text_seq_length"],
            spatial_interpolation_scale=c["spatial_interpolation_scale"],
            temporal_interpolation_scale=c["temporal_interpolation_scale"],
            use_positional_embeddings=not c["use_rotary_positional_embeddings"],
            use_learned_positional_embeddings=c["use_learned_positional_embeddings"],
        )
        self.embedding_dropout = nn.Dropout(c["dropout"])
        self.time_proj = Timesteps(inner, c["flip_sin_to_cos"], c["freq_shift"])
        self.time_embedding = TimestepEmbedding(inner, c["time_embed_dim"], c["timestep_activation_fn"])
        self.transformer_blocks = nn.ModuleList([
            CogVideoXBlock(dim=inner, num_attention_heads=c["num_attention_heads"], attention_head_dim=c["attention_head_dim"],
                           time_embed_dim=c["time_embed_dim"], dropout=c["dropout"], activation_fn=c["activation_fn"],
                           attention_bias=c["attention_bias"], norm_elementwise_affine=c["norm_elementwise_affine"],
                           norm_eps=c["norm_eps"])
            for _ in range(c["num_layers"])
        ])
        self.norm_final = nn.LayerNorm(inner, c["norm_eps"], c["norm_elementwise_affine"])  # in the file; unused
        self.norm_out = AdaLayerNorm(embedding_dim=c["time_embed_dim"], output_dim=2 * inner,
                                     norm_elementwise_affine=c["norm_elementwise_affine"], norm_eps=c["norm_eps"], chunk_dim=1)
        self.proj_out = nn.Linear(inner, c["patch_size"] ** 2 * c["out_channels"])  # in the file; unused
        self.branch_blocks = nn.ModuleList([nn.Linear(inner, inner) for _ in range(c["num_layers"])])
        self.branch_x_embedder = nn.Linear(c["in_channels"], inner)  # in the file; unused
        for lin in [*self.branch_blocks, self.branch_x_embedder]:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    @classmethod
    def from_transformer(cls, transformer: nn.Module, num_layers: int = 2) -> "CogVideoXBranch":
        """A fresh branch as VideoPainter initialises one: the first `num_layers` blocks of `transformer`, its
        patch embedding for the noisy and the masked latent (zero for the mask), its time embedding, zero
        `branch_blocks`. Unlike VideoPainter, the patch embedding's text projection is copied too (VideoPainter
        leaves it at its random initialisation); either way the branch adds nothing until it trains."""
        tc = dict(transformer.config)
        if tc.get("patch_size_t") or tc.get("ofs_embed_dim"):
            raise ValueError("CogVideoXBranch: CogVideoX 1.5 transformers (patch_size_t, ofs) have no VideoPainter branch")
        fields = {k: tc[k] for k in BRANCH_FIELDS if k in tc}
        fields["num_layers"] = num_layers
        branch = cls(**fields).to(next(transformer.parameters()).dtype)
        c = int(tc["in_channels"])
        latent = c // 2 if c == 2 * int(tc.get("out_channels") or c) else c  # I2V: the first half is the video latent
        src = transformer.patch_embed.proj.weight[:, :latent]
        with torch.no_grad():
            w = torch.zeros_like(branch.patch_embed.proj.weight)
            w[:, :latent] = src
            w[:, latent:2 * latent] = src
            branch.patch_embed.proj.weight.copy_(w)
            branch.patch_embed.proj.bias.copy_(transformer.patch_embed.proj.bias)
            branch.patch_embed.text_proj.load_state_dict(transformer.patch_embed.text_proj.state_dict())
            branch.time_embedding.load_state_dict(transformer.time_embedding.state_dict())
            for mine, theirs in zip(branch.transformer_blocks, transformer.transformer_blocks):
                mine.load_state_dict(theirs.state_dict())
        return branch

    def forward(self, z_noisy: Tensor, cond: Tensor, text: Tensor, timestep: Tensor,
                rope: tuple[Tensor, Tensor] | None = None, scale: float = 1.0) -> list[Tensor]:
        emb = self.time_embedding(self.time_proj(timestep).to(z_noisy.dtype))  # [B, time_embed_dim]
        h = self.embedding_dropout(self.patch_embed(text, torch.cat([z_noisy, cond], dim=2)))  # [B, L + N, inner]
        n_text = text.shape[1]
        enc, h = h[:, :n_text], h[:, n_text:]
        out = []
        for block, lin in zip(self.transformer_blocks, self.branch_blocks):
            h, enc = block(hidden_states=h, encoder_hidden_states=enc, temb=emb, image_rotary_emb=rope)
            out.append(lin(h) * scale)
        return out

    def branch_config(self) -> dict[str, Any]:
        """`config.json` as VideoPainter's `save_pretrained` writes it."""
        return {"_class_name": BRANCH_CLASS, "_diffusers_version": "0.31.0.dev0", **self.config}

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the branch in VideoPainter's layout (`config.json`, `diffusion_pytorch_model.safetensors`)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(directory / BRANCH_WEIGHTS))
        (directory / "config.json").write_text(json.dumps(self.branch_config(), indent=2))
        return directory


def load_branch(folder: str | Path) -> CogVideoXBranch:
    """The branch in `folder` (VideoPainter's layout), every tensor loaded strictly."""
    from faithfusion.fixers.published import FixerSourceError, load_strictly, read_component_state

    folder = Path(folder)
    if not is_branch_folder(folder):
        raise FixerSourceError(f"{folder}: not a VideoPainter branch (config.json naming {BRANCH_CLASS})")
    data = json.loads((folder / "config.json").read_text())
    fields = {k: v for k, v in data.items() if not k.startswith("_")}
    unknown = sorted(set(fields) - set(DEFAULTS))
    if unknown:
        raise FixerSourceError(f"{folder}/config.json: fields a CogvideoXBranchModel does not have: {unknown}")
    branch = CogVideoXBranch(**fields)
    load_strictly(branch, read_component_state(folder), folder)
    return branch


def check_branch_fits(branch: CogVideoXBranch, transformer: nn.Module, where: str | Path) -> None:
    """The branch must be built for this transformer: same width, text width and latent channels."""
    from faithfusion.fixers.published import CheckpointKeysError

    tc, bc = transformer.config, branch.config
    if getattr(tc, "patch_size_t", None):
        raise CheckpointKeysError(f"{where}: a VideoPainter branch needs a CogVideoX 1.0 transformer (no patch_size_t)")
    mine = (bc["num_attention_heads"] * bc["attention_head_dim"], bc["text_embed_dim"], bc["patch_size"])
    theirs = (tc.num_attention_heads * tc.attention_head_dim, tc.text_embed_dim, tc.patch_size)
    if mine != theirs:
        raise CheckpointKeysError(f"{where}: branch (width, text width, patch) {mine} does not fit the transformer's {theirs}")


@contextmanager
def injected(transformer: nn.Module, samples: list[Tensor] | None, add_first: bool = False) -> Iterator[None]:
    """While open, the transformer's block j adds `samples[j // ceil(N / n)]` to its hidden-states output
    (VideoPainter's injection; `add_first`: sample j after block j for the first n blocks only)."""
    if not samples:
        yield
        return
    blocks = transformer.transformer_blocks
    interval = math.ceil(len(blocks) / len(samples))
    handles = []
    for j, block in enumerate(blocks):
        k = j if add_first else j // interval
        if k >= len(samples):
            continue

        def hook(_mod: nn.Module, _args: Any, out: Any, s: Tensor = samples[k]) -> Any:
            return (out[0] + s.to(out[0].dtype), *out[1:])

        handles.append(block.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
