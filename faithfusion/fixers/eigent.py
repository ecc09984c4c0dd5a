"""EIGent: FaithFusion's EIG-conditioned dual-branch video fixer, compact (trained here) or on CogVideoX.

What FaithFusion's EIGent is (facts from the paper and its project page): renders of a lateral
ramp plus their per-pixel EIG maps go into a video DiT whose conditioning comes from a light
context encoder in the manner of VideoPainter (the context encoder sees the noisy latent, the
masked video latent and the downsampled mask; its features are added to the backbone), next to
Difix3D+ as a per-frame branch; EIG tells the model where to repair.

The compact `EIGent` here (a few M parameters, one step, trained from scratch):

1. DIFIX BRANCH (`DifixBranch`): `difix_compact.CompactDifixNet`'s encoder and joint-attention
   transformer, run per frame with the reference view's tokens (encoded once per window); its
   decoder is dropped. Its encoder is shared: its 1/2 and 1/4 features are the skips of EIGent's
   decoder and its 1/8 map, projected to `latent_channels`, is the RENDER LATENT z_r.
2. NOISE LATENT slot: z_n = z_r + noise_std * eps; noise_std = 0 by default, i.e. the clean
   render latent goes in as if it were x_t at the fixed timestep t = 199 (Difix's one step with
   no noise added). The video blocks are modulated by that fixed timestep's embedding.
3. MASK: m = sigmoid((eig - threshold) / softness) from the CALIBRATED EIG (expected in [0, 1],
   values outside are clamped; 0 = well constrained, 1 = unconstrained), area-averaged to 1/8.
   The conditioning sees the render latent only where EIG is low: z_r * (1 - m).
4. CONTEXT ENCODER: [z_n, z_r * (1 - m), EIG mean and max over each 8x8 patch, m] -> convs ->
   conditioning tokens added to the video branch's input tokens (patch projection of z_n).
5. VIDEO BRANCH (`video_blocks.VideoBackbone`): factorised spatio-temporal blocks (spatial
   attention in a frame, temporal attention across the T frames at each location, with a
   sinusoidal-plus-learned temporal position embedding), coarse blocks at 1/16 then fine blocks
   at 1/8, every block cross-attending to its frame's Difix-branch tokens.
6. COARSE-TO-FINE EIG GUIDANCE: EIG (mean, max) pooled to 1/16 is embedded and added before the
   coarse blocks, pooled to 1/8 before the fine blocks.
7. OUTPUT: decoder (skips from the Difix branch's encoder) -> residual r (3 ch) + gate logit l.
   out = render + g * r with g = sigmoid(s * (eig - threshold) + b + l); s = exp(log_scale) starts
   at `gate_scale` (10), b and the head start at 0, so at initialisation g(eig=0) = 0.0067:
   low-EIG pixels stay the render (faithfulness); training may open or close the gate.

`EIGentCogVideoX` puts a pretrained CogVideoX transformer + VAE (diffusers) in place of the video
branch, single step, with the same mask, context encoder (zero-initialised, added to the
transformer's latent input) and EIG gate; see its docstring.

Tensors inside are NCHW in [-1, 1] (the Difix convention); `fix` takes `[B, T, H, W, 3]` in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faithfusion.fixers.base import FixerModel, FixerOutput, check_fix_inputs, register_fixer
from faithfusion.fixers.difix import match_reference
from faithfusion.fixers.difix_compact import CompactDifixNet, ResBlock
from faithfusion.fixers.video_blocks import (
    FixedTimestep,
    SkipDecoder,
    VideoBackbone,
    frames_to_model_space,
    maps_to_model_space,
)

DIFIX_DECODER = ("up2", "skip2", "dec2", "up1", "skip1", "dec1", "head")  # CompactDifixNet parts EIGent drops


# --- EIG: mask and gate -------------------------------------------------------------------


def eig_mask(eig: Tensor, threshold: float, softness: float) -> Tensor:
    """Soft mask of calibrated EIG above `threshold`: sigmoid((eig - threshold) / softness)."""
    return torch.sigmoid((eig - threshold) / max(softness, 1e-6))


def eig_pools(eig: Tensor, factor: int) -> Tensor:
    """`[N, 1, H, W]` -> mean and max over `factor` x `factor` patches, `[N, 2, H/f, W/f]`."""
    return torch.cat([F.avg_pool2d(eig, factor), F.max_pool2d(eig, factor)], dim=1)


class EIGGate(nn.Module):
    """Per-pixel gate on the predicted residual: sigmoid(exp(log_scale) * (eig - threshold) + bias + logit).

    Initialised with scale `scale` and bias 0: g(0) = sigmoid(-scale * threshold), near 0 for the
    defaults (0.0067), so a fresh model changes low-EIG pixels very little.
    """

    def __init__(self, threshold: float = 0.5, scale: float = 10.0) -> None:
        super().__init__()
        self.threshold = threshold
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, eig: Tensor, logit: Tensor | None = None) -> Tensor:  # [N, 1, H, W] -> [N, 1, H, W]
        z = self.log_scale.exp() * (eig - self.threshold) + self.bias
        return torch.sigmoid(z if logit is None else z + logit)


class ContextEncoder(nn.Module):
    """[noise latent, masked render latent, EIG mean, EIG max, mask] -> conditioning `[N, out, h, w]`."""

    def __init__(self, latent_channels: int, width: int, out: int, zero_init: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2 * latent_channels + 3, width, 3, padding=1), ResBlock(width), nn.SiLU(), nn.Conv2d(width, out, 1),
        )
        if zero_init:
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def forward(self, z_noise: Tensor, z_render: Tensor, eig_pool: Tensor, mask: Tensor) -> Tensor:
        # z_* [N, C, h, w]; eig_pool [N, 2, h, w]; mask [N, 1, h, w] (area fraction of high EIG)
        return self.net(torch.cat([z_noise, z_render * (1 - mask), eig_pool, mask], dim=1))


def eig_embedding(dim: int, width: int = 32) -> nn.Module:
    """EIG (mean, max) at one scale -> `dim` channels, added to that scale's tokens."""
    return nn.Sequential(nn.Conv2d(2, width, 1), nn.SiLU(), nn.Conv2d(width, dim, 1))


