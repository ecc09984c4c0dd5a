"""GenFusion's published DynamiCrafter RGB-D model: a tiny random checkpoint in exactly the published layout, loaded
by `load_fixer` (what `--video-fixer CKPT` runs) with every tensor accounted for; sampling, depth, one training step
and one fusion round through the Fixer interface."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

from faithfusion.fixers import load_fixer  # noqa: E402
from faithfusion.fixers.published import CheckpointKeysError, FixerSourceError, detect_fixer_source  # noqa: E402
from faithfusion.fusion.fixers import MissingFixerError, choose_fixer  # noqa: E402
from tests.dynamicrafter_fixtures import tiny_state, write_tiny_genfusion_ckpt  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")
T, H, W = 4, 32, 32
SMALL = dict(height=H, width=W, steps=2)
# names as the published code spells them (lvdm openaimodel3d / attention / resampler, OpenCLIP)
PUBLISHED_NAMES = (
    "model.diffusion_model.input_blocks.1.0.temopral_conv.conv4.3.weight",
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k_ip.weight",
    "model.diffusion_model.input_blocks.1.2.transformer_blocks.0.attn1.to_q.weight",
    "model.diffusion_model.init_attn.0.proj_in.weight",
    "model.diffusion_model.fps_embedding.2.weight",
    "model.diffusion_model.output_blocks.1.1.conv.weight",
    "embedder.model.visual.transformer.resblocks.0.attn.in_proj_weight",
    "embedder.model.visual.transformer.resblocks.0.mlp.c_fc.weight",
    "image_proj_model.layers.0.0.to_kv.weight",
    "image_proj_model.layers.0.1.3.weight",
    "first_stage_model.encoder.conv_in.weight",
    "scale_arr",
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_tiny_genfusion_ckpt(tmp_path_factory.mktemp("genfusion"))


def window(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:  # [1, T, H, W, 3], depth [1, T, H, W]
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, T, H, W, 3, generator=g), 2 + 10 * torch.rand(1, T, H, W, generator=g)


def test_strict_load_of_the_published_layout(ckpt):
    assert detect_fixer_source(ckpt).kind == "dynamicrafter"
    assert detect_fixer_source(ckpt.parent).path == ckpt  # a folder with the one .ckpt (the hub repository's layout)
    file = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert all(name in file for name in PUBLISHED_NAMES)
    assert tuple(file["model.diffusion_model.init_attn.0.proj_in.weight"].shape) == (128, 32, 1)  # Conv1d: 8 heads x 16
    model = load_fixer(ckpt, **SMALL)
    own = model.net.state_dict()
    loaded = [k for k in file if k in own]
    unused = sorted(set(file) - set(own))
    assert all(k.startswith(("cond_stage_model.model.", "embedder.model.")) for k in unused)
    assert not any(k.startswith("embedder.model.visual.") for k in unused)
    assert set(own) == set(loaded) and all(torch.equal(own[k], file[k]) for k in loaded)
    assert model.config.arch["unet"]["model_channels"] == 32  # read from generation_infer.yaml beside it
    # the DeepSpeed layout (module dict, 16-character prefix) loads the same tensors
    ds = write_tiny_genfusion_ckpt(ckpt.parent.parent / "ds", state=file, deepspeed=True)
    assert torch.equal(load_fixer(ds, **SMALL).net.unet.out[2].weight, model.net.unet.out[2].weight)


def test_missing_unexpected_or_misshapen_tensors_are_errors(ckpt, tmp_path):
    state = tiny_state()
    yaml_file = ckpt.parent / "generation_infer.yaml"

    def write(name: str, st: dict) -> Path:
        path = write_tiny_genfusion_ckpt(tmp_path / name, state=st, with_yaml=False)
        shutil.copy(yaml_file, tmp_path / name / "generation_infer.yaml")
        return path

    gone = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_v_ip.weight"
    with pytest.raises(CheckpointKeysError, match=r"missing.*attn2\.to_v_ip"):
        load_fixer(write("lack", {k: v for k, v in state.items() if k != gone}), **SMALL)
    with pytest.raises(CheckpointKeysError, match=r"missing.*cond_stage_model\.model\.ln_final\.weight"):
        load_fixer(write("notext", {k: v for k, v in state.items() if k != "cond_stage_model.model.ln_final.weight"}), **SMALL)
    with pytest.raises(CheckpointKeysError, match=r"no place.*model_ema\.decay"):
        load_fixer(write("extra", {**state, "model_ema.decay": torch.tensor(0.999)}), **SMALL)
    with pytest.raises(CheckpointKeysError, match=r"wrong shape.*image_proj_model\.latents"):
        load_fixer(write("shape", {**state, "image_proj_model.latents": torch.zeros(1, 3, 32)}), **SMALL)


def test_wrong_folders_get_clear_errors(ckpt, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "generation_infer.yaml").write_text("model: {}\n")
    with pytest.raises(FixerSourceError, match=r"not a fixer.*DynamiCrafter \.ckpt"):
        load_fixer(empty)
    with pytest.raises(MissingFixerError, match="DynamiCrafter"):  # what `fuse genfusion --video-fixer` says
        choose_fixer(empty, "genfusion", flag="--video-fixer")
    other = tmp_path / "other.ckpt"  # a checkpoint of something else: no model.diffusion_model.*
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, other)
    with pytest.raises(FixerSourceError, match="neither a Difix3D training checkpoint.*nor a GenFusion"):
        load_fixer(other)


def test_sampling_is_seeded_and_the_depth_channel_matters(ckpt):
    model = load_fixer(ckpt, **SMALL)
    x, depth = window()
    a = model.fix(x, x[:, 0], depth=depth)
    b = model.fix(x, x[:, 0], depth=depth)
    assert a.images.shape == (1, T, H, W, 3) and a.depth.shape == (1, T, H, W)
    assert torch.equal(a.images, b.images) and torch.isfinite(a.depth).all() and (a.depth > 0).all()
    # metric depth within the window's range: disparity lo + x (hi - lo), x in [0, 1]
    assert float(a.depth.min()) >= float(depth.min()) * 0.999 and float(a.depth.max()) <= float(depth.max()) * 1.001
    flipped = model.fix(x, x[:, 0], depth=depth.flip(-1))
    assert (flipped.images - a.images).abs().max() > 1e-4  # the depth channel reaches the RGB output
    other_ref = model.fix(x, torch.rand(1, H, W, 3), depth=depth)
    assert (other_ref.images - a.images).abs().max() > 1e-4  # the reference reaches it through the Resampler
    assert model.fix(x).depth is None
    with pytest.raises(ValueError, match="multiples of 4"):
        load_fixer(ckpt, height=30, width=32)


def test_bf16_keeps_the_schedule_in_float32_and_samples_finite(ckpt):
    model = load_fixer(ckpt, **SMALL).to(torch.device("cpu"), torch.bfloat16)
    assert model.net.alphas_cumprod.dtype == torch.float32 and float(model.net.alphas_cumprod[0]) < 1.0
    assert model.net.unet.time_embed[0].weight.dtype == torch.bfloat16
    x, depth = window()
    out = model.fix(x, x[:, 0], depth=depth)
    assert torch.isfinite(out.images).all() and torch.isfinite(out.depth).all()


def test_one_training_step_then_reload(ckpt, tmp_path):
    from tests.test_fixers_video import _video_cfg, write_fake_video_dataset

    from faithfusion.fixers.train import train_fixer

    start = tmp_path / "start"
    load_fixer(ckpt, **SMALL).save_pretrained(start)  # sizes and steps for the run, base tensors from the ckpt
    index = write_fake_video_dataset(tmp_path / "data", n_train=1, n_test=1, t=T, h=32, w=32)
    cfg = _video_cfg(index, tmp_path / "run", "genfusion-dynamicrafter", steps=1, frames=T, batch_size=1, init=start,
                     w_lpips=0.0, w_gram=0.0)
    summary = train_fixer(cfg)
    assert summary["steps"] == 1 and summary["last"]["v_mse"] > 0
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["_class_name"] == "GenFusionDynamiCrafter" and saved["checkpoint"] == str(ckpt)
    trained, base = load_fixer(tmp_path / "run" / "model"), load_fixer(ckpt, **SMALL)
    moved = [k for k, v in trained.net.unet.state_dict().items() if not torch.equal(v, base.net.unet.state_dict()[k])]
    assert moved
    assert all(torch.equal(v, base.net.first_stage_model.state_dict()[k])
               for k, v in trained.net.first_stage_model.state_dict().items())  # the VAE is frozen


def test_one_fusion_round_with_the_checkpoint_as_video_fixer(ckpt, tmp_path):
    """`faithfusion fuse genfusion --video-fixer FOLDER`: one GenFusion round with the DynamiCrafter model."""
    from dataclasses import replace

    from tests.test_fusion import tiny

    from faithfusion.fusion.config import GenFusionSchedule
    from faithfusion.fusion.runner import run_method
    from faithfusion.synth import generate

    fixer = tmp_path / "fixer"
    load_fixer(ckpt, **SMALL).save_pretrained(fixer)
    scene = generate(tmp_path / "scene", 0, frames=3, cameras=("front",), width=32, height=32, shifts=(1.0,))
    cfg = tiny(scene, tmp_path / "run", "genfusion", video_fixer=str(fixer))
    cfg = replace(cfg, steps=6, genfusion=GenFusionSchedule(reference_steps=6, warmup=5, every=5, window=3, shifts=(1.0,)))
    run = run_method("genfusion", cfg)
    assert type(run.method.fixer.fixer).__name__ == "GenFusionDynamiCrafter"
    views = run.method.pool.views
    rounds = [json.loads(line) for line in (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()]
    assert len(rounds) == 1 and rounds[0]["views"] == len(views) > 0  # one window of the training frames per shift
    assert all(v.depth is not None and torch.isfinite(v.depth).all() for v in views)
