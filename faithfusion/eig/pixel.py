"""Pixel EIG: the per-pixel split of the paper's bound tr(H_view H_train^-1), the map form "pixel".

With the diagonal Laplace posterior of the Gaussians' raw parameters (likelihood: every training pixel's
colour observed with noise variance sigma^2; prior: a zero-mean Gaussian of precision Lambda_g per
parameter group g) the posterior covariance is  Sigma = (H_train / sigma^2 + Lambda)^-1  (diagonal), and the
predictive variance of pixel p's colour, summed over its channels k, is

    Var_p = sum_k J_pk^T Sigma J_pk  +  3 T_final,p^2 sigma_empty^2,       J_pk = d c_pk / d theta

The first term, summed over pixels, is tr(H_view Sigma) = sigma^2 tr(H_view (H_train + sigma^2 Lambda)^-1):
the paper's trace bound (with sigma^2 Lambda in place of its lambda = 1e-6), split exactly per pixel instead of
being spread by compositing per-Gaussian totals. The second is what no Gaussian explains: the colour of empty
space behind the last blended Gaussian, prior variance sigma_empty^2 per channel, seen through the final
transmittance (so uncovered pixels get their own value, no coverage rule). The EIG of observing the pixel
once more with the same noise is

    EIG_p = 1/2 log(1 + Var_p / sigma^2).

How. A pixel's colour depends on Gaussian i only through i's view quantities u_i (`jacobian.py`), and the
posterior is diagonal (no cross-Gaussian terms), so with P_i = J_i^T Sigma J_i (9x9, per Gaussian) and
g_pik = d c_pk / d u_i in closed form (`blend.py`): Var_p = sum_i sum_k g_pik^T P_i g_pik. The pair loop runs
in torch chunks (`backend="torch"`) or in one Triton kernel over the tile lists (`triton_pixel.py`).

Defaults (`PixelPrior`), each from one rule: a raw parameter may a priori move by about one unit of its own
scale (prior std 1 for the means in scene units (metres in driving scenes), log-scales (a factor e),
raw quaternions and logit opacities); SH coefficients have prior std 0.5 / C0 (the DC colour's prior std 0.5,
colour in [0, 1]); sigma = 0.05, the per-channel rms residual of a converged reconstruction at ~26 dB PSNR;
sigma_empty^2 = 1/12, the variance of a colour uniform on [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.eig.blend import blend_pairs, colour_alpha_grad
from faithfusion.eig.fisher import ViewPass, background_blocks, prepare_view, resolve_backend
from faithfusion.eig.jacobian import GEO_ROWS, ViewQuantities
from faithfusion.gaussians.model import GaussianModel
from faithfusion.render.raster import pixel_quadratics, tile_lists
from faithfusion.render.sh import C0

PRIOR_GROUPS: tuple[str, ...] = ("means", "scales", "quats", "opacities", "colours")


@dataclass(frozen=True)
class PixelPrior:
    """Prior precision per parameter group, in the units of the raw (stored) parameters, and the two
    variances of the pixel EIG; defaults from the rules of the module docstring."""

    means: float = 1.0  # 1 / (1 scene unit)^2
    scales: float = 1.0  # log-scales
    quats: float = 1.0  # raw quaternions
    opacities: float = 1.0  # logit opacities
    colours: float = (2.0 * C0) ** 2  # SH coefficients (sh0 and shN): 1 / (0.5 / C0)^2
    noise_var: float = 0.05**2  # sigma^2, per channel
    empty_var: float = 1.0 / 12.0  # sigma_empty^2, per channel

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.__dict__.items() if not v > 0}
        if bad:
            raise ValueError(f"PixelPrior: every precision and variance must be > 0, got {bad}")

    @classmethod
    def from_std(cls, *, means: float = 1.0, scales: float = 1.0, quats: float = 1.0, opacities: float = 1.0,
                 colours: float = 0.5 / C0, noise: float = 0.05, empty: float = 12.0**-0.5) -> "PixelPrior":
        """The prior from standard deviations (raw units; `noise` and `empty` per colour channel)."""
        return cls(means**-2, scales**-2, quats**-2, opacities**-2, colours**-2, noise**2, empty**2)

    def precision(self, group: str) -> float:
        """Lambda of a parameter group of the model (sh0 and shN share `colours`)."""
        return self.colours if group in ("sh0", "shN") else getattr(self, group)


def posterior_u(vq: ViewQuantities, H_train: Mapping[str, Tensor], damping: Mapping[str, float],
                h_scale: float = 1.0) -> Tensor:
    """Per Gaussian, the covariance of its view quantities u under the diagonal posterior
    Sigma = (h_scale H_train + damping)^-1 over the groups of H_train: P = J^T Sigma J `[N, 9, 9]`."""
    N = vq.opacities.shape[0]
    P = vq.opacities.new_zeros(N, 9, 9)
    geo = [g for g in H_train if g in GEO_ROWS]
    if geo and vq.J is None:
        raise ValueError("the pixel variance needs the view's Jacobian (prepare_view(jacobian=True))")
    for g in geo:
        J = vq.J[:, GEO_ROWS[g]]  # [N, r, 9]
        inv = 1.0 / (h_scale * H_train[g].reshape(N, -1).to(J).clamp_min(0.0) + damping[g])  # [N, r]
        P += torch.einsum("nru,nr,nrv->nuv", J, inv, J)
    n_act = vq.sh_bases.shape[1]
    for g, sl in (("sh0", slice(0, 1)), ("shN", slice(1, n_act))):
        if g in H_train and sl.stop > sl.start:
            h = H_train[g][:, : sl.stop - sl.start]  # [N, b, 3]
            Y2 = vq.sh_bases[:, sl] ** 2  # [N, b]
            var = (Y2[..., None] / (h_scale * h.to(Y2).clamp_min(0.0) + damping[g])).sum(1)  # [N, 3]
            P[:, 6:, 6:] += torch.diag_embed(var * vq.colour_live.to(Y2))
    return P


@dataclass
class PixelVariance:
    """Per-pixel predictive variance of one camera's colour, summed over channels, images `[H, W]`."""

    gaussians: Tensor  # sum_k J_pk^T Sigma J_pk
    empty: Tensor  # 3 T_final^2 sigma_empty^2 (0 where not asked for)
    count: Tensor  # number of Gaussians blended
    alpha: Tensor  # accumulated opacity 1 - T_final

    @property
    def total(self) -> Tensor:
        return self.gaussians + self.empty