# --- the Difix branch ---------------------------------------------------------------------


class DifixBranch(nn.Module):
    """`CompactDifixNet` run per frame, the reference view's tokens encoded once per window.

    `forward(x [B*T, 3, H, W], ref [B, 3, H, W] | None, t) -> DifixFeatures`: the encoder features
    (1/2, 1/4, 1/8) of the frames, the frames' tokens after the transformer (each frame's tokens
    attend jointly with the reference's) and, with `keep_decoder`, the branch's own per-frame fix
    `[B*T, 3, H, W]` (Difix's output); without it the decoder is dropped and `fixed` is None.
    """

    def __init__(self, channels: tuple[int, int], dim: int, depth: int, heads: int, mlp_ratio: float, timestep: int,
                 keep_decoder: bool = False) -> None:
        super().__init__()
        self.keep_decoder = keep_decoder
        self.net = CompactDifixNet(channels=tuple(channels), dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio,
                                   timestep=timestep)
        if not keep_decoder:
            for name in DIFIX_DECODER:
                setattr(self.net, name, nn.Identity())

    def forward(self, x: Tensor, ref: Tensor | None, t: int) -> "DifixFeatures":
        net = self.net
        e1, e2, z = net.encode(x)
        n, d, h, w = z.shape
        tok = z.flatten(2).transpose(1, 2) + net.view_embed[0].to(z.dtype)  # [N, L, D]
        views = 1
        if ref is not None:
            zr = net.encode(ref)[2]  # [B, D, h, w]
            rtok = zr.flatten(2).transpose(1, 2) + net.view_embed[1].to(z.dtype)
            tok = torch.cat([tok, rtok.repeat_interleave(t, dim=0)], dim=1)  # [N, 2L, D], render first
            views = 2
        temb = net.time_embedding(n, x.device, tok.dtype)
        for block in net.blocks:
            tok = block(tok, temb, views, (h, w))
        tok = net.norm_out(tok[:, : h * w])  # [N, L, D]
        fixed = None
        if self.keep_decoder:  # CompactDifixNet's decoder on the render's tokens, as `CompactDifixNet.forward`
            y = tok.transpose(1, 2).reshape(n, d, h, w)
            y = net.dec2(net.up2(y) + net.skip2(e2))
            y = net.dec1(net.up1(y) + net.skip1(e1))
            fixed = (x + net.head(y)).clamp(-1, 1)  # [N, 3, H, W]
        return DifixFeatures(e1, e2, z, tok, fixed)

    def load_from_difix(self, difix: nn.Module) -> None:
        """Copy a compact `Difix`'s weights (same sizes) into this branch (the decoder too, where kept)."""
        net = getattr(difix, "net", difix)
        if not isinstance(net, CompactDifixNet):
            raise ValueError(f"DifixBranch: needs a compact Difix, got {type(net).__name__}")
        if net.eig_channels:
            raise ValueError("DifixBranch: needs an unconditioned compact Difix (EIGent brings EIG in its own way), "
                             "got one trained with eig_condition")
        state = net.state_dict()
        if not self.keep_decoder:
            state = {k: v for k, v in state.items() if k.split(".")[0] not in DIFIX_DECODER}
        self.net.load_state_dict(state, strict=True)


