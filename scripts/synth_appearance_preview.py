"""What does `--appearance varied` change? A contact sheet: each seed classic and varied, side by side.

    python scripts/synth_appearance_preview.py docs/synth/appearance_preview.png

Front camera at frame 20 of seeds 0-7 (moving vehicles on), 240 x 160 tiles, labelled with what the
varied look drew; the sheet is stored with a 256-colour palette to stay small (about 30 s on 2 cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from faithfusion.synth.appearance import apply_appearance
from faithfusion.synth.render import render
from faithfusion.synth.rig import RIG
from faithfusion.synth.scene import SynthScene
from faithfusion.synth.world import make_world


def front_view(seed: int, appearance: str, frame: int, width: int, height: int) -> tuple[np.ndarray, dict]:
    """rgb [H, W, 3] uint8 of the front camera at `frame`, and the varied look's notes (empty for classic)."""
    world = apply_appearance(make_world(seed, frames=max(frame + 1, 40), dynamic=True, max_shift=6.0), appearance)
    cam = RIG["front"]
    w2c = np.linalg.inv(world.ego_pose(frame) @ cam.cam_to_ego())[None]
    rgb, _, _ = render(SynthScene(world).arrays_at(frame), w2c, cam.intrinsics(width, height)[None], width, height, 2)
    return rgb[0], world.look.notes


def label(seed: int, appearance: str, notes: dict) -> str:
    if appearance == "classic":
        return f"seed {seed} classic"
    wet = f", wet {notes['wetness']:.1f}" if notes["wetness"] > 0 else ""
    return f"seed {seed} varied: {notes['light']}{wet}\n{notes['district']}, {notes['trees']} trees, exposure {notes['exposure']:.2f}"


def make_sheet(out_png: Path, seeds=range(8), frame: int = 20, width: int = 240, height: int = 160, per_row: int = 2) -> Path:
    label_h = 26
    cols = 2 * per_row
    rows = (len(seeds) + per_row - 1) // per_row
    sheet = Image.new("RGB", (cols * width, rows * (height + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, seed in enumerate(seeds):
        for a, appearance in enumerate(("classic", "varied")):
            rgb, notes = front_view(int(seed), appearance, frame, width, height)
            x, y = (2 * (k % per_row) + a) * width, (k // per_row) * (height + label_h)
            sheet.paste(Image.fromarray(rgb), (x, y + label_h))
            draw.text((x + 3, y + 1), label(int(seed), appearance, notes), fill=(0, 0, 0))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out_png, optimize=True)
    return out_png


if __name__ == "__main__":
    path = make_sheet(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/synth/appearance_preview.png"))
    print(f"{path}: {path.stat().st_size / 1024:.0f} kB")
