"""GenFusion's RGB-D video fixer, compact: repairs a window of rendered RGB + disparity, conditioned on a reference frame.

GenFusion (facts from the paper) renders 16-frame windows along the novel path as RGB-D, repairs
them with a video model conditioned on a reference frame, and uses the repaired RGB-D as its
regularisation set. Here that model is a compact one-step video transformer trained from scratch
(the published one is a multi-step video diffusion model; this is the repo's fast stand-in):

- input per frame: RGB in [-1, 1], normalised disparity in [0, 1] and its validity (5 channels),
  through a per-frame conv encoder to 1/8 (`video_blocks.FrameEncoder`);
- the reference frame (RGB, or RGB-D when its depth is given) goes through the same encoder;
  its tokens (plus a learned reference embedding) are the context every frame cross-attends to;
- `video_blocks.VideoBackbone`: factorised spatio-temporal blocks, coarse at 1/16, fine at 1/8,
  modulated by the fixed one-step timestep (t = 199, no noise);
- a decoder with encoder skips predicts residuals for RGB and disparity (zero-initialised head:
  an untrained model returns its input).

DISPARITY NORMALISATION (per window): disparity = 1 / depth for valid depth (finite, > 0); with
lo, hi = the `range_quantile` and 1 - `range_quantile` quantiles of the window's valid disparities
(per batch element; 0.005 by default, 0 = min, max), the model sees (disparity - lo) / (hi - lo):
near = 1, far = 0, the few pixels outside the quantiles a little beyond; invalid pixels get 0 and
validity 0. The range hi - lo is floored at `min_range * hi` (flat windows). A reference depth is
normalised with the WINDOW's lo, hi and clamped to [0, 1]. Back: disparity = lo + d * (hi - lo),
floored at the window's smallest valid disparity, depth = 1 / disparity: a repaired point is never
farther than the window's farthest render (and an untrained model returns the render's depth).

Why quantiles (benchmarks/record/diagnose_genfusion_depth.py): with min/max, a single floater a metre from
the camera sets hi on a window whose surfaces lie tens of metres away, and squeezes every real surface
into the bottom few percent of [0, 1], a range the model, trained on crops with ranges of the usual
width, misreads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from faithfusion.fixers.base import FixerModel, FixerOutput, check_fix_inputs, register_fixer
from faithfusion.fixers.difix import match_reference
from faithfusion.fixers.video_blocks import (
    FixedTimestep,
    FrameEncoder,
    SkipDecoder,
    VideoBackbone,
    frames_to_model_space,
    pad_to_multiple,
)


# --- disparity normalisation ------------------------------------------------------------------


@dataclass
class DisparityRange:
    """Per-window disparity range `lo`, `hi` `[B]` (1 / depth units) and `floor` `[B]`, the smallest valid
    disparity (the farthest render; <= lo; None: lo), below which no repaired disparity goes."""

    lo: Tensor
    hi: Tensor
    floor: Tensor | None = None

    def span(self, min_range: float) -> Tensor:  # [B]
        return torch.maximum(self.hi - self.lo, min_range * self.hi)

    def floor_or_lo(self) -> Tensor:  # [B]
        return self.lo if self.floor is None else torch.minimum(self.floor, self.lo)


def valid_depth(depth: Tensor) -> Tensor:
    return torch.isfinite(depth) & (depth > 0)


QUANTILE_SAMPLES = 1_000_000  # quantiles are taken on at most this many (evenly strided) valid pixels


def disparity_range(depth: Tensor, quantile: float = 0.0) -> DisparityRange:
    """The range of valid disparities of each window `[B, T, H, W]`; (1, 2) for windows without any.

    `quantile` 0: min and max; q > 0: the q and 1 - q quantiles (robust to a few floaters).
    """
    if not 0.0 <= quantile < 0.5:
        raise ValueError(f"disparity_range: quantile must be in [0, 0.5), got {quantile}")
    valid = valid_depth(depth)
    disp = torch.where(valid, 1.0 / torch.where(valid, depth, torch.ones_like(depth)), torch.zeros_like(depth))
    flat_v = valid.flatten(1)
    inf = torch.full_like(disp.flatten(1), float("inf"))
    lo = torch.where(flat_v, disp.flatten(1), inf).amin(dim=1)
    hi = torch.where(flat_v, disp.flatten(1), -inf).amax(dim=1)
    floor = lo.clone()
    if quantile > 0:
        for b in range(depth.shape[0]):
            vals = disp[b][valid[b]]  # [N] valid disparities of window b
            if vals.numel() < 2:
                continue
            step = -(-vals.numel() // QUANTILE_SAMPLES)  # ceil: torch.quantile refuses very large inputs
            q = torch.quantile(vals[::step].float(), torch.tensor([quantile, 1 - quantile], device=vals.device))
            lo[b], hi[b] = q[0].to(lo.dtype), q[1].to(hi.dtype)
    empty = ~flat_v.any(dim=1)
    lo = torch.where(empty, torch.ones_like(lo), lo)
    hi = torch.where(empty, 2 * torch.ones_like(hi), hi)
    floor = torch.where(empty, lo, floor)
    return DisparityRange(lo, hi, floor)


def _per_batch(x: Tensor, ndim: int) -> Tensor:  # [B] -> [B, 1, ...] with `ndim` dims in all
    return x.view(-1, *([1] * (ndim - 1)))


def normalise_disparity(depth: Tensor, rng: DisparityRange, min_range: float = 1e-3,
                        clamp: bool = False) -> tuple[Tensor, Tensor]:
    """Depth `[B, ...]` -> (normalised disparity, validity as float), with the window range `rng`."""
    valid = valid_depth(depth)
    disp = 1.0 / torch.where(valid, depth, torch.ones_like(depth))
    lo, span = _per_batch(rng.lo, depth.ndim), _per_batch(rng.span(min_range), depth.ndim)
    d = (disp - lo) / span
    if clamp:
        d = d.clamp(0, 1)
    return torch.where(valid, d, torch.zeros_like(d)), valid.to(depth.dtype)


def denormalise_disparity(d: Tensor, rng: DisparityRange, min_range: float = 1e-3) -> Tensor:
    """Normalised disparity `[B, ...]` -> depth (disparity floored at the window's farthest render)."""
    lo, span = _per_batch(rng.lo, d.ndim), _per_batch(rng.span(min_range), d.ndim)
    floor = _per_batch(rng.floor_or_lo(), d.ndim)
    return 1.0 / torch.maximum(lo + d * span, floor)


def log_depth_l1(d: Tensor, rng: DisparityRange, target_depth: Tensor, min_range: float = 1e-3) -> Tensor:
    """Mean |log(predicted depth) - log(target depth)| over the target's valid pixels (finite, > 0).

    The predicted depth is `denormalise_disparity(d, rng)`, the depth `fix` returns: disparity
    max(lo + d * span, floor), so never farther than the window's farthest render 1 / floor. Unlike an L1 on `d`, whose gradient is the
    same everywhere, this one is span / disparity per unit of `d`: large where the window is far
    (disparity near lo), where a small error in `d` is a large relative depth error.

    Numerics: the clamp at the floor passes its gradient straight through (a pixel pushed below it
    can come back), and a target farther than 1 / floor is taken at 1 / floor (the farthest depth `fix` can
    return; what lies beyond is an error no `d` can reduce, so it adds nothing to the gradient).
    Invalid target pixels get a stand-in depth before any division or log, so neither the loss nor
    its gradient sees inf or NaN from them. d `[B, ...]`, target_depth the same shape (metres).
    """
    d = d.float()
    valid = valid_depth(target_depth)
    lo, span = _per_batch(rng.lo.float(), d.ndim), _per_batch(rng.span(min_range).float(), d.ndim)
    floor = _per_batch(rng.floor_or_lo().float(), d.ndim)
    raw = lo + d * span
    pred_disp = raw + (torch.maximum(raw, floor) - raw).detach()  # floored value, unfloored gradient; >= floor > 0
    tgt_disp = 1.0 / torch.where(valid, target_depth.float(), torch.ones_like(d))
    tgt_disp = torch.maximum(tgt_disp, floor.expand_as(tgt_disp))
    err = (torch.log(pred_disp) - torch.log(tgt_disp)).abs()  # |log depth| = |log disparity| differences
    err = torch.where((raw <= floor) & (tgt_disp <= floor), torch.zeros_like(err), err)  # both at the floor: exact 0
    v = valid.to(err.dtype)
    return (err * v).sum() / v.sum().clamp(min=1)


# --- the model ---------------------------------------------------------------------------------


@dataclass
class GenFusionConfig:
    channels: tuple[int, int] = (32, 64)  # encoder/decoder widths at 1/2 and 1/4
    dim: int = 176
    heads: int = 2
    coarse_depth: int = 3  # blocks at 1/16
    fine_depth: int = 1  # blocks at 1/8
    mlp_ratio: float = 3.0
    timestep: int = 199  # the single step; no noise added
    frames: int = 16  # the window length GenFusion renders (fix accepts any T)
    min_range: float = 1e-3  # floor of the disparity range, relative to the window's max disparity
    range_quantile: float = 0.005  # the window's disparity range: these quantiles (0: min, max)
    chunk: int = 1  # windows per pass in `fix`


@register_fixer
class GenFusion(FixerModel):
    """`forward(images, disparity, valid, ref, ref_disparity, ref_valid) -> (images, disparity)`; see `fix`."""

    config_class = GenFusionConfig
    multiple = 16

    def __init__(self, config: GenFusionConfig | None = None) -> None:
        config = config or GenFusionConfig()
        super().__init__(config)
        c = config
        self.encoder = FrameEncoder(5, c.channels, c.dim)  # RGB + disparity + validity
        self.ref_embed = nn.Parameter(torch.randn(c.dim) * 0.02)
        self.time = FixedTimestep(c.timestep)
        self.backbone = VideoBackbone(c.dim, c.heads, c.mlp_ratio, c.coarse_depth, c.fine_depth, temb_width=64, ctx_dim=c.dim)
        self.decoder = SkipDecoder(c.dim, c.channels, out_ch=4)  # RGB residual + disparity residual

    def forward(
        self,
        images: Tensor,  # [B, T, H, W, 3] in [0, 1]
        disparity: Tensor,  # [B, T, H, W] normalised, in [0, 1]
        valid: Tensor,  # [B, T, H, W] 1 where the render has depth
        ref: Tensor | None = None,  # [B, h, w, 3]
        ref_disparity: Tensor | None = None,  # [B, h, w] normalised with the window's range
        ref_valid: Tensor | None = None,  # [B, h, w]
    ) -> tuple[Tensor, Tensor]:  # [B, T, H, W, 3] in [0, 1], [B, T, H, W] normalised disparity
        b, t, h, w, _ = images.shape
        x = frames_to_model_space(images, self.multiple)  # [N, 3, H', W']
        dv = pad_to_multiple(torch.stack([disparity, valid], dim=2).flatten(0, 1).to(x.dtype), self.multiple,
                             mode="replicate")  # [N, 2, H', W']: disparity, validity
        e1, e2, z = self.encoder(torch.cat([x, dv], dim=1))
        ctx = None
        if ref is not None:
            r = match_reference(ref.to(x.dtype), (h, w))  # [B, H, W, 3]
            if ref_disparity is None:  # an RGB reference: empty disparity, validity 0
                rd = r.new_zeros(b, 2, h, w)
            else:
                rv = ref_valid if ref_valid is not None else torch.ones_like(ref_disparity)
                rd = torch.stack([match_map(ref_disparity, (h, w)), match_map(rv, (h, w))], dim=1).to(x.dtype)
            rin = frames_to_model_space(r[:, None], self.multiple)  # [B, 3, H', W']
            rd = pad_to_multiple(rd, self.multiple, mode="replicate")  # [B, 2, H', W']
            zr = self.encoder(torch.cat([rin, rd], dim=1))[2]  # [B, D, h8, w8]
            ctx = zr.flatten(2).transpose(1, 2) + self.ref_embed.to(zr.dtype)  # [B, L, D]: one set per window
        temb = self.time(b, x.device, z.dtype)
        y = self.backbone(z, t, temb, ctx=ctx)
        res = self.decoder(y, e2, e1)  # [N, 4, H', W']
        rgb = (x + res[:, :3]).clamp(-1, 1)[:, :, :h, :w]
        disp = (dv[:, :1] + res[:, 3:])[:, 0, :h, :w]
        return ((rgb + 1) * 0.5).permute(0, 2, 3, 1).reshape(b, t, h, w, 3), disp.reshape(b, t, h, w)

    def prepare_depth(self, depth: Tensor | None, ref_depth: Tensor | None, like: Tensor
                      ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, DisparityRange | None]:
        """Render depth (and reference depth) -> (disparity, valid, ref disparity, ref valid, window range)."""
        b, t, h, w, _ = like.shape
        if depth is None:
            zeros = like.new_zeros(b, t, h, w)
            return zeros, zeros, None, None, None
        rng = disparity_range(depth.float(), self.config.range_quantile)
        disp, valid = normalise_disparity(depth.float(), rng, self.config.min_range)
        rdisp = rvalid = None
        if ref_depth is not None:
            rdisp, rvalid = normalise_disparity(ref_depth.float(), rng, self.config.min_range, clamp=True)
        return disp, valid, rdisp, rvalid, rng

    def fix(self, images: Tensor, ref: Tensor | None = None, eig: Tensor | None = None, depth: Tensor | None = None,
            ref_depth: Tensor | None = None) -> FixerOutput:
        """Repair RGB-D windows `[B, T, H, W, 3]` + depth `[B, T, H, W]`; returns images and depth.

        `ref_depth` `[B, h, w]` (optional) makes the reference RGB-D. Without `depth` the disparity
        input is empty (validity 0) and no depth is returned. EIG is ignored.
        """
        check_fix_inputs(images, ref, eig, depth)
        if ref_depth is not None and (ref is None or tuple(ref_depth.shape) != tuple(ref.shape[:3])):
            raise ValueError("fix: ref_depth must be [B, h, w] matching ref")
        was_training = self.training
        self.eval()
        param = next(self.parameters())
        dev, dt = param.device, param.dtype
        outs, depths = [], []
        chunk = max(1, self.config.chunk)
        with torch.no_grad():
            for i in range(0, images.shape[0], chunk):
                sl = slice(i, i + chunk)
                img = images[sl].to(dev, dt)
                disp, valid, rdisp, rvalid, rng = self.prepare_depth(
                    None if depth is None else depth[sl].to(dev), None if ref_depth is None else ref_depth[sl].to(dev), img)
                rgb, d = self(img, disp.to(dt), valid.to(dt), None if ref is None else ref[sl].to(dev, dt),
                              None if rdisp is None else rdisp.to(dt), None if rvalid is None else rvalid.to(dt))
                outs.append(rgb)
                if rng is not None:
                    depths.append(denormalise_disparity(d.float(), rng, self.config.min_range))
        self.train(was_training)
        out_depth = torch.cat(depths).to(images.device, depth.dtype) if depth is not None else None
        return FixerOutput(images=torch.cat(outs).to(images.device, images.dtype), depth=out_depth)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in (self.trainable_parameters() if trainable_only else self.parameters()))


def match_map(m: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize a per-pixel map `[B, h, w]` to `size` (nearest: keeps values) if it differs."""
    if tuple(m.shape[1:]) == tuple(size):
        return m
    return torch.nn.functional.interpolate(m[:, None], size=size, mode="nearest")[:, 0]
