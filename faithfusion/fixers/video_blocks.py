"""Building blocks of the compact video fixers (EIGent, GenFusion).

- `FrameEncoder` / `SkipDecoder`: a per-frame conv encoder to 1/8-resolution latents (pixel-unshuffle,
  then two strided convs, as in `difix_compact`) and a U-Net-like decoder back to full resolution
  with skip connections from the encoder and a zero-initialised head.
- `VideoBlock`: a factorised spatio-temporal transformer block: spatial attention within a frame,
  temporal attention across the frames at the same token location (with a temporal position
  embedding), optional cross-attention to per-frame or per-window context tokens, and a
  feed-forward with a depthwise 3x3 conv (the 2D position cue, as in `difix_compact`). Modulated
  by a timestep embedding (adaLN-Zero: every residual branch is gated, gates start at zero).
- `VideoBackbone`: coarse blocks at 1/16 (2x2 merge of the 1/8 tokens), then fine blocks at 1/8,
  with an additive conditioning slot at each scale (EIGent's coarse-to-fine EIG guidance).
- `FixedTimestep`: the one-step timestep embedding (t fixed, no noise added: Difix's habit).

Token maps travel between modules as `[N, C, h, w]` with N = B * T (frames of a window adjacent).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faithfusion.fixers.difix_compact import ResBlock
from faithfusion.fixers.timestep import sinusoidal_embedding


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "reflect") -> Tensor:
    """Pad `[N, C, H, W]` at the bottom/right up to multiples of `multiple` (reflect, else replicate)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    if mode == "reflect" and not (ph < h and pw < w):
        mode = "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def frames_to_model_space(images: Tensor, multiple: int) -> Tensor:
    """`[B, T, H, W, 3]` in [0, 1] -> `[B*T, 3, H', W']` in [-1, 1], padded to multiples of `multiple`."""
    b, t, h, w, _ = images.shape
    x = images.reshape(b * t, h, w, 3).permute(0, 3, 1, 2) * 2 - 1
    return pad_to_multiple(x, multiple)


def maps_to_model_space(maps: Tensor, multiple: int) -> Tensor:
    """Per-pixel maps `[B, T, H, W]` -> `[B*T, 1, H', W']`, replicate-padded."""
    b, t, h, w = maps.shape
    return pad_to_multiple(maps.reshape(b * t, 1, h, w), multiple, mode="replicate")


