"""Do the published architectures fit? Peak GPU memory and time per frame of Difix (SD-Turbo UNet + VAE, as
nvidia/difix and nvidia/difix_ref) at 1024x576, and optionally of CogVideoX image-to-video transformers, all with
RANDOM weights in the published configurations (written here in code: nothing is downloaded).

    python benchmarks/bench_published_arch.py [--height 576 --width 1024] [--frames 4] [--repeats 5 --warmup 2]
        [--dtypes bf16 fp32] [--no-train] [--cogvideox 2b 5b-i2v] [--eigent-cogvideox 5b-i2v]
        [--vae-modes plain tiling slicing] [--work /tmp/published_arch] [--tiny]
        [--result benchmarks/results/published_arch.json]

Difix: a random SD-Turbo folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/, weights in fp16) is written
to --work and loaded by `faithfusion.fixers.load_fixer`, the code a user's real weights go through (a published
Difix pipeline folder loads into the same modules; tests/test_published_difix.py). Two arms: `difix` (stock UNet,
no reference: nvidia/difix) and `difix_ref` (joint attention over render + reference: nvidia/difix_ref). Per dtype:
`fix` of --frames frames (one forward of that batch, weights cast to the dtype), seconds per frame and peak
memory; with training on, one `faithfusion fixer train`-like step (fp32 weights, bf16 autocast, AdamW over the
UNet + decoder LoRA + skips, one frame with its reference) at the same size. CogVideoX: the transformer alone
(bf16, random) on one 49-frame window's latents at 480x720 (13 x 60 x 90), forward only, its peak memory.
`--eigent-cogvideox`: a random CogVideoX folder in the hub layout (transformer/, vae/, scheduler/, model_index.json;
bf16 files) is written to --work and loaded by `load_fixer` as `--video-fixer FOLDER` loads real weights (EIGent on
it with a fresh 2-block VideoPainter branch), cast to bf16, and `fix` of one 49-frame 480x720 window (the model's
native window) is timed per VAE mode (plain, tiling, slicing): seconds per window, peak memory.
`--genfusion-dynamicrafter`: GenFusion's published DynamiCrafter RGB-D model (3D UNet 1.44 B, ldm3d-4c VAE,
OpenCLIP ViT-H image tower, Resampler) built with random weights in the published configuration
(`fixers/dynamicrafter.py`, the class a real checkpoint loads into), cast to bf16; `fix` of one 16-frame RGB-D window
with a reference at --gf-height x --gf-width (default 512 x 960, GenFusion's size; 576 x 1024 also), sampled as
published (25 DDIM steps, guidance 3.2: two UNet calls per step): seconds and peak memory per window; with training
on, one training step (fp32 weights, bf16 autocast, AdamW over UNet + Resampler, gradient checkpointing) per window.
Writes JSON with device, commit, command and figures. `--tiny` (tiny configs, 64x64, CPU) checks the script runs;
its figures mean nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import string
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, git_commit  # noqa: E402

from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# stabilityai/sd-turbo (the SD 2.1 architecture): unet/config.json, vae/config.json, text_encoder/config.json
SD_TURBO_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, norm_num_groups=32,
    flip_sin_to_cos=True, freq_shift=0, act_fn="silu",
)
SD_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512), latent_channels=4, layers_per_block=2, norm_num_groups=32,
    sample_size=768, scaling_factor=0.18215, act_fn="silu",
)
CLIP_H_TEXT = dict(  # OpenCLIP ViT-H/14's text tower as SD 2.x ships it
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
    max_position_embeddings=77, hidden_act="gelu", projection_dim=512, bos_token_id=0, eos_token_id=1, pad_token_id=1,
)
SD_SCHEDULER = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000,
                    clip_sample=False, prediction_type="epsilon", steps_offset=1)
TINY_UNET = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                 cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4)
TINY_VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16), latent_channels=4,
                layers_per_block=1, norm_num_groups=4, sample_size=32)
TINY_TEXT = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1)

# CogVideoX transformers (THUDM/CogVideoX-2b, -5b, -5b-I2V transformer/config.json)
COGVIDEOX = {
    "2b": dict(num_attention_heads=30, attention_head_dim=64, in_channels=16, out_channels=16, num_layers=30,
               text_embed_dim=4096, time_embed_dim=512, sample_width=90, sample_height=60, sample_frames=49,
               patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
               use_rotary_positional_embeddings=False),
    "5b": dict(num_attention_heads=48, attention_head_dim=64, in_channels=16, out_channels=16, num_layers=42,
               text_embed_dim=4096, time_embed_dim=512, sample_width=90, sample_height=60, sample_frames=49,
               patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
               use_rotary_positional_embeddings=True),
    "5b-i2v": dict(num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16, num_layers=42,
                   text_embed_dim=4096, time_embed_dim=512, sample_width=90, sample_height=60, sample_frames=49,
                   patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
                   use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True),
}


def write_random_sd_turbo(root: Path, tiny: bool, device: torch.device) -> Path:
    """A random SD-Turbo folder in the hub layout (weights initialised on `device`, saved in fp16)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    if (root / "DONE").is_file():
        return root
    torch.manual_seed(0)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    src = root / "_tok"
    src.mkdir(parents=True, exist_ok=True)
    (src / "vocab.json").write_text(json.dumps(vocab))
    (src / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(src / "vocab.json"), str(src / "merges.txt"), model_max_length=77).save_pretrained(root / "tokenizer")
    with torch.device(device):
        for name, build in (
            ("text_encoder", lambda: CLIPTextModel(CLIPTextConfig(**(TINY_TEXT if tiny else CLIP_H_TEXT)))),
            ("unet", lambda: UNet2DConditionModel(**(TINY_UNET if tiny else SD_TURBO_UNET))),
            ("vae", lambda: AutoencoderKL(**(TINY_VAE if tiny else SD_VAE))),
        ):
            model = build().to(torch.float16)
            model.save_pretrained(root / name)
            del model
            gc.collect()
            torch.cuda.empty_cache() if device.type == "cuda" else None
    DDPMScheduler(**SD_SCHEDULER).save_pretrained(root / "scheduler")
    (root / "DONE").write_text("random weights, published configurations\n")
    return root


