"""What is an image in a small pretrained latent space? A tiny autoencoder with real-image knowledge.

The fixer's encoder/decoder, as Difix uses SD-Turbo's VAE: TAEF2 (madebyollin/taesd, MIT), a 1.3 M +
1.3 M parameter distillation of the FLUX.2 VAE, shipped in `weights/taef2/` (5.4 MB of float16; source,
commit and licence in SOURCE.md there). Images [B, 3, H, W] in [0, 1] become latents
[B, 32, H/8, W/8] (roughly in [-3, 3]); the decoder maps them back.

The network is written here from the facts of the upstream `taesd.py` (layer order and sizes, so that
the shipped state dicts load by name): 3x3 convolutions with ReLU residual blocks, three stride-2
convolutions down and three nearest 2x upsamplings up; the three blocks next to the latent also carry
a 1x1 -> GroupNorm -> 1x1 branch (the FLUX.2 variant); the decoder first soft-clamps its input to
+-3 (3 tanh(x / 3)).
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import torch
from torch import Tensor, nn

from faithfusion.errors import UserError

WEIGHTS_DIR = Path(__file__).parent / "weights" / "taef2"
ENCODER_FILE, DECODER_FILE = "taef2_encoder.pth", "taef2_decoder.pth"
SHIPPED_SHA256 = {  # the files of madebyollin/taesd at 5cccb12dc72074a4be35680c3b108548a7c69978
    ENCODER_FILE: "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6",
    DECODER_FILE: "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5",
}
LATENT_CHANNELS = 32
DOWNSCALE = 8  # image pixels per latent pixel along each axis
WIDTH = 64  # feature channels everywhere inside


class TinyAutoencoderWeightsError(UserError):
    """The autoencoder's weight file is missing, corrupt or of another network."""


def _conv(n_in: int, n_out: int, **kw) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kw)


class SoftClamp(nn.Module):
    """3 tanh(x / 3): latents squashed smoothly into (-3, 3)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x / 3.0) * 3.0


class ResidualBlock(nn.Module):
    """relu(conv-relu-conv-relu-conv(x) + x), optionally after x += 1x1 -> GroupNorm -> 1x1 of x (`global_mix`)."""

    def __init__(self, channels: int, global_mix: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(channels, channels), nn.ReLU(), _conv(channels, channels), nn.ReLU(), _conv(channels, channels))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()
        hidden = 4 * channels
        self.pool = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.GroupNorm(4, hidden), nn.ReLU(inplace=True),
                                  nn.Conv2d(hidden, channels, 1, bias=False)) if global_mix else None

    def forward(self, x: Tensor) -> Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def build_encoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
    """[B, 3, H, W] in [0, 1] -> [B, C, H/8, W/8]."""
    c = WIDTH
    layers: list[nn.Module] = [_conv(3, c), ResidualBlock(c)]
    for level in range(3):
        layers += [_conv(c, c, stride=2, bias=False)] + [ResidualBlock(c, global_mix=level == 2) for _ in range(3)]
    return nn.Sequential(*layers, _conv(c, latent_channels))


def build_decoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
    """[B, C, h, w] -> [B, 3, 8h, 8w] (about [0, 1]; not clamped here)."""
    c = WIDTH
    layers: list[nn.Module] = [SoftClamp(), _conv(latent_channels, c), nn.ReLU()]
    for level in range(3):
        layers += [ResidualBlock(c, global_mix=level == 0) for _ in range(3)]
        layers += [nn.Upsample(scale_factor=2), _conv(c, c, bias=False)]
    return nn.Sequential(*layers, ResidualBlock(c), _conv(c, 3))


def _read_state(path: Path, expected_sha256: str | None) -> dict[str, Tensor]:
    if not path.is_file():
        raise TinyAutoencoderWeightsError(f"{path}: tiny autoencoder weights not found (shipped in faithfusion/fixers/weights/taef2/)")
    if expected_sha256 is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected_sha256:
            raise TinyAutoencoderWeightsError(f"{path}: corrupt or replaced (sha256 {digest[:12]}..., shipped {expected_sha256[:12]}...)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise TinyAutoencoderWeightsError(f"{path}: not a readable torch state dict ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise TinyAutoencoderWeightsError(f"{path}: not a state dict of tensors")
    return state


def _load_into(module: nn.Module, state: dict[str, Tensor], path: Path) -> None:
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise TinyAutoencoderWeightsError(f"{path}: weights of another network (missing {missing[:3]}, unexpected {unexpected[:3]})")
    bad = [k for k in own if own[k].shape != state[k].shape]
    if bad:
        raise TinyAutoencoderWeightsError(f"{path}: {bad[0]} has shape {tuple(state[bad[0]].shape)}, expected {tuple(own[bad[0]].shape)}")
    module.load_state_dict({k: v.float() for k, v in state.items()})


class TinyAutoencoder(nn.Module):
    """Encoder and decoder of the tiny pretrained autoencoder; `load_tiny_autoencoder()` gives the shipped one."""

    def __init__(self, latent_channels: int = LATENT_CHANNELS) -> None:
        super().__init__()
        self.latent_channels = latent_channels
        self.encoder = build_encoder(latent_channels)
        self.decoder = build_decoder(latent_channels)

    def encode(self, images: Tensor) -> Tensor:
        """images [B, 3, H, W] in [0, 1], H and W multiples of 8 -> latents [B, C, H/8, W/8]."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"encode expects images [B, 3, H, W], got {tuple(images.shape)}")
        H, W = images.shape[-2:]
        if H % DOWNSCALE or W % DOWNSCALE:
            raise ValueError(f"encode expects H and W multiples of {DOWNSCALE}, got {H} x {W} (see `roundtrip`, which pads)")
        return self.encoder(images)

    def decode(self, latents: Tensor) -> Tensor:
        """latents [B, C, h, w] -> images [B, 3, 8h, 8w] clamped to [0, 1]."""
        if latents.dim() != 4 or latents.shape[1] != self.latent_channels:
            raise ValueError(f"decode expects latents [B, {self.latent_channels}, h, w], got {tuple(latents.shape)}")
        return self.decoder(latents).clamp(0.0, 1.0)

    def roundtrip(self, images: Tensor) -> Tensor:
        """decode(encode(images)) for any H, W: edge-padded to multiples of 8, cropped back. [B, 3, H, W]."""
        H, W = images.shape[-2:]
        ph, pw = -H % DOWNSCALE, -W % DOWNSCALE
        x = torch.nn.functional.pad(images, (0, pw, 0, ph), mode="replicate") if ph or pw else images
        return self.decode(self.encode(x))[..., :H, :W]


def load_tiny_autoencoder(folder: str | Path | None = None) -> TinyAutoencoder:
    """The shipped TAEF2 (checked against its sha256) or the same network's files in another `folder`, in float32, eval mode."""
    shipped = folder is None
    folder = WEIGHTS_DIR if shipped else Path(folder)
    model = TinyAutoencoder()
    for name, part in ((ENCODER_FILE, model.encoder), (DECODER_FILE, model.decoder)):
        path = folder / name
        _load_into(part, _read_state(path, SHIPPED_SHA256[name] if shipped else None), path)
    return model.eval().requires_grad_(False)
