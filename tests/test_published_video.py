"""Published video priors as released: a tiny CogVideoX image-to-video folder and a VideoPainter branch folder, each
written in exactly its published layout, loaded by `load_fixer` (what `--video-fixer PATH` runs) as real weights are."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from safetensors.torch import load_file, save_file  # noqa: E402

from faithfusion.fixers import load_fixer  # noqa: E402
from faithfusion.fixers.published import CheckpointKeysError, FixerSourceError, detect_fixer_source  # noqa: E402
from faithfusion.fusion.fixers import MissingFixerError, choose_fixer  # noqa: E402
from tests.video_fixtures import (  # noqa: E402
    videopainter_branch_state,
    write_tiny_cogvideox_i2v,
    write_tiny_videopainter_branch,
)

pytestmark = pytest.mark.usefixtures("single_thread")
T, H, W = 5, 32, 48
BRANCH_FILE = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def i2v(tmp_path_factory) -> Path:
    return write_tiny_cogvideox_i2v(tmp_path_factory.mktemp("cogvideox-i2v"))


@pytest.fixture(scope="module")
def i2v_with_branch(i2v, tmp_path_factory) -> Path:
    """The I2V folder with a trained-looking VideoPainter branch in branch/ (as VideoPainter's ckpt/ keeps it)."""
    root = tmp_path_factory.mktemp("with-branch") / "i2v"
    shutil.copytree(i2v, root)
    write_tiny_videopainter_branch(root / "branch", branch_std=0.2)
    return root


def window(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:  # [1, T, H, W, 3], [1, T, H, W]
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, T, H, W, 3, generator=g), torch.rand(1, T, H, W, generator=g)


def test_layouts_are_detected(i2v, i2v_with_branch, tmp_path):
    src = detect_fixer_source(i2v)
    assert src.kind == "cogvideox" and src.branch is None
    assert detect_fixer_source(i2v_with_branch).branch == i2v_with_branch / "branch"
    assert detect_fixer_source(i2v_with_branch / "branch").kind == "videopainter-branch"
    t2v = tmp_path / "t2v"
    shutil.copytree(i2v, t2v)
    index = json.loads((t2v / "model_index.json").read_text())
    (t2v / "model_index.json").write_text(json.dumps({**index, "_class_name": "CogVideoXPipeline"}))
    assert detect_fixer_source(t2v).kind == "cogvideox"


def test_wrong_video_folders_get_clear_errors(i2v, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(i2v, broken)
    shutil.rmtree(broken / "vae")
    (broken / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FixerSourceError, match=r"CogVideoXImageToVideoPipeline folder missing transformer/ "
                                               r"\(diffusion_pytorch_model.safetensors\); vae/"):
        load_fixer(broken)
    with pytest.raises(MissingFixerError, match="vae/"):  # what `fuse --video-fixer` says
        choose_fixer(broken, "eigent", flag="--video-fixer")
    bare = write_tiny_videopainter_branch(tmp_path / "bare")
    (bare / BRANCH_FILE).unlink()
    with pytest.raises(FixerSourceError, match="branch folder missing diffusion_pytorch_model"):
        load_fixer(bare)


def test_a_fresh_branch_and_context_leave_the_loaded_model_unchanged(i2v):
    """Zero-initialised conditioning: with the EIG / render-latent branch and context encoder attached, the
    transformer's prediction (and so the fix) is exactly that of the loaded model without them."""
    from faithfusion.fixers.videopainter import injected

    model = load_fixer(i2v)  # a fresh 2-block VideoPainter branch on the I2V transformer
    assert model.branch is not None and len(model.branch.transformer_blocks) == 2 and model.concat_condition
    plain = load_fixer(i2v, branch_layers=0)
    plain.context.load_state_dict(model.context.state_dict())
    x, eig = window()
    assert torch.equal(model.fix(x, None, eig).images, plain.fix(x, None, eig).images)
    # the branch's outputs are zero and the injection adds exactly nothing
    z = torch.randn(1, 2, 4, 4, 6)
    text = torch.zeros(1, 8, 16)
    samples = model.branch(z, torch.randn(1, 2, 5, 4, 6), text, torch.tensor([199]), model.rotary_embedding(2, 4, 6, "cpu"))
    assert len(samples) == 2 and all(float(s.detach().abs().max()) == 0 for s in samples)
    zin = torch.cat([z, z], dim=2)
    kw = dict(hidden_states=zin, encoder_hidden_states=text, timestep=torch.tensor([199]),
              image_rotary_emb=model.rotary_embedding(2, 4, 6, "cpu"), return_dict=False)
    with torch.no_grad(), injected(model.transformer, samples):
        a = model.transformer(**kw)[0]
    assert torch.equal(a, model.transformer(**kw)[0].detach())
    # the branch starts as VideoPainter starts one: the transformer's blocks, its patch weights twice, mask at 0
    w, tw = model.branch.patch_embed.proj.weight, model.transformer.patch_embed.proj.weight
    assert torch.equal(w[:, :4], tw[:, :4]) and torch.equal(w[:, 4:8], tw[:, :4]) and float(w[:, 8:].abs().max()) == 0


def test_published_branch_loads_every_tensor_and_conditions(i2v, i2v_with_branch):
    model = load_fixer(i2v_with_branch)
    own = model.branch.state_dict()
    file = load_file(str(i2v_with_branch / "branch" / BRANCH_FILE))
    assert set(own) == set(file) and all(torch.equal(own[k], v) for k, v in file.items())
    x, eig = window(1)
    zero = load_fixer(i2v, branch=str(i2v_with_branch / "branch"))  # same branch, then its outputs zeroed
    zero.context.load_state_dict(model.context.state_dict())
    with torch.no_grad():
        for lin in zero.branch.branch_blocks:
            lin.weight.zero_()
            lin.bias.zero_()
    assert (model.fix(x, None, eig).images - zero.fix(x, None, eig).images).abs().max() > 1e-4
    # the branch sees the EIG mask: another EIG map, another branch contribution
    assert (model.fix(x, None, 1 - eig).images - model.fix(x, None, eig).images).abs().max() > 1e-4
    # a branch folder alone is laid over a base (default THUDM/CogVideoX-5b-I2V from the cache; here the tiny one)
    alone = load_fixer(i2v_with_branch / "branch", base=str(i2v))
    assert alone.config.branch == str(i2v_with_branch / "branch") and torch.equal(
        alone.branch.branch_blocks[0].weight, model.branch.branch_blocks[0].weight)


def test_missing_unexpected_or_misshapen_tensors_are_errors(i2v, tmp_path):
    state = videopainter_branch_state()
    lack = write_tiny_videopainter_branch(tmp_path / "lack", state={k: v for k, v in state.items()
                                                                      if not k.startswith("branch_blocks.1.")})
    with pytest.raises(CheckpointKeysError, match=r"missing.*branch_blocks\.1"):
        load_fixer(lack, base=str(i2v))
    extra = write_tiny_videopainter_branch(tmp_path / "extra", state={**state, "branch_blocks.7.weight": torch.zeros(1)})
    with pytest.raises(CheckpointKeysError, match=r"no place.*branch_blocks\.7"):
        load_fixer(extra, base=str(i2v))
    wide = write_tiny_videopainter_branch(tmp_path / "wide", state={
        **state, "patch_embed.proj.weight": torch.zeros(32, 17, 2, 2)})  # a text-to-video branch's 2C + 1 of 16-channel C
    with pytest.raises(CheckpointKeysError, match="wrong shape.*patch_embed.proj.weight"):
        load_fixer(wide, base=str(i2v))
    # the base's own files are checked too: diffusers would only warn
    short = tmp_path / "short"
    shutil.copytree(i2v, short)
    path = short / "transformer" / BRANCH_FILE
    weights = load_file(str(path))
    weights.pop("norm_final.weight")
    save_file(weights, str(path))
    with pytest.raises(CheckpointKeysError, match=r"transformer.*missing.*norm_final.weight"):
        load_fixer(short)


def test_train_step_from_the_published_layout_and_reload(i2v_with_branch, tmp_path):
    from tests.test_fixers_video import _video_cfg, write_fake_video_dataset

    from faithfusion.fixers.train import train_fixer

    index = write_fake_video_dataset(tmp_path / "data", n_train=1, n_test=1, t=T, h=32, w=32)
    cfg = _video_cfg(index, tmp_path / "run", "eigent-cogvideox", steps=1, frames=T, batch_size=1,
                     video_pretrained=str(i2v_with_branch), local_files_only=True, w_lpips=0.0, w_gram=0.0)
    assert train_fixer(cfg)["steps"] == 1
    trained = load_fixer(tmp_path / "run" / "model")  # rebuilt on the folder + branch, trained tensors over it
    assert trained.config.pretrained == str(i2v_with_branch) and trained.config.branch == str(i2v_with_branch / "branch")
    start = load_fixer(i2v_with_branch)
    moved = [k for k, v in trained.branch.state_dict().items() if not torch.equal(v, start.branch.state_dict()[k])]
    assert moved  # the VideoPainter branch trained
    assert all(torch.equal(v, start.vae.state_dict()[k]) for k, v in trained.vae.state_dict().items())


def test_one_fusion_round_with_the_published_folder_as_video_fixer(i2v, tmp_path):
    """`faithfusion fuse faithfusion --video-fixer I2V_FOLDER`: one EIGent round on a tiny scene."""
    from dataclasses import replace

    from tests.test_fusion import tiny

    from faithfusion.fusion.config import FaithFusionSchedule
    from faithfusion.fusion.runner import run_method
    from faithfusion.synth import generate

    scene = generate(tmp_path / "scene", 0, frames=3, cameras=("front",), width=32, height=32, shifts=(1.0,))
    cfg = tiny(scene, tmp_path / "run", "faithfusion", video_fixer=str(i2v))
    cfg = replace(cfg, steps=6, faithfusion=FaithFusionSchedule(reference_steps=6, first=5, every=5, max_shift=1.0,
                                                                 video_until=1.0, window=3, calib_views=1))
    run = run_method("faithfusion", cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()]
    assert [r["fixer"] for r in rows] == ["eigent"] and run.method.pool.views
    assert type(run.method.video.fixer).__name__ == "EIGentCogVideoX"
