"""Per-Gaussian Jacobian of what one camera sees of a Gaussian w.r.t. its stored parameters.

The per-view quantities u = (mean2d x, y; conic a, b, c; opacity; colour r, g, b) of Gaussian n depend
only on Gaussian n's own parameters, so one backward pass of sum_n u_nj gives row j of all N Jacobians
at once: 9 passes for the 11 geometric scalars (means 3, log-scales 3, raw quats 4, logit opacity 1).
(Forward mode would need 11 passes and, for scalar ops, runs through slow Python decompositions.) The function differentiated is the torch
backend's own `project_gaussians` and `render.sh.sh_colors`, so the tangent clamp of the perspective
Jacobian, the eps2d blur, the quaternion normalisation, the sigmoid / exp activations, the colour clamp
at 0 and the view direction's dependence on the mean are all exactly those of the renderer.

SH coefficients enter u linearly: d colour_k / d sh_bk = Y_b(dir) [colour_k before the clamp >= 0].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from faithfusion.render.sh import C0, camera_centres, eval_sh_bases, normalize_dirs, num_bases, sh_colors
from faithfusion.render.torch_backend import Projection, project_gaussians

# rows of J: the geometric parameter scalars, in this order
GEO_ROWS = {"means": slice(0, 3), "scales": slice(3, 6), "quats": slice(6, 10), "opacities": slice(10, 11)}
N_GEO_ROWS = 11
N_U = 9  # mean2d (2), conic (3), opacity (1), colour (3)


@dataclass
class ViewQuantities:
    """One camera's view of the Gaussians, with what the Fisher needs per Gaussian."""

    proj: Projection  # batched over one camera: fields [1, N, ...]
    opacities: Tensor  # [N] activated
    colors: Tensor  # [N, 3] clamped SH colour
    J: Tensor | None  # [N, 11, 9] d u / d (means, log-scales, quats, logit opacity)
    sh_bases: Tensor  # [N, n_bases] Y_b(dir) of the active degree
    colour_live: Tensor  # [N, 3] bool: colour not clamped at 0 (its SH gradient passes)


def _sh_raw(means: Tensor, sh_coeffs: Tensor, degree: int, viewmat: Tensor) -> tuple[Tensor, Tensor]:
    """SH bases `[N, n]` and the colour before the clamp `[N, 3]` (+0.5 included)."""
    n = num_bases(degree)
    if degree == 0:
        bases = torch.full_like(means[:, :1], C0)  # [N, 1]
    else:
        dirs = means - camera_centres(viewmat[None])[0]  # [N, 3]
        bases = eval_sh_bases(degree, normalize_dirs(dirs))
    raw = torch.einsum("nk,nkd->nd", bases, sh_coeffs[:, :n, :]) + 0.5
    return bases, raw


def view_quantities(
    params: dict[str, Tensor],  # the model's stored parameters (raw), detached
    sh_degree: int,
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    jacobian: bool = True,
) -> ViewQuantities:
    """Projection, colours and (if `jacobian`) the per-Gaussian Jacobian of one camera."""
    means, log_scales, quats, logit_o = params["means"], params["scales"], params["quats"], params["opacities"]
    sh_coeffs = torch.cat([params["sh0"], params["shN"]], 1)  # [N, K, 3]
    vm, Ks = viewmat[None], K[None]
    opac = torch.sigmoid(logit_o)
    proj = project_gaussians(means, quats, torch.exp(log_scales), opac, vm, Ks, width, height, eps2d, near_plane, far_plane)
    colors = sh_colors(means, sh_coeffs, sh_degree, vm)[0]  # [N, 3]
    bases, raw = _sh_raw(means, sh_coeffs, sh_degree, viewmat)
    if not jacobian:
        return ViewQuantities(proj, opac, colors, None, bases, raw >= 0)

    vis = proj.visible[0].nonzero().squeeze(-1)  # only visible Gaussians have pixels: J of the rest stays 0
    sh_vis = sh_coeffs[vis]

    def u_of(m: Tensor, s: Tensor, q: Tensor, o: Tensor) -> Tensor:  # [V, 9]
        p = project_gaussians(m, q, torch.exp(s), torch.sigmoid(o), vm, Ks, width, height, eps2d, near_plane, far_plane)
        col = sh_colors(m, sh_vis, sh_degree, vm)[0]
        return torch.cat([p.means2d[0], p.conics[0], torch.sigmoid(o)[:, None], col], -1)

    J = means.new_zeros(means.shape[0], N_GEO_ROWS, N_U)  # [N, 11, 9]
    if vis.numel() == 0:
        return ViewQuantities(proj, opac, colors, J, bases, raw >= 0)
    with torch.enable_grad():
        primals = [t[vis].detach().requires_grad_(True) for t in (means, log_scales, quats, logit_o)]
        u = u_of(*primals)  # [V, 9]
        rows = []
        for j in range(N_U):  # one backward pass per output: Gaussians are independent, so the
            # gradient of sum_n u_nj w.r.t. Gaussian n's parameters is d u_nj / d theta_n
            grads = torch.autograd.grad(u[:, j].sum(), primals, retain_graph=j < N_U - 1, allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(p.shape[0], -1)
                                   for g, p in zip(grads, primals)], -1))  # [V, 11]
    J[vis] = torch.stack(rows, -1)
    return ViewQuantities(proj, opac, colors, J, bases, raw >= 0)
