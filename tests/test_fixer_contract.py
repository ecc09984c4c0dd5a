"""The contract every fixer kind keeps (the `Fixer` protocol), checked on the tiny fixers of tests/fixer_fixtures.py.

save -> load gives the same outputs; fix with and without a reference, an EIG condition and depth; the inputs a
kind takes change its output and the ones it ignores do not; output shape, dtype, device and range; a batch of
several windows is each window fixed alone; an untrained fixer returns its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
import torch

from faithfusion.fixers import Fixer, FixerOutput, load_fixer
from tests.fixer_fixtures import (
    smooth_video,
    tiny_difix,
    tiny_eigent,
    tiny_eigent_cogvideox,
    tiny_genfusion,
    tiny_sd_turbo_difix,
    write_tiny_cogvideox,
    write_tiny_sd_turbo,
)

B, T, H, W = 2, 4, 32, 48


@dataclass
class Kind:
    build: Callable[..., Fixer]
    takes: frozenset[str]  # the optional inputs that change the output: ref, eig, depth
    identity_at_init: bool = True


def _sd_turbo(tmp_path_factory) -> Callable[..., Fixer]:
    pytest.importorskip("diffusers")
    pytest.importorskip("peft")
    pytest.importorskip("transformers")
    repo = write_tiny_sd_turbo(tmp_path_factory.mktemp("tiny-sd-turbo"))
    return lambda seed=0, identity=False: tiny_sd_turbo_difix(repo, seed).eval()


def _cogvideox(tmp_path_factory) -> Callable[..., Fixer]:
    pytest.importorskip("peft")
    repo = write_tiny_cogvideox(tmp_path_factory.mktemp("tiny-cogvideox"))
    return lambda seed=0, identity=False: tiny_eigent_cogvideox(repo, seed)


KINDS = ["difix", "difix-sd-turbo", "eigent", "eigent-cogvideox", "genfusion"]


@pytest.fixture(scope="module", params=KINDS)
def kind(request, tmp_path_factory) -> tuple[str, Kind]:
    name = request.param
    if name == "difix":
        return name, Kind(tiny_difix, frozenset({"ref"}))
    if name == "difix-sd-turbo":
        return name, Kind(_sd_turbo(tmp_path_factory), frozenset({"ref"}), identity_at_init=False)
    if name == "eigent":
        return name, Kind(tiny_eigent, frozenset({"ref", "eig"}))
    if name == "eigent-cogvideox":  # the reference view is not used by this backbone
        return name, Kind(_cogvideox(tmp_path_factory), frozenset({"eig"}), identity_at_init=False)
    return name, Kind(tiny_genfusion, frozenset({"ref", "depth"}))


@pytest.fixture(scope="module")
def model(kind) -> Fixer:
    return kind[1].build(seed=1)


pytestmark = pytest.mark.usefixtures("single_thread")


def inputs(b: int = B, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"images": smooth_video(b, T, H, W, seed), "ref": torch.rand(b, H, W, 3, generator=g),
            "eig": torch.rand(b, T, H, W, generator=g), "depth": 2 + 20 * torch.rand(b, T, H, W, generator=g)}


def fix(m: Fixer, x: dict[str, torch.Tensor], use: set[str]) -> FixerOutput:
    with torch.no_grad():
        return m.fix(x["images"], **{k: x[k] for k in ("ref", "eig", "depth") if k in use})


def check_output(out: FixerOutput, images: torch.Tensor, use: set[str]) -> None:
    assert isinstance(out, FixerOutput)
    y = out.images
    assert y.shape == images.shape and y.dtype == images.dtype and y.device == images.device
    assert torch.isfinite(y).all() and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    if out.depth is not None:
        assert "depth" in use and out.depth.shape == images.shape[:-1] and torch.isfinite(out.depth).all()


def test_is_a_fixer(model):
    assert isinstance(model, Fixer)


@pytest.mark.parametrize("use", [set(), {"ref"}, {"eig"}, {"ref", "eig"}, {"ref", "eig", "depth"}],
                         ids=lambda u: "+".join(sorted(u)) or "plain")
def test_output_shape_dtype_device_and_range(model, use):
    x = inputs()
    check_output(fix(model, x, use), x["images"], use)


@pytest.mark.parametrize("name", ["ref", "eig", "depth"])
def test_inputs_it_takes_change_the_output_and_the_others_do_not(kind, model, name):
    x, other = inputs(seed=0), inputs(seed=5)
    base = fix(model, x, {name}).images
    changed = fix(model, {**x, name: other[name]}, {name}).images
    if name in kind[1].takes:
        assert (changed - base).abs().max() > 1e-4
    else:
        assert torch.equal(changed, base)


def test_a_batch_is_each_window_fixed_alone(model):
    x = inputs(b=3, seed=2)
    use = {"ref", "eig", "depth"}
    together = fix(model, x, use).images
    for k in range(3):
        alone = fix(model, {n: v[k:k + 1] for n, v in x.items()}, use).images
        assert torch.allclose(alone[0], together[k], atol=1e-5)


def test_save_then_load_gives_the_same_outputs(kind, model, tmp_path):
    model.save_pretrained(tmp_path / "fixer")
    loaded = load_fixer(tmp_path / "fixer")
    assert type(loaded) is type(model) and loaded.config == model.config
    x = inputs(b=1, seed=3)
    use = {"ref", "eig", "depth"}
    want, got = fix(model, x, use), fix(loaded, x, use)
    assert torch.equal(got.images, want.images)
    assert (got.depth is None) == (want.depth is None) and (got.depth is None or torch.equal(got.depth, want.depth))


def test_inputs_of_the_wrong_shape_are_refused(model):
    x = inputs(b=1)
    with pytest.raises(ValueError):
        model.fix(x["images"], eig=x["eig"][..., :-1])
    with pytest.raises(ValueError):
        model.fix(x["images"][0])  # no batch axis


def test_an_untrained_fixer_returns_its_input(kind):
    if not kind[1].identity_at_init:
        pytest.skip(f"{kind[0]} starts from pretrained weights, not from an identity")
    x = inputs(b=1)
    out = fix(kind[1].build(identity=True), x, {"ref", "eig"})
    assert torch.allclose(out.images, x["images"], atol=1e-5)
