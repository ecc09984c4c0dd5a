"""Per-pixel expected information gain (EIG) of a camera against the training Fisher.

Per Gaussian (FisherRF's acquisition, per parameter):  I_i = sum_{theta in i} H_view,theta / (H_train,theta + lambda),
lambda = 1e-6, with H_view the Fisher of the camera itself (Gauss-Newton: no target image needed).
Per pixel, three forms (`form`):

    fisherrf     EIG_p = 1/2 sum_i w_pi I_i              w_pi = T_i alpha_i, the compositing weights
    faithfusion  EIG_p = 1/2 sum_i w_pi I_i / n_p        n_p = the number of Gaussians blended at p (hit count)
    diag         EIG_p = 1/2 sum_i w_pi^2 I_i            the squared-weight (diagonal) form

FaithFusion then takes log(1 + EIG); here that log belongs to the calibration (`calibrate.py`), so every
form is stored raw.

Variants of the per-Gaussian acquisition (`acq`, `h_floor`, `group_norm`) and of the map (`smooth`), all off
by default (the published forms above); docs/eig.md has what each does and how they measure:

    acq="log"      I_i = sum_theta log(1 + H_view / (H_train + lambda)): the exact Laplace EIG of the diagonal
                   posterior (1/2 log det(I + H_view H_train^-1), per Gaussian) instead of its trace
                   approximation; an unobserved scalar adds log(1 + H_view / lambda), not H_view / lambda
    h_floor=q      H_train floored per group at the q-quantile of its positive entries (q in (0, 1)): a
                   scalar that training barely saw counts as seen about as well as the q-th poorest one
    group_norm     "mean": each group's sum divided by its number of scalars per Gaussian (shN's 45 scalars
                   no longer outvote the 3 of the means); or explicit per-group divisors (`group_scales`)
    smooth=k       a k x k box filter on the finished map (error maps are smooth over a few pixels)

For comparison, `pixel_variance` is the per-pixel Laplace predictive variance sum_k J_pk (H_train + lambda)^-1
J_pk^T of the pixel's colour (the EIG of observing that one pixel is 1/2 log(1 + it / noise), the same
ranking): exact per pixel and per channel, without H_view and without compositing a per-Gaussian value. Pixels that no Gaussian covers (accumulated alpha < `alpha_min`, FaithFusion's 0.1)
count as maximal: their raw value is set to the map's maximum over covered pixels and `covered` marks
them, so that calibration and loss weights treat them as the most uncertain pixels of the view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.eig.blend import blend_pairs, colour_alpha_grad
from faithfusion.eig.fisher import ViewPass, background_blocks, prepare_view, resolve_backend, view_fisher
from faithfusion.eig.jacobian import GEO_ROWS
from faithfusion.gaussians.model import GaussianModel
from faithfusion.render.raster import pixel_quadratics, tile_lists

Form = Literal["fisherrf", "faithfusion", "diag"]
FORMS: tuple[str, ...] = ("fisherrf", "faithfusion", "diag")
Acq = Literal["ratio", "log"]
ACQS: tuple[str, ...] = ("ratio", "log")
LAMBDA = 1e-6
ALPHA_MIN = 0.1


def floor_train(H_train: Mapping[str, Tensor], q: float) -> dict[str, Tensor]:
    """H_train with each group floored at the q-quantile of its positive entries (q <= 0: unchanged)."""
    if q <= 0.0:
        return dict(H_train)
    out = {}
    for g, h in H_train.items():
        pos = h[h > 0].reshape(-1).float()
        if pos.numel() == 0:
            out[g] = h
            continue
        if pos.numel() > 1_000_000:  # torch.quantile's size limit: an even subsample is as good
            pos = pos[torch.linspace(0, pos.numel() - 1, 1_000_000, device=pos.device).long()]
        out[g] = h.clamp_min(float(torch.quantile(pos, q)))
    return out


def group_acquisition(
    H_view: Mapping[str, Tensor], H_train: Mapping[str, Tensor], lam: float = LAMBDA, acq: Acq = "ratio"
) -> dict[str, Tensor]:
    """Per group, sum over Gaussian i's scalars of H_view / (H_train + lambda) (or log(1 + that)) `{g: [N]}`."""
    if acq not in ACQS:
        raise ValueError(f"unknown acquisition {acq!r}: choose from {ACQS}")
    out = {}
    for g, hv in H_view.items():
        # the fast Fisher's moment shifts can leave rounding negatives (~-1e-7) where H is 0: clamp them, or
        # H_train + lambda can reach 0 and log(1 + r) its pole
        r = hv.clamp_min(0.0) / (H_train[g].clamp_min(0.0) + lam)
        if acq == "log":
            r = torch.log1p(r)
        out[g] = r.reshape(hv.shape[0], -1).sum(-1)
    return out


