"""Difix: a one-step image fixer with an optional reference view, on one of two backbones.

- `compact` (default): a small network trained from scratch here (`difix_compact.py`), fast
  enough to fix every render of a training loop.
- `sd-turbo`: Difix as published, on SD-Turbo's UNet and VAE (`difix_sdturbo.py`).

Both follow Difix: one step at timestep 199 with no noise added, the reference view mixed in by
joint self-attention over both views' tokens, skip connections from the encoder into the decoder.
Depth inputs are accepted (the `Fixer` protocol) and ignored; no depth is returned. EIG is ignored too
unless `eig_condition` is on (compact backbone only): then the calibrated EIG map (clamped to [0, 1]) is one
more input channel of the encoder's stem, as FaithFusion's fixers are conditioned on the map, its weights
zero-initialised so that an untrained conditioned model equals the unconditioned one; a missing map reads
as 1 everywhere (repaint anywhere, EIGent's convention). `condition_on_eig` turns a trained unconditioned
compact Difix into a conditioned one that starts from its weights.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faithfusion.fixers.base import FixerModel, FixerOutput, check_fix_inputs, register_fixer

Backbone = Literal["compact", "sd-turbo"]


@dataclass
class DifixConfig:
    backbone: Backbone = "compact"
    timestep: int = 199  # the single step; no noise is added to the input
    # compact backbone
    channels: tuple[int, int] = (48, 96)  # encoder/decoder widths at 1/2 and 1/4 resolution
    dim: int = 192  # latent token width at 1/8 resolution
    depth: int = 4  # transformer blocks
    heads: int = 3
    mlp_ratio: float = 3.0
    eig_condition: bool = False  # the calibrated EIG map as an extra input channel (compact backbone)
    # sd-turbo backbone
    pretrained: str = "stabilityai/sd-turbo"  # SD-Turbo or published Difix pipeline: local folder or hub id (cached)
    checkpoint: str | None = None  # a Difix3D training .pkl laid over `pretrained` (SD-Turbo), as Difix3D loads it
    joint_attention: bool = True  # render + reference attend jointly in attn1 (difix_ref, Difix3D's mv_unet); False: nvidia/difix's stock UNet
    prompt: str = "remove degradation"
    lora_rank: int = 4  # LoRA rank on the VAE decoder
    train_unet: bool = True  # Difix trains the whole UNet; False trains only the decoder LoRA + skips
    local_files_only: bool | None = None  # None or True: local files only; False allows hub downloads
    # inference
    chunk: int = 8  # frames per forward pass in `fix`


def to_model_space(images: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """`[N, H, W, 3]` in [0, 1] -> `[N, 3, H', W']` in [-1, 1], padded (reflect) up to multiples of `multiple`."""
    x = images.permute(0, 3, 1, 2) * 2 - 1
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def from_model_space(x: Tensor, size: tuple[int, int]) -> Tensor:
    """`[N, 3, H', W']` in [-1, 1] -> `[N, H, W, 3]` in [0, 1], cropped to `size`."""
    h, w = size
    return ((x[:, :, :h, :w] + 1) * 0.5).clamp(0, 1).permute(0, 2, 3, 1)


def map_to_model_space(maps: Tensor, multiple: int) -> Tensor:
    """Per-pixel maps `[N, H, W]` -> `[N, 1, H', W']`, replicate-padded up to multiples of `multiple`."""
    h, w = maps.shape[-2:]
    return F.pad(maps[:, None], (0, (-w) % multiple, 0, (-h) % multiple), mode="replicate")


def match_reference(ref: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize a reference `[N, h, w, 3]` to the render's `size` (bilinear, antialiased) if it differs."""
    if tuple(ref.shape[1:3]) == tuple(size):
        return ref
    r = F.interpolate(ref.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False, antialias=True)
    return r.permute(0, 2, 3, 1)