@dataclass
class DifixFeatures:
    e1: Tensor  # [N, c0, H/2, W/2]
    e2: Tensor  # [N, c1, H/4, W/4]
    z: Tensor  # [N, dim, H/8, W/8]
    tokens: Tensor  # [N, h*w, dim], the render's tokens after the joint transformer
    fixed: Tensor | None  # [N, 3, H, W] Difix's per-frame output, where the decoder is kept


# --- windows in, windows out --------------------------------------------------------------


def fix_windows(model: nn.Module, run: Callable[..., Tensor], images: Tensor, ref: Tensor | None,
                eig: Tensor | None, depth: Tensor | None, chunk: int) -> FixerOutput:
    """The `Fixer.fix` of a video fixer: `chunk` windows per pass, no grad, eval mode, dtype/device kept."""
    check_fix_inputs(images, ref, eig, depth)
    b = images.shape[0]
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    out = []
    with torch.no_grad():
        for i in range(0, b, max(1, chunk)):
            sl = slice(i, i + max(1, chunk))
            out.append(run(
                images[sl].to(param.device, param.dtype),
                None if ref is None else ref[sl].to(param.device, param.dtype),
                None if eig is None else eig[sl].to(param.device, param.dtype),
            ))
    model.train(was_training)
    return FixerOutput(images=torch.cat(out).to(images.device, images.dtype), depth=None)


def to_frames(x: Tensor, b: int, t: int, size: tuple[int, int]) -> Tensor:
    """`[B*T, 3, H', W']` in [-1, 1] -> `[B, T, H, W, 3]` in [0, 1], cropped to `size`."""
    h, w = size
    y = ((x[:, :, :h, :w] + 1) * 0.5).clamp(0, 1).permute(0, 2, 3, 1)
    return y.reshape(b, t, h, w, 3)


# --- the compact EIGent -------------------------------------------------------------------


@dataclass
class EIGentConfig:
    # Difix branch (difix_compact's encoder + transformer, per frame)
    difix_channels: tuple[int, int] = (32, 64)  # encoder widths at 1/2 and 1/4 (also the decoder's)
    difix_dim: int = 128
    difix_depth: int = 2
    difix_heads: int = 2
    # video branch
    latent_channels: int = 16  # the render / noise latent (as a video VAE latent)
    dim: int = 160
    heads: int = 2
    coarse_depth: int = 2  # blocks at 1/16
    fine_depth: int = 2  # blocks at 1/8
    mlp_ratio: float = 3.0
    context_width: int = 64
    timestep: int = 199  # the single step; nothing is noised unless noise_std > 0
    noise_std: float = 0.0  # std of the noise added to the noise latent (training and inference)
    # EIG (calibrated, in [0, 1])
    eig_threshold: float = 0.5
    eig_softness: float = 0.1
    gate_scale: float = 10.0  # initial slope of the output gate
    gate_open: float | None = None  # the gate's value at EIG 0 at initialisation (None: bias 0, g(0) = 0.0067)
    # Difix output as the base (`difix_decoder`): out = render + g * (D - render + r), D = the Difix branch's own
    # per-frame fix; the video branch learns the correction r and the gate. Off: out = render + g * r.
    difix_decoder: bool = False
    freeze_difix: bool = False  # train the video side only (the Difix branch stays as loaded)
    # inference
    chunk: int = 1  # windows per pass in `fix`