def acquisition(
    H_view: Mapping[str, Tensor],
    H_train: Mapping[str, Tensor],
    lam: float = LAMBDA,
    *,
    acq: Acq = "ratio",
    h_floor: float = 0.0,
    group_norm: str | Mapping[str, float] | None = None,
) -> Tensor:
    """I_i = sum over the groups of H_view and all of Gaussian i's scalars of H_view / (H_train + lambda) `[N]`
    (defaults); `acq`, `h_floor`, `group_norm` as in the module docstring."""
    per_group = group_acquisition(H_view, floor_train(H_train, h_floor), lam, acq)
    total = None
    for g, v in per_group.items():
        if group_norm == "mean":
            v = v / (H_view[g][0].numel() if H_view[g].shape[0] else 1)
        elif isinstance(group_norm, Mapping):
            v = v / group_norm[g]
        elif group_norm is not None:
            raise ValueError(f"unknown group_norm {group_norm!r}: None, 'mean' or a per-group mapping")
        total = v if total is None else total + v
    return total


@dataclass
class PixelSums:
    """Per-pixel sums over the blended Gaussians of one camera, images `[H, W]` (`[H, W, V]` for wI and w2I
    when `V` values per Gaussian were composited at once)."""

    wI: Tensor  # sum_i w_i I_i
    w2I: Tensor  # sum_i w_i^2 I_i
    count: Tensor  # number of Gaussians blended
    alpha: Tensor  # accumulated opacity 1 - T_final


def composite_scalar(vp: ViewPass, values: Tensor, backend: str = "auto") -> PixelSums:
    """Blend a per-Gaussian scalar `values [N]` (or `V` of them at once, `[N, V]`) over the view's pairs (same
    pairs and weights as the render); `backend` as `fisher.resolve_backend` (triton: `triton_composite.py`)."""
    if resolve_backend(backend, vp.vq.proj.means2d.device) == "triton":
        return _composite_triton(vp, values)
    if not vp.chunks and vp.tiles is not None:
        raise ValueError("composite_scalar(backend='torch') needs a view prepared with plan=True")
    vq, grid = vp.vq, vp.grid
    means2d, conics = vq.proj.means2d[0], vq.proj.conics[0]
    quad = pixel_quadratics(grid.size, means2d.dtype, means2d.device)  # [P, 6]
    vals = values[:, None] if values.dim() == 1 else values  # [N, V]
    V = vals.shape[1]
    out = means2d.new_zeros(grid.n_blocks, grid.n_pixels, 2 * V + 2)  # wI (V), w2I (V), count, alpha
    with torch.no_grad():
        for ch in vp.chunks:
            m = means2d[ch.ids] - ch.centres[:, None, :]  # [B, K, 2]
            o = vq.opacities[ch.ids] * ch.valid
            bl = blend_pairs(quad, m, conics[ch.ids], o)
            v = vals[ch.ids].to(out.dtype)  # [B, K, V]
            out[ch.blocks] = torch.cat(
                [
                    torch.matmul(bl.weight, v),
                    torch.matmul(bl.weight * bl.weight, v),
                    (bl.alpha > 0).sum(-1, keepdim=True).to(out.dtype),
                    1.0 - bl.T_final[..., None],
                ],
                -1,
            )
    img = grid.from_blocks(out)[0]  # [H, W, 2V + 2]
    wI, w2I = img[..., :V], img[..., V : 2 * V]
    if values.dim() == 1:
        wI, w2I = wI[..., 0], w2I[..., 0]
    return PixelSums(wI, w2I, img[..., -2], img[..., -1])


def _composite_triton(vp: ViewPass, values: Tensor) -> PixelSums:
    """`composite_scalar` by the Triton kernel, one launch per value column."""
    from faithfusion.eig.triton_composite import composite_raw

    vq, cam = vp.vq, vp.camera
    tiles = vp.tiles if vp.tiles is not None else tile_lists(vq.proj, cam.width, cam.height)
    means2d, conics = vq.proj.means2d[0], vq.proj.conics[0]
    vals = values[:, None] if values.dim() == 1 else values  # [N, V]
    with torch.no_grad():
        imgs = [composite_raw(means2d, conics, vq.opacities, vals[:, j], tiles, cam.width, cam.height)
                for j in range(vals.shape[1])]  # V x [H, W, 4]
    wI = torch.stack([im[..., 0] for im in imgs], -1)
    w2I = torch.stack([im[..., 1] for im in imgs], -1)
    if values.dim() == 1:
        wI, w2I = wI[..., 0], w2I[..., 0]
    return PixelSums(wI, w2I, imgs[0][..., 2], imgs[0][..., 3])