@register_fixer
class Difix(FixerModel):
    """Difix on the `compact` or `sd-turbo` backbone; `forward` is the differentiable one-frame path."""

    config_class = DifixConfig

    def __init__(self, config: DifixConfig | None = None) -> None:
        config = config or DifixConfig()
        super().__init__(config)
        self.net = build_backbone(config)

    @property
    def multiple(self) -> int:
        return int(self.net.multiple)

    @property
    def eig_conditioned(self) -> bool:
        return bool(self.config.eig_condition)

    def forward(self, images: Tensor, ref: Tensor | None = None, eig: Tensor | None = None) -> Tensor:
        """Fix frames `[N, H, W, 3]` in [0, 1] with references `[N, h, w, 3]` (or None) and, for a conditioned
        model, calibrated EIG `[N, H, W]` (None: 1 everywhere; ignored when unconditioned) -> `[N, H, W, 3]`."""
        x, size = to_model_space(images, self.multiple)
        r = None
        if ref is not None:
            r, _ = to_model_space(match_reference(ref, size), self.multiple)
        if not self.eig_conditioned:
            return from_model_space(self.net(x, r), size)
        if eig is not None and tuple(eig.shape) != tuple(images.shape[:3]):
            raise ValueError(f"Difix: eig must be [N, H, W] = {tuple(images.shape[:3])}, got {tuple(eig.shape)}")
        e = None if eig is None else map_to_model_space(eig.to(x.dtype), self.multiple)  # [N, 1, H', W']
        return from_model_space(self.net(x, r, e), size)

    @torch.no_grad()
    def fix(
        self,
        images: Tensor,  # [B, T, H, W, 3]
        ref: Tensor | None = None,  # [B, H, W, 3]
        eig: Tensor | None = None,  # [B, T, H, W] calibrated EIG, used when `eig_condition` is on
        depth: Tensor | None = None,  # [B, T, H, W], ignored by Difix
        ref_depth: Tensor | None = None,  # [B, H, W], ignored by Difix
    ) -> FixerOutput:
        check_fix_inputs(images, ref, eig, depth)
        b, t, h, w, _ = images.shape
        was_training = self.training
        self.eval()
        param = next(self.parameters())
        frames = images.reshape(b * t, h, w, 3).to(param.device, param.dtype)  # [B*T, H, W, 3]
        refs = None
        if ref is not None:
            refs = ref.to(param.device, param.dtype)[:, None].expand(b, t, *ref.shape[1:]).reshape(b * t, *ref.shape[1:])
        maps = None
        if eig is not None and self.eig_conditioned:
            maps = eig.reshape(b * t, h, w).to(param.device, param.dtype)  # [B*T, H, W]
        out = []
        for i in range(0, b * t, max(1, self.config.chunk)):
            sl = slice(i, i + max(1, self.config.chunk))
            out.append(self(frames[sl], None if refs is None else refs[sl], None if maps is None else maps[sl]))
        self.train(was_training)
        fixed = torch.cat(out).reshape(b, t, h, w, 3).to(images.device, images.dtype)
        return FixerOutput(images=fixed, depth=None)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return self.net.trainable_parameters()

    def saved_state_dict(self) -> dict[str, Tensor]:
        return {f"net.{k}": v for k, v in self.net.saved_state_dict().items()}

    def load_saved_state_dict(self, state: dict[str, Tensor]) -> None:
        """As `FixerModel`'s, reading SD-Turbo checkpoints saved before the skips took Difix's names
        (`decoder.skip_convs.I` -> `decoder.skip_conv_{I+1}`)."""
        renamed = {re.sub(r"\.decoder\.skip_convs\.(\d+)\.", lambda m: f".decoder.skip_conv_{int(m[1]) + 1}.", k): v
                   for k, v in state.items()}
        super().load_saved_state_dict(renamed)

    def num_parameters(self, trainable_only: bool = False) -> int:
        params = self.trainable_parameters() if trainable_only else list(self.parameters())
        return sum(p.numel() for p in params)


def condition_on_eig(difix: Difix) -> Difix:
    """A compact Difix conditioned on EIG that starts from `difix`'s weights (the EIG channel's at zero, so it
    fixes exactly as `difix` does until trained with EIG maps); `difix` itself if it is conditioned already."""
    if difix.eig_conditioned:
        return difix
    if difix.config.backbone != "compact":
        raise ValueError(f"condition_on_eig: the EIG condition needs the compact backbone, not {difix.config.backbone!r}")
    model = Difix(dataclasses.replace(difix.config, eig_condition=True))
    model.net.load_unconditioned(difix.net.state_dict())
    param = next(difix.parameters())
    return model.to(param.device, param.dtype).train(difix.training)


def build_backbone(config: DifixConfig) -> nn.Module:
    if config.eig_condition and config.backbone != "compact":
        raise ValueError(f"Difix: eig_condition needs the compact backbone; {config.backbone!r} takes no EIG channel")
    if config.backbone == "compact":
        from faithfusion.fixers.difix_compact import CompactDifixNet

        return CompactDifixNet(
            channels=tuple(config.channels), dim=config.dim, depth=config.depth, heads=config.heads,
            mlp_ratio=config.mlp_ratio, timestep=config.timestep, eig_channels=int(config.eig_condition),
        )
    if config.backbone == "sd-turbo":
        from faithfusion.fixers.difix_sdturbo import SDTurboDifixNet

        return SDTurboDifixNet(
            config.pretrained, prompt=config.prompt, timestep=config.timestep, lora_rank=config.lora_rank,
            train_unet=config.train_unet, local_files_only=config.local_files_only,
            joint_attention=config.joint_attention, checkpoint=config.checkpoint,
        )
    raise ValueError(f"Difix: unknown backbone {config.backbone!r} (compact | sd-turbo)")
