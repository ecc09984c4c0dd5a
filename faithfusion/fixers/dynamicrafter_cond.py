"""DynamiCrafter's image conditioning: the OpenCLIP ViT image tower (`embedder.`) and the Resampler
(`image_proj_model.`), with the published tensor names; and the names and shapes of the OpenCLIP text tower
(`cond_stage_model.`) that the checkpoint carries but GenFusion never runs.

Facts (Inception3D/GenFusion `Generation/lvdm/modules/encoders/condition.py`, `resampler.py`; OpenCLIP's
`open_clip/transformer.py` and `model.py` for ViT-H-14): `FrozenOpenCLIPImageEmbedderV2` keeps the whole OpenCLIP
model less its text transformer (`del model.transformer`), so its tensors are `embedder.model.visual.*` plus the text
tower's leftovers (`token_embedding.weight`, `positional_embedding`, `ln_final.*`, `text_projection`, `logit_scale`).
Its forward resizes to 224 x 224 (bicubic, antialiased), maps [-1, 1] to [0, 1], normalises with CLIP's mean and
std, and returns the visual transformer's tokens (class token + patches; no `ln_post`, no `proj`): `[N, 257, 1280]`
for ViT-H/14. `FrozenOpenCLIPEmbedder` keeps the model less `visual` (`cond_stage_model.model.*`).
The Resampler (IP-Adapter's perceiver): `latents` `[1, num_queries * video_length, dim]`, `proj_in`, `layers.{i}.0`
(PerceiverAttention: `norm1`, `norm2`, `to_q`, `to_kv`, `to_out`), `layers.{i}.1` (LayerNorm, Linear, GELU, Linear:
indices 0, 1, 3), `proj_out`, `norm_out`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class CLIPConfig:
    """OpenCLIP ViT-H-14 (`open_clip/model_configs/ViT-H-14.json`): embed_dim 1024, vision width 1280, 32 layers,
    head width 80, patch 14 at 224; text width 1024, 24 layers, 16 heads, 77 tokens, vocabulary 49408."""

    embed_dim: int = 1024
    image_size: int = 224
    patch_size: int = 14
    vision_width: int = 1280
    vision_layers: int = 32
    vision_head_width: int = 80
    mlp_ratio: float = 4.0
    text_width: int = 1024
    text_layers: int = 24
    text_heads: int = 16
    context_length: int = 77
    vocab_size: int = 49408


@dataclass
class ResamplerConfig:
    """`image_proj_stage_config.params` of GenFusion's `generation_infer.yaml`."""

    dim: int = 1024
    depth: int = 4
    dim_head: int = 64
    heads: int = 12
    num_queries: int = 16
    embedding_dim: int = 1280
    output_dim: int = 1024
    ff_mult: int = 4
    video_length: int | None = 16


# --- OpenCLIP vision tower ----------------------------------------------------------------------


class ResidualAttentionBlock(nn.Module):
    """OpenCLIP's block: `ln_1`, `attn` (nn.MultiheadAttention: `in_proj_weight`, `in_proj_bias`, `out_proj`),
    `ln_2`, `mlp.c_fc`, `mlp.c_proj` (GELU between)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, hidden))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(hidden, width))

    def forward(self, x: Tensor) -> Tensor:  # [N, L, D]
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads, mlp_ratio) for _ in range(layers)])

    def forward(self, x: Tensor) -> Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class VisionTransformer(nn.Module):
    """OpenCLIP's `VisionTransformer` tensors (`conv1`, `class_embedding`, `positional_embedding`, `ln_pre`,
    `transformer`, `ln_post`, `proj`); `forward` returns the transformer's tokens, as the embedder uses them."""

    def __init__(self, c: CLIPConfig) -> None:
        super().__init__()
        w, grid = c.vision_width, c.image_size // c.patch_size
        scale = w ** -0.5
        self.conv1 = nn.Conv2d(3, w, c.patch_size, stride=c.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, c.vision_layers, w // c.vision_head_width, c.mlp_ratio)
        self.ln_post = nn.LayerNorm(w)  # in the checkpoint; not used by the embedder
        self.proj = nn.Parameter(scale * torch.randn(w, c.embed_dim))  # in the checkpoint; not used by the embedder

    def forward(self, x: Tensor) -> Tensor:  # [N, 3, S, S] normalised -> [N, 1 + grid^2, width]
        x = self.conv1(x).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.transformer(self.ln_pre(x))


class _CLIPModel(nn.Module):
    """Holds `visual` (so that the names are `model.visual.*`)."""

    def __init__(self, c: CLIPConfig) -> None:
        super().__init__()
        self.visual = VisionTransformer(c)


class ImageEmbedder(nn.Module):
    """`FrozenOpenCLIPImageEmbedderV2`: images `[N, 3, H, W]` in [-1, 1] -> CLIP tokens `[N, 257, 1280]`."""

    def __init__(self, config: CLIPConfig | None = None) -> None:
        super().__init__()
        self.clip = config or CLIPConfig()
        self.model = _CLIPModel(self.clip)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD), persistent=False)

    def preprocess(self, x: Tensor) -> Tensor:
        s = self.clip.image_size
        x = F.interpolate(x.float(), size=(s, s), mode="bicubic", align_corners=True, antialias=True).to(x.dtype)  # float: no bf16 kernel on CPU
        x = (x + 1.0) / 2.0
        return (x - self.mean.to(x.dtype)[:, None, None]) / self.std.to(x.dtype)[:, None, None]

    def forward(self, x: Tensor) -> Tensor:
        return self.model.visual(self.preprocess(x))


