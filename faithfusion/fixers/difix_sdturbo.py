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

Weights come from a local folder laid out like the hub repo (unet/, vae/, text_encoder/, tokenizer/,
scheduler/) or a hub id from the local cache; nothing is downloaded unless `local_files_only=False`. The
UNet and VAE tensors are read from their files and loaded strictly (`published.load_strictly`): SD-Turbo's
(the skips and LoRA then start fresh) or a published Difix pipeline's (skips `decoder.skip_conv_1..N` and
the `vae_skip` LoRA included; docs/weights.md).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

LORA_ADAPTER = "vae_skip"
# decoder module names (suffixes) that get LoRA, as Difix chooses them
LORA_TARGET_SUFFIXES = ("conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out", "to_k", "to_q", "to_v", "to_out.0")
SKIP_INIT = 1e-5


def offline_default(local_files_only: bool | None) -> bool:
    """Whether hub downloads are forbidden: yes unless `local_files_only` is explicitly False."""
    return True if local_files_only is None else bool(local_files_only)


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


def _is_difix_vae_tensor(name: str) -> bool:
    """The VAE tensors Difix trains and saves (`"lora" in k or "skip" in k`, as Difix3D's save_ckpt selects)."""
    return "lora" in name or "skip" in name


def difix_lora_targets(vae: nn.Module) -> list[str]:
    """Difix's decoder LoRA targets: decoder modules whose names end with one of its suffixes or a skip conv."""
    suffixes = (*LORA_TARGET_SUFFIXES, *(f"skip_conv_{i}" for i in range(1, 9)))
    return [name for name, _ in vae.named_modules() if "decoder" in name and any(name.endswith(s) for s in suffixes)]


def _encoder_down_inputs(block_out_channels: tuple[int, ...]) -> list[int]:
    """Channels of the input of each VAE encoder down block (conv_in output, then each block's output)."""
    return [block_out_channels[0], *block_out_channels[:-1]]


def _decoder_up_inputs(block_out_channels: tuple[int, ...]) -> list[int]:
    rev = list(reversed(block_out_channels))
    return [rev[0], *rev[:-1]]


