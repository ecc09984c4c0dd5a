"""A learnable sky: an equirectangular colour map looked up by each pixel's world ray direction.

Street scenes have a sky at infinity that Gaussians should not try to model; the sky colour fills
what the Gaussians leave transparent: rgb = rgb_gs + (1 - alpha) * sky(direction)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faithfusion.cameras import Camera


def pixel_directions(camera: Camera) -> Tensor:
    """Unit world-space ray directions through pixel centres `[H, W, 3]`."""
    device = camera.K.device
    v, u = torch.meshgrid(
        torch.arange(camera.height, device=device, dtype=torch.float32) + 0.5,
        torch.arange(camera.width, device=device, dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    K = camera.K
    x = (u - K[0, 2]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    dirs_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)  # [H, W, 3]
    R = camera.camtoworld[:3, :3]
    dirs = dirs_cam @ R.T
    return F.normalize(dirs, dim=-1)


class SkyModel(nn.Module):
    """Equirectangular sky texture [3, Hs, Ws] with `up` the scene's up axis."""

    def __init__(self, up: Tensor, resolution: tuple[int, int] = (64, 256), init_color: float = 0.7) -> None:
        super().__init__()
        self.register_buffer("up", F.normalize(up.float(), dim=0))
        self.texture = nn.Parameter(torch.full((1, 3, *resolution), math.log(init_color / (1 - init_color))))
        self._frame: tuple[tuple, Tensor, Tensor] | None = None

    def frame(self) -> tuple[Tensor, Tensor]:
        """Two unit vectors `[3]` completing `up` to an orthonormal frame; rebuilt (one host synchronisation) only
        when `up` is replaced, moved or loaded, not in every forward."""
        up = self.up
        key = (id(up), up._version, up.device)
        if self._frame is None or self._frame[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                self._frame = (key, *self._build_frame(up))
        return self._frame[1], self._frame[2]

    @staticmethod
    def _build_frame(up: Tensor) -> tuple[Tensor, Tensor]:
        helper = torch.tensor([1.0, 0.0, 0.0], device=up.device)
        if abs(float(torch.dot(helper, up))) > 0.9:
            helper = torch.tensor([0.0, 1.0, 0.0], device=up.device)
        e1 = F.normalize(helper - torch.dot(helper, up) * up, dim=0)
        return e1, torch.linalg.cross(up, e1)

    def forward(self, dirs: Tensor) -> Tensor:  # [..., 3] -> [..., 3]
        up = self.up
        e1, e2 = self.frame()  # an orthonormal frame around up
        elevation = torch.asin((dirs @ up).clamp(-1, 1))  # [...]
        azimuth = torch.atan2(dirs @ e2, dirs @ e1)  # [...]
        grid = torch.stack([azimuth / math.pi, -elevation / (math.pi / 2)], dim=-1)  # x in [-1,1], y: up=-1
        flat = grid.reshape(1, -1, 1, 2)
        rgb = F.grid_sample(self.texture, flat, mode="bilinear", padding_mode="border", align_corners=False)
        return torch.sigmoid(rgb[0, :, :, 0].T.reshape(*dirs.shape[:-1], 3))
