"""Per-Gaussian Jacobian of what one camera sees of a Gaussian w.r.t. its stored parameters.

The per-view quantities u = (mean2d x, y; conic a, b, c; opacity; colour r, g, b) of Gaussian n depend
only on Gaussian n's own parameters, so one backward pass of sum_n u_nj gives row j of all N Jacobians
at once: 9 passes for the 11 geometric scalars (means 3, log-scales 3, raw quats 4, logit opacity 1).
(Forward mode would need 11 passes and, for scalar ops, runs through slow Python decompositions.) The function differentiated is the torch
backend's own `project_gaussians` and `render.sh.sh_colors`, so the tangent clamp of the perspective
Jacobian, the eps2d blur, the quaternion normalisation, the sigmoid / exp activations, the colour clamp
at 0 and the view direction's dependence on the mean are all exactly those of the renderer.

SH coefficients enter u linearly: d colour_k / d sh_bk = Y_b(dir) [colour_k before the clamp >= 0].

`analytic_jacobian` gives the same J in closed form (hand forward mode over the 11 parameter
directions at once: mean2d, the EWA covariance through J W, the conic as -conic dcov conic, the
tangent clamp's zero derivative outside the widened field of view, the quaternion normalisation; the
colour's dependence on the mean through the view direction by an exact 4-point difference of the SH
polynomials, `_sh_mean_jacobian`), elementwise throughout so that torch.compile fuses it. `view_quantities(method=...)`: 'autograd' (the
9 backward passes), 'analytic', or 'auto' (analytic on CUDA, autograd elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from faithfusion.render.sh import C0, camera_centres, eval_sh_bases, normalize_dirs, num_bases, sh_colors
from faithfusion.render.raster import Projection, project_gaussians, tangent_limits

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
    """SH bases `[N, n]` and the colour before the clamp `[N, 3]` (+0.5 included), summed as the renderer sums it."""
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
    method: str = "auto",
) -> ViewQuantities:
    """Projection, colours and (if `jacobian`) the per-Gaussian Jacobian of one camera (`method`: see above)."""
    means, log_scales, quats, logit_o = params["means"], params["scales"], params["quats"], params["opacities"]
    vm, Ks = viewmat[None], K[None]
    opac = torch.sigmoid(logit_o)
    proj = compiled_fn("projection", project_gaussians, means.is_cuda)(
        means, quats, torch.exp(log_scales), opac, vm, Ks, width, height, eps2d, near_plane, far_plane)
    sh_coeffs = torch.cat([params["sh0"], params["shN"]], 1)  # [N, K, 3]
    bases, raw = _sh_raw(means, sh_coeffs, sh_degree, viewmat)
    colors = raw.clamp_min(0.0)  # [N, 3] = render.sh.sh_colors
    live = raw >= 0  # [N, 3] colour not clamped at 0
    if not jacobian:
        return ViewQuantities(proj, opac, colors, None, bases, live)

    vis = proj.visible[0].nonzero().squeeze(-1)  # only visible Gaussians have pixels: J of the rest stays 0
    sh_vis = sh_coeffs[vis]
    if method == "auto":
        method = "analytic" if means.is_cuda else "autograd"
    if method == "analytic":
        J = means.new_zeros(means.shape[0], N_GEO_ROWS, N_U)
        if vis.numel():
            J[vis] = analytic_jacobian(means[vis], log_scales[vis], quats[vis], logit_o[vis], sh_vis, sh_degree,
                                       viewmat, K, width, height, eps2d, live[vis])
        return ViewQuantities(proj, opac, colors, J, bases, live)
    if method != "autograd":
        raise ValueError(f"unknown Jacobian method {method!r}: 'auto', 'autograd' or 'analytic'")

    def u_of(m: Tensor, s: Tensor, q: Tensor, o: Tensor) -> Tensor:  # [V, 9]
        p = project_gaussians(m, q, torch.exp(s), torch.sigmoid(o), vm, Ks, width, height, eps2d, near_plane, far_plane)
        col = sh_colors(m, sh_vis, sh_degree, vm)[0]
        return torch.cat([p.means2d[0], p.conics[0], torch.sigmoid(o)[:, None], col], -1)

    J = means.new_zeros(means.shape[0], N_GEO_ROWS, N_U)  # [N, 11, 9]
    if vis.numel() == 0:
        return ViewQuantities(proj, opac, colors, J, bases, live)
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
    return ViewQuantities(proj, opac, colors, J, bases, live)


def _rot(q: Tensor) -> Tensor:
    """The rotation formula of `quat_scale_factor` for quats `[..., 4]` (wxyz) taken as given (no normalisation)."""
    from faithfusion.cameras import rotmat_formula

    return rotmat_formula(q)


def analytic_jacobian(
    means: Tensor,  # [V, 3] (visible Gaussians only)
    log_scales: Tensor,  # [V, 3]
    quats: Tensor,  # [V, 4]
    logit_o: Tensor,  # [V]
    sh_coeffs: Tensor,  # [V, K, 3]
    sh_degree: int,
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    colour_live: Tensor | None = None,  # [V, 3] bool: colour not clamped at 0 (view_quantities has it)
) -> Tensor:
    """d u / d (means, log-scales, quats, logit opacity) `[V, 11, 9]` in closed form (see the module docstring).
    On CUDA the geometric part runs through torch.compile (one fused pass over the Gaussians instead of ~100
    small kernels; FAITHFUSION_EIG_COMPILE=0 turns it off)."""
    J = compiled_fn("geometry", _geometry_jacobian, means.is_cuda)(means, log_scales, quats, logit_o, viewmat, K,
                                                               width, height, eps2d)
    if sh_degree > 0:  # colour through the view direction
        if colour_live is None:
            colour_live = _sh_raw(means, sh_coeffs, sh_degree, viewmat)[1] >= 0
        J[:, 0:3, 6:9] = compiled_fn(f"sh_mean_{sh_degree}", _sh_mean_jacobian, means.is_cuda)(
            means, sh_coeffs, sh_degree, viewmat, colour_live)
    return J


def _sh_mean_jacobian(means: Tensor, sh_coeffs: Tensor, degree: int, viewmat: Tensor, colour_live: Tensor) -> Tensor:
    """d colour_k / d mean_j `[V, 3 (j), 3 (k)]` through the view direction, 0 where the colour is clamped.

    The bases are polynomials of degree <= 3 in the unit direction d, so along a tangent t the 4-point central
    difference  Y'(d) t = (8 (Y(d + t) - Y(d - t)) - (Y(d + 2t) - Y(d - 2t))) / 12  is exact (it is for any
    polynomial of degree <= 4), whatever the length of t; t_j = (I - d d^T) e_j / |mean - centre| is the
    derivative of the normalisation `normalize_dirs` along mean_j. Elementwise only: one fused pass."""
    n = num_bases(degree)
    coeffs = sh_coeffs[:, :n, :]  # [V, n, 3]
    rel = means - camera_centres(viewmat[None])[0]  # [V, 3]
    sq = (rel * rel).sum(-1, keepdim=True).clamp_min(1e-30)
    inv_r = torch.rsqrt(sq)
    d = rel * inv_r  # [V, 3] unit direction
    live = colour_live.to(means.dtype)  # [V, 3]
    eye = torch.eye(3, dtype=means.dtype, device=means.device)
    rows = []
    for j in range(3):
        t = (eye[j][None] - d * d[:, j:j + 1]) * inv_r  # [V, 3] d d / d mean_j
        dY = (8.0 * (eval_sh_bases(degree, d + t) - eval_sh_bases(degree, d - t))
              - (eval_sh_bases(degree, d + 2.0 * t) - eval_sh_bases(degree, d - 2.0 * t))) / 12.0  # [V, n]
        rows.append((dY[..., None] * coeffs).sum(-2) * live)  # [V, 3]
    return torch.stack(rows, 1)


_COMPILED: dict = {}


def compiled_fn(name: str, fn, enabled: bool):
    """`fn`, or where `enabled` (and not FAITHFUSION_EIG_COMPILE=0) its torch.compile'd form, shapes dynamic,
    built once per name: the EIG code's one cache of compiled functions."""
    import os

    if not enabled or os.environ.get("FAITHFUSION_EIG_COMPILE", "1") == "0":
        return fn
    if name not in _COMPILED:
        _COMPILED[name] = torch.compile(fn, dynamic=True)
    return _COMPILED[name]


