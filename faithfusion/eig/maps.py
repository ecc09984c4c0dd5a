"""Per-pixel expected information gain (EIG) of a camera against the training Fisher.

Per Gaussian (FisherRF's acquisition, per parameter):  I_i = sum_{theta in i} H_view,theta / (H_train,theta + lambda),
lambda = 1e-6, with H_view the Fisher of the camera itself (Gauss-Newton: no target image needed).
Per pixel, three forms (`form`):

    fisherrf     EIG_p = 1/2 sum_i w_pi I_i              w_pi = T_i alpha_i, the compositing weights
    faithfusion  EIG_p = 1/2 sum_i w_pi I_i / n_p        n_p = the number of Gaussians blended at p (hit count)
    diag         EIG_p = 1/2 sum_i w_pi^2 I_i            the squared-weight (diagonal) form

FaithFusion then takes log(1 + EIG); here that log belongs to the calibration (`calibrate.py`), so every
form is stored raw. Pixels that no Gaussian covers (accumulated alpha < `alpha_min`, FaithFusion's 0.1)
count as maximal: their raw value is set to the map's maximum over covered pixels and `covered` marks
them, so that calibration and loss weights treat them as the most uncertain pixels of the view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.eig.blend import blend_pairs
from faithfusion.eig.fisher import ViewPass, _quad, prepare_view, view_fisher
from faithfusion.gaussians.model import GaussianModel

Form = Literal["fisherrf", "faithfusion", "diag"]
FORMS: tuple[str, ...] = ("fisherrf", "faithfusion", "diag")
LAMBDA = 1e-6
ALPHA_MIN = 0.1


def acquisition(H_view: Mapping[str, Tensor], H_train: Mapping[str, Tensor], lam: float = LAMBDA) -> Tensor:
    """I_i = sum over the groups of H_view and all of Gaussian i's scalars of H_view / (H_train + lambda) `[N]`."""
    total = None
    for g, hv in H_view.items():
        ratio = (hv / (H_train[g] + lam)).reshape(hv.shape[0], -1).sum(-1)
        total = ratio if total is None else total + ratio
    return total


@dataclass
class PixelSums:
    """Per-pixel sums over the blended Gaussians of one camera, images `[H, W]`."""

    wI: Tensor  # sum_i w_i I_i
    w2I: Tensor  # sum_i w_i^2 I_i
    count: Tensor  # number of Gaussians blended
    alpha: Tensor  # accumulated opacity 1 - T_final


def composite_scalar(vp: ViewPass, values: Tensor) -> PixelSums:
    """Blend a per-Gaussian scalar `values [N]` over the view's pairs (same pairs and weights as the render)."""
    vq, grid = vp.vq, vp.grid
    means2d, conics = vq.proj.means2d[0], vq.proj.conics[0]
    quad = _quad(grid, means2d)  # [P, 6]
    out = means2d.new_zeros(grid.n_blocks, grid.n_pixels, 4)  # wI, w2I, count, alpha
    with torch.no_grad():
        for ch in vp.chunks:
            m = means2d[ch.ids] - ch.centres[:, None, :]  # [B, K, 2]
            o = vq.opacities[ch.ids] * ch.valid
            bl = blend_pairs(quad, m, conics[ch.ids], o)
            v = values[ch.ids][:, :, None]  # [B, K, 1]
            out[ch.blocks] = torch.stack(
                [
                    torch.matmul(bl.weight, v)[..., 0],
                    torch.matmul(bl.weight * bl.weight, v)[..., 0],
                    (bl.alpha > 0).sum(-1).to(out.dtype),
                    1.0 - bl.T_final,
                ],
                -1,
            )
    img = grid.from_blocks(out)  # [H, W, 4]
    return PixelSums(*img.unbind(-1))


def pixel_eig(sums: PixelSums, form: Form) -> Tensor:
    """The raw per-pixel EIG `[H, W]` of a form, before the coverage rule."""
    if form == "fisherrf":
        return 0.5 * sums.wI
    if form == "faithfusion":
        return 0.5 * sums.wI / sums.count.clamp_min(1.0)
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


def finish_map(sums: PixelSums, form: Form, alpha_min: float = ALPHA_MIN, acq: Tensor | None = None) -> EigMap:
    eig = pixel_eig(sums, form)
    covered = sums.alpha >= alpha_min
    top = eig[covered].max() if bool(covered.any()) else eig.new_zeros(())
    return EigMap(torch.where(covered, eig, top), covered, sums.alpha, sums.count, form, acq)


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
) -> EigMap:
    """EIG map of `camera`: its own Fisher H_view, the acquisition against `H_train`, composited per pixel."""
    groups = tuple(groups or H_train.keys())
    vp = prepare_view(model, camera, sh_degree=sh_degree, max_pairs=max_pairs,
                      jacobian=any(g in ("means", "scales", "quats", "opacities") for g in groups))
    H_view = view_fisher(model, camera, groups=groups, background=background, vp=vp, compiled=compiled)
    acq = acquisition(H_view, H_train, lam)  # [N]
    return finish_map(composite_scalar(vp, acq), form, alpha_min, acq if keep_acquisition else None)