def weights_gib(model: torch.nn.Module) -> float:
    """Bytes of the model's parameters and buffers, GiB."""
    tensors = [*model.parameters(), *model.buffers()]
    return round(sum(t.numel() * t.element_size() for t in tensors) / 2**30, 3)


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None


def reset(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_fix(model, ref: bool, dtype: torch.dtype, h: int, w: int, frames: int, warmup: int, repeats: int,
              device: torch.device) -> dict:
    """`fix` of `frames` frames in one forward (weights cast to `dtype`): seconds per frame, peak memory."""
    model = model.to(device, dtype).eval()
    model.config.chunk = frames
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, frames, h, w, 3, generator=g).to(device)
    r = torch.rand(1, h, w, 3, generator=g).to(device) if ref else None
    weights = weights_gib(model)
    with torch.inference_mode():
        for _ in range(warmup):
            model.fix(x, r)
        sync(device)
        reset(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            out = model.fix(x, r).images
        sync(device)
    dt = (time.perf_counter() - t0) / repeats
    return {"seconds_per_frame": round(dt / frames, 5), "seconds_per_call": round(dt, 5), "frames_per_call": frames,
            "peak_memory_gib": peak_gib(device), "weights_gib": weights, "finite": bool(torch.isfinite(out).all())}


def bench_train_step(model, h: int, w: int, warmup: int, repeats: int, device: torch.device) -> dict:
    """One training step as `fixer train` takes it on CUDA (fp32 weights, bf16 autocast, AdamW) on a frame + ref."""
    model = model.to(device, torch.float32).train()
    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=2e-5)
    g = torch.Generator().manual_seed(1)
    x, tgt, r = (torch.rand(1, h, w, 3, generator=g).to(device) for _ in range(3))

    def step() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model(x, r)
        loss = (out.float() - tgt).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    reset(device)
    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        loss = step()
    sync(device)
    return {"seconds_per_step": round((time.perf_counter() - t0) / repeats, 4), "peak_memory_gib": peak_gib(device),
            "trainable_parameters": sum(p.numel() for p in params), "loss_finite": loss == loss}


