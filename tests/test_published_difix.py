"""Published Difix weights as released: tiny random checkpoints in each published layout (nvidia/difix,
nvidia/difix_ref, Difix3D's training .pkl, plain SD-Turbo), loaded by `load_fixer` as a user's real weights are."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")
pytest.importorskip("transformers")

from safetensors.torch import load_file, save_file  # noqa: E402

from faithfusion.fixers import Difix, load_fixer  # noqa: E402
from faithfusion.fixers.published import (  # noqa: E402
    CheckpointKeysError,
    FixerSourceError,
    detect_fixer_source,
    save_difix_pkl,
)
from faithfusion.fusion.fixers import MissingFixerError, choose_fixer  # noqa: E402
from tests.fixer_fixtures import write_tiny_sd_turbo  # noqa: E402
from tests.published_fixtures import (  # noqa: E402
    published_difix_vae,
    published_forward,
    published_modules,
    write_difix_pkl,
    write_tiny_difix_pipeline,
)

pytestmark = pytest.mark.usefixtures("single_thread")
VAE_FILE = Path("vae") / "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def difix_dir(tmp_path_factory) -> Path:
    return write_tiny_difix_pipeline(tmp_path_factory.mktemp("difix"), ref=False)


@pytest.fixture(scope="module")
def difix_ref_dir(tmp_path_factory) -> Path:
    return write_tiny_difix_pipeline(tmp_path_factory.mktemp("difix_ref"), ref=True, seed=1)


@pytest.fixture(scope="module")
def sd_turbo_dir(tmp_path_factory) -> Path:
    return write_tiny_sd_turbo(tmp_path_factory.mktemp("sd-turbo"))


def frames(n: int = 1, h: int = 16, w: int = 24, seed: int = 0) -> torch.Tensor:  # [1, n, h, w, 3]
    return torch.rand(1, n, h, w, 3, generator=torch.Generator().manual_seed(seed))


def copy_with_vae(src: Path, dst: Path, edit) -> Path:
    """A copy of pipeline `src` whose VAE tensors are `edit(state)`."""
    shutil.copytree(src, dst)
    state = load_file(str(dst / VAE_FILE))
    save_file(edit(dict(state)), str(dst / VAE_FILE))
    return dst


def test_each_layout_is_detected(difix_dir, difix_ref_dir, sd_turbo_dir, tmp_path):
    assert detect_fixer_source(difix_dir).kind == "difix-pipeline" and not detect_fixer_source(difix_dir).multiview
    assert detect_fixer_source(difix_ref_dir).multiview
    assert detect_fixer_source(sd_turbo_dir).kind == "sd-turbo"  # the component folders alone
    (tmp_path / "x.pkl").write_bytes(b"")
    assert detect_fixer_source(tmp_path / "x.pkl").kind == "difix-pkl"
    assert detect_fixer_source(Path(__file__).parents[1] / "faithfusion/fixers/weights/difix").kind == "project"


def test_difix_pipeline_loads_every_tensor_and_fixes_as_published(difix_dir):
    model = load_fixer(difix_dir)
    assert isinstance(model, Difix) and model.net.source_kind == "difix-pipeline" and model.net.num_joint == 0
    own = model.net.vae.state_dict()
    for k, v in load_file(str(difix_dir / VAE_FILE)).items():  # skips, .base_layer convs, LoRA A/B: all in place
        assert torch.equal(own[k], v), k
    assert any(".base_layer." in k for k in own) and any(k.startswith("decoder.skip_conv_1.") for k in own)
    x = frames(2)
    want = published_forward(*published_modules(difix_dir), x[0].permute(0, 3, 1, 2) * 2 - 1)
    got = model.fix(x).images[0].permute(0, 3, 1, 2) * 2 - 1
    assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())
    # nvidia/difix's UNet is stock: a reference passes through it view by view and changes nothing
    assert torch.equal(model.fix(x, x[:, 0]).images, model.fix(x).images)


def test_a_published_skip_weight_changes_the_output(difix_dir, tmp_path):
    key = "decoder.skip_conv_1.base_layer.weight"

    def bigger_skip(state):
        state[key] = torch.randn_like(state[key]) * 0.5
        return state

    other = copy_with_vae(difix_dir, tmp_path / "other", bigger_skip)
    a, b = load_fixer(difix_dir), load_fixer(other)
    assert torch.equal(b.net.vae.state_dict()[key], load_file(str(other / VAE_FILE))[key])
    x = frames()
    assert (a.fix(x).images - b.fix(x).images).abs().max() > 1e-3


def test_missing_or_unexpected_tensors_are_errors(difix_dir, tmp_path):
    lack = copy_with_vae(difix_dir, tmp_path / "lack", lambda s: {k: v for k, v in s.items() if "skip_conv_2" not in k})
    with pytest.raises(CheckpointKeysError, match=r"missing.*skip_conv_2"):
        load_fixer(lack)
    extra = copy_with_vae(difix_dir, tmp_path / "extra", lambda s: {**s, "decoder.skip_conv_9.weight": torch.zeros(1)})
    with pytest.raises(CheckpointKeysError, match=r"no place.*skip_conv_9"):
        load_fixer(extra)
    shutil.copytree(difix_dir, tmp_path / "unet")
    state = load_file(str(tmp_path / "unet/unet/diffusion_pytorch_model.safetensors"))
    state.pop(sorted(state)[0])
    save_file(state, str(tmp_path / "unet/unet/diffusion_pytorch_model.safetensors"))
    with pytest.raises(CheckpointKeysError, match="unet"):
        load_fixer(tmp_path / "unet")


def test_difix_ref_joins_the_reference(difix_ref_dir):
    model = load_fixer(difix_ref_dir)
    assert model.net.num_joint > 0
    x = frames(2, seed=3)
    assert (model.fix(x, x[:, 1]).images - model.fix(x).images).abs().max() > 1e-4
    # with the render itself as reference, joint attention is plain self-attention
    assert torch.allclose(model.fix(x[:, :1], x[:, 0]).images, model.fix(x[:, :1]).images, atol=1e-5)


def test_wrong_folders_get_clear_errors(difix_dir, tmp_path):
    with pytest.raises(FixerSourceError, match="not a fixer.*model_index.json"):
        load_fixer(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(difix_dir, broken)
    shutil.rmtree(broken / "vae")
    for f in (broken / "tokenizer").iterdir():  # an emptied tokenizer folder
        f.unlink()
    with pytest.raises(FixerSourceError, match=r"difix-pipeline folder missing vae/; tokenizer/"):
        load_fixer(broken)
    other = tmp_path / "other"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "CogVideoXPipeline"}))
    with pytest.raises(FixerSourceError, match="CogVideoXPipeline"):
        load_fixer(other)
    with pytest.raises(MissingFixerError, match="vae/"):  # fusion's --fixer says the same
        choose_fixer(broken, "difix")


def test_hub_ids_come_from_the_local_cache_only(difix_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FixerSourceError, match="huggingface-cli download nvidia/difix"):
        load_fixer("nvidia/difix")
    repo = tmp_path / "hub" / "models--nvidia--difix"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    shutil.copytree(difix_dir, repo / "snapshots" / ("0" * 40))
    model = load_fixer("nvidia/difix")
    assert model.net.source_kind == "difix-pipeline"


def test_difix3d_pkl_over_sd_turbo_and_round_trip(sd_turbo_dir, tmp_path):
    from diffusers import UNet2DConditionModel

    # a checkpoint as Difix3D's training writes it: whole UNet (changed), VAE LoRA + skips
    vae_cfg = json.loads((sd_turbo_dir / "vae" / "config.json").read_text())
    vae = published_difix_vae(vae_cfg, seed=5)
    unet = UNet2DConditionModel.from_pretrained(sd_turbo_dir / "unet")
    with torch.no_grad():
        unet.conv_in.weight.mul_(1.5)
    pkl = write_difix_pkl(tmp_path / "model_100.pkl", unet, vae, vae.difix_targets)
    model = load_fixer(pkl, base=str(sd_turbo_dir))
    assert torch.equal(model.net.unet.conv_in.weight, unet.conv_in.weight)
    for k, v in vae.state_dict().items():
        if "lora" in k or "skip" in k:
            assert torch.equal(model.net.vae.state_dict()[k], v), k
    # the pkl laid over SD-Turbo fixes as Difix3D's forward does with those weights
    from diffusers import DDPMScheduler
    from transformers import CLIPTextModel, CLIPTokenizer

    sd_vae = published_difix_vae(vae_cfg, randomise=False)
    sd_vae.load_state_dict({**model.net.vae.state_dict()})
    x = frames()
    want = published_forward(CLIPTokenizer.from_pretrained(sd_turbo_dir / "tokenizer"),
                             CLIPTextModel.from_pretrained(sd_turbo_dir / "text_encoder"), unet, sd_vae,
                             DDPMScheduler.from_pretrained(sd_turbo_dir / "scheduler"), x[0].permute(0, 3, 1, 2) * 2 - 1)
    assert torch.allclose(model.fix(x).images[0].permute(0, 3, 1, 2) * 2 - 1, want, atol=1e-4)
    # written back in Difix3D's layout, read again: the same fixer
    again = load_fixer(save_difix_pkl(model.net.unet, model.net.vae, model.net.lora_rank, model.net.lora_targets,
                                      tmp_path / "back.pkl"), base=str(sd_turbo_dir))
    assert torch.equal(again.fix(x).images, model.fix(x).images)
    # a pickle of another kind is refused by name
    torch.save({"state_dict_unet": {}}, tmp_path / "bad.pkl")
    with pytest.raises(FixerSourceError, match="lacks state_dict_vae"):
        load_fixer(tmp_path / "bad.pkl", base=str(sd_turbo_dir))


def test_sd_turbo_folder_is_an_untrained_difix(sd_turbo_dir):
    model = load_fixer(sd_turbo_dir)
    assert model.net.source_kind == "sd-turbo" and model.net.num_joint > 0
    assert all(float(c.weight.detach().abs().max()) == pytest.approx(1e-5) for c in model.net.skip_convs)


def test_legacy_skip_names_still_load(sd_turbo_dir, tmp_path):
    model = load_fixer(sd_turbo_dir)
    with torch.no_grad():
        model.net.skip_convs[0].weight.normal_()
    model.save_pretrained(tmp_path / "fx")
    path = tmp_path / "fx" / "model.safetensors"
    state = {k.replace("decoder.skip_conv_1.", "decoder.skip_convs.0."): v for k, v in load_file(str(path)).items()}
    save_file(state, str(path))
    again = load_fixer(tmp_path / "fx")
    assert torch.equal(again.net.skip_convs[0].weight, model.net.skip_convs[0].weight)


def test_train_step_from_a_published_pipeline(difix_dir, tmp_path):
    from test_fixers import write_fake_dataset

    from faithfusion.fixers.train import FixerTrainConfig, train_fixer

    index = write_fake_dataset(tmp_path / "data", n_train=2, n_test=1, h=32, w=40)
    cfg = FixerTrainConfig(index=index, out=tmp_path / "run", backbone="sd-turbo", init=difix_dir, steps=1,
                           batch_size=1, crop=32, ckpt_every=1, num_workers=0, progress=False, val_samples=1, val_grid=1)
    assert train_fixer(cfg)["steps"] == 1
    trained = load_fixer(tmp_path / "run" / "model")  # rebuilt on the pipeline folder, trained tensors over it
    assert trained.config.pretrained == str(difix_dir) and not trained.config.joint_attention
    start = load_fixer(difix_dir)
    moved = [k for k, v in trained.net.vae.state_dict().items() if "lora_B" in k
             and not torch.equal(v, start.net.vae.state_dict()[k])]
    assert moved  # the decoder LoRA trained
