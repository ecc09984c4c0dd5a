"""How is a whole SynthStreet scene made? `generate(out, seed, ...)`: world, frames, files.

For every frame the ego's cameras are rendered at the recorded pose and at every lateral shift
(both signs) in one parallel batch; the recorded views go to DriveStudio's layout, every view to
`gt_shifted/`, with its `unobserved` / `disoccluded` masks against the recorded views of all frames
(whose depth is rasterized first, see `observation`). Files are encoded and written by a small thread pool while the next frame renders.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from faithfusion.errors import UserError
from faithfusion.synth import writer as out_
from faithfusion.synth.annotations import boxes_2d
from faithfusion.synth.appearance import APPEARANCES, apply_appearance, appearance_record
from faithfusion.synth.lane_mask import lane_masks
from faithfusion.synth.lidar import lidar_scan
from faithfusion.synth.observation import ABS_TOL, REL_TOL, observation_masks, recorded_views
from faithfusion.synth.render import render
from faithfusion.synth.rig import LIDAR_BEAMS, LIDAR_INCLINATION, LIDAR_ORIGIN, LIDAR_RANGE, RigCamera, rig_cameras, shift_ego
from faithfusion.synth.scene import SynthScene
from faithfusion.synth.world import World, make_world
from faithfusion.utils.atomic import make_output_folder

GENERATOR = "synthstreet-1"
MOVING_SPEED = 1.0  # m/s: DriveStudio's threshold for a dynamic object
LABEL_RANGE = 150.0  # metres: instances this close to the ego are listed in a frame even when unseen


INCOMPLETE_MARKER = ".synthstreet-incomplete"
"""Present in a scene folder while `generate` writes it (a killed run leaves it behind)."""


class SceneFolderError(UserError, FileExistsError):
    """The output folder holds files that are not to be replaced."""


def is_synth_scene_folder(folder: Path) -> bool:
    """A folder that `generate` wrote (scene.json of SynthStreet) or began to write (the marker)."""
    if (folder / INCOMPLETE_MARKER).exists():
        return True
    try:
        return str(json.loads((folder / "scene.json").read_text()).get("generator", "")).startswith("synthstreet")
    except (OSError, ValueError, AttributeError):
        return False


def replaced_folders(out: Path) -> list[Path]:
    """Earlier scenes of `out` set aside for removal (`.NAME.PID.replaced`); a killed replacement leaves one."""
    return sorted(out.parent.glob(f".{out.name}.*.replaced"))


def prepare_scene_folder(out: Path, overwrite: bool) -> None:
    """Create `out` for a new scene; replace an earlier SynthStreet scene there only with `overwrite`.

    The earlier scene is first renamed aside in one step and removed after the new folder (with its
    incomplete-marker) exists, so that a kill at any moment leaves `out` recognisable as SynthStreet's."""
    if out.exists() and not out.is_dir():
        raise SceneFolderError(f"{out}: exists and is not a folder")
    for old in replaced_folders(out):
        shutil.rmtree(old, ignore_errors=True)
    trash = None
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SceneFolderError(f"{out}: folder is not empty; pass --overwrite to replace the scene in it, or choose another --out")
        if not is_synth_scene_folder(out):
            raise SceneFolderError(
                f"{out}: not a SynthStreet scene folder (no scene.json of this generator); not replaced even with "
                "--overwrite: choose an empty or new --out"
            )
        trash = out.with_name(f".{out.name}.{os.getpid()}.replaced")
        os.replace(out, trash)
    make_output_folder(out, "scene folder")
    (out / INCOMPLETE_MARKER).write_text("generate() has not finished writing this scene\n")
    if trash is not None:
        shutil.rmtree(trash)


def shift_offsets(shifts: Sequence[float]) -> list[float]:
    """0 first, then +d, -d for every shift d (in the given order, duplicates dropped)."""
    out = [0.0]
    for d in shifts:
        for x in (abs(float(d)), -abs(float(d))):
            if x not in out:
                out.append(x)
    return out


