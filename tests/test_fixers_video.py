"""Video fixers: EIGent (compact and on a tiny random CogVideoX), GenFusion's RGB-D fixer, video data and training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import requires_lpips
import torch
import torch.nn.functional as F
from PIL import Image

from faithfusion.fixers import Difix, Fixer, FixerOutput, load_fixer
from faithfusion.fixers.base import WEIGHTS_NAME
from faithfusion.fixers.dataset import VideoFixerDataset, collate, read_index, read_video_index
from faithfusion.fixers.eigent import EIGent, causal_time_pool
from faithfusion.fixers.genfusion import (
    GenFusion,
    denormalise_disparity,
    disparity_range,
    normalise_disparity,
)
from faithfusion.fixers.losses import FixerLoss, temporal_difference_l1
from faithfusion.fixers.train import FixerTrainConfig, train_fixer
from tests.fixer_fixtures import (
    TINY_EIGENT,
    TINY_EIGENT_DIFIX,
    TINY_GENFUSION,
    smooth_video,
    tiny_difix as shared_tiny_difix,
    tiny_eigent,
    tiny_genfusion,
    write_tiny_cogvideox,
)


pytestmark = pytest.mark.usefixtures("single_thread")


T, H, W = 16, 48, 64


# --- EIGent -----------------------------------------------------------------------------------


def test_eigent_shapes_protocol_and_sizes():
    m = tiny_eigent()
    assert isinstance(m, Fixer)
    x, ref, eig = smooth_video(2, T, H, W), torch.rand(2, 40, 56, 3), torch.rand(2, T, H, W)
    out = m.fix(x, ref, eig)
    assert isinstance(out, FixerOutput) and out.depth is None
    assert out.images.shape == (2, T, H, W, 3) and out.images.dtype == x.dtype
    assert 0 <= float(out.images.min()) and float(out.images.max()) <= 1
    odd = torch.rand(1, 3, 37, 50, 3)  # padded to multiples of 16 inside, cropped back
    assert m.fix(odd).images.shape == odd.shape
    run = m.run(x[:1], ref[:1], eig[:1])
    assert run["gate"].shape == run["mask"].shape == (1, T, H, W)
    with pytest.raises(ValueError):
        m.fix(x, eig=torch.rand(2, T, H, W + 1))


def test_untrained_eigent_is_identity_and_default_size():
    x = smooth_video(1, 4, 32, 32)
    assert torch.allclose(EIGent(TINY_EIGENT).fix(x, eig=torch.rand(1, 4, 32, 32)).images, x, atol=1e-6)
    n = EIGent().num_parameters()
    assert n * 4 <= 15e6, n  # shippable: <= 15 MB in fp32
    assert EIGent().time.timestep == 199


def test_eig_conditioning_changes_the_output():
    m = tiny_eigent()
    x, ref = smooth_video(1, T, H, W), torch.rand(1, H, W, 3)
    a = m.fix(x, ref, torch.rand(1, T, H, W, generator=torch.Generator().manual_seed(1))).images
    b = m.fix(x, ref, torch.rand(1, T, H, W, generator=torch.Generator().manual_seed(2))).images
    assert (a - b).abs().max() > 1e-3
    # EIG enters the network, not only the output gate: with the gate pinned open the outputs still differ
    m.gate.log_scale.data.fill_(-20.0)
    m.gate.bias.data.fill_(20.0)
    a = m.fix(x, ref, torch.zeros(1, T, H, W)).images
    b = m.fix(x, ref, torch.ones(1, T, H, W)).images
    assert (a - b).abs().max() > 1e-4


def test_low_eig_stays_faithful_with_the_initial_gate():
    m = tiny_eigent()
    x, ref = smooth_video(1, T, H, W), torch.rand(1, H, W, 3)
    low = (m.fix(x, ref, torch.zeros(1, T, H, W)).images - x).abs()
    high = (m.fix(x, ref, torch.ones(1, T, H, W)).images - x).abs()
    assert float(high.mean()) > 1e-3  # the randomised model does change high-EIG pixels
    assert float(low.mean()) < 0.05 * float(high.mean()) and float(low.max()) < 0.02
    # and a mixed map: the change follows the EIG
    eig = torch.zeros(1, T, H, W)
    eig[..., :, W // 2:] = 1
    d = (m.fix(x, ref, eig).images - x).abs()
    assert float(d[..., :, : W // 4, :].mean()) < 0.05 * float(d[..., :, W // 2:, :].mean())


def test_windows_are_independent_and_frames_interact():
    m = tiny_eigent()
    x, ref, eig = smooth_video(2, 6, 32, 32), torch.rand(2, 32, 32, 3), torch.rand(2, 6, 32, 32)
    both = m.fix(x, ref, eig).images
    one = torch.cat([m.fix(x[i:i + 1], ref[i:i + 1], eig[i:i + 1]).images for i in range(2)])
    assert torch.allclose(both, one, atol=1e-5)
    y = x.clone()
    y[:, 0] = torch.rand_like(y[:, 0])  # change frame 0 only: temporal attention carries it to frame 5
    assert (m.fix(y, ref, eig).images[:, 5] - both[:, 5]).abs().max() > 1e-5


def test_difix_branch_loads_a_compact_difix():
    torch.manual_seed(0)
    difix = Difix(TINY_EIGENT_DIFIX).eval()
    for b in difix.net.blocks:
        torch.nn.init.normal_(b.ada.weight, std=0.1)
    m = EIGent(TINY_EIGENT).eval()
    m.load_difix_branch(difix)
    seen = {}
    difix.net.norm_out.register_forward_hook(lambda mod, i, o: seen.setdefault("tokens", o))
    x, ref = torch.rand(1, 1, 32, 32, 3), torch.rand(1, 32, 32, 3)
    with torch.no_grad():
        difix(x[:, 0], ref)
        tokens = m.difix(x[0].permute(0, 3, 1, 2) * 2 - 1, ref.permute(0, 3, 1, 2) * 2 - 1, t=1).tokens
    assert torch.allclose(tokens, seen["tokens"][:, :16], atol=1e-5)  # the render's tokens, as Difix computes them


def tiny_difix(seed: int = 0) -> Difix:
    """A compact Difix that fits TINY_EIGENT's Difix branch."""
    return shared_tiny_difix(seed, config=TINY_EIGENT_DIFIX)