@register_fixer
class EIGent(FixerModel):
    """`forward(images [B, T, H, W, 3], ref [B, h, w, 3] | None, eig [B, T, H, W] | None) -> [B, T, H, W, 3]`."""

    config_class = EIGentConfig
    multiple = 16  # 1/16 coarse tokens

    def __init__(self, config: EIGentConfig | None = None) -> None:
        config = config or EIGentConfig()
        super().__init__(config)
        c = config
        self.difix = DifixBranch(c.difix_channels, c.difix_dim, c.difix_depth, c.difix_heads, c.mlp_ratio, c.timestep,
                                 keep_decoder=c.difix_decoder)
        self.to_latent = nn.Conv2d(c.difix_dim, c.latent_channels, 1)  # render latent z_r
        self.context = ContextEncoder(c.latent_channels, c.context_width, c.dim)
        self.patch_in = nn.Conv2d(c.latent_channels, c.dim, 1)  # noise latent -> tokens
        self.eig_coarse = eig_embedding(c.dim)
        self.eig_fine = eig_embedding(c.dim)
        self.time = FixedTimestep(c.timestep)
        self.backbone = VideoBackbone(c.dim, c.heads, c.mlp_ratio, c.coarse_depth, c.fine_depth, temb_width=64,
                                      ctx_dim=c.difix_dim)
        self.decoder = SkipDecoder(c.dim, c.difix_channels, out_ch=4)  # residual (3) + gate logit (1)
        self.gate = EIGGate(c.eig_threshold, c.gate_scale)
        if c.gate_open is not None:  # sigmoid(s * (0 - threshold) + b) = gate_open
            if not 0 < c.gate_open < 1:
                raise ValueError(f"EIGentConfig.gate_open must lie in (0, 1), got {c.gate_open}")
            with torch.no_grad():
                self.gate.bias.fill_(c.gate_scale * c.eig_threshold + math.log(c.gate_open / (1 - c.gate_open)))
        self.difix.requires_grad_(not c.freeze_difix)

    def run(self, images: Tensor, ref: Tensor | None = None, eig: Tensor | None = None) -> dict[str, Tensor]:
        """The differentiable path; returns `images` `[B, T, H, W, 3]`, `gate` and `mask` `[B, T, H, W]`."""
        c = self.config
        b, t, h, w, _ = images.shape
        if eig is None:
            eig = images.new_ones(b, t, h, w)
        x = frames_to_model_space(images, self.multiple)  # [N, 3, H', W']
        e = maps_to_model_space(eig.clamp(0, 1).to(x.dtype), self.multiple)  # [N, 1, H', W']
        r = None
        if ref is not None:
            r = frames_to_model_space(match_reference(ref.to(x.dtype), (h, w))[:, None], self.multiple)  # [B, 3, H', W']
        f = self.difix(x, r, t)
        z_render = self.to_latent(f.z)  # [N, C, h8, w8]
        z_noise = z_render + c.noise_std * torch.randn_like(z_render) if c.noise_std > 0 else z_render
        mask = eig_mask(e, c.eig_threshold, c.eig_softness)  # [N, 1, H', W']
        eig8, eig16 = eig_pools(e, 8), eig_pools(e, 16)
        x8 = self.patch_in(z_noise) + self.context(z_noise, z_render, eig8, F.avg_pool2d(mask, 8))
        temb = self.time(b, x.device, x8.dtype)
        y = self.backbone(x8, t, temb, cond16=self.eig_coarse(eig16), cond8=self.eig_fine(eig8), ctx=f.tokens)
        head = self.decoder(y, f.e2, f.e1)  # [N, 4, H', W']
        gate = self.gate(e, head[:, 3:])
        change = head[:, :3] if f.fixed is None else f.fixed - x + head[:, :3]  # [N, 3, H', W']
        fixed = (x + gate * change).clamp(-1, 1)
        return {
            "images": to_frames(fixed, b, t, (h, w)),
            "gate": gate[:, 0, :h, :w].reshape(b, t, h, w),
            "mask": mask[:, 0, :h, :w].reshape(b, t, h, w),
        }

    def forward(self, images: Tensor, ref: Tensor | None = None, eig: Tensor | None = None) -> Tensor:
        return self.run(images, ref, eig)["images"]

    def fix(self, images: Tensor, ref: Tensor | None = None, eig: Tensor | None = None,
            depth: Tensor | None = None, ref_depth: Tensor | None = None) -> FixerOutput:
        """Repair windows `[B, T, H, W, 3]` (T frames jointly); `eig` None means uniform 1; depths are ignored."""
        return fix_windows(self, self.forward, images, ref, eig, depth, self.config.chunk)

    def load_difix_branch(self, difix: nn.Module) -> None:
        """Start the Difix branch from a trained compact Difix of the same sizes."""
        self.difix.load_from_difix(difix)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def num_parameters(self, trainable_only: bool = False) -> int:
        params = self.trainable_parameters() if trainable_only else list(self.parameters())
        return sum(p.numel() for p in params)

    @classmethod
    def on_difix(cls, difix: nn.Module, freeze: bool = True, gate_open: float = 0.5, **fields: Any) -> "EIGent":
        """An EIGent whose Difix branch is `difix` (a compact Difix, its decoder kept): its output is the base the
        video branch corrects, so a fresh model is the render blended with Difix's fix by the EIG gate."""
        dc = getattr(difix, "config", None)
        if getattr(dc, "backbone", None) != "compact":
            raise ValueError(f"EIGent.on_difix: needs a compact Difix, got {type(difix).__name__} "
                             f"backbone {getattr(dc, 'backbone', None)!r}")
        fields.setdefault("mlp_ratio", dc.mlp_ratio)  # one ratio for both branches
        config = EIGentConfig(difix_channels=tuple(dc.channels), difix_dim=dc.dim, difix_depth=dc.depth,
                              difix_heads=dc.heads, timestep=dc.timestep, difix_decoder=True, freeze_difix=freeze,
                              gate_open=gate_open, **fields)
        if config.mlp_ratio != dc.mlp_ratio:
            raise ValueError(f"EIGent.on_difix: mlp_ratio {config.mlp_ratio} differs from the Difix's {dc.mlp_ratio}")
        model = cls(config)
        model.load_difix_branch(difix)
        return model