def generate(
    out: Path,
    seed: int,
    frames: int = 40,
    cameras: Sequence[str] | str = ("front", "front_left", "front_right"),
    width: int = 480,
    height: int = 320,
    shifts: Sequence[float] = (1, 2, 3, 4, 5, 6),
    dynamic: bool = False,
    supersample: int = 2,
    lidar_azimuths: int = 720,
    lossless_gt: bool = False,
    progress: bool = False,
    overwrite: bool = False,
    appearance: str = "classic",
    observation: bool = True,
) -> Path:
    """Write scene `seed` to `out` (DriveStudio layout + lanes.json, scene.json, gt_shifted/). Returns `out`.

    A non-empty `out` is refused unless `overwrite`, and even then only a SynthStreet scene folder
    (finished or interrupted) is replaced, as a whole: two scenes are never mixed. `appearance`: classic (the
    original look) or varied (palettes, light, weather and exposure drawn per seed; faithfusion/synth/appearance.py).
    With `observation` every view also gets its `unobserved` and `disoccluded` masks
    (faithfusion.synth.observation)."""
    out = Path(out)
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    if appearance not in APPEARANCES:
        raise ValueError(f"unknown SynthStreet appearance {appearance!r}; known: {', '.join(APPEARANCES)}")
    prepare_scene_folder(out, overwrite)
    cams = rig_cameras(cameras)
    offsets = shift_offsets(shifts)
    world = make_world(int(seed), frames=frames, dynamic=dynamic, max_shift=max([abs(float(d)) for d in shifts], default=0.0))
    world = apply_appearance(world, appearance)
    scene = SynthScene(world)
    write_frame, write_calib, write_instances, writer_source = out_.drivestudio_writers()
    Ks = {c.cam_id: c.intrinsics(width, height) for c in cams}
    write_calib(
        out,
        {c.cam_id: np.concatenate([Ks[c.cam_id], np.zeros(5)]) for c in cams},
        {c.cam_id: c.waymo_extrinsic() for c in cams},
    )
    vehicles = world.vehicles
    track_ids = [v.track_id for v in vehicles]
    sizes = [[v.length, v.width, v.height] for v in vehicles]
    moving = np.array([not v.parked and v.speed > MOVING_SPEED for v in vehicles] + [False], bool)
    ann: dict[int, dict] = {i: {"frame_idx": [], "obj_to_world": [], "box_size": []} for i in range(len(vehicles))}
    frame_instances: dict[str, list[int]] = {}
    boxes: dict[float, dict[str, list]] = {d: {} for d in offsets}
    poses_by_shift: dict[float, list[np.ndarray]] = {d: [] for d in offsets}
    counts = {"lidar_points": 0}
    train = recorded_views(scene, cams, Ks, width, height) if observation else None
    object_poses = np.stack([np.stack(scene.vehicle_poses(t)) for t in range(frames)]) if observation and vehicles else None
    bar = _progress(progress, frames)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = []
        for t in range(frames):
            arrays = scene.arrays_at(t)
            E = world.ego_pose(t)
            vposes = scene.vehicle_poses(t)
            w2c, Kv, keys = [], [], []
            for d in offsets:
                Ed = shift_ego(E, d)
                poses_by_shift[d].append(Ed)
                for c in cams:
                    w2c.append(np.linalg.inv(Ed @ c.cam_to_ego()))
                    Kv.append(Ks[c.cam_id])
                    keys.append((d, c.cam_id))
            rgb, depth, inst = render(arrays, np.stack(w2c), np.stack(Kv), width, height, supersample)
            lanes = lane_masks(arrays, np.stack(w2c), np.stack(Kv), width, height)
            lidar, hit_obj = lidar_scan(arrays, E, scene.obj_cls, scene.object_velocities(t), lidar_azimuths)
            counts["lidar_points"] += len(lidar)
            # recorded views: DriveStudio files
            rec = {cam: k for k, (d, cam) in enumerate(keys) if d == 0.0}
            images = {cam: rgb[k] for cam, k in rec.items()}
            sky = {cam: depth[k] <= 0 for cam, k in rec.items()}
            dyn_vehicle = {cam: moving[np.where(inst[k] > 0, inst[k].astype(np.int64) - 1, len(vehicles))] for cam, k in rec.items()}
            dyn = {"all": dyn_vehicle, "vehicle": dyn_vehicle, "human": {cam: np.zeros((height, width), bool) for cam in rec}}
            futures.append(pool.submit(write_frame, out, t, E, images, lidar, sky, dyn))
            # instances listed in this frame: seen by a recorded camera, hit by the lidar, or near the ego
            listed = set()
            for k in rec.values():
                listed.update((np.unique(inst[k][inst[k] > 0]).astype(int) - 1).tolist())
            inst_of_obj = scene.obj_inst[hit_obj]
            listed.update((np.unique(inst_of_obj[inst_of_obj > 0]) - 1).tolist())
            for i, T in enumerate(vposes):
                if np.linalg.norm(T[:2, 3] - E[:2, 3]) < LABEL_RANGE:
                    listed.add(i)
            frame_instances[str(t)] = sorted(int(i) for i in listed)
            for i in frame_instances[str(t)]:
                ann[i]["frame_idx"].append(t)
                ann[i]["obj_to_world"].append(vposes[i].tolist())
                ann[i]["box_size"].append(list(sizes[i]))
            # every view: lane-shift ground truth
            if train is not None:
                unobserved, disoccluded = observation_masks(depth, inst, np.linalg.inv(np.stack(w2c)), np.stack(Kv),
                                                            np.array([cam for _, cam in keys]), t, train, object_poses)
            for k, (d, cam) in enumerate(keys):
                futures.append(pool.submit(out_.write_shift_view, out, d, t, cam, rgb[k], depth[k], inst[k], lossless_gt))
                futures.append(pool.submit(out_.write_lane_mask, out, d, t, cam, lanes[k]))
                if train is not None:
                    futures.append(pool.submit(out_.write_observation_masks, out, d, t, cam, unobserved[k], disoccluded[k]))
                boxes[d][f"{t:03d}_{cam}"] = boxes_2d(inst[k], vposes, sizes, track_ids, w2c[k], Kv[k])
            _drain(futures, keep=4 * len(keys))
            if bar is not None:
                bar.advance(bar.task_ids[0])
        _drain(futures, keep=0)
    if bar is not None:
        bar.stop()
    # every vehicle keeps its id (contiguous 0..N-1, as DriveStudio indexes them); one never listed has no annotations
    instances_info = {str(i): {"id": track_ids[i], "class_name": "Vehicle", "frame_annotations": ann[i]} for i in range(len(vehicles))}
    write_instances(out, instances_info, frame_instances)
    for d in offsets:
        base = out / "gt_shifted" / out_.shift_dir(d)
        for t, Ed in enumerate(poses_by_shift[d]):
            out_.save_matrix(base / "ego_pose" / f"{t:03d}.txt", Ed)
        out_.save_json(base / "boxes_2d.json", boxes[d])
        out_.save_json(base / "meta.json", {
            "shift_m": d,
            "direction": "along the ego's left axis (+y of the vehicle frame), positive = left",
            "rgb": "images/{t:03d}_{cam}." + ("png" if lossless_gt else "jpg (JPEG q95, as images/)"),
            "depth": "depth/{t:03d}_{cam}.png: uint16 camera-axis depth z in metres * 256 (KITTI); 0 = sky, 65535 = 255.996 m or more",
            "sky_masks": "sky_masks/{t:03d}_{cam}.png: 255 = sky",
            "instance_masks": "instance_masks/{t:03d}_{cam}.png: uint16 instance id + 1 (instances/instances_info.json), 0 = none",
            "ego_pose": "ego_pose/{t:03d}.txt: 4x4 vehicle-to-world of the shifted ego",
            "boxes_2d": "boxes_2d.json: per view, visible-pixel box and projected 3D box [x0, y0, x1, y1], pixel i spans [i, i+1)",
            **({"unobserved": "unobserved/{t:03d}_{cam}.png: 255 = surface seen by no recorded camera at any frame (depth test "
                              f"|dz| <= {REL_TOL:g} z + {ABS_TOL:g} m); sky 0",
                "disoccluded": "disoccluded/{t:03d}_{cam}.png: 255 = unobserved and, in some recorded view, inside the frustum "
                               "behind a surface"} if observation else {}),
        })
    out_.save_json(out / "lanes.json", lanes_json(world))
    out_.save_json(out / "scene.json", scene_json(world, cams, offsets, width, height, supersample, lidar_azimuths, lossless_gt, writer_source,
                                                 {**counts, "instances": len(instances_info), "buildings": len(world.buildings),
                                                  "trees": len(world.trees), "poles": len(world.poles), "triangles_static": len(scene.static)},
                                                 observation))
    (out / INCOMPLETE_MARKER).unlink()
    return out