def test_eigent_on_difix_starts_as_the_eig_gated_blend_of_render_and_difix():
    difix = tiny_difix()
    m = EIGent.on_difix(difix, gate_open=0.5, latent_channels=4, dim=16, heads=2, coarse_depth=1, fine_depth=1,
                        mlp_ratio=2.0, context_width=8).eval()
    x, ref = torch.rand(1, 4, 32, 32, 3), torch.rand(1, 32, 32, 3)
    d = difix.fix(x, ref).images[0]  # [4, 32, 32, 3], per frame
    assert (d - x[0]).abs().mean() > 1e-3  # the tiny Difix does change the frames
    for value, g in ((0.0, 0.5), (1.0, 1 / (1 + np.exp(-(10 * 0.5 + 10 * 0.5))))):  # g = sigmoid(10 (eig - 0.5) + b)
        out = m.fix(x, ref, torch.full((1, 4, 32, 32), value)).images[0]
        assert torch.allclose(out, x[0] + g * (d - x[0]), atol=1e-4), value
    # in the residual design the same fresh model would return the render exactly
    assert torch.allclose(EIGent(TINY_EIGENT).fix(x, ref, torch.zeros(1, 4, 32, 32)).images, x, atol=1e-6)


def test_eigent_on_difix_trains_the_video_side_only(tmp_path):
    difix = tiny_difix()
    m = EIGent.on_difix(difix, latent_channels=4, dim=16, heads=2, coarse_depth=1, fine_depth=1, mlp_ratio=2.0,
                        context_width=8)
    trainable = {id(p) for p in m.trainable_parameters()}
    assert not any(id(p) in trainable for p in m.difix.parameters())
    assert m.gate.bias.requires_grad and m.num_parameters(True) < m.num_parameters()
    before = {k: v.clone() for k, v in m.difix.state_dict().items()}
    opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-2)
    x, ref, eig = torch.rand(1, 4, 32, 32, 3), torch.rand(1, 32, 32, 3), torch.rand(1, 4, 32, 32)
    for _ in range(2):
        loss = (m(x, ref, eig) - 0.5).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(v, before[k]) for k, v in m.difix.state_dict().items())
    m.save_pretrained(tmp_path / "e")
    loaded = load_fixer(tmp_path / "e")
    assert loaded.config.difix_decoder and torch.equal(loaded.fix(x, ref, eig).images, m.fix(x, ref, eig).images)


