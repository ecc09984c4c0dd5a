"""GenFusion's published video model (DynamiCrafter image-to-video with a depth channel) as a fixer, loaded from its
checkpoint with every tensor accounted for, sampled as published (DDIM with classifier-free guidance).

What GenFusion does (Inception3D/GenFusion: `Reconstruction/extrapolation/extrapolator.py`, `outpaint/base.py`,
`Generation/lvdm/models/ddpm3d.py: LatentVisualDiffusion`), and so what `fix` does:

1. the window's renders are resized to the model's size (960 x 512 in the README's commands) and mapped to
   [-1, 1]; their depth becomes disparity, normalised by the window's min and max valid disparity to [-1, 1]
   (invalid pixels 0 -> -1);
2. RGB and disparity are encoded together by the 4-channel VAE (`Intel/ldm3d-4c`'s, frame by frame, a posterior
   sample times 0.18215): the concatenated condition (`conditioning_key: hybrid`, UNet in_channels 8);
3. the reference image goes through the OpenCLIP image tower and the Resampler: `num_queries * video_length` (256)
   tokens, the UNet's whole cross-attention context (no text at inference); the unconditional context is that of a
   zero reference;
4. DDIM from noise, 25 steps, eta 1, guidance 3.2 with rescale 0.7, fs 30 (`dynamicrafter_ddim.py`);
5. decoded frame by frame; RGB clamped to [-1, 1] -> [0, 1]; the 4th channel d clamped to [-1, 1] gives the
   normalised disparity (d + 1) / 2.

Where this differs, by design: GenFusion returns 1 / ((d + 1) / 2) as a relative depth; `fix` maps (d + 1) / 2 back
through the window's disparity range (lo + x (hi - lo)) to metric depth, the depth the fusion loop supervises with.
The outputs are resized back to the input size (bilinear). Without a reference the window's first frame is used;
without depth the disparity channel is 0. The VAE posterior is sampled with the fixer's seeded generator.

Architecture: GenFusion's `generation_infer.yaml` (`model.params`, `unet_config`, `image_proj_stage_config`); read
from `config_yaml` or a `.yaml` next to the checkpoint whose model target is LatentVisualDiffusion, else the
published values coded here. A `model.params.faithfusion:` section (not in the published file) may give the
diffusers VAE config (`vae`) and the CLIP tower (`clip`, `dynamicrafter_cond.CLIPConfig` fields) for other sizes
(the tests' tiny checkpoints).

Training (`faithfusion fixer train --model genfusion-dynamicrafter`): the published objective, `training_loss`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faithfusion.fixers.base import FixerModel, FixerOutput, check_fix_inputs, register_fixer
from faithfusion.fixers.dynamicrafter_cond import CLIPConfig, ImageEmbedder, Resampler, ResamplerConfig, unused_clip_shapes
from faithfusion.fixers.dynamicrafter_ddim import DDIMConfig, ScheduleConfig, ddim_sample, register_schedule, schedule_arrays
from faithfusion.fixers.dynamicrafter_unet import DynamiCrafterUNet, UNetConfig

# Intel/ldm3d-4c vae/config.json as GenFusion loads it (SD's VAE with 4 image channels: RGB + depth)
LDM3D_4C_VAE: dict[str, Any] = dict(
    in_channels=4, out_channels=4, down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512], latent_channels=4, layers_per_block=2, norm_num_groups=32,
    sample_size=256, scaling_factor=0.18215, act_fn="silu",
)
SCHEDULE_KEYS = ("timesteps", "linear_start", "linear_end", "rescale_betas_zero_snr", "parameterization",
                 "use_dynamic_rescale", "base_scale", "scale_factor")


# --- architecture --------------------------------------------------------------------------------


@dataclass
class DynamiCrafterArch:
    unet: UNetConfig = dataclasses.field(default_factory=UNetConfig)
    resampler: ResamplerConfig = dataclasses.field(default_factory=ResamplerConfig)
    clip: CLIPConfig = dataclasses.field(default_factory=CLIPConfig)
    vae: dict = dataclasses.field(default_factory=lambda: dict(LDM3D_4C_VAE))
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DynamiCrafterArch":
        def build(kind: type, data: dict[str, Any] | None) -> Any:
            data = dict(data or {})
            names = {f.name: f for f in dataclasses.fields(kind)}
            extra = {k: data.pop(k) for k in list(data) if k not in names}
            out = {k: tuple(v) if isinstance(v, list) and isinstance(names[k].default, tuple) else v for k, v in data.items()}
            if "extra" in names:
                out["extra"] = {**out.get("extra", {}), **extra}
            elif extra:
                raise ValueError(f"{kind.__name__}: unknown fields {sorted(extra)}")
            return kind(**out)

        return cls(unet=build(UNetConfig, d.get("unet")), resampler=build(ResamplerConfig, d.get("resampler")),
                   clip=build(CLIPConfig, d.get("clip")), vae=dict(d.get("vae") or LDM3D_4C_VAE),
                   schedule=build(ScheduleConfig, d.get("schedule")))


def arch_from_yaml(path: str | Path) -> DynamiCrafterArch:
    """GenFusion's config file (`generation_infer.yaml`, `config_interp.yaml`) -> the architecture."""
    import yaml

    from faithfusion.fixers.published import FixerSourceError

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
        params = data["model"]["params"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise FixerSourceError(f"{path}: not a GenFusion / DynamiCrafter config (model.params: {err})") from err
    ext = params.get("faithfusion") or {}
    clip_arch = (params.get("img_cond_stage_config") or {}).get("params", {}).get("arch", "ViT-H-14")
    if "clip" not in ext and clip_arch != "ViT-H-14":
        raise FixerSourceError(f"{path}: image embedder arch {clip_arch!r}; only ViT-H-14 is known (or give "
                               "model.params.faithfusion.clip)")
    return DynamiCrafterArch.from_dict({
        "unet": (params.get("unet_config") or {}).get("params"),
        "resampler": (params.get("image_proj_stage_config") or {}).get("params"),
        "clip": ext.get("clip"), "vae": ext.get("vae"),
        "schedule": {k: params[k] for k in SCHEDULE_KEYS if k in params},
    })


def find_config_yaml(checkpoint: Path) -> Path | None:
    """A GenFusion config next to the checkpoint (model target LatentVisualDiffusion), if there is one."""
    for cand in sorted(checkpoint.parent.glob("*.yaml")):
        try:
            if "LatentVisualDiffusion" in cand.read_text(errors="ignore")[:4000]:
                return cand
        except OSError:
            continue
    return None


# --- the model, in the checkpoint's layout -----------------------------------------------------


class _Wrapper(nn.Module):
    """`DiffusionWrapper`: holds `diffusion_model` (names `model.diffusion_model.*`)."""

    def __init__(self, unet: DynamiCrafterUNet) -> None:
        super().__init__()
        self.diffusion_model = unet


class DynamiCrafterRGBD(nn.Module):
    """LatentVisualDiffusion's tensors less the unused OpenCLIP text tower: its `state_dict` names are the
    checkpoint's (`model.diffusion_model.`, `first_stage_model.`, `embedder.`, `image_proj_model.`, schedule)."""

    def __init__(self, arch: DynamiCrafterArch | None = None) -> None:
        super().__init__()
        from diffusers import AutoencoderKL

        self.arch = arch or DynamiCrafterArch()
        a = self.arch
        self.model = _Wrapper(DynamiCrafterUNet(a.unet))
        self.first_stage_model = AutoencoderKL(**{k: v for k, v in a.vae.items() if not k.startswith("_")})
        self.embedder = ImageEmbedder(a.clip)
        self.image_proj_model = Resampler(a.resampler)
        register_schedule(self, a.schedule)
        self.parameterization = a.schedule.parameterization
        self.scale_factor = a.schedule.scale_factor
        self.vae_factor = 2 ** (len(a.vae["block_out_channels"]) - 1)
        self.multiple = self.vae_factor * 2 ** (len(a.unet.channel_mult) - 1)  # pixels per latent cell of the deepest level

    def _apply(self, fn, recurse: bool = True):
        """Moves and casts as nn.Module does, but the noise schedule stays float32 (in bf16 alphas_cumprod[0]
        rounds to 1 and DDIM's sigma becomes 0/0)."""
        names = [n for n in schedule_arrays(self.arch.schedule) if n in self._buffers]
        kept = {n: self._buffers[n].detach().float().cpu() for n in names}
        super()._apply(fn, recurse)
        for n, value in kept.items():
            self._buffers[n] = value.to(self._buffers[n].device)
        return self

    @property
    def unet(self) -> DynamiCrafterUNet:
        return self.model.diffusion_model

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """`[B, 4, T, H, W]` RGB-D in [-1, 1] -> latent `[B, C, T, h, w]` (per frame; posterior sample x 0.18215)."""
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w).to(self.first_stage_model.dtype)
        z = self.first_stage_model.encode(frames).latent_dist.sample(generator=generator)
        return (z * self.scale_factor).view(b, t, -1, *z.shape[-2:]).transpose(1, 2)

    def decode(self, z: Tensor) -> Tensor:
        """Latent `[B, C, T, h, w]` -> `[B, 4, T, H, W]`, frame by frame (GenFusion's perframe_ae)."""
        b, c, t = z.shape[:3]
        frames = (z / self.scale_factor).transpose(1, 2).reshape(b * t, c, *z.shape[-2:]).to(self.first_stage_model.dtype)
        out = torch.cat([self.first_stage_model.decode(frames[i:i + 1]).sample for i in range(b * t)])
        return out.view(b, t, -1, *out.shape[-2:]).transpose(1, 2)

    def image_context(self, ref: Tensor) -> Tensor:
        """Reference frames `[B, L, 3, H, W]` in [-1, 1] -> cross-attention context `[B, L * queries, D]`."""
        b, frames = ref.shape[:2]
        emb = self.image_proj_model(self.embedder(ref.flatten(0, 1).to(self.embedder.model.visual.conv1.weight.dtype)))
        return emb.reshape(b, frames * emb.shape[1], emb.shape[2])