def _drain(futures: list, keep: int) -> None:
    """Wait for (and raise the errors of) all but the newest `keep` write jobs."""
    while len(futures) > keep:
        futures.pop(0).result()


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from rich.progress import Progress

    bar = Progress(transient=False)
    bar.add_task("SynthStreet frames", total=total)
    bar.start()
    return bar


def _r(p: np.ndarray) -> list:
    return np.round(np.asarray(p, dtype=np.float64), 3).tolist()


def lanes_json(world: World, step: float = 2.0) -> dict:
    """Lane centre lines and boundaries (with marking types) and curbs as world polylines."""
    road = world.road
    line = road.line
    s = np.arange(road.s_min, road.s_max + 1e-6, step)
    n, nf = road.n_lanes, road.n_forward
    centre_types = {0: "double_solid_yellow", 1: "solid_yellow_dashed_yellow", 2: "dashed_yellow"}
    boundaries = []
    for k in range(n + 1):
        lb = road.l_right_lanes + k * road.lane_width
        kind = "solid_white" if k in (0, n) else centre_types[road.centre_style] if k == nf else "dashed_white"
        boundaries.append({"id": k, "offset_m": lb, "type": kind, "points": _r(line.point(s, lb))})
    lanes = []
    for k in range(n):
        lc = road.lane_centre(k)
        lanes.append({
            "id": k, "index_from_right": k, "direction": "forward" if k < nf else "backward", "is_ego_lane": k == world.ego_lane,
            "offset_m": lc, "width_m": road.lane_width, "left_boundary": k + 1, "right_boundary": k, "centre": _r(line.point(s, lc)),
        })
    cw = None
    if np.isfinite(road.crosswalk_s):
        c = road.crosswalk_s
        cw = {"s": c, "polygon": _r(line.point(np.array([c - 1.6, c + 1.6, c + 1.6, c - 1.6]),
                                                np.array([road.l_right_curb, road.l_right_curb, road.l_left_curb, road.l_left_curb])))}
    return {
        "frame": "world (the frame of ego_pose/), z up, metres",
        "sample_step_m": step,
        "offsets": "lateral offset from the centre divider, positive to the left of the forward direction",
        "lanes": lanes,
        "boundaries": boundaries,
        "parking": [{"side": side, "offset_m": off, "width_m": road.parking_width} for side, off in
                    (("right", road.l_right_lanes - road.parking_width / 2), ("left", road.l_left_lanes + road.parking_width / 2))],
        "curbs": [{"side": "right", "offset_m": road.l_right_curb, "height_m": road.curb_height, "points": _r(line.point(s, road.l_right_curb))},
                  {"side": "left", "offset_m": road.l_left_curb, "height_m": road.curb_height, "points": _r(line.point(s, road.l_left_curb))}],
        "crosswalk": cw,
    }