def _rc_times(Rc: Tensor, X: Tensor) -> Tensor:
    """Rc @ X for a batch `X [..., 3, 3]`, as an elementwise product and a sum (fuses; a 3x3 matmul per
    Gaussian would be a cuBLAS batched GEMM call of its own)."""
    return (Rc[:, :, None] * X[..., None, :, :]).sum(-2)


def _geometry_jacobian(
    means: Tensor, log_scales: Tensor, quats: Tensor, logit_o: Tensor, viewmat: Tensor, K: Tensor,
    width: int, height: int, eps2d: float,
) -> Tensor:
    """`analytic_jacobian` without the colour's dependence on the mean `[V, 11, 9]`."""
    V, dt = means.shape[0], means.dtype
    Rc, t = viewmat[:3, :3], viewmat[:3, 3]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    p = (means[:, None, :] * Rc[None]).sum(-1) + t  # [V, 3] = means Rc^T + t
    x, y, z = p.unbind(-1)
    rz = 1.0 / z
    # tangents d p / d theta over the 11 directions [V, 11, 3]: only the means move p
    dp = means.new_zeros(V, N_GEO_ROWS, 3)
    dp[:, 0:3, :] = Rc.T[None]  # d p / d mean_i = column i of Rc
    dx, dy, dz = dp.unbind(-1)  # [V, 11]
    drz = -rz[:, None] ** 2 * dz

    def tangent(u: Tensor, du: Tensor, f: Tensor, c: Tensor, size: int) -> tuple[Tensor, Tensor]:
        lim_neg, lim_pos = tangent_limits(f, c, size)
        r = u * rz
        inside = (r >= -lim_neg) & (r <= lim_pos)  # torch.clamp passes the gradient on the closed interval
        dr = du * rz[:, None] + u[:, None] * drz
        return r.clamp(-lim_neg, lim_pos), dr * inside[:, None]

    tx, dtx = tangent(x, dx, fx, cx, width)
    ty, dty = tangent(y, dy, fy, cy, height)

    # M = R(q / |q|) diag(exp(log_s)), W = Rc M; tangents dW [V, 11, 3, 3]
    s = torch.exp(log_scales)
    n = torch.linalg.vector_norm(quats, dim=-1, keepdim=True)
    qh = quats / n
    R = _rot(qh)  # [V, 3, 3]
    M = R * s[:, None, :]
    dM = means.new_zeros(V, N_GEO_ROWS, 3, 3)
    for j in range(3):  # d M / d log_s_j = column j of M
        dM[:, 3 + j, :, j] = M[:, :, j]
    eye4 = torch.eye(4, dtype=dt, device=means.device)
    dqh = (eye4[None] - qh[:, :, None] * qh[:, None, :]) / n[..., None]  # [V, 4 (dq_i), 4] d qh / d q_i
    # R is quadratic in q (plus a constant): dR(q)[d] = (R(q + d) - R(q - d)) / 2 exactly
    dR = 0.5 * (_rot(qh[:, None, :] + dqh) - _rot(qh[:, None, :] - dqh))  # [V, 4, 3, 3]
    dM[:, 6:10] = dR * s[:, None, None, :]
    W = _rc_times(Rc, M)  # [V, 3, 3]
    dW = _rc_times(Rc, dM)  # [V, 11, 3, 3]

    # rows of J W: jw0 = fx rz (W0 - tx W2), jw1 = fy rz (W1 - ty W2)
    W0, W1_, W2 = W[:, None, 0, :], W[:, None, 1, :], W[:, None, 2, :]  # [V, 1, 3]
    dW0, dW1, dW2 = dW[..., 0, :], dW[..., 1, :], dW[..., 2, :]  # [V, 11, 3]
    a0 = (W0 - tx[:, None, None] * W2)[:, 0]  # [V, 3]
    a1 = (W1_ - ty[:, None, None] * W2)[:, 0]
    jw0 = fx * rz[:, None] * a0
    jw1 = fy * rz[:, None] * a1
    djw0 = fx * (drz[..., None] * a0[:, None] + rz[:, None, None] * (dW0 - dtx[..., None] * W2 - tx[:, None, None] * dW2))
    djw1 = fy * (drz[..., None] * a1[:, None] + rz[:, None, None] * (dW1 - dty[..., None] * W2 - ty[:, None, None] * dW2))
    ca = (jw0 * jw0).sum(-1) + eps2d
    cb = (jw0 * jw1).sum(-1)
    cc = (jw1 * jw1).sum(-1) + eps2d
    dca = 2.0 * (djw0 * jw0[:, None]).sum(-1)  # [V, 11]
    dcb = (djw0 * jw1[:, None]).sum(-1) + (jw0[:, None] * djw1).sum(-1)
    dcc = 2.0 * (djw1 * jw1[:, None]).sum(-1)
    inv_det = 1.0 / (ca * cc - cb * cb)
    A, B, C = cc * inv_det, -cb * inv_det, ca * inv_det  # the conic
    A_, B_, C_ = A[:, None], B[:, None], C[:, None]
    # d conic = -conic dcov conic (symmetric 2x2)
    dA = -(A_ * A_ * dca + 2 * A_ * B_ * dcb + B_ * B_ * dcc)
    dB = -(A_ * B_ * dca + (A_ * C_ + B_ * B_) * dcb + B_ * C_ * dcc)
    dC = -(B_ * B_ * dca + 2 * B_ * C_ * dcb + C_ * C_ * dcc)

    J = means.new_zeros(V, N_GEO_ROWS, N_U)
    J[..., 0] = fx * (dx * rz[:, None] + x[:, None] * drz)
    J[..., 1] = fy * (dy * rz[:, None] + y[:, None] * drz)
    J[..., 2], J[..., 3], J[..., 4] = dA, dB, dC
    o = torch.sigmoid(logit_o)
    J[:, 10, 5] = o * (1 - o)
    return J
