"""DynamiCrafter / GenFusion's diffusion schedule and DDIM sampler (v-prediction, classifier-free guidance with
rescale, dynamic latent rescaling), written from the published formulas.

Facts (Inception3D/GenFusion `Generation/lvdm/models/ddpm3d.py`, `lvdm/models/utils_diffusion.py`,
`lvdm/models/samplers/ddim.py`, `Reconstruction/extrapolation/extrapolator.py`):

- betas: "linear" = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2 in float64, rescaled to zero terminal SNR
  (`rescale_betas_zero_snr: True`); the model registers `betas`, `alphas_cumprod`, ... as buffers (in the checkpoint).
- `use_dynamic_rescale` with `base_scale` 0.7: `scale_arr` = linspace(1, 0.7, 400) then 1000 x 0.7 (1400 entries,
  a buffer); training scales the clean latent by scale_arr[t]; DDIM multiplies its x0 by
  scale_arr[t_prev] / scale_arr[t] (t_prev: the previous DDIM timestep, the first one itself).
- DDIM timesteps "uniform": range(0, 1000, 1000 // S) + 1; "uniform_trailing": round(arange(1000, 0, -1000 / S))
  - 1 flipped. a_prev of the first step is alphas_cumprod[0]; sigma = eta sqrt((1 - a_prev) / (1 - a) (1 - a / a_prev)).
- v-prediction: x0 = sqrt(a) x_t - sqrt(1 - a) v, eps = sqrt(a) v + sqrt(1 - a) x_t (with the full-schedule
  alphas at t); the step x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps + sigma z.
- guidance: out = uncond + s (cond - uncond), then rescaled towards cond's std by `guidance_rescale`
  (std over all but the batch axis).
- GenFusion's repair: 25 steps, eta 1.0, uniform spacing, guidance 3.2 (README / args.py), rescale 0.7, fs 30.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2")


@dataclass
class ScheduleConfig:
    timesteps: int = 1000
    linear_start: float = 0.00085
    linear_end: float = 0.012
    rescale_betas_zero_snr: bool = True
    parameterization: str = "v"
    use_dynamic_rescale: bool = True
    base_scale: float = 0.7
    turning_step: int = 400
    scale_factor: float = 0.18215  # latent scaling (not a buffer: scale_by_std is off)


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Shift and scale sqrt(alphas_cumprod) so that the last is 0 and the first unchanged (Lin et al. 2023, alg. 1)."""
    abar_sqrt = np.sqrt(np.cumprod(1.0 - betas))
    first, last = abar_sqrt[0].copy(), abar_sqrt[-1].copy()
    abar_sqrt = (abar_sqrt - last) * first / (first - last)
    abar = abar_sqrt ** 2
    return 1 - np.concatenate([abar[:1], abar[1:] / abar[:-1]])


def schedule_arrays(c: ScheduleConfig) -> dict[str, np.ndarray]:
    """The buffers DDPM registers (float64 here; stored as float32)."""
    betas = (np.linspace(c.linear_start ** 0.5, c.linear_end ** 0.5, c.timesteps, dtype=np.float64) ** 2)
    if c.rescale_betas_zero_snr:
        betas = rescale_zero_terminal_snr(betas)
    alphas = 1.0 - betas
    ac = np.cumprod(alphas)
    ac_prev = np.append(1.0, ac[:-1])
    with np.errstate(divide="ignore"):
        post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
        out = {
            "betas": betas, "alphas_cumprod": ac, "alphas_cumprod_prev": ac_prev, "sqrt_alphas_cumprod": np.sqrt(ac),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac), "log_one_minus_alphas_cumprod": np.log(1.0 - ac),
            "posterior_variance": post_var,
            "posterior_log_variance_clipped": np.log(np.maximum(post_var, 1e-20)),
            "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
            "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
        }
    if c.parameterization == "v":  # DDPM registers zeros for these two under v-prediction
        out["sqrt_recip_alphas_cumprod"] = np.zeros_like(ac)
        out["sqrt_recipm1_alphas_cumprod"] = np.zeros_like(ac)
    else:
        out["sqrt_recip_alphas_cumprod"] = np.sqrt(1.0 / ac)
        out["sqrt_recipm1_alphas_cumprod"] = np.sqrt(1.0 / ac - 1)
    if c.use_dynamic_rescale:
        out["scale_arr"] = np.concatenate([np.linspace(1.0, c.base_scale, c.turning_step),
                                           np.full(c.timesteps, c.base_scale)])
    return out


