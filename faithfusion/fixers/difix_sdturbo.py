"""Difix's SD-Turbo backbone: what Difix does, on diffusers' UNet and VAE.

The steps (facts from Difix3D's `src/model.py`, `src/mv_unet.py`, `src/train_difix.py`):

1. Encode the render (and the reference view, when given) with the VAE encoder, keeping the
   input of each encoder down block for the skip connections; latent = posterior * scaling_factor.
2. ONE UNet step at timestep 199 with NO noise added to the latent: the clean latent goes in
   as if it were the noisy sample x_t, conditioned on the embedding of a fixed prompt
   ("remove degradation").
3. x0 from the scheduler's formula. Difix (on diffusers 0.25) calls a DDPMScheduler with
   `set_timesteps(1)` and `step(pred, 199, z)`; the previous timestep is then < 0 (alpha_prev = 1),
   so `prev_sample` is exactly the predicted x0 (plus noise of std 1e-10). Newer diffusers refuse a
   timestep outside the schedule, so we compute that x0 directly from the scheduler's config:
   epsilon: (x_t - sqrt(1 - a_t) eps) / sqrt(a_t); v_prediction: sqrt(a_t) x_t - sqrt(1 - a_t) v;
   sample: the output itself; then the scheduler config's clipping.
4. Decode with the VAE decoder whose up blocks each receive, added to their input, a 1x1 conv
   (no bias, initialised to the constant 1e-5 as Difix does) of the matching encoder activation
   (encoder down-block inputs, deepest first). LoRA (peft, gaussian init, rank 4) on the
   decoder's convs, attention projections and the skip convs. Output clamped to [-1, 1].
5. The reference view: Difix reshapes the UNet transformer blocks' self-attention (attn1) so that
   the tokens of a pair of views attend jointly: `(b v) n d -> b (v n) d` around attn1. Here a
   custom attention processor on every attn1 does that reshape; cross-attention (attn2), the
   feed-forward and the residual paths stay per view, exactly as in Difix.

Training (Difix): the whole UNet is trained, plus the VAE decoder's LoRA and the skip convs; the
VAE encoder and the text encoder are frozen. `train_unet=False` freezes the UNet too.

Weights are read with `from_pretrained(path_or_id, subfolder=...)`: a local folder laid out like
the hub repo (unet/, vae/, text_encoder/, tokenizer/, scheduler/) or a hub id from the cache;
`local_files_only` (default: $HF_HUB_OFFLINE) forbids downloads.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

LORA_ADAPTER = "vae_skip"
# decoder module names (suffixes) that get LoRA, as Difix chooses them
LORA_TARGET_SUFFIXES = ("conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out", "to_k", "to_q", "to_v", "to_out.0")
SKIP_INIT = 1e-5


def offline_default(local_files_only: bool | None) -> bool:
    if local_files_only is not None:
        return local_files_only
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def one_step_x0(model_output: Tensor, sample: Tensor, alpha_prod_t: float, prediction_type: str, clip: float | None) -> Tensor:
    """The x0 a DDPM scheduler predicts from `model_output` at a timestep with cumulative alpha `alpha_prod_t`."""
    a, b = alpha_prod_t**0.5, (1.0 - alpha_prod_t) ** 0.5
    if prediction_type == "epsilon":
        x0 = (sample - b * model_output) / a
    elif prediction_type == "v_prediction":
        x0 = a * sample - b * model_output
    elif prediction_type == "sample":
        x0 = model_output
    else:
        raise ValueError(f"unknown prediction_type {prediction_type!r}")
    return x0.clamp(-clip, clip) if clip is not None else x0


class ViewState:
    """How many consecutive batch entries form one group of views (shared by all attn1 processors)."""

    def __init__(self) -> None:
        self.views = 1


class JointViewsAttnProcessor:
    """Self-attention over the tokens of all views of a group: `[(B V), N, D] -> [B, (V N), D]` around `inner`."""

    def __init__(self, inner: Any, state: ViewState) -> None:
        self.inner = inner
        self.state = state

    def __call__(self, attn: nn.Module, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None, **kwargs: Any) -> Tensor:
        v = self.state.views
        if v == 1 or encoder_hidden_states is not None or hidden_states.ndim != 3 or attention_mask is not None:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        n, length, d = hidden_states.shape  # [(B V), N, D]
        if n % v:
            raise ValueError(f"joint attention: batch {n} is not a multiple of {v} views")
        joint = hidden_states.reshape(n // v, v * length, d)  # [B, (V N), D]
        out = self.inner(attn, joint, None, None, temb, **kwargs)
        return out.reshape(n, length, d)


def install_joint_attention(unet: nn.Module, state: ViewState) -> int:
    """Wrap every transformer self-attention (attn1) processor of `unet`; returns how many."""
    procs = dict(unet.attn_processors)
    count = 0
    for name, proc in procs.items():
        if ".attn1." in name:
            procs[name] = JointViewsAttnProcessor(proc, state)
            count += 1
    unet.set_attn_processor(procs)
    return count


def _encoder_down_inputs(block_out_channels: tuple[int, ...]) -> list[int]:
    """Channels of the input of each VAE encoder down block (conv_in output, then each block's output)."""
    return [block_out_channels[0], *block_out_channels[:-1]]


def _decoder_up_inputs(block_out_channels: tuple[int, ...]) -> list[int]:
    rev = list(reversed(block_out_channels))
    return [rev[0], *rev[:-1]]


class SDTurboDifixNet(nn.Module):
    """`forward(x [N, 3, H, W], ref [N, 3, H, W] | None) -> [N, 3, H, W]`, all in [-1, 1]."""

    def __init__(
        self,
        pretrained: str,
        prompt: str = "remove degradation",
        timestep: int = 199,
        lora_rank: int = 4,
        train_unet: bool = True,
        local_files_only: bool | None = None,
        sample_posterior: bool = False,
    ) -> None:
        super().__init__()
        from faithfusion.utils.optional import require_models

        require_models("the SD-Turbo Difix backbone")
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from peft import LoraConfig
        from transformers import AutoTokenizer, CLIPTextModel

        offline = offline_default(local_files_only)
        kw = {"local_files_only": offline}
        self.timestep = timestep
        self.train_unet = train_unet
        self.sample_posterior = sample_posterior

        # the fixed prompt, encoded once; the text encoder is then dropped (it is frozen in Difix)
        tokenizer = AutoTokenizer.from_pretrained(pretrained, subfolder="tokenizer", **kw)
        text_encoder = CLIPTextModel.from_pretrained(pretrained, subfolder="text_encoder", **kw).eval()
        ids = tokenizer(prompt, max_length=tokenizer.model_max_length, padding="max_length", truncation=True,
                        return_tensors="pt").input_ids
        with torch.no_grad():
            self.register_buffer("prompt_embeds", text_encoder(ids)[0].float(), persistent=False)  # [1, 77, D]
        del text_encoder

        sched = DDPMScheduler.from_pretrained(pretrained, subfolder="scheduler", **kw)
        if sched.config.thresholding:
            raise ValueError("SD-Turbo Difix: dynamic thresholding is not supported (a pixel-space option)")
        self.alpha_prod_t = float(sched.alphas_cumprod[timestep])
        self.prediction_type = sched.config.prediction_type
        self.clip = float(sched.config.clip_sample_range) if sched.config.clip_sample else None

        self.unet = UNet2DConditionModel.from_pretrained(pretrained, subfolder="unet", **kw)
        self.views = ViewState()
        self.num_joint = install_joint_attention(self.unet, self.views)

        vae = AutoencoderKL.from_pretrained(pretrained, subfolder="vae", **kw)
        boc = tuple(vae.config.block_out_channels)
        skips = nn.ModuleList(
            nn.Conv2d(cin, cout, 1, bias=False)
            for cin, cout in zip(reversed(_encoder_down_inputs(boc)), _decoder_up_inputs(boc))
        )
        for conv in skips:
            nn.init.constant_(conv.weight, SKIP_INIT)
        vae.decoder.skip_convs = skips
        targets = [
            name for name, mod in vae.named_modules()
            if name.startswith("decoder.") and isinstance(mod, (nn.Conv2d, nn.Linear))
            and (any(name.endswith("." + s) for s in LORA_TARGET_SUFFIXES) or name.startswith("decoder.skip_convs."))
        ]
        vae.add_adapter(LoraConfig(r=lora_rank, init_lora_weights="gaussian", target_modules=targets), adapter_name=LORA_ADAPTER)
        self.vae = vae
        self.lora_targets = targets
        self.scaling = float(vae.config.scaling_factor)
        self.shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
        factor_vae = 2 ** (len(boc) - 1)
        factor_unet = 2 ** (len(self.unet.config.block_out_channels) - 1)
        self.multiple = factor_vae * factor_unet
        self.set_trainable()

    # --- which tensors train ----------------------------------------------------------------

    def _is_vae_trainable(self, name: str) -> bool:
        return "lora_" in name or "skip_convs" in name

    def set_trainable(self) -> None:
        self.unet.requires_grad_(self.train_unet)
        for name, p in self.vae.named_parameters():
            p.requires_grad_(self._is_vae_trainable(name))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def saved_state_dict(self) -> dict[str, Tensor]:
        """The trained tensors only: the base weights are reloaded from `pretrained`."""
        out = {f"vae.{k}": v for k, v in self.vae.state_dict().items() if self._is_vae_trainable(k)}
        if self.train_unet:
            out.update({f"unet.{k}": v for k, v in self.unet.state_dict().items()})
        return out

    # --- the three stages --------------------------------------------------------------------

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:  # [M, 3, H, W] -> latent [M, 4, H/8, W/8], skips
        enc = self.vae.encoder
        h = enc.conv_in(x)
        skips = []
        for block in enc.down_blocks:
            skips.append(h)
            h = block(h)
        h = enc.conv_out(enc.conv_act(enc.conv_norm_out(enc.mid_block(h))))
        if self.vae.quant_conv is not None:
            h = self.vae.quant_conv(h)
        mean, logvar = h.chunk(2, dim=1)
        if self.sample_posterior:
            mean = mean + torch.exp(0.5 * logvar.clamp(-30.0, 20.0)) * torch.randn_like(mean)
        return (mean - self.shift) * self.scaling, skips

    def denoise(self, z: Tensor, views: int) -> Tensor:  # one UNet step at t, no noise added -> x0 latent
        self.views.views = views
        try:
            t = torch.full((z.shape[0],), self.timestep, device=z.device, dtype=torch.long)
            cond = self.prompt_embeds.to(z.dtype).expand(z.shape[0], -1, -1)
            pred = self.unet(z, t, encoder_hidden_states=cond).sample
        finally:
            self.views.views = 1
        return one_step_x0(pred, z, self.alpha_prod_t, self.prediction_type, self.clip)

    def decode(self, z: Tensor, skips: list[Tensor]) -> Tensor:  # latent [N, 4, h, w] -> image [N, 3, H, W]
        dec = self.vae.decoder
        z = z / self.scaling + self.shift
        if self.vae.post_quant_conv is not None:
            z = self.vae.post_quant_conv(z)
        h = dec.mid_block(dec.conv_in(z), None)
        dtype = next(iter(dec.up_blocks.parameters())).dtype
        h = h.to(dtype)
        for conv, skip, block in zip(dec.skip_convs, reversed(skips), dec.up_blocks):
            h = block(h + conv(skip.to(dtype)), None)
        h = dec.conv_out(dec.conv_act(dec.conv_norm_out(h)))
        return h.clamp(-1, 1)

    def forward(self, x: Tensor, ref: Tensor | None = None) -> Tensor:
        n, _, hh, ww = x.shape
        if hh % self.multiple or ww % self.multiple:
            raise ValueError(f"SDTurboDifixNet: H, W must be multiples of {self.multiple}, got {hh}x{ww}")
        views = 1 if ref is None else 2
        inp = x if ref is None else torch.stack([x, ref], dim=1).flatten(0, 1)  # [(N V), 3, H, W]: pairs adjacent
        z, skips = self.encode(inp)
        z0 = self.denoise(z, views)
        # only the render is decoded (the reference's output is discarded in Difix)
        z0 = z0[::views]
        skips = [s[::views] for s in skips]
        return self.decode(z0, skips)
