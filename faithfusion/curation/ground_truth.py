"""SynthStreet ground truth at any lane shift: the generated `gt_shifted/` depth, and the renderer itself in between."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from faithfusion.eval.lane_shift import shift_folder


class SynthOracle:
    """The SynthStreet renderer of a generated scene: exact RGB and depth at any lateral shift."""

    def __init__(self, path: Path) -> None:
        from faithfusion.synth.appearance import apply_appearance, scene_appearance
        from faithfusion.synth.rig import rig_cameras
        from faithfusion.synth.scene import SynthScene
        from faithfusion.synth.world import make_world

        self.meta = json.loads((Path(path) / "scene.json").read_text())
        m = self.meta
        max_shift = max([abs(float(d)) for d in m["shifts_m"]], default=0.0)
        world = make_world(int(m["seed"]), frames=int(m["frames"]), dynamic=bool(m["dynamic"]), max_shift=max_shift)
        self.world = apply_appearance(world, scene_appearance(m))  # the look the scene was generated with
        self.scene = SynthScene(self.world)
        self.cams = {c.cam_id: c for c in rig_cameras([c["name"] for c in m["cameras"].values()])}

    def render(self, t: int, d: float, cam_id: int, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """RGB `[H, W, 3]` in [0, 1] and depth `[H, W]` metres (0 = sky) at shift d, resized to size (H, W)."""
        from faithfusion.synth.render import render
        from faithfusion.synth.rig import shift_ego

        w, h = int(self.meta["width"]), int(self.meta["height"])
        c = self.cams[cam_id]
        w2c = np.linalg.inv(shift_ego(self.world.ego_pose(t), d) @ c.cam_to_ego())[None]
        rgb, depth, _ = render(self.scene.arrays_at(t), w2c, c.intrinsics(w, h)[None], w, h, int(self.meta["supersample"]))
        img = Image.fromarray(rgb[0])
        if img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.BOX)
        dep = torch.from_numpy(depth[0].copy())
        if tuple(dep.shape) != tuple(size):
            dep = torch.nn.functional.interpolate(dep[None, None], size=size, mode="nearest")[0, 0]
        return torch.from_numpy(np.asarray(img).copy()).float() / 255.0, dep


def load_gt_depth(root: Path, d: float, t: int, cam: str, size: tuple[int, int]) -> Tensor:
    """`gt_shifted` depth `[H, W]` in metres (KITTI uint16 / 256; 0 = sky), nearest-resized to size."""
    with Image.open(shift_folder(root, d) / "depth" / f"{t:03d}_{cam}.png") as im:
        dep = torch.from_numpy(np.asarray(im).astype(np.float32) / 256.0)
    if tuple(dep.shape) != tuple(size):
        dep = torch.nn.functional.interpolate(dep[None, None], size=size, mode="nearest")[0, 0]
    return dep
