"""DynamiCrafter's 3D UNet (`lvdm.modules.networks.openaimodel3d.UNetModel`), written here with the same tensor names.

Facts from Doubiiu/DynamiCrafter and Inception3D/GenFusion (`Generation/lvdm/modules/networks/openaimodel3d.py`,
`lvdm/modules/attention.py`, `lvdm/basics.py`); the code is this project's own. The names below are those of the
published checkpoint under `model.diffusion_model.`:

- `time_embed.{0,2}` and, with `fs_condition`, `fps_embedding.{0,2}` (sinusoidal embedding of the frame-rate / stride
  condition, added to the timestep embedding);
- `input_blocks.{i}.{j}`: a conv (`input_blocks.0.0`), then per level `num_res_blocks` x [ResBlock, SpatialTransformer,
  TemporalTransformer] (transformers at the `attention_resolutions`), a strided conv `op` between levels;
  `init_attn.0` (`addition_attention`): a temporal transformer after the first conv, 8 heads of `num_head_channels`,
  with 1x1 Conv1d projections (it is built without `use_linear`);
- ResBlock: `in_layers.{0,2}`, `emb_layers.1`, `out_layers.{0,3}`, `skip_connection` (1x1 conv when the width
  changes) and `temopral_conv.conv{1..4}` (sic: the published spelling; GroupNorm + Conv3d (3, 1, 1), the last one
  zero-initialised);
- SpatialTransformer: `norm`, `proj_in`, `transformer_blocks.{k}.{attn1, attn2, ff.net.{0.proj, 2}, norm1..3}`,
  `proj_out`; attn2 holds `to_k_ip`, `to_v_ip` (image cross-attention): the context's first `text_context_len` (77)
  tokens go through `to_k` / `to_v`, the rest through `to_k_ip` / `to_v_ip`, and the two attention outputs are summed;
- TemporalTransformer: the same block over the frames of each pixel (self-attention only in attn1 and attn2);
- `middle_block`, `output_blocks` (skip concatenation, `conv` of the upsampler), `out.{0,2}`.

GroupNorms (32 groups) compute in float32 as `lvdm.basics.GroupNormSpecific` does. Attention runs through PyTorch's
SDPA; the published code's einsum (or xformers) path computes the same softmax attention. An empty image part of the
context (fewer than 77 tokens) adds nothing, as the einsum path's softmax over no keys sums to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

TEXT_CONTEXT_LEN = 77  # the published CrossAttention's split point between "text" and image tokens
IMAGE_TOKENS_PER_FRAME = 16  # the UNet's per-frame context test: L == 77 + T * 16 (hard-coded there too)


@dataclass
class UNetConfig:
    """`unet_config.params` of GenFusion's `generation_infer.yaml` (defaults: those values)."""

    in_channels: int = 8  # noisy latent 4 + the render's RGB-D latent 4 (conditioning_key hybrid)
    out_channels: int = 4
    model_channels: int = 320
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_res_blocks: int = 2
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    dropout: float = 0.1
    num_head_channels: int = 64
    transformer_depth: int = 1
    context_dim: int = 1024
    use_linear: bool = True
    temporal_conv: bool = True
    temporal_attention: bool = True
    temporal_selfatt_only: bool = True
    use_relative_position: bool = False
    use_causal_attention: bool = False
    temporal_length: int = 16
    addition_attention: bool = True
    image_cross_attention: bool = True
    image_cross_attention_scale_learnable: bool = False
    default_fs: int = 30
    fs_condition: bool = True
    use_scale_shift_norm: bool = False
    tempspatial_aware: bool = False
    conv_resample: bool = True
    resblock_updown: bool = False
    use_checkpoint: bool = False  # gradient checkpointing of every block (training memory)
    extra: dict = field(default_factory=dict)  # published fields with no effect on the tensors (ignored)

    def check(self) -> None:
        unsupported = [name for name, bad in (("use_relative_position", self.use_relative_position),
                                              ("use_causal_attention", self.use_causal_attention),
                                              ("resblock_updown", self.resblock_updown),
                                              ("tempspatial_aware", self.tempspatial_aware),
                                              ("conv_resample=False", not self.conv_resample)) if bad]
        if unsupported:
            raise ValueError(f"DynamiCrafter UNet: {', '.join(unsupported)} not supported (GenFusion and DynamiCrafter "
                             "publish them off)")
        if self.model_channels % 32:
            raise ValueError(f"DynamiCrafter UNet: model_channels {self.model_channels} must be a multiple of 32 (GroupNorm)")


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """`[N]` -> `[N, dim]`: cos first, then sin (the published order)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32, cast back (lvdm.basics.GroupNormSpecific)."""

    def forward(self, x: Tensor) -> Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, w, b, self.eps).type(x.dtype)