class SDTurboDifixNet(nn.Module):
    """`forward(x [N, 3, H, W], ref [N, 3, H, W] | None) -> [N, 3, H, W]`, all in [-1, 1].

    `pretrained` is a folder (or hub id) of one of two kinds (`published.detect_fixer_source`): a plain SD-Turbo
    (skips at 1e-5 and fresh LoRA: a Difix to train) or a published Difix pipeline (every tensor of its UNet
    and VAE, skips and LoRA included, loaded strictly). `checkpoint`, a Difix3D training `.pkl`, is laid over
    SD-Turbo as Difix3D's own loader does (its LoRA rank and targets, its UNet and VAE tensors).
    """

    def __init__(
        self,
        pretrained: str,
        prompt: str = "remove degradation",
        timestep: int = 199,
        lora_rank: int = 4,
        train_unet: bool = True,
        local_files_only: bool | None = None,
        sample_posterior: bool = False,
        joint_attention: bool = True,
        checkpoint: str | None = None,
    ) -> None:
        super().__init__()
        from faithfusion.utils.optional import require_models

        require_models("the SD-Turbo Difix backbone")
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from peft import LoraConfig
        from transformers import AutoTokenizer, CLIPTextModel

        from faithfusion.fixers import published as pub

        source = pub.detect_fixer_source(pretrained, allow_download=not offline_default(local_files_only))
        if source.kind not in ("sd-turbo", "difix-pipeline"):
            raise pub.FixerSourceError(f"{pretrained}: a {source.kind}, not an SD-Turbo or Difix pipeline folder")
        root = source.path
        self.source_kind = source.kind
        pkl = pub.read_difix_pkl(checkpoint) if checkpoint else None
        if pkl is not None and source.kind != "sd-turbo":
            raise pub.FixerSourceError(f"{checkpoint}: a Difix3D .pkl is laid over SD-Turbo, not over a {source.kind}")
        self.timestep = timestep
        self.train_unet = train_unet
        self.sample_posterior = sample_posterior

        # the fixed prompt, encoded once; the text encoder is then dropped (it is frozen in Difix)
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
        text_encoder, info = CLIPTextModel.from_pretrained(root / "text_encoder", output_loading_info=True)
        bad = [*info["missing_keys"], *(k for k in info["unexpected_keys"] if not k.endswith("position_ids")),
               *(str(m) for m in info["mismatched_keys"])]
        if bad:
            raise pub.CheckpointKeysError(f"{root / 'text_encoder'}: tensors missing, unexpected or mismatched: {bad[:4]}")
        ids = tokenizer(prompt, max_length=tokenizer.model_max_length, padding="max_length", truncation=True,
                        return_tensors="pt").input_ids
        with torch.no_grad():
            self.register_buffer("prompt_embeds", text_encoder.eval()(ids)[0].float(), persistent=False)  # [1, 77, D]
        del text_encoder

        sched = DDPMScheduler.from_pretrained(root / "scheduler")
        if sched.config.thresholding:
            raise ValueError("SD-Turbo Difix: dynamic thresholding is not supported (a pixel-space option)")
        self.alpha_prod_t = float(sched.alphas_cumprod[timestep])
        self.prediction_type = sched.config.prediction_type
        self.clip = float(sched.config.clip_sample_range) if sched.config.clip_sample else None

        # UNet: built without weights (meta), then every tensor from the file (and the .pkl over it)
        with torch.device("meta"):
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet"))
        state = pub.read_component_state(root / "unet")
        where = root / "unet"
        if pkl is not None:  # Difix3D's loader: the .pkl's tensors over the base's
            state, where = {**state, **pkl.unet}, f"{root / 'unet'} + {pkl.path} state_dict_unet"
        pub.load_strictly(unet, state, where, assign=True)
        self.unet = unet.float()
        self.views = ViewState()
        self.num_joint = install_joint_attention(self.unet, self.views) if joint_attention else 0

        vae_cfg = AutoencoderKL.load_config(root / "vae")
        vae = AutoencoderKL.from_config({k: v for k, v in vae_cfg.items() if k not in pub.DIFIX_VAE_KEYS})
        self.skip_gamma = float(vae_cfg.get("gamma", 1.0))
        self.use_skips = not bool(vae_cfg.get("ignore_skip", False))
        boc = tuple(vae.config.block_out_channels)
        for i, (cin, cout) in enumerate(zip(reversed(_encoder_down_inputs(boc)), _decoder_up_inputs(boc)), start=1):
            conv = nn.Conv2d(cin, cout, 1, bias=False)  # Difix's names: decoder.skip_conv_1 (deepest) .. _N
            nn.init.constant_(conv.weight, SKIP_INIT)
            setattr(vae.decoder, f"skip_conv_{i}", conv)
        self.num_skips = len(boc)
        if pkl is not None:
            lora_rank, targets = pkl.rank, pkl.targets
        else:
            if source.kind == "difix-pipeline" and "lora_rank" in vae_cfg:
                lora_rank = int(vae_cfg["lora_rank"])
            targets = difix_lora_targets(vae)
        vae.add_adapter(LoraConfig(r=lora_rank, init_lora_weights="gaussian", target_modules=targets), adapter_name=LORA_ADAPTER)
        own = vae.state_dict()
        trained = {k for k in own if _is_difix_vae_tensor(k)}
        state = pub.normalise_lora_keys(pub.read_component_state(root / "vae"), set(own))
        if source.kind == "difix-pipeline":
            pub.load_strictly(vae, state, root / "vae")  # skips and LoRA included
        else:
            pub.load_strictly(vae, state, root / "vae", may_miss=trained)  # skips and LoRA keep their init
        if pkl is not None:
            extra = pub.normalise_lora_keys(pkl.vae, set(own))
            pub.load_strictly(vae, extra, f"{pkl.path} state_dict_vae", may_miss=set(own) - trained)
        self.vae = vae
        self.lora_rank = lora_rank
        self.lora_targets = list(targets)
        self.scaling = float(vae.config.scaling_factor)
        self.shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
        factor_vae = 2 ** (len(boc) - 1)
        factor_unet = 2 ** (len(self.unet.config.block_out_channels) - 1)
        self.multiple = factor_vae * factor_unet
        self.set_trainable()

    @property
    def skip_convs(self) -> list[nn.Module]:
        """The decoder's skip convolutions, deepest first (Difix's skip_conv_1 .. skip_conv_N)."""
        return [getattr(self.vae.decoder, f"skip_conv_{i}") for i in range(1, self.num_skips + 1)]

    # --- which tensors train ----------------------------------------------------------------

    def _is_vae_trainable(self, name: str) -> bool:
        return _is_difix_vae_tensor(name)

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
        for conv, skip, block in zip(self.skip_convs, reversed(skips), dec.up_blocks):
            h = block(h + conv(skip.to(dtype) * self.skip_gamma) if self.use_skips else h, None)
        h = dec.conv_out(dec.conv_act(dec.conv_norm_out(h)))
        return h.clamp(-1, 1)

    def forward(self, x: Tensor, ref: Tensor | None = None) -> Tensor:
        n, _, hh, ww = x.shape
        if hh % self.multiple or ww % self.multiple:
            raise ValueError(f"SDTurboDifixNet: H, W must be multiples of {self.multiple}, got {hh}x{ww}")
        if self.num_joint == 0:
            ref = None  # a stock UNet (nvidia/difix) sees each view alone: the reference cannot change the render
        views = 1 if ref is None else 2
        inp = x if ref is None else torch.stack([x, ref], dim=1).flatten(0, 1)  # [(N V), 3, H, W]: pairs adjacent
        z, skips = self.encode(inp)
        z0 = self.denoise(z, views)
        # only the render is decoded (the reference's output is discarded in Difix)
        z0 = z0[::views]
        skips = [s[::views] for s in skips]
        return self.decode(z0, skips)