def test_eigent_on_difix_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="mlp_ratio"):
        EIGent.on_difix(tiny_difix(), mlp_ratio=3.0)
    with pytest.raises(ValueError, match="gate_open"):
        EIGent.on_difix(tiny_difix(), gate_open=1.0, mlp_ratio=2.0)
    with pytest.raises(ValueError, match="compact Difix"):
        EIGent.on_difix(torch.nn.Linear(2, 2))


# --- GenFusion --------------------------------------------------------------------------------


def test_genfusion_rgbd_shapes_and_depth_round_trip():
    x, ref = smooth_video(2, T, H, W), torch.rand(2, 40, 56, 3)
    depth = 2 + 30 * torch.rand(2, T, H, W)
    depth[0, 0, :5] = 0  # no render depth here
    depth[1, 3, :, :4] = float("inf")
    m = GenFusion(TINY_GENFUSION)  # untrained: zero head, returns its input
    out = m.fix(x, ref, depth=depth, ref_depth=3 + torch.rand(2, 40, 56))
    assert out.images.shape == x.shape and out.depth.shape == depth.shape and out.depth.dtype == depth.dtype
    valid = torch.isfinite(depth) & (depth > 0)
    assert torch.allclose(out.images, x, atol=1e-6)
    assert torch.allclose(out.depth[valid], depth[valid], rtol=1e-4)  # disparity -> depth with the same normalisation
    far = 1.0 / disparity_range(depth).lo  # pixels without render depth: no farther than the window's farthest
    assert torch.all(out.depth[~valid].view(-1) <= far.max() * (1 + 1e-4))
    r = tiny_genfusion().fix(x, ref, depth=depth)
    assert r.depth.shape == depth.shape and torch.isfinite(r.depth).all() and (r.depth > 0).all()
    assert tiny_genfusion().fix(x, ref).depth is None  # RGB only: no depth out
    with pytest.raises(ValueError):
        m.fix(x, ref, depth=depth, ref_depth=torch.rand(2, 5, 5))


def test_disparity_normalisation_is_per_window_and_invertible():
    depth = 1 + 99 * torch.rand(3, 4, 8, 8)
    rng = disparity_range(depth)
    d, valid = normalise_disparity(depth, rng)
    assert valid.all() and float(d.min()) == pytest.approx(0, abs=1e-6) and float(d.max()) == pytest.approx(1, abs=1e-6)
    assert torch.allclose(denormalise_disparity(d, rng), depth, rtol=1e-4)
    d5, _ = normalise_disparity(5 * depth, disparity_range(5 * depth))  # scale-free: a window's own range
    assert torch.allclose(d5, d, atol=1e-5)
    near = torch.tensor([[[[1.0, 2.0], [4.0, 8.0]]]])
    dn, _ = normalise_disparity(near, disparity_range(near))
    assert dn[0, 0, 0, 0] == pytest.approx(1) and dn[0, 0, 1, 1] == pytest.approx(0)  # near = 1, far = 0


def test_genfusion_reference_and_depth_inputs_matter():
    m = tiny_genfusion()
    x, depth = smooth_video(1, 4, 32, 32), 2 + 8 * torch.rand(1, 4, 32, 32)
    ref = torch.rand(1, 32, 32, 3)
    base = m.fix(x, ref, depth=depth).images
    assert (m.fix(x, torch.rand(1, 32, 32, 3), depth=depth).images - base).abs().max() > 1e-4
    assert (m.fix(x, ref, depth=depth, ref_depth=torch.full((1, 32, 32), 3.0)).images - base).abs().max() > 1e-4
    assert (m.fix(x, ref, depth=depth.flip(-1)).images - base).abs().max() > 1e-4
    n = GenFusion().num_parameters()
    assert n * 4 <= 15e6, n