def _maybe_checkpoint(fn, use: bool, *args: Tensor) -> Tensor:
    if use and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


# --- attention ---------------------------------------------------------------------------------


def _heads(x: Tensor, heads: int) -> Tensor:  # [B, N, h*d] -> [B, h, N, d]
    b, n, _ = x.shape
    return x.view(b, n, heads, -1).transpose(1, 2)


class CrossAttention(nn.Module):
    """Self-attention (context None) or cross-attention; with `image_cross_attention`, a second key/value pair for
    the image tokens of the context (`to_k_ip`, `to_v_ip`), its output added (times a learnable tanh gate if asked)."""

    def __init__(self, query_dim: int, context_dim: int | None = None, heads: int = 8, dim_head: int = 64,
                 dropout: float = 0.0, image_cross_attention: bool = False, scale_learnable: bool = False,
                 image_scale: float = 1.0) -> None:
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))
        self.image_cross_attention = image_cross_attention
        self.scale_learnable = scale_learnable
        self.image_scale = image_scale
        if image_cross_attention:
            self.to_k_ip = nn.Linear(context_dim, inner, bias=False)
            self.to_v_ip = nn.Linear(context_dim, inner, bias=False)
            if scale_learnable:
                self.alpha = nn.Parameter(torch.tensor(0.0))

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:  # [B, N, h*d] each -> [B, N, h*d]
        out = F.scaled_dot_product_attention(_heads(q, self.heads), _heads(k, self.heads), _heads(v, self.heads))
        return out.transpose(1, 2).flatten(2)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        q = self.to_q(x)
        if context is None:
            return self.to_out(self._attend(q, self.to_k(x), self.to_v(x)))
        text, image = context[:, :TEXT_CONTEXT_LEN], context[:, TEXT_CONTEXT_LEN:]
        out = self._attend(q, self.to_k(text), self.to_v(text))
        if self.image_cross_attention and image.shape[1] > 0:
            out_ip = self._attend(q, self.to_k_ip(image), self.to_v_ip(image))
            gate = self.image_scale * (torch.tanh(self.alpha) + 1) if self.scale_learnable else self.image_scale
            out = out + gate * out_ip
        return self.to_out(out)


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(dropout), nn.Linear(dim * mult, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float, context_dim: int | None,
                 image_cross_attention: bool = False, scale_learnable: bool = False) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, None, heads, dim_head, dropout)
        self.ff = FeedForward(dim, dropout=dropout)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head, dropout, image_cross_attention, scale_learnable)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Attention over the pixels of each frame `[N, C, H, W]`, cross-attending to the context."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, context_dim: int, use_linear: bool,
                 dropout: float, image_cross_attention: bool, scale_learnable: bool) -> None:
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = GroupNorm32(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner) if use_linear else nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(inner, heads, dim_head, dropout, context_dim, image_cross_attention, scale_learnable)
            for _ in range(depth)])
        self.proj_out = nn.Linear(inner, channels) if use_linear else nn.Conv2d(inner, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        n, c, h, w = x.shape
        y = self.norm(x)
        if not self.use_linear:
            y = self.proj_in(y)
        y = y.flatten(2).transpose(1, 2)  # [N, HW, C]
        if self.use_linear:
            y = self.proj_in(y)
        for block in self.transformer_blocks:
            y = block(y, context)
        if self.use_linear:
            y = self.proj_out(y)
        y = y.transpose(1, 2).reshape(n, -1, h, w)
        if not self.use_linear:
            y = self.proj_out(y)
        return y + x


class TemporalTransformer(nn.Module):
    """Self-attention over the frames of each pixel `[B, C, T, H, W]` (no positional encoding: any T)."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, use_linear: bool, dropout: float) -> None:
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = GroupNorm32(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner) if use_linear else nn.Conv1d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(inner, heads, dim_head, dropout, None) for _ in range(depth)])
        self.proj_out = nn.Linear(inner, channels) if use_linear else nn.Conv1d(inner, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        y = self.norm(x).permute(0, 3, 4, 1, 2).reshape(b * h * w, c, t)  # [BHW, C, T]
        if not self.use_linear:
            y = self.proj_in(y)
        y = y.transpose(1, 2)  # [BHW, T, C']
        if self.use_linear:
            y = self.proj_in(y)
        for block in self.transformer_blocks:
            y = block(y)
        if self.use_linear:
            y = self.proj_out(y)
        else:
            y = self.proj_out(y.transpose(1, 2)).transpose(1, 2)
        y = y.reshape(b, h, w, t, c).permute(0, 4, 3, 1, 2)
        return y + x


# --- residual blocks -------------------------------------------------------------------------


class TemporalConvBlock(nn.Module):
    """Four GroupNorm-SiLU-Conv3d (3, 1, 1) stages over time, residual; the last conv zero-initialised."""

    def __init__(self, channels: int, dropout: float = 0.1) -> None:
        super().__init__()

        def stage(drop: bool) -> nn.Sequential:
            layers: list[nn.Module] = [nn.GroupNorm(32, channels), nn.SiLU()]
            if drop:
                layers.append(nn.Dropout(dropout))
            return nn.Sequential(*layers, nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)))

        self.conv1, self.conv2, self.conv3, self.conv4 = stage(False), stage(True), stage(True), stage(True)
        nn.init.zeros_(self.conv4[-1].weight)
        nn.init.zeros_(self.conv4[-1].bias)

    def forward(self, x: Tensor) -> Tensor:  # [B, C, T, H, W]
        return x + self.conv4(self.conv3(self.conv2(self.conv1(x))))


class ResBlock(nn.Module):
    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: int | None = None,
                 scale_shift: bool = False, temporal_conv: bool = False) -> None:
        super().__init__()
        out = out_channels or channels
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(GroupNorm32(32, channels), nn.SiLU(), nn.Conv2d(channels, out, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out if scale_shift else out))
        self.out_layers = nn.Sequential(GroupNorm32(32, out), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(out, out, 3, padding=1))
        nn.init.zeros_(self.out_layers[-1].weight)
        nn.init.zeros_(self.out_layers[-1].bias)
        self.skip_connection = nn.Identity() if out == channels else nn.Conv2d(channels, out, 1)
        if temporal_conv:
            self.temopral_conv = TemporalConvBlock(out, dropout=0.1)  # (sic)

    def forward(self, x: Tensor, emb: Tensor, batch: int) -> Tensor:  # x [B*T, C, H, W], emb [B*T, E]
        h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[1:](self.out_layers[0](h) * (1 + scale) + shift)
        else:
            h = self.out_layers(h + e)
        h = self.skip_connection(x) + h
        if hasattr(self, "temopral_conv"):
            bt, c, hh, ww = h.shape
            h5 = h.view(batch, bt // batch, c, hh, ww).transpose(1, 2)  # [B, C, T, H, W]
            h = self.temopral_conv(h5).transpose(1, 2).reshape(bt, c, hh, ww)
        return h


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TimestepEmbedSequential(nn.Sequential):
    """Runs its layers with what each takes: ResBlocks the embedding, transformers the context, temporal ones the
    frames as a separate axis."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor | None, batch: int, use_checkpoint: bool = False) -> Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = _maybe_checkpoint(lambda a, e, layer=layer: layer(a, e, batch), use_checkpoint, x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = _maybe_checkpoint(lambda a, c, layer=layer: layer(a, c), use_checkpoint, x, context)
            elif isinstance(layer, TemporalTransformer):
                bt, c, h, w = x.shape
                x5 = x.view(batch, bt // batch, c, h, w).transpose(1, 2)
                x = _maybe_checkpoint(layer, use_checkpoint, x5).transpose(1, 2).reshape(bt, c, h, w)
            else:
                x = layer(x)
        return x


# --- the UNet --------------------------------------------------------------------------------


class DynamiCrafterUNet(nn.Module):
    """`forward(x [B, C_in, T, H, W], timesteps [B], context [B, L, context_dim], fs [B] | None) -> [B, C_out, T, H, W]`."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        c = config or UNetConfig()
        c.check()
        self.config = c
        mc, temb = c.model_channels, c.model_channels * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, temb), nn.SiLU(), nn.Linear(temb, temb))
        if c.fs_condition:
            self.fps_embedding = nn.Sequential(nn.Linear(mc, temb), nn.SiLU(), nn.Linear(temb, temb))
            nn.init.zeros_(self.fps_embedding[-1].weight)
            nn.init.zeros_(self.fps_embedding[-1].bias)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(c.in_channels, mc, 3, padding=1))])
        if c.addition_attention:
            self.init_attn = TimestepEmbedSequential(
                TemporalTransformer(mc, 8, c.num_head_channels, c.transformer_depth, use_linear=False, dropout=0.0))

        def attn_layers(ch: int) -> list[nn.Module]:
            heads = ch // c.num_head_channels
            layers: list[nn.Module] = [SpatialTransformer(
                ch, heads, c.num_head_channels, c.transformer_depth, c.context_dim, c.use_linear, 0.0,
                c.image_cross_attention, c.image_cross_attention_scale_learnable)]
            if c.temporal_attention:
                layers.append(TemporalTransformer(ch, heads, c.num_head_channels, c.transformer_depth, c.use_linear, 0.0))
            return layers

        def res(ch: int, out: int | None = None) -> ResBlock:
            return ResBlock(ch, temb, c.dropout, out, c.use_scale_shift_norm, c.temporal_conv)

        chans, ch, ds = [mc], mc, 1
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * mc)]
                ch = mult * mc
                if ds in c.attention_resolutions:
                    layers += attn_layers(ch)
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                chans.append(ch)
            if level != len(c.channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(res(ch), *attn_layers(ch), res(ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(c.channel_mult))[::-1]:
            for i in range(c.num_res_blocks + 1):
                layers = [res(ch + chans.pop(), mult * mc)]
                ch = mult * mc
                if ds in c.attention_resolutions:
                    layers += attn_layers(ch)
                if level and i == c.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(GroupNorm32(32, ch), nn.SiLU(), nn.Conv2d(mc, c.out_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def frame_context(self, context: Tensor, t: int) -> Tensor:
        """`[B, L, D]` -> `[B*T, L', D]`: per-frame image tokens when L = 77 + T * 16 (77 text tokens shared), else
        the whole context for every frame (the published rule)."""
        b, length, d = context.shape
        if length == TEXT_CONTEXT_LEN + t * IMAGE_TOKENS_PER_FRAME:
            text = context[:, :TEXT_CONTEXT_LEN].repeat_interleave(t, dim=0)
            img = context[:, TEXT_CONTEXT_LEN:].reshape(b * t, IMAGE_TOKENS_PER_FRAME, d)
            return torch.cat([text, img], dim=1)
        return context.repeat_interleave(t, dim=0)

    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor, fs: Tensor | None = None) -> Tensor:
        c = self.config
        b, _, t, h, w = x.shape
        emb = self.time_embed(timestep_embedding(timesteps, c.model_channels).type(x.dtype))
        ctx = self.frame_context(context, t)
        emb = emb.repeat_interleave(t, dim=0)
        if c.fs_condition:
            if fs is None:
                fs = torch.full((b,), c.default_fs, dtype=torch.long, device=x.device)
            fs_emb = self.fps_embedding(timestep_embedding(fs, c.model_channels).type(x.dtype))
            emb = emb + fs_emb.repeat_interleave(t, dim=0)
        hcur = x.transpose(1, 2).reshape(b * t, -1, h, w)  # [B*T, C, H, W]
        hs = []
        ck = c.use_checkpoint
        for i, block in enumerate(self.input_blocks):
            hcur = block(hcur, emb, ctx, b, ck)
            if i == 0 and c.addition_attention:
                hcur = self.init_attn(hcur, emb, ctx, b, ck)
            hs.append(hcur)
        hcur = self.middle_block(hcur, emb, ctx, b, ck)
        for block in self.output_blocks:
            hcur = block(torch.cat([hcur, hs.pop()], dim=1), emb, ctx, b, ck)
        y = self.out(hcur)
        return y.view(b, t, -1, h, w).transpose(1, 2)
