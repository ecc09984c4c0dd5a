"""The shipped tiny autoencoder (TAEF2): shapes, a faithful round trip of a SynthStreet view, clear errors on bad files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from faithfusion.fixers import tiny_autoencoder as tae
from faithfusion.fixers.tiny_autoencoder import TinyAutoencoderWeightsError, load_tiny_autoencoder


@pytest.fixture(scope="module")
def ae():
    return load_tiny_autoencoder()


def _synth_view(width: int = 128, height: int = 96) -> torch.Tensor:  # [1, 3, H, W] in [0, 1]
    from faithfusion.synth.render import render
    from faithfusion.synth.rig import RIG
    from faithfusion.synth.scene import SynthScene
    from faithfusion.synth.world import make_world

    world = make_world(0, frames=2)
    cam = RIG["front"]
    w2c = np.linalg.inv(world.ego_pose(1) @ cam.cam_to_ego())[None]
    rgb, _, _ = render(SynthScene(world, shadows=False).arrays_at(1), w2c, cam.intrinsics(width, height)[None], width, height, 2)
    return torch.from_numpy(rgb[0].copy()).permute(2, 0, 1)[None].float() / 255.0


def test_round_trip_of_a_synthstreet_view_is_faithful(ae, single_thread):
    x = _synth_view()
    with torch.no_grad():
        y = ae.roundtrip(x)
    psnr = float(-10 * torch.log10(((y - x) ** 2).mean()))
    assert psnr > 25.0, psnr
    # a wrong network (random weights of the same shape) does not come close: the test depends on the weights
    with torch.no_grad():
        y_random = tae.TinyAutoencoder().eval().roundtrip(x)
    assert float(-10 * torch.log10(((y_random - x) ** 2).mean())) < 15.0


def test_shapes_and_sizes(ae, single_thread):
    with torch.no_grad():
        z = ae.encode(torch.rand(2, 3, 32, 48))
        assert z.shape == (2, tae.LATENT_CHANNELS, 4, 6)
        y = ae.decode(z)
        assert y.shape == (2, 3, 32, 48) and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        assert ae.roundtrip(torch.rand(1, 3, 21, 30)).shape == (1, 3, 21, 30)  # padded to 24 x 32, cropped back
    with pytest.raises(ValueError, match="multiples of 8"):
        ae.encode(torch.rand(1, 3, 20, 32))
    with pytest.raises(ValueError, match="latents"):
        ae.decode(torch.rand(1, 4, 4, 4))
    total = sum((tae.WEIGHTS_DIR / n).stat().st_size for n in (tae.ENCODER_FILE, tae.DECODER_FILE))
    assert total < 6e6
    assert sum(p.numel() for p in ae.parameters()) < 3e6


def test_missing_corrupt_or_foreign_weights_are_refused_naming_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "taef2"
    shutil.copytree(tae.WEIGHTS_DIR, folder)
    load_tiny_autoencoder(folder)  # an intact copy loads
    enc = folder / tae.ENCODER_FILE
    data = enc.read_bytes()
    enc.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(TinyAutoencoderWeightsError, match=f"{tae.ENCODER_FILE}: not a readable"):
        load_tiny_autoencoder(folder)
    monkeypatch.setattr(tae, "WEIGHTS_DIR", folder)  # the shipped path, with a changed file: the checksum says so
    with pytest.raises(TinyAutoencoderWeightsError, match="corrupt or replaced"):
        load_tiny_autoencoder()
    enc.write_bytes(data)
    dec_state = torch.load(folder / tae.DECODER_FILE, weights_only=True)
    dec_state.pop("1.weight")
    torch.save(dec_state, folder / tae.DECODER_FILE)
    with pytest.raises(TinyAutoencoderWeightsError, match=f"{tae.DECODER_FILE}: weights of another network"):
        load_tiny_autoencoder(folder)
    (folder / tae.DECODER_FILE).unlink()
    with pytest.raises(TinyAutoencoderWeightsError, match="not found"):
        load_tiny_autoencoder(folder)