def register_schedule(module: nn.Module, c: ScheduleConfig) -> None:
    for name, arr in schedule_arrays(c).items():
        module.register_buffer(name, torch.tensor(arr, dtype=torch.float32))


def ddim_timesteps(steps: int, total: int, spacing: str) -> np.ndarray:
    if spacing == "uniform":
        return np.arange(0, total, total // steps) + 1
    if spacing == "uniform_trailing":
        return np.flip(np.round(np.arange(total, 0, -total / steps))).astype(np.int64) - 1
    raise ValueError(f"DDIM: unknown timestep spacing {spacing!r} (uniform | uniform_trailing)")


def rescale_guidance(out: Tensor, cond: Tensor, factor: float) -> Tensor:
    """The published rescale; where the guided output is constant (std 0: a fresh zero-initialised UNet) it is left
    as it is instead of becoming 0 / 0."""
    dims = list(range(1, cond.ndim))
    std_out = out.std(dim=dims, keepdim=True)
    ratio = torch.where(std_out > 0, cond.std(dim=dims, keepdim=True) / std_out.clamp(min=1e-30), torch.ones_like(std_out))
    rescaled = out * ratio
    return factor * rescaled + (1 - factor) * out


@dataclass
class DDIMConfig:
    steps: int = 25
    eta: float = 1.0
    guidance: float = 3.2
    guidance_rescale: float = 0.7
    spacing: str = "uniform"


Denoiser = Callable[[Tensor, Tensor, bool], Tensor]  # (x_t, t [B], conditional?) -> model output (v)


@torch.no_grad()
def ddim_sample(schedule: nn.Module, denoise: Denoiser, shape: tuple[int, ...], cfg: DDIMConfig,
                generator: torch.Generator | None, device: torch.device, dtype: torch.dtype = torch.float32,
                x_T: Tensor | None = None) -> Tensor:
    """DDIM from x_T (drawn from `generator` if None) to x_0. `schedule` holds the buffers; `denoise(x, t, cond)`."""
    ac_full = schedule.alphas_cumprod.double().cpu().numpy()
    ts = ddim_timesteps(cfg.steps, len(ac_full), cfg.spacing)
    a = ac_full[ts]
    a_prev = np.asarray([ac_full[0]] + ac_full[ts[:-1]].tolist())
    sigma = cfg.eta * np.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
    sa = schedule.sqrt_alphas_cumprod.to(device)
    s1a = schedule.sqrt_one_minus_alphas_cumprod.to(device)
    dyn = getattr(schedule, "scale_arr", None)
    if dyn is not None:
        scale = dyn.to(device)[torch.as_tensor(ts, device=device)]
        scale_prev = torch.cat([scale[:1], scale[:-1]])
    x = x_T if x_T is not None else torch.randn(shape, generator=generator, device="cpu").to(device)
    x = x.to(device, dtype)
    b = shape[0]
    bcast = (b,) + (1,) * (len(shape) - 1)
    for index in reversed(range(len(ts))):
        t = torch.full((b,), int(ts[index]), device=device, dtype=torch.long)
        out_c = denoise(x, t, True).float()
        if cfg.guidance != 1.0:
            out_u = denoise(x, t, False).float()
            out = out_u + cfg.guidance * (out_c - out_u)
            if cfg.guidance_rescale > 0:
                out = rescale_guidance(out, out_c, cfg.guidance_rescale)
        else:
            out = out_c
        xf = x.float()
        sat, s1at = sa[t].view(bcast), s1a[t].view(bcast)
        if getattr(schedule, "parameterization", "v") == "v":
            eps = sat * out + s1at * xf
            x0 = sat * xf - s1at * out
        else:
            eps = out
            x0 = (xf - float(np.sqrt(1 - a[index])) * eps) / float(np.sqrt(a[index]))
        if dyn is not None:
            x0 = x0 * (scale_prev[index] / scale[index])
        dir_xt = float(np.sqrt(max(1.0 - a_prev[index] - sigma[index] ** 2, 0.0))) * eps
        noise = torch.randn(shape, generator=generator, device="cpu").to(device) if sigma[index] > 0 else 0.0
        x = (float(np.sqrt(a_prev[index])) * x0 + dir_xt + float(sigma[index]) * noise).to(dtype)
    return x