def unused_clip_shapes(c: CLIPConfig) -> dict[str, dict[str, tuple[int, ...]]]:
    """Names and shapes of the OpenCLIP tensors the checkpoint carries and GenFusion never runs: the text tower
    (`cond_stage_model.model.*`) and the text leftovers of the image embedder (`embedder.model.*`)."""
    w, hidden = c.text_width, int(c.text_width * c.mlp_ratio)
    leftovers = {"token_embedding.weight": (c.vocab_size, w), "positional_embedding": (c.context_length, w),
                 "ln_final.weight": (w,), "ln_final.bias": (w,), "text_projection": (w, c.embed_dim), "logit_scale": ()}
    text = dict(leftovers)
    for i in range(c.text_layers):
        p = f"transformer.resblocks.{i}."
        text.update({p + "ln_1.weight": (w,), p + "ln_1.bias": (w,), p + "attn.in_proj_weight": (3 * w, w),
                     p + "attn.in_proj_bias": (3 * w,), p + "attn.out_proj.weight": (w, w), p + "attn.out_proj.bias": (w,),
                     p + "ln_2.weight": (w,), p + "ln_2.bias": (w,), p + "mlp.c_fc.weight": (hidden, w),
                     p + "mlp.c_fc.bias": (hidden,), p + "mlp.c_proj.weight": (w, hidden), p + "mlp.c_proj.bias": (w,)})
    return {"cond_stage_model.model.": text, "embedder.model.": leftovers}


# --- the Resampler -----------------------------------------------------------------------------


class PerceiverAttention(nn.Module):
    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        self.dim_head, self.heads = dim_head, heads
        inner = dim_head * heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: Tensor, latents: Tensor) -> Tensor:  # x [B, N, D] image features, latents [B, L, D]
        x, latents = self.norm1(x), self.norm2(latents)
        b, length, _ = latents.shape
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1)
        q, k, v = (t.view(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))
        scale = 1 / math.sqrt(math.sqrt(self.dim_head))
        weight = torch.softmax(((q * scale) @ (k * scale).transpose(-2, -1)).float(), dim=-1).type(q.dtype)
        return self.to_out((weight @ v).transpose(1, 2).reshape(b, length, -1))


class Resampler(nn.Module):
    """CLIP tokens `[N, 257, embedding_dim]` -> `[N, num_queries * video_length, output_dim]`."""

    def __init__(self, config: ResamplerConfig | None = None) -> None:
        super().__init__()
        c = config or ResamplerConfig()
        self.config = c
        queries = c.num_queries * (c.video_length or 1)
        self.latents = nn.Parameter(torch.randn(1, queries, c.dim) / c.dim ** 0.5)
        self.proj_in = nn.Linear(c.embedding_dim, c.dim)
        self.proj_out = nn.Linear(c.dim, c.output_dim)
        self.norm_out = nn.LayerNorm(c.output_dim)
        self.layers = nn.ModuleList([
            nn.ModuleList([
                PerceiverAttention(c.dim, c.dim_head, c.heads),
                nn.Sequential(nn.LayerNorm(c.dim), nn.Linear(c.dim, c.dim * c.ff_mult, bias=False), nn.GELU(),
                              nn.Linear(c.dim * c.ff_mult, c.dim, bias=False)),
            ]) for _ in range(c.depth)])

    def forward(self, x: Tensor) -> Tensor:
        latents = self.latents.repeat(x.shape[0], 1, 1)
        x = self.proj_in(x)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))
