"""What do SynthStreet scenes look like? A contact sheet: seeds down, lane shifts across.

    python -m faithfusion.synth.preview docs/synth/preview.png
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from faithfusion.synth.appearance import apply_appearance
from faithfusion.synth.render import render
from faithfusion.synth.rig import RIG, shift_ego
from faithfusion.synth.scene import SynthScene
from faithfusion.synth.world import make_world


def make_preview(
    out_png: Path | str,
    seeds: Sequence[int] = (0, 1, 2, 3),
    shifts: Sequence[float] = (0, 3, 6),
    frame: int = 20,
    camera: str = "front",
    width: int = 480,
    height: int = 320,
    tile_width: int = 384,
    dynamic: bool = True,
    appearance: str = "classic",
) -> Path:
    """Render `camera` at `frame` of each seed (rows) from the ego moved by each shift (columns, + = left)."""
    cam = RIG[camera]
    K = cam.intrinsics(width, height)[None]
    tile_h = round(tile_width * height / width)
    label_h = 18
    sheet = Image.new("RGB", (tile_width * len(shifts), (tile_h + label_h) * len(seeds)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, seed in enumerate(seeds):
        world = make_world(int(seed), frames=max(frame + 1, 40), dynamic=dynamic, max_shift=max([abs(d) for d in shifts], default=0))
        world = apply_appearance(world, appearance)
        scene = SynthScene(world)
        arrays = scene.arrays_at(frame)
        ego = world.ego_pose(frame)
        w2c = np.stack([np.linalg.inv(shift_ego(ego, float(d)) @ cam.cam_to_ego()) for d in shifts])
        rgb, _, _ = render(arrays, w2c, np.repeat(K, len(shifts), 0), width, height, 2)
        y = r * (tile_h + label_h)
        for c, d in enumerate(shifts):
            tile = Image.fromarray(rgb[c]).resize((tile_width, tile_h), Image.LANCZOS)
            sheet.paste(tile, (c * tile_width, y + label_h))
            draw.text((c * tile_width + 4, y + 3), f"seed {seed}   shift {float(d):+.1f} m   frame {frame}   {camera}", fill=(0, 0, 0))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png, optimize=True)
    return out_png


if __name__ == "__main__":
    make_preview(sys.argv[1] if len(sys.argv) > 1 else "docs/synth/preview.png")
