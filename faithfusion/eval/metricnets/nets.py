"""What are the metric networks? A CenterNet-style vehicle detector and a U-Net lane-line segmenter, both tiny.

Inputs are RGB `[B, 3, H, W]` in [0, 1] with H, W multiples of 8. The detector predicts, at stride 4, a
vehicle-centre heatmap (logit), the box size (log of width and height in pixels) and the sub-cell offset of the
centre; `decode_boxes` turns them into boxes. The segmenter predicts one lane-line logit per pixel.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

STRIDE = 4


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    """Features at strides 1 (optional), 2, 4, 8 and 16."""

    def __init__(self, w: int = 16, full: bool = False):
        super().__init__()
        self.s1 = _block(3, w // 2) if full else None
        self.s2 = nn.Sequential(_block(w // 2 if full else 3, w, 2), _block(w, w))
        self.s4 = nn.Sequential(_block(w, 2 * w, 2), _block(2 * w, 2 * w))
        self.s8 = nn.Sequential(_block(2 * w, 4 * w, 2), _block(4 * w, 4 * w))
        self.s16 = nn.Sequential(_block(4 * w, 4 * w, 2), _block(4 * w, 4 * w), _block(4 * w, 4 * w))

    def forward(self, x: Tensor) -> list[Tensor]:
        f1 = self.s1(x) if self.s1 is not None else None
        f2 = self.s2(f1 if f1 is not None else x)
        f4 = self.s4(f2)
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        return [f1, f2, f4, f8, f16]


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class VehicleNet(nn.Module):
    """Heatmap [B, 1, H/4, W/4] (logits), size [B, 2, ...] (log w, log h in pixels), offset [B, 2, ...] (cells)."""

    def __init__(self, w: int = 16):
        super().__init__()
        self.enc = Encoder(w)
        self.lat16 = nn.Conv2d(4 * w, 2 * w, 1)
        self.lat8 = nn.Conv2d(4 * w, 2 * w, 1)
        self.lat4 = nn.Conv2d(2 * w, 2 * w, 1)
        self.fuse = nn.Sequential(_block(2 * w, 2 * w), _block(2 * w, 2 * w))
        self.heat = nn.Conv2d(2 * w, 1, 1)
        self.size = nn.Conv2d(2 * w, 2, 1)
        self.offset = nn.Conv2d(2 * w, 2, 1)
        nn.init.constant_(self.heat.bias, -2.19)  # prior 0.1, CenterNet's

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _, _, f4, f8, f16 = self.enc(x)
        p8 = self.lat8(f8) + _up(self.lat16(f16), f8)
        p4 = self.fuse(self.lat4(f4) + _up(p8, f4))
        return self.heat(p4), self.size(p4), self.offset(p4)


class LaneNet(nn.Module):
    """Lane-line logits [B, 1, H, W]."""

    def __init__(self, w: int = 16):
        super().__init__()
        self.enc = Encoder(w, full=True)
        self.d8 = _block(4 * w + 4 * w, 2 * w)
        self.d4 = _block(2 * w + 2 * w, w)
        self.d2 = _block(w + w, w)
        self.d1 = _block(w + w // 2, w // 2)
        self.out = nn.Conv2d(w // 2, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        f1, f2, f4, f8, f16 = self.enc(x)
        y = self.d8(torch.cat([f8, _up(f16, f8)], 1))
        y = self.d4(torch.cat([f4, _up(y, f4)], 1))
        y = self.d2(torch.cat([f2, _up(y, f2)], 1))
        y = self.d1(torch.cat([f1, _up(y, f1)], 1))
        return self.out(y)


def decode_boxes(heat: Tensor, size: Tensor, offset: Tensor, threshold: float = 0.3, top_k: int = 50) -> list[Tensor]:
    """Boxes [N, 5] (x0, y0, x1, y1, score; input pixels) per image from the detector's outputs."""
    prob = torch.sigmoid(heat)  # [B, 1, h, w]
    peaks = prob * (F.max_pool2d(prob, 3, 1, 1) == prob)
    B, _, h, w = prob.shape
    out = []
    for b in range(B):
        scores, idx = peaks[b, 0].flatten().topk(min(top_k, h * w))
        keep = scores >= threshold
        scores, idx = scores[keep], idx[keep]
        ys, xs = (idx // w).float(), (idx % w).float()
        cx = (xs + offset[b, 0].flatten()[idx]) * STRIDE
        cy = (ys + offset[b, 1].flatten()[idx]) * STRIDE
        bw = size[b, 0].flatten()[idx].exp()
        bh = size[b, 1].flatten()[idx].exp()
        out.append(torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, scores], -1))
    return out
