"""Per-image appearance: an affine colour transform per captured image, learned with the scene.

Hand-held and driving captures vary in exposure and white balance. Without this, view-dependent
colour (SH) absorbs those differences and novel views inherit them. Each training image i gets
rgb' = A_i rgb + b_i (initialised to the identity); renders for evaluation and novel views use
the identity, i.e. the scene's canonical appearance."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AppearanceModel(nn.Module):
    def __init__(self, num_images: int) -> None:
        super().__init__()
        eye = torch.eye(3, 4).expand(num_images, 3, 4).clone()  # [F, 3, 4]
        self.affine = nn.Parameter(eye)

    def forward(self, rgb: Tensor, image_index: int) -> Tensor:  # [..., 3] -> [..., 3]
        A = self.affine[image_index]
        return rgb @ A[:, :3].T + A[:, 3]