def check_unused_keys(state: dict[str, Tensor], clip: CLIPConfig, where: str | Path) -> dict[str, Tensor]:
    """Remove the OpenCLIP text-tower tensors GenFusion never runs, after checking each is there with its shape; a
    CheckpointKeysError names what is missing or misshapen."""
    from faithfusion.fixers.published import CheckpointKeysError

    rest = dict(state)
    missing, wrong = [], []
    for prefix, shapes in unused_clip_shapes(clip).items():
        for name, shape in shapes.items():
            key = prefix + name
            if key not in rest:
                missing.append(key)
            elif tuple(rest[key].shape) != shape:
                wrong.append(f"{key}: {tuple(rest[key].shape)} vs {shape}")
            rest.pop(key, None)
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing, e.g. {missing[:4]}")
    if wrong:
        problems.append(f"{len(wrong)} of the wrong shape, e.g. {wrong[0]}")
    if problems:
        raise CheckpointKeysError(f"{where}: {'; '.join(problems)}")
    return rest


def load_dynamicrafter(checkpoint: str | Path, arch: DynamiCrafterArch | None = None) -> DynamiCrafterRGBD:
    """The model of a GenFusion / DynamiCrafter checkpoint, every tensor accounted for: each one loads into the
    model or is an unused text-tower tensor of the right shape; a missing, unexpected or misshapen one is a
    CheckpointKeysError naming it."""
    from faithfusion.fixers.dynamicrafter_layout import CheckpointReadError, read_dynamicrafter_state
    from faithfusion.fixers.published import FixerSourceError, load_strictly

    checkpoint = Path(checkpoint)
    if arch is None:
        found = find_config_yaml(checkpoint)
        arch = arch_from_yaml(found) if found is not None else DynamiCrafterArch()
    try:
        state = read_dynamicrafter_state(checkpoint)
    except CheckpointReadError as err:
        raise FixerSourceError(str(err)) from err
    state = check_unused_keys(state, arch.clip, checkpoint)
    model = DynamiCrafterRGBD(arch)
    load_strictly(model, state, checkpoint)
    return model