# --- video data and training ------------------------------------------------------------------


def write_fake_video_dataset(root: Path, n_train: int = 4, n_test: int = 1, t: int = T, h: int = 40, w: int = 48) -> Path:
    """Windows whose degraded frames are the target blurred + noised inside a high-EIG box (EIG 1 there, 0 elsewhere);
    render depth is the target depth plus noise in the box. An image sample too (ignored by video readers)."""
    root.mkdir(parents=True, exist_ok=True)
    n = n_train + n_test
    tgt = smooth_video(n, t, h, w, seed=10)
    g = torch.Generator().manual_seed(11)
    box = torch.zeros(h, w, dtype=torch.bool)
    box[h // 4: 3 * h // 4, w // 3:] = True
    blur = F.avg_pool2d(tgt.flatten(0, 1).permute(0, 3, 1, 2), 5, 1, 2, count_include_pad=False).permute(0, 2, 3, 1)
    deg = torch.where(box[:, :, None], (blur + 0.08 * torch.randn(blur.shape, generator=g)).clamp(0, 1), tgt.flatten(0, 1))
    deg = deg.view(n, t, h, w, 3)
    tdepth = 2 + 10 * tgt.mean(-1)  # [n, t, h, w]
    rdepth = torch.where(box, tdepth * (1 + 0.3 * torch.rand(tdepth.shape, generator=g)), tdepth)
    samples = []
    save = lambda img, path: Image.fromarray((img.numpy() * 255 + 0.5).astype(np.uint8)).save(root / path)  # noqa: E731
    for i in range(n):
        names = {k: [] for k in ("degraded", "target", "eig", "depth", "target_depth")}
        for j in range(t):
            for key, img in (("degraded", deg[i, j]), ("target", tgt[i, j])):
                save(img, f"{key}_{i}_{j}.png")
                names[key].append(f"{key}_{i}_{j}.png")
            for key, arr in (("eig", box.float()), ("depth", rdepth[i, j]), ("target_depth", tdepth[i, j])):
                np.save(root / f"{key}_{i}_{j}.npy", arr.numpy().astype(np.float32))
                names[key].append(f"{key}_{i}_{j}.npy")
        save(tgt[i, 0], f"ref_{i}.png")
        samples.append({"kind": "video", **names, "reference": f"ref_{i}.png", "scene": "synth_0",
                        "split": "train" if i < n_train else "test"})
    samples.append({"degraded": "degraded_0_0.png", "target": "target_0_0.png", "kind": "lane_shift"})
    (root / "index.json").write_text(json.dumps({"root": ".", "samples": samples}))
    return root / "index.json"


def test_video_dataset_windows_crops_and_maps(tmp_path):
    index = write_fake_video_dataset(tmp_path / "d", n_train=2, n_test=1, t=6)
    assert len(read_video_index(index)) == 3 and len(read_index(index)) == 1  # image readers skip video samples
    ds = VideoFixerDataset(index, "train", crop=16, frames=4)
    item = ds[(0, 7)]
    assert item["degraded"].shape == item["target"].shape == (4, 16, 16, 3)
    assert item["eig"].shape == item["depth"].shape == item["target_depth"].shape == (4, 16, 16)
    assert item["reference"].shape == (16, 16, 3) and item["has_ref"]
    again = ds[(0, 7)]
    assert all(torch.equal(item[k], again[k]) for k in ("degraded", "eig", "depth"))  # the seed fixes the window
    full = VideoFixerDataset(index, "train", crop=None, frames=None)[0]
    assert full["target"].shape == (6, 40, 48, 3)
    # the same crop window (and the same frames) in every frame and map
    hits = [(f, y, x) for f in range(3) for y in range(25) for x in range(33)
            if torch.equal(full["target"][f:f + 4, y:y + 16, x:x + 16], item["target"])]
    assert len(hits) == 1
    f, y, x = hits[0]
    for k in ("degraded", "eig", "depth", "target_depth"):
        assert torch.equal(full[k][f:f + 4, y:y + 16, x:x + 16], item[k]), k
    batch = collate([ds[(0, 1)], ds[(1, 2)]])
    assert batch["degraded"].shape == (2, 4, 16, 16, 3) and batch["eig"].shape == (2, 4, 16, 16)


def _video_cfg(index: Path, out: Path, model: str, steps: int, **kw) -> FixerTrainConfig:
    # the Gram term (same code as for frames) is left off: its deep-tap Gram matrices are slow on a busy CPU
    return FixerTrainConfig(index=index, out=out, model=model, steps=steps, crop=32, lr=3e-3, schedule="constant",
                            warmup=0, gram_warmup=10**9, ckpt_every=100, num_workers=0, progress=False, log_every=1,
                            val_samples=1, val_grid=1, device="cpu", **{"batch_size": 2, **kw})


@pytest.fixture(scope="module")
def video_index(tmp_path_factory) -> Path:
    return write_fake_video_dataset(tmp_path_factory.mktemp("video"))


@requires_lpips
def test_train_eigent_on_video_windows_lowers_the_loss(tmp_path, monkeypatch, video_index):
    import faithfusion.fixers.train as train_mod

    torch.manual_seed(0)
    monkeypatch.setattr(train_mod, "build_model", lambda cfg: EIGent(TINY_EIGENT))
    summary = train_fixer(_video_cfg(video_index, tmp_path / "e", "eigent", steps=16))
    log = [json.loads(line) for line in (tmp_path / "e" / "train_log.jsonl").read_text().splitlines()]
    assert summary["steps"] == 16 and len(log) == 16 and all(np.isfinite(r["loss"]) for r in log)
    val = [json.loads(line) for line in (tmp_path / "e" / "val" / "metrics.jsonl").read_text().splitlines()]
    assert len(val) == 8 and val[-1]["windows"] == 1 and (tmp_path / "e" / "val" / "epoch_001.png").is_file()
    if val[-1]["lpips"] is not None:  # (None where the LPIPS weights are missing: L2 only)
        assert val[-1]["lpips"] < val[0]["lpips"] < val[0]["lpips_input"]
    # the training loss (L2 + LPIPS) on the whole training windows: lower than the untrained (identity) model's
    m = load_fixer(tmp_path / "e" / "model")
    assert type(m) is EIGent
    batch = collate([VideoFixerDataset(video_index, "train", crop=None)[i] for i in range(4)])
    loss = FixerLoss()
    with torch.no_grad():
        before = loss(batch["degraded"], batch["target"], gram=False)[0]
        after = loss(m(batch["degraded"], batch["reference"], batch["eig"]), batch["target"], gram=False)[0]
    assert float(after) < 0.9 * float(before)
    cfg = json.loads((tmp_path / "e" / "config.json").read_text())
    assert cfg["model"] == "eigent" and cfg["resolved"]["lr"] == 3e-3


def test_train_eigent_on_a_saved_difix_keeps_the_difix_branch(tmp_path, video_index):
    difix = tiny_difix()
    difix.save_pretrained(tmp_path / "difix")
    with pytest.raises(ValueError, match="--model eigent"):
        train_fixer(_video_cfg(video_index, tmp_path / "g", "genfusion", steps=1, eigent_on_difix=tmp_path / "difix"))
    train_fixer(_video_cfg(video_index, tmp_path / "e", "eigent", steps=2, w_lpips=0.0, eigent_on_difix=tmp_path / "difix"))
    m = load_fixer(tmp_path / "e" / "model")
    assert type(m) is EIGent and m.config.difix_decoder and m.config.difix_dim == 16
    want = difix.net.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in m.difix.net.state_dict().items())  # frozen
    assert not torch.equal(m.decoder.head[1].weight, torch.zeros_like(m.decoder.head[1].weight))  # the video side trained