def pixel_eig(sums: PixelSums, form: Form) -> Tensor:
    """The raw per-pixel EIG `[H, W]` of a form, before the coverage rule."""
    if form == "fisherrf":
        return 0.5 * sums.wI
    if form == "faithfusion":
        n = sums.count.clamp_min(1.0)
        return 0.5 * sums.wI / (n if sums.wI.dim() == n.dim() else n[..., None])
    if form == "diag":
        return 0.5 * sums.w2I
    raise ValueError(f"unknown EIG form {form!r}: choose from {FORMS}")


@dataclass
class EigMap:
    """One camera's EIG map."""

    eig: Tensor  # [H, W] raw EIG; uncovered pixels hold the max over covered ones
    covered: Tensor  # [H, W] bool, accumulated alpha >= alpha_min
    alpha: Tensor  # [H, W]
    count: Tensor  # [H, W] Gaussians blended per pixel
    form: str
    acquisition: Tensor | None = None  # [N] per-Gaussian I (kept when asked)


def box_filter(img: Tensor, k: int) -> Tensor:
    """k x k mean of an image `[H, W]` with replicated borders (k <= 1: unchanged)."""
    if k <= 1:
        return img
    x = torch.nn.functional.pad(img[None, None], ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2), mode="replicate")
    return torch.nn.functional.avg_pool2d(x, k, stride=1)[0, 0]


def cover(eig: Tensor, covered: Tensor, smooth: int = 0) -> Tensor:
    """The coverage rule (uncovered pixels = the max over covered ones), then the optional k x k box filter."""
    top = eig[covered].max() if bool(covered.any()) else eig.new_zeros(())
    return box_filter(torch.where(covered, eig, top), smooth)


def finish_map(sums: PixelSums, form: Form, alpha_min: float = ALPHA_MIN, acq: Tensor | None = None,
               smooth: int = 0) -> EigMap:
    eig = pixel_eig(sums, form)
    covered = sums.alpha >= alpha_min
    return EigMap(cover(eig, covered, smooth), covered, sums.alpha, sums.count, form, acq)


def eig_map(
    model: GaussianModel,
    camera: Camera,
    H_train: Mapping[str, Tensor],
    *,
    form: Form = "fisherrf",
    lam: float = LAMBDA,
    alpha_min: float = ALPHA_MIN,
    background: Tensor | None = None,  # [3] or [H, W, 3]: what shows through where alpha < 1
    groups: Sequence[str] | None = None,  # default: the groups of H_train
    sh_degree: int | None = None,
    max_pairs: int | None = None,
    keep_acquisition: bool = False,
    compiled: bool = False,
    acq: Acq = "ratio",
    h_floor: float = 0.0,
    group_norm: str | Mapping[str, float] | None = None,
    smooth: int = 0,
    backend: str = "auto",
    vp: ViewPass | None = None,
) -> EigMap:
    """EIG map of `camera`: its own Fisher H_view, the acquisition against `H_train`, composited per pixel
    (`acq`, `h_floor`, `group_norm`, `smooth`: the variants of the module docstring; defaults = published).
    `backend` ('auto', 'torch', 'triton'; `fisher.resolve_backend`) runs both pair loops, H_view and the
    compositing, in torch chunks or in the Triton kernels. `vp`: the camera already prepared at the model's
    current parameters (`prepare_view` with the same sh_degree and max_pairs), reused instead of preparing it."""
    groups = tuple(groups or H_train.keys())
    backend = resolve_backend(backend, model.device)
    needs_J = any(g in GEO_ROWS for g in groups)
    if vp is None or (needs_J and vp.vq.J is None) or (backend == "torch" and not vp.chunks and vp.tiles is not None):
        vp = prepare_view(model, camera, sh_degree=sh_degree, max_pairs=max_pairs, plan=backend == "torch",
                          jacobian=needs_J)
    H_view = view_fisher(model, camera, groups=groups, background=background, vp=vp, compiled=compiled, backend=backend)
    I = acquisition(H_view, H_train, lam, acq=acq, h_floor=h_floor, group_norm=group_norm)  # [N]
    return finish_map(composite_scalar(vp, I, backend), form, alpha_min, I if keep_acquisition else None, smooth)



