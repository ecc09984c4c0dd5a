"""How does a scene graph start? Node Gaussians from the lidar inside each box, a background without them.

As DriveStudio's `get_init_objects`: every annotated timestep's lidar sweep is moved into the box frame of
each node present then, and the hits inside the box are the node's points (at most `max_points`, a random
subset). Where the lidar is thin (fewer than `min_points` hits, e.g. a car seen from far), random points
uniform in the box fill up to `min_points`. Lidar points are coloured from the training images of their
timestep (nearest pixel), grey where no training camera sees them. The background keeps every Gaussian of
today's initialisation except those inside a node's box at one of its timesteps (DriveStudio's
`filter_pts_in_boxes`), so that no static copy of a moving car is left along its path.
"""

from __future__ import annotations

import torch
from torch import Tensor

from faithfusion.data.scene import SceneData
from faithfusion.gaussians.model import GaussianModel
from faithfusion.scene_graph.graph import SceneGraph, inside_any_box
from faithfusion.scene_graph.poses import points_in_box
from faithfusion.scene_graph.tracks import Track


def lidar_by_timestep(scene: SceneData) -> dict[int, Tensor]:
    """One lidar sweep `[M, 3]` (scene coordinates) per timestep that has one."""
    out: dict[int, Tensor] = {}
    for f in scene.frames:
        if f.lidar_points is not None and f.timestep not in out:
            out[f.timestep] = f.lidar_points.float()
    return out


def color_from_views(scene: SceneData, points: Tensor, timestep: int, train_ids: list[int], scale: float,
                     cache: dict | None = None) -> Tensor:
    """Colours `[M, 3]` of scene points at `timestep`: the nearest pixel of the first training image of that
    timestep that sees each point (in front, inside the image); 0.5 grey where none does."""
    colors = torch.full((points.shape[0], 3), 0.5)
    done = torch.zeros(points.shape[0], dtype=torch.bool)
    for i in train_ids:
        if scene.frames[i].timestep != timestep or bool(done.all()):
            continue
        cam = scene.camera(i, scale)
        X = points @ cam.viewmat[:3, :3].T + cam.viewmat[:3, 3]  # [M, 3] camera frame
        z = X[:, 2].clamp_min(1e-6)
        u = cam.K[0, 0] * X[:, 0] / z + cam.K[0, 2]
        v = cam.K[1, 1] * X[:, 1] / z + cam.K[1, 2]
        ok = ~done & (X[:, 2] > 1e-3) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        if not ok.any():
            continue
        cache = {} if cache is None else cache
        if i not in cache:
            cache[i] = scene.load_image(i, scale)
        image = cache[i]  # [H, W, 3]
        colors[ok] = image[v[ok].long().clamp(0, cam.height - 1), u[ok].long().clamp(0, cam.width - 1)]
        done |= ok
    return colors


def node_points(
    scene: SceneData, track: Track, lidar: dict[int, Tensor], max_points: int, min_points: int,
    generator: torch.Generator, color_scale: float = 0.25, cache: dict | None = None,
) -> tuple[Tensor, Tensor]:
    """(points `[M, 3]` in the box frame, colours `[M, 3]`) of one node: its lidar hits plus random fill."""
    locals_, colors = [], []
    for t, P in zip(track.timesteps, track.poses):
        pts = lidar.get(t)
        if pts is None:
            continue
        inside, local = points_in_box(pts, P, track.size)
        if inside.any():
            locals_.append(local[inside])
            colors.append(color_from_views(scene, pts[inside], t, scene.train_ids, color_scale, cache))
    pts = torch.cat(locals_) if locals_ else torch.zeros(0, 3)
    col = torch.cat(colors) if colors else torch.zeros(0, 3)
    if pts.shape[0] > max_points:
        keep = torch.randperm(pts.shape[0], generator=generator)[:max_points]
        pts, col = pts[keep], col[keep]
    n_fill = max(0, min_points - pts.shape[0])
    if n_fill:
        fill = (torch.rand(n_fill, 3, generator=generator) - 0.5) * track.size
        pts = torch.cat([pts, fill])
        col = torch.cat([col, torch.rand(n_fill, 3, generator=generator)])
    return pts, col


def build_scene_graph(
    scene: SceneData, background: GaussianModel, tracks: list[Track], *, max_points: int = 5000, min_points: int = 500,
    opacity: float = 0.1, init_scale: float = 1.0, generator: torch.Generator,
) -> tuple[GaussianModel, SceneGraph]:
    """(the concatenated model: background then each node's Gaussians; its SceneGraph). Without tracks the
    background model itself is returned untouched (a static scene is today's model)."""
    timesteps = list(scene.extra.get("timesteps") or sorted({f.timestep for f in scene.frames}))
    if not tracks:
        return background, SceneGraph(timesteps, [], torch.full((len(background),), -1, dtype=torch.long))
    keep = ~inside_any_box(background.means.detach().cpu(), tracks, margin=1.05)
    parts = [{k: v.detach().cpu()[keep] for k, v in background.params.items()}]
    ids = [torch.full((int(keep.sum()),), -1, dtype=torch.long)]
    lidar = lidar_by_timestep(scene)
    images: dict = {}
    for k, tr in enumerate(tracks):
        pts, col = node_points(scene, tr, lidar, max_points, min_points, generator, cache=images)
        node = GaussianModel.from_points(pts, col, background.sh_degree, init_opacity=opacity, init_scale=init_scale,
                                         generator=generator)
        parts.append({name: v.detach() for name, v in node.params.items()})
        ids.append(torch.full((len(node),), k, dtype=torch.long))
    params = {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
    model = GaussianModel(params, background.sh_degree)
    return model, SceneGraph(timesteps, tracks, torch.cat(ids))


def graph_for_scene(scene: SceneData, background: GaussianModel, cfg, generator: torch.Generator, *,
                    opacity: float = 0.1, init_scale: float = 1.0) -> tuple[GaussianModel, SceneGraph]:
    """The trainer's entry: a node per moving rigid track of the scene (cfg: SceneGraphConfig). A scene without
    instance files (a static capture) gets a graph with only the background: the model is returned as it is."""
    from faithfusion.scene_graph.tracks import tracks_from_scene

    tracks: list[Track] = []
    if scene.instances is not None:
        min_len = scene.transform.metres_to_scene(cfg.min_trajectory)
        tracks = tracks_from_scene(scene).moving_vehicles(min_len)
    return build_scene_graph(scene, background, tracks, max_points=cfg.max_points, min_points=cfg.min_points,
                             opacity=opacity, init_scale=init_scale, generator=generator)
