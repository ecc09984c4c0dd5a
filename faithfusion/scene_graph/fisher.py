"""How does the Fisher of a view on the scene graph reach the node-local parameters?

A camera at timestep t sees `graph.compose(model, t)`: the same Gaussians, in the same order, with each node's
means and rotations placed by its (refined) box pose at t. The Fisher and EIG code (faithfusion/eig) works on
that world-frame set; its diagonal Fisher is then carried back to the stored, node-local parameters:

- `scales`, `sh0`, `shN`, `opacities`: the composition leaves them as they are, so the diagonal is the same
  (SH colours are not rotated with a node, as in DriveStudio's RigidNodes). A node not annotated at t is hidden
  (constant opacity): its Gaussians get no information from that view (0 in every group).
- `means`: world = R x_local + t, so F_local = R^T F_world R. Only the diagonal of F_world is known; the
  diagonal kept is diag(R^T diag(F_world) R)_i = sum_j R_ji^2 F_world,j. It is exact where R permutes the axes
  (0 / 90 / 180 degree yaw: a box aligned with the axes) and for an isotropic F, and it keeps the trace (the sum
  over x, y, z) exactly for every R; what it drops is the off-diagonal of F_world, which the diagonal Fisher
  never had.
- `quats`: world = q_box (x) normalize(q_local), so d/dq_local = (d/dq_world) L(q_box) / |q_local| (the
  normalisation's projector commutes through the orthogonal left-product matrix L), and the diagonal is
  sum_j L_ji^2 F_world,j / |q_local|^2: the same rule, exact for a signed permutation L (0 / 180 degrees) and
  exact in its trace.

The pose refinements (per frame and node) get no Fisher, as camera poses get none: EIG is over the Gaussians.
For the `pixel` EIG form, which needs H_train in the camera's frame, `to_world` applies the transposed rule.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from faithfusion.cameras import Camera, quat_multiply, quat_to_rotmat
from faithfusion.gaussians.model import GaussianModel
from faithfusion.scene_graph.graph import SceneGraph
from faithfusion.scene_graph.poses import refined_pose


class GraphFrames:
    """A scene graph's view of each camera: the composed Gaussian set it sees, and the map of that set's
    diagonal Fisher to and from the node-local parameters (module docstring)."""

    def __init__(self, graph: SceneGraph, timestep_of: Callable[[Camera], int]) -> None:
        self.graph = graph
        self.timestep_of = timestep_of

    @torch.no_grad()
    def model_for(self, model: GaussianModel, camera: Camera) -> GaussianModel:
        """The world-frame Gaussians `camera` sees (no autograd graph)."""
        return self.graph.compose(model, self.timestep_of(camera))

    @torch.no_grad()
    def _squared_maps(self, model: GaussianModel, camera: Camera) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per Gaussian: R^2 `[N, 3, 3]`, L^2 / |q_local|^2 `[N, 4, 4]` (identity for the background), whether it is a
        node `[N]` and whether it is shown at the camera's timestep `[N]`."""
        g = self.graph
        ids = g.node_ids.to(model.device)  # [N]
        r = g.row_of(self.timestep_of(camera))
        delta = torch.cat([g.pose_rotation[r], g.pose_translation[r]], dim=-1)  # [K, 6]
        q, _ = refined_pose(g.poses[r], delta, g.box_quats[r])  # [K, 4]
        q = q.to(model.means.dtype)
        R = quat_to_rotmat(q)  # [K, 3, 3]
        eye4 = torch.eye(4, dtype=q.dtype, device=q.device)
        L = torch.stack([quat_multiply(q, eye4[j].expand_as(q)) for j in range(4)], dim=-1)  # [K, 4, 4]: L e_j
        is_node = ids >= 0
        idx = ids.clamp_min(0)
        n = ids.shape[0]
        R2 = torch.eye(3, dtype=q.dtype, device=q.device).expand(n, 3, 3).clone()
        L2 = eye4.expand(n, 4, 4).clone()
        if is_node.any():
            R2[is_node] = R[idx[is_node]] ** 2
            qn2 = (model.params["quats"].detach()[is_node] ** 2).sum(-1).clamp_min(1e-24)  # |q_local|^2
            L2[is_node] = L[idx[is_node]] ** 2 / qn2[:, None, None]
        shown = ~is_node | g.present[r].to(ids.device)[idx]
        return R2, L2, is_node, shown

    def to_local(self, model: GaussianModel, camera: Camera, H: dict[str, Tensor]) -> dict[str, Tensor]:
        """The diagonal Fisher `H` of `model_for(model, camera)` (world frame at the camera's timestep) as the
        diagonal Fisher of the stored node-local parameters."""
        if self.graph.num_nodes == 0:
            return H
        R2, L2, _, shown = self._squared_maps(model, camera)
        out = {}
        for name, h in H.items():
            if name == "means":
                h = (R2.transpose(1, 2).to(h.dtype) @ h[..., None])[..., 0]  # sum_j R_ji^2 F_j
            elif name == "quats":
                h = (L2.transpose(1, 2).to(h.dtype) @ h[..., None])[..., 0]
            out[name] = h * shown.view(-1, *([1] * (h.dim() - 1))).to(h.dtype)
        return out

    def to_world(self, model: GaussianModel, camera: Camera, H: dict[str, Tensor]) -> dict[str, Tensor]:
        """A local diagonal Fisher (H_train) in the world frame of the camera's timestep (the transposed rule;
        the `pixel` EIG form's prior precision). Hidden nodes keep theirs: they do not show in the view."""
        if self.graph.num_nodes == 0:
            return H
        R2, L2, _, _ = self._squared_maps(model, camera)
        qn2 = (model.params["quats"].detach() ** 2).sum(-1).clamp_min(1e-24)  # undo the 1/|q|^2 of L2 for quats
        out = dict(H)
        if "means" in H:
            out["means"] = (R2.to(H["means"].dtype) @ H["means"][..., None])[..., 0]
        if "quats" in H:
            out["quats"] = ((L2 * qn2[:, None, None]).to(H["quats"].dtype) @ H["quats"][..., None])[..., 0]
        return out


def graph_frames(trainer) -> GraphFrames | None:
    """The trainer's GraphFrames when it has vehicle nodes, else None (a static scene: the model is the set)."""
    if not getattr(trainer, "has_nodes", False):
        return None
    return GraphFrames(trainer.graph, trainer.timestep_of)
