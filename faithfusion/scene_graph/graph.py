"""What is the scene at timestep t? A background plus rigid vehicle nodes, composed into one Gaussian set.

The Gaussians of every node live in ONE GaussianModel next to the background's (the trainer's
`model`, so that its optimizers and densification strategy handle all of them at once); `node_ids [N]`
says which node owns each Gaussian (-1 = background). A background Gaussian is in scene coordinates; a
node's Gaussian is in its box frame (origin at the box centre, x forward, y left, z up). `compose(model, t)`
places every node by its box pose at t refined by a learnable se(3) delta (zero at the start), composes
the quaternions, and hides (opacity 0) the nodes that are not annotated at t. The result is a GaussianModel
whose tensors are functions of the leaves, so `render()` and everything built on it runs unchanged and the
gradients reach each node's local parameters and its pose deltas.

A graph without nodes (a static scene) composes to the model itself: exactly today's result.
SH colours of a node are not rotated with it (view directions are taken in the scene frame, as DriveStudio's
RigidNodes do).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from faithfusion.cameras import rotmat_to_quat
from faithfusion.gaussians.model import GaussianModel
from faithfusion.scene_graph.poses import points_in_box, quat_multiply, refined_pose, transform_points
from faithfusion.scene_graph.tracks import Track

HIDDEN_LOGIT = -30.0
"""Opacity logit of a node's Gaussians at a timestep where the node is not annotated (sigmoid ~ 1e-13)."""


class ComposedGaussians(GaussianModel):
    """A GaussianModel over given tensors (not leaves): the world-frame set of one timestep."""

    def __init__(self, params: dict[str, Tensor], sh_degree: int) -> None:
        nn.Module.__init__(self)
        self.sh_degree = sh_degree
        self.params = dict(params)

    def detached(self) -> GaussianModel:
        """A plain GaussianModel (own leaves) with these values: for EIG, PLY export, snapshots."""
        return GaussianModel({k: v.detach().clone() for k, v in self.params.items()}, self.sh_degree)


class SceneGraph(nn.Module):
    """Node poses per timestep, their learnable refinements, and the node id of every Gaussian."""

    def __init__(self, timesteps: list[int], tracks: list[Track], node_ids: Tensor) -> None:
        super().__init__()
        self.timesteps = [int(t) for t in timesteps]
        self.row = {t: r for r, t in enumerate(self.timesteps)}
        T, K = len(self.timesteps), len(tracks)
        poses = torch.eye(4).repeat(T, K, 1, 1)  # [T, K, 4, 4] box-to-scene (identity where absent)
        present = torch.zeros(T, K, dtype=torch.bool)  # [T, K]
        for k, tr in enumerate(tracks):
            for t, P in zip(tr.timesteps, tr.poses):
                if t in self.row:
                    poses[self.row[t], k] = P
                    present[self.row[t], k] = True
        self.register_buffer("poses", poses)
        self.register_buffer("present", present)
        self.register_buffer("box_quats", rotmat_to_quat(poses[..., :3, :3]) if K else torch.zeros(T, 0, 4))  # [T, K, 4]
        self.register_buffer("sizes", torch.stack([tr.size for tr in tracks]) if K else torch.zeros(0, 3))  # [K, 3]
        self.keys = [tr.key for tr in tracks]
        self.track_ids = [tr.track_id for tr in tracks]
        self.pose_rotation = nn.Parameter(torch.zeros(T, K, 3))  # [T, K, 3] axis-angle, box frame
        self.pose_translation = nn.Parameter(torch.zeros(T, K, 3))  # [T, K, 3] box frame, scene units
        self.node_ids = node_ids.long()  # [N], -1 = background; follows densification (trainer keeps it in sync)

    @property
    def num_nodes(self) -> int:
        return len(self.keys)

    def node_pose(self, node: int, timestep: int) -> tuple[Tensor, Tensor]:
        """(unit quaternion [4], translation [3]) of a node at a timestep, refinement included."""
        r = self.row_of(timestep)
        delta = torch.cat([self.pose_rotation[r, node], self.pose_translation[r, node]])
        return refined_pose(self.poses[r, node], delta, self.box_quats[r, node])

    def row_of(self, timestep: int) -> int:
        if int(timestep) not in self.row:
            raise ValueError(f"scene graph: timestep {timestep} is not one of the scene's ({self.timesteps[0]}..{self.timesteps[-1]})")
        return self.row[int(timestep)]

    def compose(self, model: GaussianModel, timestep: int) -> GaussianModel:
        """The world-frame Gaussian set at `timestep` (the model itself when there are no nodes)."""
        if self.num_nodes == 0:
            return model
        ids = self.node_ids.to(model.device)
        if ids.shape[0] != len(model):
            raise RuntimeError(f"scene graph: {ids.shape[0]} node ids for {len(model)} Gaussians (densification out of sync)")
        r = self.row_of(timestep)
        delta = torch.cat([self.pose_rotation[r], self.pose_translation[r]], dim=-1)  # [K, 6]
        q, t = refined_pose(self.poses[r], delta, self.box_quats[r])  # [K, 4], [K, 3]
        is_node = ids >= 0  # [N]
        idx = ids.clamp_min(0)  # [N]
        p = model.params
        means = torch.where(is_node[:, None], transform_points(p["means"], q[idx], t[idx]), p["means"])
        local_q = torch.nn.functional.normalize(p["quats"], dim=-1)
        quats = torch.where(is_node[:, None], quat_multiply(q[idx], local_q), p["quats"])
        shown = ~is_node | self.present[r].to(ids.device)[idx]  # [N]
        opacities = torch.where(shown, p["opacities"], torch.full_like(p["opacities"], HIDDEN_LOGIT))
        params = {"means": means, "quats": quats, "opacities": opacities, "scales": p["scales"], "sh0": p["sh0"], "shN": p["shN"]}
        return ComposedGaussians(params, model.sh_degree)

    def outside_boxes(self, model: GaussianModel, margin: float) -> Tensor:
        """`[N]` bool: node Gaussians whose centre lies outside their box (scaled by `margin`); background False."""
        ids = self.node_ids.to(model.device)
        out = torch.zeros_like(ids, dtype=torch.bool)
        if self.num_nodes == 0:
            return out
        is_node = ids >= 0
        half = 0.5 * margin * self.sizes.to(model.device)[ids.clamp_min(0)]  # [N, 3]
        out = is_node & (model.params["means"].detach().abs() > half).any(dim=-1)
        return out

    def node_counts(self) -> list[int]:
        return [int((self.node_ids == k).sum()) for k in range(self.num_nodes)]

    def meta(self) -> dict:
        return {"timesteps": self.timesteps, "keys": self.keys, "track_ids": self.track_ids}


def inside_any_box(points: Tensor, tracks: list[Track], margin: float = 1.0) -> Tensor:
    """`[N]` bool: points (scene) inside some track's box at some annotated timestep."""
    mask = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    for tr in tracks:
        size = tr.size.to(points.device)
        for P in tr.poses.to(points.device):
            mask |= points_in_box(points, P, size, margin)[0]
    return mask