def _posterior_u(vp: ViewPass, H_train: Mapping[str, Tensor], lam: float) -> Tensor:
    """Per Gaussian, the covariance of its view quantities u under the diagonal Laplace posterior,
    P = J^T (H_train + lambda)^-1 J over the groups of H_train `[N, 9, 9]`."""
    vq = vp.vq
    N = vq.opacities.shape[0]
    P = vq.opacities.new_zeros(N, 9, 9)
    geo = [g for g in H_train if g in GEO_ROWS]
    if geo:
        if vq.J is None:
            raise ValueError("pixel_variance needs the view's Jacobian (prepare_view(jacobian=True))")
        for g in geo:
            J = vq.J[:, GEO_ROWS[g]]  # [N, r, 9]
            inv = 1.0 / (H_train[g].reshape(N, -1).to(J) + lam)  # [N, r]
            P += torch.einsum("nru,nr,nrv->nuv", J, inv, J)
    n_act = vq.sh_bases.shape[1]
    for g, sl in (("sh0", slice(0, 1)), ("shN", slice(1, n_act))):
        if g in H_train and sl.stop > sl.start:
            h = H_train[g][:, : sl.stop - sl.start]  # [N, b, 3]
            Y2 = vq.sh_bases[:, sl] ** 2  # [N, b]
            var = (Y2[..., None] / (h.to(Y2) + lam)).sum(1) * vq.colour_live.to(Y2)  # [N, 3]
            P[:, 6:, 6:] += torch.diag_embed(var)
    return P


def pixel_variance(
    model: GaussianModel,
    camera: Camera,
    H_train: Mapping[str, Tensor],
    *,
    lam: float = LAMBDA,
    background: Tensor | None = None,
    sh_degree: int | None = None,
    max_pairs: int | None = None,
    vp: ViewPass | None = None,
) -> PixelSums:
    """Laplace predictive variance of every pixel's colour, summed over channels, in `wI` (and `w2I`) `[H, W]`:
    sum_i sum_k g_pik^T P_i g_pik, g_pik = d c_pk / d u_i, P_i from `_posterior_u` (exact: the diagonal
    posterior has no cross-Gaussian terms)."""
    if vp is None or vp.vq.J is None:
        vp = prepare_view(model, camera, sh_degree=sh_degree, max_pairs=max_pairs, jacobian=True)
    vq, grid = vp.vq, vp.grid
    means2d, conics = vq.proj.means2d[0], vq.proj.conics[0]
    P = _posterior_u(vp, H_train, lam)
    quad = pixel_quadratics(grid.size, means2d.dtype, means2d.device)  # [P, 6]
    xy = grid.pixel_offsets(means2d.dtype, means2d.device)  # [P, 2]
    bg = background_blocks(grid, background, means2d)
    out = means2d.new_zeros(grid.n_blocks, grid.n_pixels, 3)  # var, count, alpha
    with torch.no_grad():
        for ch in vp.chunks:
            m = means2d[ch.ids] - ch.centres[:, None, :]  # [B, K, 2]
            o = vq.opacities[ch.ids] * ch.valid
            a, b, c = conics[ch.ids].unbind(-1)  # [B, K]
            bl = blend_pairs(quad, m, conics[ch.ids], o)
            dx = xy[None, :, None, 0] - m[:, None, :, 0]  # [B, P, K]
            dy = xy[None, :, None, 1] - m[:, None, :, 1]
            inv_o = (-1.0 / o.clamp_min(1e-12))[:, None, :].expand_as(dx)
            v = torch.stack([-(a[:, None] * dx + b[:, None] * dy), -(b[:, None] * dx + c[:, None] * dy),
                             0.5 * dx * dx, dx * dy, 0.5 * dy * dy, inv_o], -1) * bl.slope[..., None]  # [B, P, K, 6]
            Pc = P[ch.ids]  # [B, K, 9, 9]
            qgg = torch.einsum("bpku,bkuv,bpkv->bpk", v, Pc[..., :6, :6], v)
            cross = torch.einsum("bpku,bkuc->bpkc", v, Pc[..., :6, 6:])  # [B, P, K, 3]
            var = bl.weight * bl.weight * torch.diagonal(Pc[..., 6:, 6:], dim1=-2, dim2=-1).sum(-1)[:, None, :]
            for k in range(3):
                D = colour_alpha_grad(bl, vq.colors[ch.ids][..., k], None if bg is None else bg[ch.blocks][..., k])
                var = var + D * D * qgg + 2.0 * D * bl.weight * cross[..., k]
            out[ch.blocks] = torch.stack([var.sum(-1), (bl.alpha > 0).sum(-1).to(out.dtype), 1.0 - bl.T_final], -1)
    img = grid.from_blocks(out)[0]
    return PixelSums(img[..., 0], img[..., 0], img[..., 1], img[..., 2])