def test_temporal_difference_l1_costs_flicker_not_motion():
    torch.manual_seed(0)
    target = torch.rand(2, 5, 8, 8, 3)
    assert float(temporal_difference_l1(target + 0.1, target)) < 1e-7  # a steady offset: no flicker
    flicker = torch.zeros(2, 5, 1, 1, 1)
    flicker[:, 1::2] = 0.1  # every other frame brighter
    assert float(temporal_difference_l1(target + flicker, target)) == pytest.approx(0.1, rel=1e-5)
    with pytest.raises(ValueError, match="T>=2"):
        temporal_difference_l1(target[:, :1], target[:, :1])


def test_train_with_the_temporal_term_logs_it(tmp_path, video_index, monkeypatch):
    import faithfusion.fixers.train as train_mod

    torch.manual_seed(0)
    monkeypatch.setattr(train_mod, "build_model", lambda cfg: EIGent(TINY_EIGENT))
    train_fixer(_video_cfg(video_index, tmp_path / "e", "eigent", steps=2, w_lpips=0.0, w_temporal=2.0))
    log = [json.loads(line) for line in (tmp_path / "e" / "train_log.jsonl").read_text().splitlines()]
    assert all("temporal_l1" in r and r["loss"] >= 2.0 * r["temporal_l1"] for r in log)


