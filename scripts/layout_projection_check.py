"""Projection check of every DriveStudio layout, as rows for docs/data_layouts.md.

Writes each layout's tiny test scene (tests/ds_layout_fixtures.py), loads it with
`faithfusion.data.load_scene` and prints the largest distance between a known world point's
projection and its known pixel over all frames and cameras. Run from the repository root:

    PYTHONPATH=$PWD python scripts/layout_projection_check.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from faithfusion.data import load_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import ds_layout_fixtures as lf  # noqa: E402


def max_pixel_error(scene) -> float:
    worst = 0.0
    tf = scene.transform
    for frame in scene.frames:
        cam = int(frame.camera.meta["cam_id"])
        X = tf.scale * (lf.known_point(frame.timestep, cam) - tf.center.double().numpy()) @ tf.rotation.double().numpy().T
        V = frame.camera.viewmat.double().numpy()
        x = V[:3, :3] @ X + V[:3, 3]
        if x[2] <= 0:
            return float("inf")  # behind the camera: wrong axes
        uv = (frame.camera.K.double().numpy() @ (x / x[2]))[:2]
        worst = max(worst, float(np.linalg.norm(uv - np.array(lf.KNOWN_PIXEL[cam]))))
    return worst


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in lf.FACTS:
            root = Path(tmp) / name
            lf.write_layout_scene(root, name)
            scene = load_scene(root, cameras=(0, 1), holdout_every=0, color_points=False)
            print(f"| {name} | {scene.extra['layout']} | {len(scene.frames)} | {max_pixel_error(scene):.1e} px |")


if __name__ == "__main__":
    main()