class FixedTimestep(nn.Module):
    """The timestep embedding of a one-step fixer: t is fixed (Difix: 199) and no noise is added to the input."""

    def __init__(self, timestep: int = 199, temb_dim: int = 128, width: int = 64) -> None:
        super().__init__()
        self.timestep, self.temb_dim = timestep, temb_dim
        self.mlp = nn.Sequential(nn.Linear(temb_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, n: int, device: torch.device, dtype: torch.dtype) -> Tensor:  # -> [n, width]
        t = torch.full((1,), float(self.timestep), device=device)
        return self.mlp(sinusoidal_embedding(t, self.temb_dim).to(dtype)).expand(n, -1)


class TemporalEmbedding(nn.Module):
    """Frame index -> `[T, D]`: sinusoidal features through a learned linear map (any T)."""

    def __init__(self, dim: int, freq_dim: int = 64) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.proj = nn.Linear(freq_dim, dim)

    def forward(self, t: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        idx = torch.arange(t, device=device, dtype=torch.float32)
        return self.proj(sinusoidal_embedding(idx, self.freq_dim, max_period=100.0).to(dtype))


class FrameEncoder(nn.Module):
    """`[N, in_ch, H, W]` -> skips e1 `[N, c0, H/2, W/2]`, e2 `[N, c1, H/4, W/4]` and z `[N, dim, H/8, W/8]`."""

    def __init__(self, in_ch: int, channels: tuple[int, int], dim: int) -> None:
        super().__init__()
        c0, c1 = channels
        self.stem = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * in_ch, c0, 3, padding=1), ResBlock(c0))
        self.down1 = nn.Sequential(nn.Conv2d(c0, c1, 3, stride=2, padding=1), ResBlock(c1))
        self.down2 = nn.Conv2d(c1, dim, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        e1 = self.stem(x)
        e2 = self.down1(e1)
        return e1, e2, self.down2(e2)


class SkipDecoder(nn.Module):
    """Tokens-as-map `[N, dim, h, w]` + encoder skips -> `[N, out_ch, 8h, 8w]`; the head starts at zero."""

    def __init__(self, dim: int, channels: tuple[int, int], out_ch: int) -> None:
        super().__init__()
        c0, c1 = channels
        self.up2 = nn.Sequential(nn.Conv2d(dim, 4 * c1, 1), nn.PixelShuffle(2))
        self.skip2 = nn.Conv2d(c1, c1, 1)
        self.dec2 = ResBlock(c1)
        self.up1 = nn.Sequential(nn.Conv2d(c1, 4 * c0, 1), nn.PixelShuffle(2))
        self.skip1 = nn.Conv2d(c0, c0, 1)
        self.dec1 = ResBlock(c0)
        self.head = nn.Sequential(nn.SiLU(), nn.Conv2d(c0, 4 * out_ch, 3, padding=1), nn.PixelShuffle(2))
        nn.init.zeros_(self.head[1].weight)
        nn.init.zeros_(self.head[1].bias)

    def forward(self, y: Tensor, e2: Tensor, e1: Tensor) -> Tensor:
        y = self.dec2(self.up2(y) + self.skip2(e2))  # [N, c1, H/4, W/4]
        y = self.dec1(self.up1(y) + self.skip1(e1))  # [N, c0, H/2, W/2]
        return self.head(y)  # [N, out_ch, H, W]


class Attention(nn.Module):
    """Multi-head attention over `[S, L, D]`; self-attention, or cross-attention to `ctx [S, Lk, Dc]`."""

    def __init__(self, dim: int, heads: int, ctx_dim: int | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.cross = ctx_dim is not None
        if self.cross:
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(ctx_dim, 2 * dim)
        else:
            self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: Tensor) -> Tensor:  # [S, L, D] -> [S, heads, L, d_h]
        s, n, d = x.shape
        return x.view(s, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: Tensor, ctx: Tensor | None = None) -> Tensor:
        s, n, d = x.shape
        if self.cross:
            if ctx is None:
                raise ValueError("cross-attention needs context tokens")
            q = self._split(self.q(x))
            k, v = (self._split(t) for t in self.kv(ctx).chunk(2, dim=-1))
        else:
            q, k, v = (self._split(t) for t in self.qkv(x).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v)  # [S, heads, L, d_h]
        return self.out(y.transpose(1, 2).reshape(s, n, d))


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


class VideoBlock(nn.Module):
    """Factorised spatio-temporal block over `x [B, T, L, D]` (L = h * w tokens per frame).

    `ctx`: context tokens for cross-attention, either per frame `[B*T, Lk, Dc]` (each frame's tokens
    attend to their own frame's context) or per window `[B, Lk, Dc]` (every frame attends to the same).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, temb_width: int, ctx_dim: int | None = None) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.spatial = Attention(dim, heads)
        self.temporal = Attention(dim, heads)
        self.cross = Attention(dim, heads, ctx_dim) if ctx_dim is not None else None
        self.ctx_norm = nn.LayerNorm(ctx_dim, eps=1e-6) if ctx_dim is not None else None
        self.fc1 = nn.Linear(dim, hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)
        # temb -> shift/scale/gate for spatial, temporal, MLP, + a gate for cross-attention
        self.ada = nn.Linear(temb_width, 10 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: Tensor, temb: Tensor, tpe: Tensor, hw: tuple[int, int], ctx: Tensor | None = None) -> Tensor:
        # x [B, T, L, D], temb [B, W], tpe [T, D]
        b, t, n, d = x.shape
        h, w = hw
        mod = self.ada(F.silu(temb))[:, None, None].chunk(10, dim=-1)  # each [B, 1, 1, D]
        sh_s, sc_s, g_s, sh_t, sc_t, g_t, sh_m, sc_m, g_m, g_c = mod
        # spatial attention, within each frame
        y = _modulate(self.norm(x), sh_s, sc_s).reshape(b * t, n, d)
        x = x + g_s * self.spatial(y).view(b, t, n, d)
        # temporal attention, across frames at each token location
        y = _modulate(self.norm(x), sh_t, sc_t) + tpe[None, :, None]
        y = y.permute(0, 2, 1, 3).reshape(b * n, t, d)
        x = x + g_t * self.temporal(y).view(b, n, t, d).permute(0, 2, 1, 3)
        # cross-attention to the context tokens
        if self.cross is not None and ctx is not None:
            c = self.ctx_norm(ctx)
            y = self.norm(x)
            if c.shape[0] == b * t:  # per frame
                y = self.cross(y.reshape(b * t, n, d), c).view(b, t, n, d)
            elif c.shape[0] == b:  # per window: all T*L queries attend to the same keys
                y = self.cross(y.reshape(b, t * n, d), c).view(b, t, n, d)
            else:
                raise ValueError(f"context batch {c.shape[0]} is neither B={b} nor B*T={b * t}")
            x = x + g_c * y
        # feed-forward with a depthwise conv per frame
        y = self.fc1(_modulate(self.norm(x), sh_m, sc_m))  # [B, T, L, hidden]
        c = y.shape[-1]
        y = self.dw(y.reshape(b * t, h, w, c).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, t, n, c)
        return x + g_m * self.fc2(F.gelu(y))


def to_tokens(x: Tensor, t: int) -> Tensor:  # [B*T, D, h, w] -> [B, T, h*w, D]
    n, d, h, w = x.shape
    return x.flatten(2).transpose(1, 2).reshape(n // t, t, h * w, d)


def from_tokens(x: Tensor, hw: tuple[int, int]) -> Tensor:  # [B, T, L, D] -> [B*T, D, h, w]
    b, t, n, d = x.shape
    return x.reshape(b * t, n, d).transpose(1, 2).reshape(b * t, d, *hw)


class VideoBackbone(nn.Module):
    """Coarse blocks at 1/16, then fine blocks at 1/8, over a window of T frames.

    `forward(x8 [B*T, D, h, w], t, temb [B, W], cond16, cond8, ctx) -> [B*T, D, h, w]`: `cond16`
    `[B*T, D, h/2, w/2]` is added before the coarse blocks, `cond8` `[B*T, D, h, w]` before the
    fine ones (h, w even). The coarse result is upsampled (pixel-shuffle) and added to x8.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, coarse_depth: int, fine_depth: int,
                 temb_width: int, ctx_dim: int | None = None) -> None:
        super().__init__()
        self.down = nn.Conv2d(dim, dim, 2, stride=2)
        self.up = nn.Sequential(nn.Conv2d(dim, 4 * dim, 1), nn.PixelShuffle(2))
        self.tpe = TemporalEmbedding(dim)
        self.coarse = nn.ModuleList(VideoBlock(dim, heads, mlp_ratio, temb_width, ctx_dim) for _ in range(coarse_depth))
        self.fine = nn.ModuleList(VideoBlock(dim, heads, mlp_ratio, temb_width, ctx_dim) for _ in range(fine_depth))
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x8: Tensor, t: int, temb: Tensor, cond16: Tensor | None = None, cond8: Tensor | None = None,
                ctx: Tensor | None = None) -> Tensor:
        h, w = x8.shape[-2:]
        if h % 2 or w % 2:
            raise ValueError(f"VideoBackbone: the 1/8 token map must have even sides, got {h}x{w}")
        tpe = self.tpe(t, x8.device, x8.dtype)  # [T, D]
        if self.coarse:
            c = self.down(x8)  # [B*T, D, h/2, w/2]
            if cond16 is not None:
                c = c + cond16
            tok = to_tokens(c, t)
            for block in self.coarse:
                tok = block(tok, temb, tpe, (h // 2, w // 2), ctx)
            x8 = x8 + self.up(from_tokens(tok, (h // 2, w // 2)))
        if cond8 is not None:
            x8 = x8 + cond8
        tok = to_tokens(x8, t)
        for block in self.fine:
            tok = block(tok, temb, tpe, (h, w), ctx)
        return from_tokens(self.norm_out(tok), (h, w))  # [B*T, D, h, w]