def scene_json(world: World, cams: list[RigCamera], offsets, width, height, ss, azimuths, lossless, writer_source, counts,
               observation: bool = True) -> dict:
    road, sky = world.road, world.sky
    look = appearance_record(world)
    return {
        "generator": GENERATOR,
        "seed": world.seed,
        "frames": world.frames,
        "dt_s": world.dt,
        "cameras": {str(c.cam_id): {"name": c.name, "hfov_deg": c.hfov, "yaw_deg": c.yaw, "pitch_deg": c.pitch, "position_m": list(c.position)} for c in cams},
        "width": width,
        "height": height,
        "supersample": ss,
        "shifts_m": offsets,
        "shift_dirs": [f"gt_shifted/{out_.shift_dir(d)}" for d in offsets],
        "dynamic": world.dynamic,
        "ego_lane": world.ego_lane,
        "ego_lane_note": "lane index counted from the rightmost lane (0), see lanes.json",
        "ego_lane_offset_m": world.ego_l,
        "ego_speed_mps": world.ego_speed,
        "lane_width": road.lane_width,
        "n_lanes": road.n_lanes,
        "n_forward_lanes": road.n_forward,
        "road_curvature_per_m": road.line.curvature,
        "road_radius_m": (1.0 / abs(road.line.curvature)) if road.line.curvature else None,
        "sun_direction": _r(sky.sun_dir),
        **({} if look is None else {"appearance": look}),  # classic scenes keep the scene.json they always had
        "lidar": {"beams": LIDAR_BEAMS, "inclination_deg": list(LIDAR_INCLINATION), "azimuths": azimuths, "range_m": LIDAR_RANGE,
                  "origin_m": LIDAR_ORIGIN.tolist(), "frame": "vehicle frame of each timestep (DriveStudio)"},
        "counts": counts,
        "writer": writer_source,
        "conventions": {
            "vehicle_frame": "x forward, y left, z up; origin on the ground",
            "extrinsics": "camera-to-vehicle with Waymo camera axes (x fwd, y left, z up); OpenCV = extrinsic @ OPENCV2DATASET",
            "pixel_centres": "pixel (i, j) has its centre at (i + 0.5, j + 0.5)",
            "depth_png": "uint16 = round(z_metres * 256), 0 = sky",
            "dynamic_masks": "pixel silhouettes of vehicles moving faster than 1 m/s; human masks are empty",
            "shift": "the ego moved along its own left axis, positive = left",
        },
        "observation_masks": observation,
    }
