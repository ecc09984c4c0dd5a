"""Difix's compact backbone: a small one-step fixer trained from scratch, shaped like Difix.

What it keeps of Difix (SD-Turbo, one step at t = 199, no noise added, reference by joint
self-attention, VAE skip connections):

- an encoder to 1/8-resolution latent tokens (pixel-unshuffle, then two strided convs), the
  analogue of the VAE encoder;
- a few transformer blocks over the latent tokens, conditioned on a timestep embedding that is
  fixed at t = 199 (adaLN, as a diffusion transformer would be); the input is never noised, so
  the block sees the clean render's latent exactly as Difix's UNet does;
- JOINT self-attention over the tokens of the render and of the reference view: both views'
  tokens are concatenated along the sequence axis, each view with its learned view embedding;
  without a reference only the render's tokens take part;
- a U-Net-like decoder that upsamples the render's tokens and adds 1x1-projected skip features
  from the render's encoder (the analogue of Difix's VAE skip connections);
- output = input + predicted residual (zero-initialised head: an untrained model is the identity);
- optionally (`eig_channels=1`) the calibrated EIG map as one more input channel of the stem, as
  FaithFusion's fixers take the map: the stem conv's weights for it start at zero, so a conditioned
  model at initialisation computes exactly what the unconditioned one does. The reference view's
  EIG channel is 0 (a captured image: fully constrained).

Tensors here are NCHW in [-1, 1], as in Difix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faithfusion.fixers.timestep import sinusoidal_embedding


class ResBlock(nn.Module):
    """conv3x3 - SiLU - conv3x3 with a residual connection (no norm: small, fast, trained from scratch)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:  # [N, C, h, w]
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class JointBlock(nn.Module):
    """A transformer block over the tokens of V views jointly, modulated by the timestep embedding.

    Attention runs over all V * h * w tokens at once (the views' tokens concatenated along the
    sequence axis); the feed-forward has a depthwise 3x3 conv per view, which gives the tokens
    their 2D positions without a fixed-size position table.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, temb_width: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.fc1 = nn.Linear(dim, hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.ada = nn.Linear(temb_width, 6 * dim)  # temb -> shift/scale/gate for attention and MLP
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: Tensor, temb: Tensor, views: int, hw: tuple[int, int]) -> Tensor:
        # x [N, V*L, D], temb [N, temb_width]
        n, s, d = x.shape
        h, w = hw
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(F.silu(temb))[:, None].chunk(6, dim=-1)  # each [N, 1, D]
        y = self.norm1(x) * (1 + sc1) + sh1
        q, k, v = self.qkv(y).view(n, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # [N, heads, S, d_h]
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, s, d)
        x = x + g1 * self.proj(y)
        y = self.fc1(self.norm2(x) * (1 + sc2) + sh2)  # [N, V*L, hidden]
        c = y.shape[-1]
        y = y.view(n * views, h, w, c).permute(0, 3, 1, 2)  # [N*V, hidden, h, w]
        y = self.dw(y).permute(0, 2, 3, 1).reshape(n, s, c)
        return x + g2 * self.fc2(F.gelu(y))


class CompactDifixNet(nn.Module):
    """`forward(x [N, 3, H, W], ref [N, 3, H, W] | None) -> [N, 3, H, W]`, all in [-1, 1]; H, W multiples of 8."""

    multiple = 8

    def __init__(
        self,
        channels: tuple[int, int] = (48, 96),
        dim: int = 192,
        depth: int = 4,
        heads: int = 3,
        mlp_ratio: float = 3.0,
        timestep: int = 199,
        temb_dim: int = 128,
        temb_width: int = 64,
        eig_channels: int = 0,
    ) -> None:
        super().__init__()
        if eig_channels not in (0, 1):
            raise ValueError(f"CompactDifixNet: eig_channels must be 0 or 1, got {eig_channels}")
        c0, c1 = channels
        self.timestep = timestep
        self.temb_dim = temb_dim
        self.eig_channels = eig_channels
        # encoder: 1/2 (pixel-unshuffle) -> 1/4 -> 1/8 tokens; RGB (+ EIG) -> 4 * (3 + eig_channels) channels at 1/2
        self.stem = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * (3 + eig_channels), c0, 3, padding=1),
                                  ResBlock(c0))  # [N, c0, H/2, W/2]
        if eig_channels:  # the EIG channel's weights start at zero: at init the map changes nothing
            with torch.no_grad():
                zero_eig_weights(self.stem[1])
        self.down1 = nn.Sequential(nn.Conv2d(c0, c1, 3, stride=2, padding=1), ResBlock(c1))  # [N, c1, H/4, W/4]
        self.down2 = nn.Conv2d(c1, dim, 3, stride=2, padding=1)  # [N, dim, H/8, W/8]
        # timestep (fixed at t=199) and view embeddings
        self.time_mlp = nn.Sequential(nn.Linear(temb_dim, temb_width), nn.SiLU(), nn.Linear(temb_width, temb_width))
        self.view_embed = nn.Parameter(torch.randn(2, dim) * 0.02)  # 0: the render, 1: the reference
        self.blocks = nn.ModuleList([JointBlock(dim, heads, mlp_ratio, temb_width) for _ in range(depth)])
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)
        # decoder: 1/8 -> 1/4 -> 1/2 -> full, with skips from the render's encoder
        self.up2 = nn.Sequential(nn.Conv2d(dim, 4 * c1, 1), nn.PixelShuffle(2))
        self.skip2 = nn.Conv2d(c1, c1, 1)
        self.dec2 = ResBlock(c1)
        self.up1 = nn.Sequential(nn.Conv2d(c1, 4 * c0, 1), nn.PixelShuffle(2))
        self.skip1 = nn.Conv2d(c0, c0, 1)
        self.dec1 = ResBlock(c0)
        self.head = nn.Sequential(nn.SiLU(), nn.Conv2d(c0, 12, 3, padding=1), nn.PixelShuffle(2))  # residual [N, 3, H, W]
        nn.init.zeros_(self.head[1].weight)
        nn.init.zeros_(self.head[1].bias)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # [M, 3 + eig_channels, H, W] -> e1, e2, tokens-as-map
        e1 = self.stem(x)
        e2 = self.down1(e1)
        return e1, e2, self.down2(e2)

    def time_embedding(self, n: int, device: torch.device, dtype: torch.dtype) -> Tensor:  # [N, temb_width]
        t = torch.full((1,), float(self.timestep), device=device)
        emb = self.time_mlp(sinusoidal_embedding(t, self.temb_dim).to(dtype))
        return emb.expand(n, -1)

    def with_eig(self, x: Tensor, eig: Tensor | None, fill: float) -> Tensor:
        """`x [M, 3, H, W]` with the EIG channel appended (`eig [M, 1, H, W]`, clamped to [0, 1]; None: `fill`)
        where the net is conditioned; `x` itself otherwise."""
        if not self.eig_channels:
            return x
        if eig is None:
            eig = x.new_full((x.shape[0], 1, *x.shape[2:]), fill)
        if eig.shape != (x.shape[0], 1, *x.shape[2:]):
            raise ValueError(f"CompactDifixNet: eig must be {(x.shape[0], 1, *x.shape[2:])}, got {tuple(eig.shape)}")
        return torch.cat([x, eig.clamp(0, 1).to(x.dtype)], dim=1)  # [M, 4, H, W]

    def forward(self, x: Tensor, ref: Tensor | None = None, eig: Tensor | None = None) -> Tensor:
        """`eig [N, 1, H, W]` (calibrated, in [0, 1]) is used only by a conditioned net; None means 1 everywhere
        (repaint anywhere, as EIGent reads a missing map)."""
        n, _, hh, ww = x.shape
        if hh % self.multiple or ww % self.multiple:
            raise ValueError(f"CompactDifixNet: H, W must be multiples of {self.multiple}, got {hh}x{ww}")
        views = 1 if ref is None else 2
        xin = self.with_eig(x, eig, 1.0)  # [N, 3 (+1), H, W]
        inp = xin if ref is None else torch.cat([xin, self.with_eig(ref, None, 0.0)], dim=0)  # [V*N, C, H, W] (render first)
        e1, e2, z = self.encode(inp)
        d, h, w = z.shape[1:]
        tok = z.flatten(2).transpose(1, 2).reshape(views, n, h * w, d)  # [V, N, L, D]
        tok = tok + self.view_embed[:views, None, None].to(tok.dtype)
        tok = tok.permute(1, 0, 2, 3).reshape(n, views * h * w, d)  # [N, V*L, D]: both views along the sequence
        temb = self.time_embedding(n, x.device, tok.dtype)
        for block in self.blocks:
            tok = block(tok, temb, views, (h, w))
        tok = self.norm_out(tok[:, : h * w])  # the render's tokens [N, L, D]
        y = tok.transpose(1, 2).reshape(n, d, h, w)
        y = self.dec2(self.up2(y) + self.skip2(e2[:n]))  # [N, c1, H/4, W/4]
        y = self.dec1(self.up1(y) + self.skip1(e1[:n]))  # [N, c0, H/2, W/2]
        return (x + self.head(y)).clamp(-1, 1)  # [N, 3, H, W]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def saved_state_dict(self) -> dict[str, Tensor]:
        return self.state_dict()

    def load_unconditioned(self, state: dict[str, Tensor]) -> None:
        """Load an unconditioned net's state into this conditioned one: every tensor as saved, the stem's EIG
        weights zero (so the result computes what the saved net does until it is trained with EIG)."""
        if not self.eig_channels:
            raise ValueError("CompactDifixNet.load_unconditioned: this net takes no EIG channel")
        key = "stem.1.weight"
        w = state[key]  # [c0, 12, 3, 3]
        if tuple(w.shape[1:]) != (RGB_STEM_CHANNELS, *self.stem[1].weight.shape[2:]):
            raise ValueError(f"CompactDifixNet.load_unconditioned: {key} has shape {tuple(w.shape)}, not an unconditioned stem")
        grown = torch.zeros_like(self.stem[1].weight)  # [c0, 16, 3, 3]
        grown[:, :RGB_STEM_CHANNELS] = w.to(grown.dtype)
        self.load_state_dict({**state, key: grown}, strict=True)


RGB_STEM_CHANNELS = 12  # pixel-unshuffle puts channel c's four sub-pixels at 4c .. 4c + 3: RGB is 0 .. 11, EIG after


def zero_eig_weights(conv: nn.Conv2d) -> None:
    """Zero the stem conv's weights on the EIG sub-pixel channels (the inputs after RGB's twelve)."""
    conv.weight[:, RGB_STEM_CHANNELS:].zero_()
