"""How fast are SynthStreet's observation masks, and how much do they move with the depth-test tolerance?

One numba thread; seed 0, 40 frames, 3 cameras, 480 x 320, shifts 1..6 m both ways, frames 5 and 20.
Prints ms per view and the unobserved / disoccluded fraction per shift (docs/synth/README.md, Observation).

    OMP_NUM_THREADS=1 python benchmarks/bench_synth_observation.py
"""

from __future__ import annotations

import time

import numba
import numpy as np

from faithfusion.synth.world import make_world
from faithfusion.synth.scene import SynthScene
from faithfusion.synth.rig import rig_cameras, shift_ego
from faithfusion.synth.render import render
from faithfusion.synth.generate import shift_offsets
from faithfusion.synth.observation import recorded_views, observation_masks


def main() -> None:
    numba.set_num_threads(1)
    W, H, F = 480, 320, 40
    world = make_world(0, frames=F, dynamic=True, max_shift=6.0)
    scene = SynthScene(world)
    cams = rig_cameras(("front", "front_left", "front_right"))
    Ks = {c.cam_id: c.intrinsics(W, H) for c in cams}
    t0 = time.perf_counter(); train = recorded_views(scene, cams, Ks, W, H); print("recorded_views %.2f s (1 thread)" % (time.perf_counter() - t0))
    poses = np.stack([np.stack(scene.vehicle_poses(t)) for t in range(F)])
    offs = shift_offsets((1, 2, 3, 4, 5, 6))
    for t in (5, 20):
        E = world.ego_pose(t); w2c, Kv, keys = [], [], []
        for d in offs:
            for c in cams:
                w2c.append(np.linalg.inv(shift_ego(E, d) @ c.cam_to_ego())); Kv.append(Ks[c.cam_id]); keys.append((d, c.cam_id))
        rgb, depth, inst = render(scene.arrays_at(t), np.stack(w2c), np.stack(Kv), W, H, 2)
        c2w = np.linalg.inv(np.stack(w2c)); cc = np.array([c for _, c in keys])
        for rel, ab in ((0.01, 0.02), (0.005, 0.01), (0.02, 0.05)):
            t0 = time.perf_counter(); u, o = observation_masks(depth, inst, c2w, np.stack(Kv), cc, t, train, poses, rel, ab); dt = time.perf_counter() - t0
            fr = {d: (u[[k for k, (dd, _) in enumerate(keys) if dd == d]].mean(), o[[k for k, (dd, _) in enumerate(keys) if dd == d]].mean()) for d in (0.0, 1.0, 3.0, -3.0, 6.0, -6.0)}
            print(f"t={t} rel={rel} abs={ab}: {1000*dt/len(keys):.1f} ms/view (1 thread);", " ".join(f"{d:+.0f}m u={a:.4f} o={b:.4f}" for d, (a, b) in fr.items()), flush=True)


if __name__ == "__main__":
    main()