# --- EIGent on a pretrained CogVideoX --------------------------------------------------------

# CogVideoX-2b's published scheduler config, used when the pretrained folder has no scheduler/
COGVIDEOX_SCHEDULER_DEFAULTS: dict[str, Any] = dict(
    beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction",
    rescale_betas_zero_snr=True, snr_shift_scale=3.0, clip_sample=False, timestep_spacing="trailing",
)
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def causal_time_pool(x: Tensor, ratio: int, reduce: str = "mean") -> Tensor:
    """`[B, F, ...]` with F = ratio * k + 1 -> `[B, k + 1, ...]`: frame 0 alone, then groups of `ratio`
    (the frames each latent frame of a causal video VAE covers)."""
    b, f = x.shape[:2]
    if (f - 1) % ratio:
        raise ValueError(f"causal_time_pool: {f} frames is not {ratio} * k + 1")
    rest = x[:, 1:].reshape(b, (f - 1) // ratio, ratio, *x.shape[2:])
    rest = rest.mean(dim=2) if reduce == "mean" else rest.amax(dim=2)
    return torch.cat([x[:, :1], rest], dim=1)


def pad_front(x: Tensor, n: int) -> Tensor:
    """Repeat frame 0 of `[B, F, ...]` `n` times at the front."""
    return torch.cat([x[:, :1].expand(-1, n, *x.shape[2:]), x], dim=1) if n > 0 else x


@dataclass
class EIGentCogVideoXConfig:
    pretrained: str = "THUDM/CogVideoX-2b"  # local folder (hub layout: transformer/, vae/, scheduler/) or hub id
    local_files_only: bool | None = None  # None or True: local files only (False allows hub downloads)
    timestep: int = 199  # the single step; the render latent goes in unnoised (Difix's habit)
    noise_std: float = 0.0
    context_width: int = 64
    lora_rank: int = 0  # > 0: LoRA (peft) on the transformer's attention projections, trained
    train_transformer: bool = False  # True: the whole transformer trains (and is saved)
    eig_threshold: float = 0.5
    eig_softness: float = 0.1
    gate_scale: float = 10.0
    vae_tiling: bool = False  # diffusers' tiled VAE encode/decode (large frames, less memory)
    vae_slicing: bool = False  # diffusers' sliced VAE (one window of the batch at a time)
    chunk: int = 1
    # VideoPainter-style context branch (fixers/videopainter.py): fed [z_n, masked render latent, EIG mask], its
    # zero-initialised outputs added to the transformer's blocks
    branch: str | None = None  # a VideoPainter branch folder (config.json naming CogvideoXBranchModel), loaded strictly
    branch_layers: int = 0  # > 0 and no `branch`: a fresh branch from the transformer's first blocks (VideoPainter: 2)
    branch_scale: float = 1.0  # VideoPainter's conditioning_scale
    train_branch: bool = True  # the branch trains (and is saved) when there is one


@register_fixer
class EIGentCogVideoX(FixerModel):
    """EIGent with a pretrained CogVideoX transformer (diffusers) as the video branch; one step.

    1. The window (padded at the front with copies of frame 0 to 8k + 1 frames, which CogVideoX's
       causal VAE maps to 2k + 1 latent frames and back; padding dropped at the end) is encoded by the frozen `AutoencoderKLCogVideoX`:
       render latent z_r = mode * scaling_factor, `[B, F', C, h, w]`.
    2. EIG and the mask m are pooled to the latent grid (spatially by the VAE factor; in time frame
       0 alone, then groups of 4, as the VAE's latent frames cover them).
    3. The context encoder (zero-initialised output, so the pretrained model is untouched at the
       start) maps [z_n, z_r * (1 - m), EIG mean/max, m] to a latent-shaped term added to the
       transformer's latent input; I2V transformers (in_channels = 2C) also get z_r * (1 - m)
       concatenated, where they expect the image latent.
    4. One transformer call at t = 199 with z_n = z_r (+ noise_std * eps) as x_t; the text slot holds
       a learned embedding (zeros at start: no T5 at run time); x0 from the scheduler's formula
       (v- or eps-prediction); decoded by the VAE; out = render + g(eig) * (decoded - render).

    With a branch (`branch` folder or `branch_layers`), VideoPainter's context encoder conditions the
    transformer as well: [z_n, the VAE latent of the render with high-EIG pixels (m >= 0.5) blacked out,
    the pooled mask m] through the branch's blocks, each block's output through a zero-initialised linear
    added to the transformer's hidden states (`videopainter.injected`). Zero-initialised, so a loaded
    transformer's prediction is unchanged at the start.

    Trained: context encoder, text embedding, gate, the branch, and LoRA or the whole transformer if asked;
    only those are saved (`model.safetensors`), the base weights are reloaded from `pretrained` (and `branch`).
    The transformer's and VAE's files must match their modules tensor for tensor (`published.check_component_keys`).
    """

    config_class = EIGentCogVideoXConfig

    def __init__(self, config: EIGentCogVideoXConfig | None = None) -> None:
        config = config or EIGentCogVideoXConfig()
        super().__init__(config)
        from faithfusion.utils.optional import require_models

        require_models("EIGent on CogVideoX", ("diffusers",) + (("peft",) if config.lora_rank > 0 else ()))
        from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel

        from faithfusion.fixers.difix_sdturbo import offline_default

        from faithfusion.fixers.published import check_component_keys, resolve_local

        offline = offline_default(config.local_files_only)
        root = resolve_local(config.pretrained, allow_download=not offline)
        kw = {"local_files_only": True}
        self.transformer = CogVideoXTransformer3DModel.from_pretrained(root, subfolder="transformer", **kw)
        check_component_keys(self.transformer, root / "transformer")
        self.vae = AutoencoderKLCogVideoX.from_pretrained(root, subfolder="vae", **kw)
        check_component_keys(self.vae, root / "vae")
        self.vae.requires_grad_(False)
        if config.vae_tiling:
            self.vae.enable_tiling()
        if config.vae_slicing:
            self.vae.enable_slicing()
        self.branch = self._build_branch(config, offline)
        try:
            sched = CogVideoXDDIMScheduler.from_pretrained(root, subfolder="scheduler", **kw)
        except (OSError, ValueError):
            sched = CogVideoXDDIMScheduler(**COGVIDEOX_SCHEDULER_DEFAULTS)
        self.alpha_prod_t = float(sched.alphas_cumprod[config.timestep])
        self.prediction_type = str(sched.config.prediction_type)

        tc, vc = self.transformer.config, self.vae.config
        self.latent_channels = int(vc.latent_channels)
        if tc.in_channels not in (self.latent_channels, 2 * self.latent_channels):
            raise ValueError(f"CogVideoX transformer in_channels {tc.in_channels} is neither C nor 2C (C = {self.latent_channels})")
        self.concat_condition = tc.in_channels == 2 * self.latent_channels
        self.scaling = float(vc.scaling_factor)
        self.time_ratio = int(vc.temporal_compression_ratio)
        self.vae_factor = 2 ** (len(vc.block_out_channels) - 1)
        self.multiple = self.vae_factor * int(tc.patch_size)
        self.context = ContextEncoder(self.latent_channels, config.context_width, self.latent_channels, zero_init=True)
        self.prompt_embeds = nn.Parameter(torch.zeros(1, int(tc.max_text_seq_length), int(tc.text_embed_dim)))
        self.gate = EIGGate(config.eig_threshold, config.gate_scale)
        if config.lora_rank > 0:
            from peft import LoraConfig

            self.transformer.add_adapter(LoraConfig(r=config.lora_rank, lora_alpha=config.lora_rank,
                                                    target_modules=LORA_TARGETS, init_lora_weights=True))
        self.set_trainable()

    def _build_branch(self, config: EIGentCogVideoXConfig, offline: bool) -> nn.Module | None:
        """The VideoPainter branch: read from `config.branch` (strictly), fresh from the transformer, or none."""
        from faithfusion.fixers.published import resolve_local
        from faithfusion.fixers.videopainter import CogVideoXBranch, check_branch_fits, load_branch

        if config.branch:
            folder = resolve_local(config.branch, allow_download=not offline)
            branch = load_branch(folder)
            check_branch_fits(branch, self.transformer, folder)
            return branch.to(next(self.transformer.parameters()).dtype)
        if config.branch_layers > 0:
            return CogVideoXBranch.from_transformer(self.transformer, config.branch_layers)
        return None

    # --- which tensors train -------------------------------------------------------------

    def _is_transformer_trainable(self, name: str) -> bool:
        return self.config.train_transformer or "lora_" in name

    def set_trainable(self) -> None:
        for name, p in self.transformer.named_parameters():
            p.requires_grad_(self._is_transformer_trainable(name))
        if self.branch is not None:
            self.branch.requires_grad_(self.config.train_branch)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def saved_state_dict(self) -> dict[str, Tensor]:
        """The trained tensors only: the base weights are reloaded from `pretrained`."""
        out = {k: v for k, v in self.state_dict().items() if k.split(".")[0] in ("context", "prompt_embeds", "gate")}
        out.update({f"transformer.{k}": v for k, v in self.transformer.state_dict().items()
                    if self._is_transformer_trainable(k)})
        if self.branch is not None and self.config.train_branch:
            out.update({f"branch.{k}": v for k, v in self.branch.state_dict().items()})
        return out

    def num_parameters(self, trainable_only: bool = False) -> int:
        params = self.trainable_parameters() if trainable_only else list(self.parameters())
        return sum(p.numel() for p in params)

    # --- the steps ---------------------------------------------------------------------------

    def rotary_embedding(self, frames: int, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor] | None:
        """CogVideoX's 3D RoPE for a latent grid (as its pipeline computes it), or None without RoPE."""
        tc = self.transformer.config
        if not tc.use_rotary_positional_embeddings:
            return None
        from diffusers.models.embeddings import get_3d_rotary_pos_embed
        from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

        p, p_t = tc.patch_size, tc.patch_size_t
        gh, gw = h // p, w // p
        bh, bw = tc.sample_height // p, tc.sample_width // p
        if p_t is None:
            crops = get_resize_crop_region_for_grid((gh, gw), bw, bh)
            return get_3d_rotary_pos_embed(embed_dim=tc.attention_head_dim, crops_coords=crops, grid_size=(gh, gw),
                                           temporal_size=frames, device=device)
        return get_3d_rotary_pos_embed(embed_dim=tc.attention_head_dim, crops_coords=None, grid_size=(gh, gw),
                                       temporal_size=(frames + p_t - 1) // p_t, grid_type="slice",
                                       max_size=(max(bh, gh), max(bw, gw)), device=device)  # the pipeline's, widened

    def run(self, images: Tensor, ref: Tensor | None = None, eig: Tensor | None = None) -> dict[str, Tensor]:
        """The differentiable path (the reference view is not used by this backbone)."""
        from faithfusion.fixers.difix_sdturbo import one_step_x0

        c = self.config
        b, t, h, w, _ = images.shape
        if eig is None:
            eig = images.new_ones(b, t, h, w)
        x = frames_to_model_space(images, self.multiple)  # [B*T, 3, H', W']
        e = maps_to_model_space(eig.clamp(0, 1).to(x.dtype), self.multiple)  # [B*T, 1, H', W']
        hh, ww = x.shape[-2:]
        # frames in front so that T + npad = 8k + 1: the VAE encodes 8k + 1 frames into 2k + 1 latent frames and
        # decodes an odd number of latent frames back to exactly that many
        npad = (1 - t) % (2 * self.time_ratio)
        xv = pad_front(x.view(b, t, 3, hh, ww), npad)  # [B, F, 3, H', W']
        ev = pad_front(e.view(b, t, 1, hh, ww), npad)
        f = t + npad
        with torch.no_grad():
            z = self.vae.encode(xv.permute(0, 2, 1, 3, 4).to(self.vae.dtype)).latent_dist.mode()  # [B, C, F', h, w]
        z_render = (z * self.scaling).permute(0, 2, 1, 3, 4).to(x.dtype)  # [B, F', C, h, w]
        fl, hl, wl = z_render.shape[1], hh // self.vae_factor, ww // self.vae_factor
        mask = eig_mask(ev, c.eig_threshold, c.eig_softness)  # [B, F, 1, H', W']
        pool = lambda m, fn: fn(m.flatten(0, 1), self.vae_factor).view(b, f, 1, hl, wl)  # noqa: E731
        m_lat = causal_time_pool(pool(mask, F.avg_pool2d), self.time_ratio)  # [B, F', 1, h, w]
        e_mean = causal_time_pool(pool(ev, F.avg_pool2d), self.time_ratio)
        e_max = causal_time_pool(pool(ev, F.max_pool2d), self.time_ratio, reduce="max")
        z_noise = z_render + c.noise_std * torch.randn_like(z_render) if c.noise_std > 0 else z_render
        cond = self.context(z_noise.flatten(0, 1), z_render.flatten(0, 1), torch.cat([e_mean, e_max], 2).flatten(0, 1),
                            m_lat.flatten(0, 1)).view_as(z_render)
        z_in = z_noise + cond
        if self.concat_condition:
            z_in = torch.cat([z_in, z_render * (1 - m_lat)], dim=2)
        p_t = self.transformer.config.patch_size_t
        tpad = (-fl) % p_t if p_t else 0  # CogVideoX 1.5: latent frames a multiple of patch_size_t
        z_in = pad_front(z_in, tpad)
        tdtype = next(self.transformer.parameters()).dtype
        timestep = torch.full((b,), c.timestep, device=x.device, dtype=torch.long)
        ofs = torch.full((b,), 2.0, device=x.device) if self.transformer.ofs_embedding is not None else None
        text = self.prompt_embeds.to(tdtype).expand(b, -1, -1)
        rope = self.rotary_embedding(fl + tpad, hl, wl, x.device)
        samples = None
        if self.branch is not None:  # VideoPainter's input: [noisy latent, masked video latent, mask]
            keep = (mask < 0.5).to(xv.dtype)  # [B, F, 1, H', W']: VideoPainter binarises its mask
            with torch.no_grad():
                zm = self.vae.encode((xv * keep).permute(0, 2, 1, 3, 4).to(self.vae.dtype)).latent_dist.mode()
            z_masked = (zm * self.scaling).permute(0, 2, 1, 3, 4).to(x.dtype)  # [B, F', C, h, w]
            cond_b = torch.cat([z_masked, m_lat], dim=2).to(tdtype)  # [B, F', C + 1, h, w]
            samples = self.branch(z_noise.to(tdtype), cond_b, text, timestep, rope, c.branch_scale)
        from faithfusion.fixers.videopainter import injected

        with injected(self.transformer, samples):
            pred = self.transformer(
                hidden_states=z_in.to(tdtype), encoder_hidden_states=text, timestep=timestep, ofs=ofs,
                image_rotary_emb=rope, return_dict=False,
            )[0][:, tpad:].to(x.dtype)  # [B, F', C, h, w]
        z0 = one_step_x0(pred, z_noise, self.alpha_prod_t, self.prediction_type, None)
        dec = self.vae.decode((z0 / self.scaling).permute(0, 2, 1, 3, 4).to(self.vae.dtype)).sample  # [B, 3, F, H', W']
        dec = dec.permute(0, 2, 1, 3, 4)[:, npad:].reshape(b * t, 3, hh, ww).to(x.dtype)
        gate = self.gate(e)
        fixed = (x + gate * (dec - x)).clamp(-1, 1)
        return {
            "images": to_frames(fixed, b, t, (h, w)),
            "gate": gate[:, 0, :h, :w].reshape(b, t, h, w),
            "mask": eig_mask(e, c.eig_threshold, c.eig_softness)[:, 0, :h, :w].reshape(b, t, h, w),
        }

    def forward(self, images: Tensor, ref: Tensor | None = None, eig: Tensor | None = None) -> Tensor:
        return self.run(images, ref, eig)["images"]

    def fix(self, images: Tensor, ref: Tensor | None = None, eig: Tensor | None = None,
            depth: Tensor | None = None, ref_depth: Tensor | None = None) -> FixerOutput:
        return fix_windows(self, self.forward, images, ref, eig, depth, self.config.chunk)