def gaussian_variance_torch(vp: ViewPass, P: Tensor, background: Tensor | None = None) -> Tensor:
    """sum_i sum_k g_pik^T P_i g_pik per pixel, with the count and alpha, by torch chunks `[H, W, 3]`."""
    if not vp.chunks and vp.tiles is not None:
        raise ValueError("the torch pixel variance needs a view prepared with plan=True")
    vq, grid = vp.vq, vp.grid
    means2d, conics = vq.proj.means2d[0], vq.proj.conics[0]
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
    return grid.from_blocks(out)[0]


def gaussian_variance(vp: ViewPass, P: Tensor, background: Tensor | None = None, backend: str = "auto") -> Tensor:
    """`gaussian_variance_torch`, or (`backend` 'triton' / 'auto' on CUDA) the kernel of `triton_pixel.py` `[H, W, 3]`."""
    if resolve_backend(backend, vp.vq.proj.means2d.device) == "torch":
        return gaussian_variance_torch(vp, P, background)
    from faithfusion.eig.triton_pixel import pixel_variance_raw

    vq, cam = vp.vq, vp.camera
    tiles = vp.tiles if vp.tiles is not None else tile_lists(vq.proj, cam.width, cam.height)
    with torch.no_grad():
        return pixel_variance_raw(vq.proj.means2d[0], vq.proj.conics[0], vq.opacities, vq.colors, P, tiles,
                                  cam.width, cam.height, background)


def pixel_variance(
    model: GaussianModel,
    camera: Camera,
    H_train: Mapping[str, Tensor],
    prior: PixelPrior = PixelPrior(),
    *,
    background: Tensor | None = None,  # [3] or [H, W, 3]: what shows through where alpha < 1
    sh_degree: int | None = None,
    max_pairs: int | None = None,
    backend: str = "auto",
    vp: ViewPass | None = None,
) -> PixelVariance:
    """Var_p of the module docstring for every pixel of `camera`, over the groups of `H_train`."""
    backend = resolve_backend(backend, model.device)
    if vp is None or vp.vq.J is None or (backend == "torch" and not vp.chunks and vp.tiles is not None):
        vp = prepare_view(model, camera, sh_degree=sh_degree, max_pairs=max_pairs, jacobian=True,
                          plan=backend == "torch")
    damping = {g: prior.precision(g) for g in H_train}
    P = posterior_u(vp.vq, H_train, damping, h_scale=1.0 / prior.noise_var)  # [N, 9, 9]
    img = gaussian_variance(vp, P, background, backend)  # [H, W, 3]
    T_final = 1.0 - img[..., 2]
    return PixelVariance(img[..., 0], 3.0 * prior.empty_var * T_final * T_final, img[..., 1], img[..., 2])


def pixel_eig(var: PixelVariance, prior: PixelPrior) -> Tensor:
    """EIG_p = 1/2 log(1 + Var_p / sigma^2) `[H, W]`."""
    return 0.5 * torch.log1p(var.total.clamp_min(0.0) / prior.noise_var)