# --- the fixer ---------------------------------------------------------------------------------


@dataclass
class GenFusionDynamiCrafterConfig:
    checkpoint: str | None = None  # GenFusion's .ckpt (Lightning / DeepSpeed / safetensors); None: random weights
    config_yaml: str | None = None  # GenFusion's generation_infer.yaml; None: one next to the checkpoint, else published values
    arch: dict | None = None  # the resolved architecture (filled in on load; saved with a trained fixer)
    steps: int = 25  # DDIM steps (extrapolator.repair)
    eta: float = 1.0
    guidance: float = 3.2  # classifier-free guidance (README's --unconditional_guidance_scale)
    guidance_rescale: float = 0.7
    spacing: str = "uniform"  # DDIM timestep spacing (image_guided_synthesis's default)
    fs: int = 30  # frame-rate condition at inference
    height: int = 512  # the model's frame size (README: --diffusion_resize_height / width)
    width: int = 960
    seed: int = 0  # noise and VAE posterior samples of `fix`
    chunk: int = 1  # windows per sampling call
    uncond_prob: float = 0.05  # training: the reference is zeroed with probability 2 x this (GenFusion's input_mask)
    train_image_proj: bool = True  # training: the Resampler trains with the UNet (image_proj_model_trainable)
    gradient_checkpointing: bool = True  # training: recompute each UNet block (use_checkpoint in the training config)