@pytest.mark.parametrize("depth_loss,term", [("log_depth", "log_depth_l1"), ("disparity", "disparity_l1")])
def test_train_genfusion_with_a_depth_loss(tmp_path, monkeypatch, video_index, depth_loss, term):
    import faithfusion.fixers.train as train_mod

    torch.manual_seed(0)
    monkeypatch.setattr(train_mod, "build_model", lambda cfg: GenFusion(TINY_GENFUSION))
    train_fixer(_video_cfg(video_index, tmp_path / "g", "genfusion", steps=6, frames=8, depth_loss=depth_loss))
    log = [json.loads(line) for line in (tmp_path / "g" / "train_log.jsonl").read_text().splitlines()]
    other = ({"log_depth_l1", "disparity_l1"} - {term}).pop()
    assert len(log) == 6 and all(term in r and other not in r and np.isfinite(r["loss"]) for r in log)
    val = json.loads((tmp_path / "g" / "val" / "metrics.jsonl").read_text().splitlines()[-1])
    assert val["windows"] == 1 and all(val[k] is not None for k in ("log_depth_l1", "disparity_l1", "depth_abs_rel"))
    assert val["depth_abs_rel_input"] > 0.01  # the fake render depth is off by up to 30 % in a box
    assert type(load_fixer(tmp_path / "g" / "model")) is GenFusion


@requires_lpips
@pytest.mark.parametrize("name", ["eigent", "genfusion"])
def test_training_steps_lower_the_video_loss_on_a_fixed_batch(name, video_index):
    """The train command's loss (RGB L2 + LPIPS, + log-depth L1 for GenFusion) on fixed 16-frame crops."""
    from faithfusion.fixers.train import video_loss

    torch.manual_seed(0)
    model = (EIGent(TINY_EIGENT) if name == "eigent" else GenFusion(TINY_GENFUSION)).train()
    data = VideoFixerDataset(video_index, "train", crop=32, frames=T)
    batch = collate([data[(0, 5)], data[(1, 6)]])
    cfg = _video_cfg(video_index, Path("unused"), name, steps=1)
    loss_fn, dev = FixerLoss(), torch.device("cpu")
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=3e-3)
    first = None
    for _ in range(20):
        loss, terms = video_loss(model, batch, loss_fn, cfg, dev, gram=False)
        first = terms if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = video_loss(model, batch, loss_fn, cfg, dev, gram=False)[1]
    assert last["loss"] < 0.8 * first["loss"], (first, last)
    if name == "genfusion":
        assert "log_depth_l1" in last and last["log_depth_l1"] < first["log_depth_l1"] + 1e-3


