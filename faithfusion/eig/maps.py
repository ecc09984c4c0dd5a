"""Per-pixel expected information gain (EIG) of a camera against the training Fisher: the production forms.

The paper's map (FisherRF's acquisition, per parameter, composited along each ray):

    I_i = sum_{theta in i} H_view,theta / (H_train,theta + lambda),   lambda = 1e-6

with H_view the Fisher of the camera itself (Gauss-Newton: no target image needed), and per pixel (`form`):

    fisherrf     EIG_p = 1/2 sum_i w_pi I_i              w_pi = T_i alpha_i, the compositing weights
    faithfusion  EIG_p = 1/2 sum_i w_pi I_i / n_p        n_p = the number of Gaussians blended at p (hit count)

These two are the paper's (FisherRF's alpha-composited map and FaithFusion's hit-count normalised one), kept
exactly. FaithFusion then takes log(1 + EIG); here that log belongs to the calibration (`calibrate.py`), so they
are stored raw. Pixels that no Gaussian covers (accumulated alpha < `alpha_min`, FaithFusion's 0.1) count as
maximal: their raw value is set to the map's maximum over covered pixels and `covered` marks them, so that
calibration and loss weights treat them as the most uncertain pixels of the view.

    pixel        EIG_p = 1/2 log(1 + Var_p / sigma^2)    the per-pixel split of the same bound (`pixel.py`)

Var_p is the exact Laplace predictive variance of the pixel's colour under a per-group prior (`PixelPrior`)
plus the prior variance of empty space seen through the final transmittance; it needs no H_view and no
coverage rule. Research variants of the acquisition and of the map live in `variants.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.eig.blend import blend_pairs
from faithfusion.eig.fisher import ChunkBlend, ViewPass, prepare_view, resolve_backend, view_fisher
from faithfusion.eig.pixel import PixelPrior, pixel_eig as pixel_form_eig, pixel_variance
from faithfusion.gaussians.model import GaussianModel
from faithfusion.render.raster import pixel_quadratics, tile_lists

Form = Literal["fisherrf", "faithfusion", "pixel"]
FORMS: tuple[str, ...] = ("fisherrf", "faithfusion", "pixel")
PAPER_FORMS: tuple[str, ...] = ("fisherrf", "faithfusion")  # composited per-Gaussian acquisition
LAMBDA = 1e-6
ALPHA_MIN = 0.1


def check_form(form: str) -> str:
    if form not in FORMS:
        raise ValueError(f"unknown EIG form {form!r}: choose from {FORMS} (research forms: eig/variants.py)")
    return form


def acquisition(H_view: Mapping[str, Tensor], H_train: Mapping[str, Tensor], lam: float = LAMBDA) -> Tensor:
    """I_i = sum over the groups of H_view and all of Gaussian i's scalars of H_view / (H_train + lambda) `[N]`."""
    total = None
    for g, hv in H_view.items():
        # the fast Fisher's moment shifts can leave rounding negatives (~-1e-7) where H is 0: clamp them, or
        # H_train + lambda can reach 0
        r = (hv.clamp_min(0.0) / (H_train[g].clamp_min(0.0) + lam)).reshape(hv.shape[0], -1).sum(-1)
        total = r if total is None else total + r
    return total


@dataclass
class PixelSums:
    """Per-pixel sums over the blended Gaussians of one camera, images `[H, W]` (`[H, W, V]` for wI and w2I
    when `V` values per Gaussian were composited at once)."""

    wI: Tensor  # sum_i w_i I_i
    w2I: Tensor  # sum_i w_i^2 I_i
    count: Tensor  # number of Gaussians blended
    alpha: Tensor  # accumulated opacity 1 - T_final


