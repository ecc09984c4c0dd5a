"""The metric networks as a VehicleDetector and a LaneSegmenter: saved, loaded, and run on any image size.

A folder holds `vehicles.safetensors`, `lanes.safetensors` (float16) and `config.json` (input size, detection
threshold, how they were trained). The shipped folder is faithfusion/eval/weights/metricnets/. An image of
another size is resized (area) to the networks' input size; boxes are scaled back, the lane logits are resized
(bilinear) to the image before the threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from faithfusion.eval.metricnets.nets import LaneNet, VehicleNet, decode_boxes
from faithfusion.utils.atomic import atomic_write
from faithfusion.utils.jsonio import save_json_atomic

SHIPPED = Path(__file__).resolve().parents[1] / "weights" / "metricnets"


def _input(image: Tensor, size: tuple[int, int]) -> Tensor:  # [H, W, 3] -> [1, 3, h, w]
    x = image.detach().float().cpu().clamp(0, 1).permute(2, 0, 1)[None]
    return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=size, mode="area")


class NetDetector:
    """VehicleDetector of the metric network."""

    def __init__(self, net: VehicleNet, size: tuple[int, int], threshold: float):
        self.net, self.size, self.threshold = net.eval(), tuple(size), threshold

    @torch.no_grad()
    def detect(self, image: Tensor) -> np.ndarray:  # [N, 5]
        H, W = image.shape[:2]
        boxes = decode_boxes(*self.net(_input(image, self.size)), threshold=self.threshold)[0].numpy().astype(np.float64)
        boxes[:, [0, 2]] *= W / self.size[1]
        boxes[:, [1, 3]] *= H / self.size[0]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, W)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, H)
        return boxes


class NetSegmenter:
    """LaneSegmenter of the metric network."""

    def __init__(self, net: LaneNet, size: tuple[int, int], threshold: float = 0.5):
        self.net, self.size, self.threshold = net.eval(), tuple(size), threshold

    @torch.no_grad()
    def segment(self, image: Tensor) -> np.ndarray:  # [H, W] bool
        logits = self.net(_input(image, self.size))
        if tuple(logits.shape[-2:]) != tuple(image.shape[:2]):
            logits = F.interpolate(logits, size=tuple(image.shape[:2]), mode="bilinear", align_corners=False)
        return (torch.sigmoid(logits[0, 0]) > self.threshold).numpy()


def save_metricnets(folder: Path, vehicles: VehicleNet, lanes: LaneNet, config: dict) -> None:
    """Both networks as float16 safetensors and `config.json` into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    for name, net in (("vehicles", vehicles), ("lanes", lanes)):
        state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
        atomic_write(folder / f"{name}.safetensors", save=lambda tmp, s=state: save_file(s, str(tmp)), what="metric network")
    save_json_atomic(folder / "config.json", config, indent=1)


def load_metricnet_modules(folder: Path | None = None) -> tuple[VehicleNet, LaneNet, dict]:
    """(VehicleNet, LaneNet, config) of `folder` (default: the shipped networks), as float32 modules in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder or SHIPPED)
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (a metric-network folder holds config.json, vehicles.safetensors, lanes.safetensors)")
    cfg = json.loads(path.read_text())
    nets = {}
    for name, cls in (("vehicles", VehicleNet), ("lanes", LaneNet)):
        net = cls(int(cfg.get("width", 16)))
        file = folder / f"{name}.safetensors"
        if not file.is_file():
            raise FileNotFoundError(f"{file}: missing")
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(file)).items()}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{file}: does not fit the {cls.__name__} of this version ({e})") from e
        nets[name] = net.eval()
    return nets["vehicles"], nets["lanes"], cfg


def load_metricnets(folder: Path | None = None) -> tuple[NetDetector, NetSegmenter]:
    """(detector, segmenter) from `folder` (default: the shipped networks)."""
    vehicles, lanes, cfg = load_metricnet_modules(folder)
    size = tuple(cfg["input_size"])
    return NetDetector(vehicles, size, float(cfg["threshold"])), NetSegmenter(lanes, size, float(cfg.get("lane_threshold", 0.5)))