def test_train_config_lr_and_model_choice(tmp_path):
    cfg = FixerTrainConfig(index=tmp_path / "i.json", out=tmp_path)
    assert cfg.model == "difix" and not cfg.is_video and cfg.resolved_lr() == 3e-4
    assert FixerTrainConfig(index=tmp_path, out=tmp_path, model="eigent-cogvideox").resolved_schedule() == "constant"
    assert FixerTrainConfig(index=tmp_path, out=tmp_path, model="genfusion").resolved_schedule() == "cosine"


# --- EIGent on a tiny random CogVideoX ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_cogvideox(tmp_path_factory) -> Path:
    return write_tiny_cogvideox(tmp_path_factory.mktemp("tiny-cogvideox"))


def test_eigent_cogvideox_fix_train_save_load(tiny_cogvideox, tmp_path, monkeypatch):
    from faithfusion.fixers.eigent import EIGentCogVideoX, EIGentCogVideoXConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # local_files_only=None follows it: nothing may be downloaded
    torch.manual_seed(0)
    m = EIGentCogVideoX(EIGentCogVideoXConfig(pretrained=str(tiny_cogvideox), lora_rank=2))
    assert m.multiple == 16 and not m.concat_condition and m.prediction_type == "v_prediction"
    assert 0 < m.alpha_prod_t < 1
    x, eig = smooth_video(1, T, H, W), torch.rand(1, T, H, W)
    out = m.fix(x, None, eig)
    assert out.images.shape == x.shape and torch.isfinite(out.images).all()
    low = (m.fix(x, None, torch.zeros(1, T, H, W)).images - x).abs()
    assert float(low.max()) < 0.02  # the initial gate keeps low-EIG pixels
    # one training step: only the context encoder, text embedding, gate and LoRA move
    frozen = {k: v.clone() for k, v in m.vae.state_dict().items()}
    base = {k: v.clone() for k, v in m.transformer.state_dict().items() if "lora_" not in k}
    trained = {n: p.detach().clone() for n, p in m.named_parameters() if p.requires_grad}
    assert trained and all(k.split(".")[0] in ("context", "prompt_embeds", "gate", "transformer") for k in trained)
    m.train()
    opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-2)
    loss, _ = FixerLoss(use_lpips=False)(m(x, None, eig), smooth_video(1, T, H, W, seed=5))
    loss.backward()
    opt.step()
    assert any(not torch.equal(p.detach(), trained[n]) for n, p in m.named_parameters() if p.requires_grad)
    assert all(torch.equal(v, frozen[k]) for k, v in m.vae.state_dict().items())
    assert all(torch.equal(v, base[k]) for k, v in m.transformer.state_dict().items() if k in base)
    # the saved file holds the trained tensors only; loading rebuilds the base from `pretrained`
    m.save_pretrained(tmp_path / "fx")
    from safetensors.torch import load_file

    keys = set(load_file(str(tmp_path / "fx" / WEIGHTS_NAME)))
    assert keys == set(m.saved_state_dict()) and not any(k.startswith("vae.") for k in keys)
    want = m.fix(x, None, eig).images
    loaded = load_fixer(tmp_path / "fx")
    assert type(loaded) is EIGentCogVideoX
    assert torch.equal(loaded.fix(x, None, eig).images, want)


def test_eigent_cogvideox_through_the_train_command(tiny_cogvideox, tmp_path, video_index):
    torch.manual_seed(0)
    cfg = _video_cfg(video_index, tmp_path / "c", "eigent-cogvideox", steps=1, frames=5, batch_size=1,
                     video_pretrained=str(tiny_cogvideox), local_files_only=True, w_lpips=0.0, w_gram=0.0)
    summary = train_fixer(cfg)
    assert summary["steps"] == 1 and np.isfinite(summary["last"]["loss"])
    assert type(load_fixer(tmp_path / "c" / "model")).__name__ == "EIGentCogVideoX"


def test_causal_time_pool_matches_the_vae_layout():
    x = torch.arange(9.0).view(1, 9)
    assert torch.equal(causal_time_pool(x, 4), torch.tensor([[0.0, 2.5, 6.5]]))
    assert torch.equal(causal_time_pool(x, 4, reduce="max"), torch.tensor([[0.0, 4.0, 8.0]]))
