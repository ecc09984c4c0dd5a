"""SynthStreet: a procedural driving world with exact ground truth at every lane shift.

`generate(out, seed, ...)` writes one scene in DriveStudio's processed-Waymo layout plus
`lanes.json`, `scene.json` and `gt_shifted/` (RGB, depth, sky and instance masks, 2D boxes seen
from the ego moved sideways). The `faithfusion synth` command lives in faithfusion/commands/synth.py.

Modules, one question each: world (what is in the scene), road (where is a point of the road),
meshes (triangles), materials (ids and parameter layout), raster (z-buffer), shading (colours),
render (views), rig (sensors), lidar (returns), scene (a frame's arrays and shadows),
annotations (boxes), writer (files), generate (the whole scene), preview (a contact sheet).
"""

from faithfusion.synth.generate import generate

__all__ = ["generate"]