def bench_difix(args, device: torch.device) -> dict:
    from faithfusion.fixers import load_fixer

    t0 = time.perf_counter()
    folder = write_random_sd_turbo(Path(args.work) / ("sd_turbo_tiny" if args.tiny else "sd_turbo"), args.tiny, device)
    out: dict = {"write_random_folder_s": round(time.perf_counter() - t0, 1), "folder": str(folder)}
    for arm, joint in (("difix", False), ("difix_ref", True)):
        res: dict = {}
        t0 = time.perf_counter()
        model = load_fixer(folder, joint_attention=joint)
        res["load_fixer_s"] = round(time.perf_counter() - t0, 1)
        res["parameters"] = sum(p.numel() for p in model.parameters())
        res["attention_processor"] = type(next(iter(model.net.unet.attn_processors.values()))).__name__
        for name in args.dtypes:
            try:
                res[name] = bench_fix(model, joint, DTYPES[name], args.height, args.width, args.frames, args.warmup,
                                      args.repeats, device)
            except torch.cuda.OutOfMemoryError as err:
                res[name] = {"out_of_memory": str(err)[:300]}
            print(arm, name, res[name], flush=True)
        if args.train and joint:
            try:
                res["train_step_bf16_autocast"] = bench_train_step(model, args.height, args.width, 1, max(1, args.repeats // 2), device)
            except torch.cuda.OutOfMemoryError as err:
                res["train_step_bf16_autocast"] = {"out_of_memory": str(err)[:300]}
            print(arm, "train", res["train_step_bf16_autocast"], flush=True)
        out[arm] = res
        del model
        reset(device)
    return out


def bench_cogvideox(variant: str, args, device: torch.device) -> dict:
    """The CogVideoX transformer alone, random bf16 weights, one forward on a 49-frame window's latents."""
    from diffusers import CogVideoXTransformer3DModel

    cfg = dict(COGVIDEOX[variant])
    if args.tiny:
        cfg.update(num_attention_heads=2, attention_head_dim=16, num_layers=1, text_embed_dim=32, time_embed_dim=8,
                   sample_width=8, sample_height=6, sample_frames=9, max_text_seq_length=8)
    reset(device)
    with torch.device(device):
        model = CogVideoXTransformer3DModel(**cfg).to(torch.bfloat16).eval()
    build_peak = peak_gib(device)  # built in fp32, then cast
    t = (cfg["sample_frames"] - 1) // cfg["temporal_compression_ratio"] + 1
    g = torch.Generator(device=device).manual_seed(0)
    lat = torch.randn(1, t, cfg["in_channels"], cfg["sample_height"], cfg["sample_width"], generator=g, device=device,
                      dtype=torch.bfloat16)
    text = torch.randn(1, cfg["max_text_seq_length"], cfg["text_embed_dim"], generator=g, device=device, dtype=torch.bfloat16)
    step = torch.tensor([500], device=device)
    rope = None
    if cfg.get("use_rotary_positional_embeddings"):
        from diffusers.models.embeddings import get_3d_rotary_pos_embed

        gh, gw = cfg["sample_height"] // cfg["patch_size"], cfg["sample_width"] // cfg["patch_size"]
        # as CogVideoX's pipelines call it at the native size (the crop is the whole grid)
        rope = get_3d_rotary_pos_embed(embed_dim=cfg["attention_head_dim"], crops_coords=((0, 0), (gh, gw)),
                                       grid_size=(gh, gw), temporal_size=t, device=device)
    with torch.inference_mode():
        kw = dict(hidden_states=lat, encoder_hidden_states=text, timestep=step, image_rotary_emb=rope)
        model(**kw)
        sync(device)
        reset(device)
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            model(**kw)
        sync(device)
    dt = (time.perf_counter() - t0) / args.repeats
    return {"config": cfg, "latent_shape": list(lat.shape), "seconds_per_window": round(dt, 4),
            "seconds_per_frame": round(dt / cfg["sample_frames"], 5), "peak_memory_gib": peak_gib(device),
            "weights_gib": weights_gib(model), "build_peak_gib": build_peak,
            "parameters": sum(p.numel() for p in model.parameters())}


def write_random_cogvideox(root: Path, variant: str, tiny: bool, device: torch.device) -> Path:
    """A random CogVideoX folder in the hub layout (transformer + VAE + scheduler, bf16 files), no download."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel

    from faithfusion.fixers.eigent import COGVIDEOX_SCHEDULER_DEFAULTS

    if (root / "DONE").is_file():
        return root
    cfg = dict(COGVIDEOX[variant])
    vae_cfg = dict(scaling_factor=0.7 if variant.startswith("5b") else 1.15258426, sample_height=480, sample_width=720)
    if tiny:
        cfg.update(num_attention_heads=2, attention_head_dim=16, num_layers=2, text_embed_dim=32, time_embed_dim=8,
                   sample_width=8, sample_height=8, sample_frames=9, max_text_seq_length=8)
        vae_cfg.update(block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=4, sample_height=64,
                       sample_width=64)
    torch.manual_seed(0)
    with torch.device(device):
        for name, build in (("transformer", lambda: CogVideoXTransformer3DModel(**cfg)),
                            ("vae", lambda: AutoencoderKLCogVideoX(**vae_cfg))):
            model = build().to(torch.bfloat16)
            model.save_pretrained(root / name)
            del model
            reset(device)
    CogVideoXDDIMScheduler(**COGVIDEOX_SCHEDULER_DEFAULTS).save_pretrained(root / "scheduler")
    pipe = "CogVideoXImageToVideoPipeline" if cfg["in_channels"] == 2 * cfg["out_channels"] else "CogVideoXPipeline"
    (root / "model_index.json").write_text(json.dumps({"_class_name": pipe, "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
                                                       "vae": ["diffusers", "AutoencoderKLCogVideoX"]}))
    (root / "DONE").write_text("random weights, published configurations\n")
    return root


def bench_eigent_cogvideox(variant: str, args, device: torch.device) -> dict:
    """EIGent on a random full-size CogVideoX folder loaded by load_fixer: bf16 `fix` of one native window per VAE mode."""
    from faithfusion.fixers import load_fixer

    t0 = time.perf_counter()
    folder = write_random_cogvideox(Path(args.work) / f"cogvideox_{variant}{'_tiny' if args.tiny else ''}", variant,
                                    args.tiny, device)
    out: dict = {"write_random_folder_s": round(time.perf_counter() - t0, 1), "folder": str(folder)}
    t0 = time.perf_counter()
    model = load_fixer(folder)
    out["load_fixer_s"] = round(time.perf_counter() - t0, 1)
    out["parameters"] = sum(p.numel() for p in model.parameters())
    out["branch_parameters"] = sum(p.numel() for p in model.branch.parameters()) if model.branch is not None else 0
    model = model.to(device, torch.bfloat16).eval()
    out["weights_gib"] = weights_gib(model)
    frames, h, w = (9, 64, 64) if args.tiny else (49, 480, 720)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, frames, h, w, 3, generator=g).to(device)
    eig = torch.rand(1, frames, h, w, generator=g).to(device)
    for mode in args.vae_modes:
        model.vae.disable_tiling()
        model.vae.disable_slicing()
        if mode == "tiling":
            model.vae.enable_tiling()
        elif mode == "slicing":
            model.vae.enable_slicing()
        try:
            with torch.inference_mode():
                for _ in range(args.warmup):
                    model.fix(x, None, eig)
                sync(device)
                reset(device)
                t0 = time.perf_counter()
                for _ in range(args.repeats):
                    res = model.fix(x, None, eig).images
                sync(device)
            dt = (time.perf_counter() - t0) / args.repeats
            out[mode] = {"seconds_per_window": round(dt, 4), "seconds_per_frame": round(dt / frames, 5),
                         "window": [frames, h, w], "peak_memory_gib": peak_gib(device),
                         "finite": bool(torch.isfinite(res).all())}
        except torch.cuda.OutOfMemoryError as err:
            out[mode] = {"out_of_memory": str(err)[:300]}
            reset(device)
        except RuntimeError as err:  # e.g. diffusers' tiling on frames smaller than its tiles (the --tiny sizes)
            out[mode] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
            reset(device)
        print(f"eigent-cogvideox {variant} {mode}", out[mode], flush=True)
    del model
    reset(device)
    return out


def bench_genfusion_dynamicrafter(args, device: torch.device) -> dict:
    """GenFusion's DynamiCrafter at full size, random weights: bf16 `fix` of one window (and one training step)."""
    from faithfusion.fixers.dynamicrafter import GenFusionDynamiCrafter, GenFusionDynamiCrafterConfig

    out: dict = {}
    fields: dict = dict(steps=args.gf_steps)
    if args.tiny:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.dynamicrafter_fixtures import TINY_CLIP, TINY_RESAMPLER, TINY_UNET, TINY_VAE

        fields.update(arch={"unet": TINY_UNET, "resampler": TINY_RESAMPLER, "clip": TINY_CLIP, "vae": TINY_VAE})
    frames, h, w = (4, 32, 32) if args.tiny else (args.gf_frames, args.gf_height, args.gf_width)
    for size in ([(h, w)] if args.tiny else [(h, w), *[tuple(s) for s in args.gf_extra_sizes]]):
        hh, ww = size
        key = f"{hh}x{ww}"
        t0 = time.perf_counter()
        model = GenFusionDynamiCrafter(GenFusionDynamiCrafterConfig(height=hh, width=ww, **fields))
        res: dict = {"build_s": round(time.perf_counter() - t0, 1),
                     "parameters": {n: sum(p.numel() for p in getattr(model.net, n).parameters())
                                    for n in ("model", "first_stage_model", "embedder", "image_proj_model")},
                     "window": [frames, hh, ww], "steps": model.config.steps, "guidance": model.config.guidance}
        g = torch.Generator().manual_seed(0)
        x = torch.rand(1, frames, hh, ww, 3, generator=g)
        depth = 2 + 20 * torch.rand(1, frames, hh, ww, generator=g)
        ref = torch.rand(1, hh, ww, 3, generator=g)
        try:
            model = model.to(device, torch.bfloat16 if device.type == "cuda" else torch.float32).eval()
            res["weights_gib"] = weights_gib(model)
            with torch.inference_mode():
                for _ in range(args.warmup):
                    model.fix(x, ref, depth=depth)
                sync(device)
                reset(device)
                t0 = time.perf_counter()
                for _ in range(args.repeats):
                    o = model.fix(x, ref, depth=depth)
                sync(device)
            dt = (time.perf_counter() - t0) / args.repeats
            res["fix"] = {"seconds_per_window": round(dt, 3), "seconds_per_frame": round(dt / frames, 4),
                          "peak_memory_gib": peak_gib(device), "finite": bool(torch.isfinite(o.images).all())}
        except torch.cuda.OutOfMemoryError as err:
            res["fix"] = {"out_of_memory": str(err)[:300]}
        print(f"genfusion-dynamicrafter {key} fix", res.get("fix"), flush=True)
        if args.train:
            try:
                model = model.float().train()
                reset(device)
                opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-5)
                batch = {"degraded": x.to(device), "target": x.to(device), "depth": depth.to(device),
                         "target_depth": depth.to(device), "reference": ref.to(device), "has_ref": torch.ones(1, dtype=torch.bool)}
                times = []
                for i in range(args.warmup + args.repeats):
                    sync(device)
                    t0 = time.perf_counter()
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                        loss, _ = model.training_loss(batch, device)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sync(device)
                    if i >= args.warmup:
                        times.append(time.perf_counter() - t0)
                res["train_step"] = {"seconds_per_step": round(sum(times) / len(times), 3), "peak_memory_gib": peak_gib(device),
                                     "trainable_parameters": model.num_parameters(trainable_only=True),
                                     "gradient_checkpointing": model.config.gradient_checkpointing}
                del opt
            except torch.cuda.OutOfMemoryError as err:
                res["train_step"] = {"out_of_memory": str(err)[:300]}
            print(f"genfusion-dynamicrafter {key} train", res.get("train_step"), flush=True)
        out[key] = res
        del model
        reset(device)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--height", type=int, default=576)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtypes", nargs="+", default=["bf16"], choices=sorted(DTYPES))
    ap.add_argument("--train", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--difix", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--cogvideox", nargs="*", default=[], choices=sorted(COGVIDEOX))
    ap.add_argument("--eigent-cogvideox", nargs="*", default=[], choices=sorted(COGVIDEOX))
    ap.add_argument("--genfusion-dynamicrafter", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--gf-height", type=int, default=512)
    ap.add_argument("--gf-width", type=int, default=960)
    ap.add_argument("--gf-frames", type=int, default=16)
    ap.add_argument("--gf-steps", type=int, default=25)
    ap.add_argument("--gf-extra-sizes", type=int, nargs=2, action="append", default=[], metavar=("H", "W"),
                    help="more sizes for --genfusion-dynamicrafter, e.g. --gf-extra-sizes 576 1024")
    ap.add_argument("--vae-modes", nargs="+", default=["plain", "tiling", "slicing"], choices=["plain", "tiling", "slicing"])
    ap.add_argument("--work", default="/tmp/published_arch")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--result", default="benchmarks/results/published_arch.json")
    args = ap.parse_args(argv)
    if args.tiny:
        args.height, args.width, args.frames, args.warmup, args.repeats = 64, 64, 1, 0, 1
    device = torch.device(args.device)
    import diffusers

    result: dict = {
        "device": device_name(device), "commit": git_commit(), "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "torch": torch.__version__, "diffusers": diffusers.__version__, "size": [args.height, args.width],
        "weights": "random, in the published configurations (no download)", "tiny": args.tiny,
    }
    if args.difix:
        try:
            result["difix"] = bench_difix(args, device)
        except Exception as err:  # noqa: BLE001  (record and go on: the JSON says what failed)
            result["difix"] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}
            print(result["difix"]["trace"], flush=True)
    for variant in args.cogvideox:
        try:
            result[f"cogvideox_{variant}"] = bench_cogvideox(variant, args, device)
        except Exception as err:  # noqa: BLE001
            result[f"cogvideox_{variant}"] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}
        print(variant, {k: v for k, v in result[f"cogvideox_{variant}"].items() if k not in ("config", "trace")}, flush=True)
        reset(device)
    for variant in args.eigent_cogvideox:
        try:
            result[f"eigent_cogvideox_{variant}"] = bench_eigent_cogvideox(variant, args, device)
        except Exception as err:  # noqa: BLE001
            result[f"eigent_cogvideox_{variant}"] = {"error": f"{type(err).__name__}: {err}",
                                                     "trace": traceback.format_exc()[-2000:]}
            print(result[f"eigent_cogvideox_{variant}"]["trace"], flush=True)
        reset(device)
    if args.genfusion_dynamicrafter:
        try:
            result["genfusion_dynamicrafter"] = bench_genfusion_dynamicrafter(args, device)
        except Exception as err:  # noqa: BLE001
            result["genfusion_dynamicrafter"] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}
            print(result["genfusion_dynamicrafter"]["trace"], flush=True)
        reset(device)
    save_json_atomic(args.result, result)
    print(f"wrote {args.result}")
    return result


if __name__ == "__main__":
    main()