def composite_scalar(vp: ViewPass, values: Tensor, backend: str = "auto", blends: list[ChunkBlend] | None = None) -> PixelSums:
    """Blend a per-Gaussian scalar `values [N]` (or `V` of them at once, `[N, V]`) over the view's pairs (same
    pairs and weights as the render); `backend` as `fisher.resolve_backend` (triton: `triton_composite.py`);
    `blends`: the chunks' blends kept by the view's Fisher pass (`fisher.pair_sums(keep_blends=)`), torch only."""
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
        if blends is not None and len(blends) != len(vp.chunks):
            raise ValueError(f"composite_scalar: {len(blends)} kept blends for {len(vp.chunks)} chunks")
        for i, ch in enumerate(vp.chunks):
            if blends is None:
                m = means2d[ch.ids] - ch.centres[:, None, :]  # [B, K, 2]
                o = vq.opacities[ch.ids] * ch.valid
                bl = blend_pairs(quad, m, conics[ch.ids], o)
                cb = ChunkBlend(bl.weight, (bl.alpha > 0).sum(-1), bl.T_final)
            else:
                cb = blends[i]
            v = vals[ch.ids].to(out.dtype)  # [B, K, V]
            out[ch.blocks] = torch.cat(
                [
                    torch.matmul(cb.weight, v),
                    torch.matmul(cb.weight * cb.weight, v),
                    cb.count[..., None].to(out.dtype),
                    1.0 - cb.T_final[..., None],
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


def pixel_eig(sums: PixelSums, form: str) -> Tensor:
    """The raw per-pixel EIG `[H, W]` of a paper form, before the coverage rule."""
    if form == "fisherrf":
        return 0.5 * sums.wI
    if form == "faithfusion":
        n = sums.count.clamp_min(1.0)
        return 0.5 * sums.wI / (n if sums.wI.dim() == n.dim() else n[..., None])
    raise ValueError(f"unknown composited EIG form {form!r}: choose from {PAPER_FORMS} (research forms: eig/variants.py)")


@dataclass
class EigMap:
    """One camera's EIG map."""

    eig: Tensor  # [H, W] raw EIG; paper forms: uncovered pixels hold the max over covered ones
    covered: Tensor  # [H, W] bool, accumulated alpha >= alpha_min
    alpha: Tensor  # [H, W]
    count: Tensor  # [H, W] Gaussians blended per pixel
    form: str
    acquisition: Tensor | None = None  # [N] per-Gaussian I (kept when asked; paper forms)


def cover(eig: Tensor, covered: Tensor) -> Tensor:
    """The coverage rule: uncovered pixels = the max over covered ones."""
    top = eig[covered].max() if bool(covered.any()) else eig.new_zeros(())
    return torch.where(covered, eig, top)


def finish_map(sums: PixelSums, form: str, alpha_min: float = ALPHA_MIN, acq: Tensor | None = None) -> EigMap:
    eig = pixel_eig(sums, form)
    covered = sums.alpha >= alpha_min
    return EigMap(cover(eig, covered), covered, sums.alpha, sums.count, form, acq)


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
    backend: str = "auto",
    prior: PixelPrior | None = None,
    vp: ViewPass | None = None,
    to_local: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
) -> EigMap:
    """EIG map of `camera` against `H_train` in one of `FORMS`. Paper forms: its own Fisher H_view, the
    acquisition with `lam`, composited per pixel. "pixel": `pixel.pixel_variance` with `prior` (default
    `PixelPrior()`; `lam` unused). `backend` ('auto', 'torch', 'triton'; `fisher.resolve_backend`) runs the
    pair loops in torch chunks or in the Triton kernels. `vp`: the camera already prepared at the model's
    current parameters (`prepare_view` with the same sh_degree and max_pairs), reused instead of preparing it
    (paper forms). `to_local`: maps H_view of `model` into the frame of `H_train` (a scene graph's composed set
    against its node-local H_train, faithfusion/scene_graph/fisher.py); None when they share a frame."""
    check_form(form)
    groups = tuple(groups or H_train.keys())
    backend = resolve_backend(backend, model.device)
    if form == "pixel":
        prior = prior or PixelPrior()
        var = pixel_variance(model, camera, {g: H_train[g] for g in groups}, prior, background=background,
                             sh_degree=sh_degree, max_pairs=max_pairs, backend=backend)
        return EigMap(pixel_form_eig(var, prior), var.alpha >= alpha_min, var.alpha, var.count, form)
    needs_J = any(g in ("means", "scales", "quats", "opacities") for g in groups)
    if vp is None or (needs_J and vp.vq.J is None) or (backend == "torch" and not vp.chunks and vp.tiles is not None):
        vp = prepare_view(model, camera, sh_degree=sh_degree, max_pairs=max_pairs, plan=backend == "torch",
                          jacobian=needs_J)
    # CPU: the Fisher pass keeps its chunks' blends for the compositing below (the same blends, not recomputed)
    blends = [] if backend == "torch" and not compiled and model.device.type == "cpu" else None
    H_view = view_fisher(model, camera, groups=groups, background=background, vp=vp, compiled=compiled, backend=backend,
                         keep_blends=blends)
    if to_local is not None:
        H_view = to_local(H_view)
    I = acquisition(H_view, H_train, lam)  # [N]
    return finish_map(composite_scalar(vp, I, backend, blends), form, alpha_min, I if keep_acquisition else None)