@register_fixer
class GenFusionDynamiCrafter(FixerModel):
    """GenFusion's RGB-D video diffusion model (DynamiCrafter) behind the `Fixer` interface; see the module doc."""

    config_class = GenFusionDynamiCrafterConfig

    def __init__(self, config: GenFusionDynamiCrafterConfig | None = None) -> None:
        config = config or GenFusionDynamiCrafterConfig()
        super().__init__(config)
        from faithfusion.utils.optional import require_models

        require_models("GenFusion's DynamiCrafter", ("diffusers",))
        arch = None
        if config.arch is not None:
            arch = DynamiCrafterArch.from_dict(config.arch)
        elif config.config_yaml:
            arch = arch_from_yaml(config.config_yaml)
        if config.checkpoint:
            self.net = load_dynamicrafter(config.checkpoint, arch)
        else:
            self.net = DynamiCrafterRGBD(arch)
        self.config.arch = self.net.arch.to_dict()
        m = self.net.multiple
        if config.height % m or config.width % m:
            raise ValueError(f"GenFusionDynamiCrafter: height x width {config.height} x {config.width} must be multiples "
                             f"of {m} (VAE factor x UNet levels)")
        self.net.first_stage_model.requires_grad_(False)
        self.net.embedder.requires_grad_(False)
        self.net.image_proj_model.requires_grad_(config.train_image_proj)
        self.net.unet.config.use_checkpoint = config.gradient_checkpointing

    # --- what trains and is saved ------------------------------------------------------------

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in (self.trainable_parameters() if trainable_only else self.parameters()))

    def saved_state_dict(self) -> dict[str, Tensor]:
        """With a checkpoint: the trained tensors (UNet, and the Resampler if it trains); the rest is re-read from
        the checkpoint. Random weights: everything."""
        state = self.state_dict()
        if not self.config.checkpoint:
            return state
        keep = ("net.model.diffusion_model.",) + (("net.image_proj_model.",) if self.config.train_image_proj else ())
        return {k: v for k, v in state.items() if k.startswith(keep)}

    # --- inputs ------------------------------------------------------------------------------

    def _param(self) -> Tensor:
        return self.net.unet.time_embed[0].weight

    def _to_model(self, x: Tensor, mode: str, resize: bool = True) -> Tensor:  # [N, C, H, W] -> the model's size
        size = (self.config.height, self.config.width)
        if not resize or tuple(x.shape[-2:]) == size:
            return x
        return F.interpolate(x, size=size, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))

    def prepare(self, images: Tensor, depth: Tensor | None, ref: Tensor | None, resize: bool = True
                ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
        """Window `[T, H, W, 3]` in [0, 1], depth `[T, H, W]`, reference `[H', W', 3]` -> (RGB-D `[1, 4, T, h, w]` in
        [-1, 1] at the model's size (`resize`; else as given), reference `[1, 1, 3, h, w]`, the window's disparity
        (lo, hi) or None)."""
        rgb = self._to_model(images.permute(0, 3, 1, 2) * 2 - 1, "bilinear", resize)  # [T, 3, h, w]
        rng = None
        if depth is None:
            disp = rgb.new_zeros(rgb.shape[0], 1, *rgb.shape[-2:])
        else:
            valid = torch.isfinite(depth) & (depth > 0)
            inv = torch.where(valid, 1.0 / torch.where(valid, depth, torch.ones_like(depth)), torch.zeros_like(depth))
            if bool(valid.any()):
                lo, hi = inv[valid].min(), inv[valid].max()
                norm = torch.where(valid, (inv - lo) / (hi - lo).clamp(min=1e-12), torch.zeros_like(inv))
                rng = (lo, hi)
            else:
                norm = torch.zeros_like(inv)
            disp = self._to_model((norm * 2 - 1)[:, None].to(rgb.dtype), "nearest", resize)
        window = torch.cat([rgb, disp], dim=1).transpose(0, 1)[None]  # [1, 4, T, h, w]
        r = images[0] if ref is None else ref
        r = self._to_model(r.permute(2, 0, 1)[None] * 2 - 1, "bilinear", resize)  # [1, 3, h, w]
        if r.shape[-2:] != rgb.shape[-2:]:
            r = F.interpolate(r, size=rgb.shape[-2:], mode="bilinear", align_corners=False)
        return window, r[:, None], rng

    # --- sampling ----------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, window: Tensor, ref: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """RGB-D window `[B, 4, T, h, w]`, references `[B, L, 3, h, w]` (both [-1, 1]) -> sampled RGB-D, same shape."""
        c, net = self.config, self.net
        p = self._param()
        zc = net.encode(window.to(p.dtype), generator).to(p.dtype)  # [B, 4, T, h/8, w/8]
        ctx_c = net.image_context(ref.to(p.dtype))
        ctx_u = net.image_context(torch.zeros_like(ref, dtype=p.dtype))
        fs = torch.full((window.shape[0],), c.fs, dtype=torch.long, device=p.device)

        def denoise(x: Tensor, t: Tensor, cond: bool) -> Tensor:
            return net.unet(torch.cat([x, zc], dim=1), t, ctx_c if cond else ctx_u, fs)

        z = ddim_sample(net, denoise, tuple(zc.shape), DDIMConfig(c.steps, c.eta, c.guidance, c.guidance_rescale, c.spacing),
                        generator, p.device, p.dtype)
        return net.decode(z)

    def fix(self, images: Tensor, ref: Tensor | None = None, eig: Tensor | None = None, depth: Tensor | None = None,
            ref_depth: Tensor | None = None) -> FixerOutput:
        """Repair RGB-D windows `[B, T, H, W, 3]` (+ depth `[B, T, H, W]`) by DDIM sampling; EIG and the reference's
        depth are not used (GenFusion's reference is RGB)."""
        check_fix_inputs(images, ref, eig, depth)
        was_training = self.training
        self.eval()
        p = self._param()
        b, t, h, w, _ = images.shape
        gen = torch.Generator().manual_seed(self.config.seed)
        outs, depths = [], []
        for i in range(b):
            win, r, rng = self.prepare(images[i].to(p.device, torch.float32),
                                       None if depth is None else depth[i].to(p.device, torch.float32),
                                       None if ref is None else ref[i].to(p.device, torch.float32))
            rgbd = self.sample(win, r, gen)[0].float().transpose(0, 1)  # [T, 4, h', w']
            rgbd = F.interpolate(rgbd, size=(h, w), mode="bilinear", align_corners=False) if rgbd.shape[-2:] != (h, w) else rgbd
            rgbd = rgbd.clamp(-1, 1)
            outs.append(((rgbd[:, :3] + 1) / 2).permute(0, 2, 3, 1))
            if depth is not None:
                d01 = (rgbd[:, 3] + 1) / 2  # [T, H, W] normalised disparity
                if rng is None:
                    depths.append(torch.zeros_like(d01))
                else:
                    lo, hi = rng
                    disp = (lo + d01 * (hi - lo)).clamp(min=float(lo) * 1e-3 if float(lo) > 0 else 1e-6)
                    depths.append(1.0 / disp)
        self.train(was_training)
        out_depth = torch.stack(depths).to(images.device, depth.dtype) if depth is not None else None
        return FixerOutput(images=torch.stack(outs).to(images.device, images.dtype), depth=out_depth)

    def forward(self, images: Tensor, ref: Tensor | None = None, eig: Tensor | None = None) -> Tensor:
        return self.fix(images, ref, eig).images

    # --- training ----------------------------------------------------------------------------

    def training_loss(self, batch: dict[str, Any], device: torch.device) -> tuple[Tensor, dict[str, float]]:
        """GenFusion's objective on a batch of windows: encode the target RGB-D (x0) and the render RGB-D (the
        concatenated condition), draw t, scale x0 by scale_arr[t], noise it, predict v; MSE to the true v. The
        target's disparity is normalised with the render window's range; the reference is zeroed with
        probability 2 x uncond_prob (as GenFusion's input mask). Windows are used at their own size (training
        crops; GenFusion trains at 960 x 512), which must be a multiple of `net.multiple`."""
        net, c = self.net, self.config
        deg, tgt = batch["degraded"].to(device), batch["target"].to(device)  # [N, T, h, w, 3]
        depth = batch["depth"].to(device) if "depth" in batch else None
        tdepth = batch["target_depth"].to(device) if "target_depth" in batch else depth
        ref = batch["reference"].to(device) if "reference" in batch and bool(batch["has_ref"].all()) else None
        m = self.net.multiple
        if deg.shape[2] % m or deg.shape[3] % m:
            raise ValueError(f"GenFusionDynamiCrafter training: windows of {deg.shape[2]} x {deg.shape[3]} are not "
                             f"multiples of {m} (set the crop size)")
        conds, x0s, refs = [], [], []
        for i in range(deg.shape[0]):
            win, r, rng = self.prepare(deg[i], None if depth is None else depth[i], None if ref is None else ref[i], False)
            tw = self.prepare(tgt[i], None, None, False)[0]
            if tdepth is not None and rng is not None:
                lo, hi = rng
                valid = torch.isfinite(tdepth[i]) & (tdepth[i] > 0)
                inv = torch.where(valid, 1.0 / torch.where(valid, tdepth[i], torch.ones_like(tdepth[i])), torch.zeros_like(tdepth[i]))
                norm = torch.where(valid, ((inv - lo) / (hi - lo).clamp(min=1e-12)).clamp(0, 1), torch.zeros_like(inv))
                tw[0, 3] = norm * 2 - 1
            conds.append(win)
            x0s.append(tw)
            refs.append(r)
        p = self._param()
        with torch.no_grad():
            zc = net.encode(torch.cat(conds).to(p.dtype)).to(p.dtype)
            x0 = net.encode(torch.cat(x0s).to(p.dtype)).to(p.dtype)
        ref_in = torch.cat(refs).to(p.dtype)  # [N, 1, 3, h, w]
        drop = (torch.rand(ref_in.shape[0], device=device) < 2 * c.uncond_prob).to(p.dtype)
        ref_in = ref_in * (1 - drop)[:, None, None, None, None]
        with torch.set_grad_enabled(c.train_image_proj):
            ctx = net.image_context(ref_in)
        n = x0.shape[0]
        t = torch.randint(0, net.betas.shape[0], (n,), device=device)
        bc = (n, 1, 1, 1, 1)
        if hasattr(net, "scale_arr"):
            x0 = x0 * net.scale_arr[t].view(bc).to(x0.dtype)
        noise = torch.randn_like(x0)
        sa, s1a = net.sqrt_alphas_cumprod[t].view(bc), net.sqrt_one_minus_alphas_cumprod[t].view(bc)
        x_t = (sa * x0 + s1a * noise).to(p.dtype)
        target = sa * noise - s1a * x0 if net.parameterization == "v" else noise
        fs = torch.full((n,), c.fs, dtype=torch.long, device=device)
        pred = net.unet(torch.cat([x_t, zc], dim=1), t, ctx, fs)
        loss = F.mse_loss(pred.float(), target.float())
        return loss, {"loss": float(loss.detach()), "v_mse": float(loss.detach())}
