"""Research variants of the EIG map: options of the acquisition and of the map that are not production forms.

Production (`maps.FORMS`): the paper's `fisherrf` and `faithfusion` composited maps and the per-pixel `pixel`
map. Everything here is for analysis (`faithfusion eig-analysis --variants ...`, `Variant` / `parse_variant` /
`VariantMaps`); docs/eig.md has what each does and how they measured:

    diag           EIG_p = 1/2 sum_i w_pi^2 I_i: the squared-weight (diagonal) composited form
    acq="log"      I_i = sum_theta log(1 + H_view / (H_train + lambda)): the exact Laplace EIG of the diagonal
                   posterior (1/2 log det(I + H_view H_train^-1), per Gaussian) instead of its trace
                   approximation; an unobserved scalar adds log(1 + H_view / lambda), not H_view / lambda
    h_floor=q      H_train floored per group at the q-quantile of its positive entries (q in (0, 1)): a
                   scalar that training barely saw counts as seen about as well as the q-th poorest one
    group_norm     "mean": each group's sum divided by its number of scalars per Gaussian (shN's 45 scalars
                   no longer outvote the 3 of the means); or explicit per-group divisors; "train" (analysis):
                   divided by the group's median over the training views
    smooth=k       a k x k box filter on the finished map (error maps are smooth over a few pixels)
    pvar           the per-pixel Laplace predictive variance sum_k J_pk (H_train + lambda)^-1 J_pk^T with one
                   scalar lambda, no prior per group, no noise scale and no empty-space term (the forerunner of
                   the production `pixel` form), uncovered pixels set to the covered maximum
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.eig.fisher import ViewPass, prepare_view, resolve_backend, view_fisher
from faithfusion.eig.maps import ALPHA_MIN, LAMBDA, PAPER_FORMS, EigMap, PixelSums, composite_scalar, cover, pixel_eig
from faithfusion.eig.pixel import gaussian_variance_torch, posterior_u
from faithfusion.gaussians.model import GaussianModel

Acq = Literal["ratio", "log"]
ACQS: tuple[str, ...] = ("ratio", "log")
COMPOSITED_FORMS: tuple[str, ...] = (*PAPER_FORMS, "diag")
VARIANT_FORMS: tuple[str, ...] = (*COMPOSITED_FORMS, "pvar")


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


def variant_acquisition(
    H_view: Mapping[str, Tensor],
    H_train: Mapping[str, Tensor],
    lam: float = LAMBDA,
    *,
    acq: Acq = "ratio",
    h_floor: float = 0.0,
    group_norm: str | Mapping[str, float] | None = None,
) -> Tensor:
    """I_i with the options of the module docstring `[N]` (all off: `maps.acquisition`)."""
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


def variant_pixel_eig(sums: PixelSums, form: str) -> Tensor:
    """The raw per-pixel EIG `[H, W]` of a composited form (the paper's two, or `diag`)."""
    if form == "diag":
        return 0.5 * sums.w2I
    if form in PAPER_FORMS:
        return pixel_eig(sums, form)
    raise ValueError(f"unknown composited EIG form {form!r}: choose from {COMPOSITED_FORMS}")


def box_filter(img: Tensor, k: int) -> Tensor:
    """k x k mean of an image `[H, W]` with replicated borders (k <= 1: unchanged)."""
    if k <= 1:
        return img
    x = torch.nn.functional.pad(img[None, None], ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2), mode="replicate")
    return torch.nn.functional.avg_pool2d(x, k, stride=1)[0, 0]


def variant_eig_map(
    model: GaussianModel,
    camera: Camera,
    H_train: Mapping[str, Tensor],
    *,
    form: str = "fisherrf",
    lam: float = LAMBDA,
    alpha_min: float = ALPHA_MIN,
    background: Tensor | None = None,
    groups: Sequence[str] | None = None,
    max_pairs: int | None = None,
    acq: Acq = "ratio",
    h_floor: float = 0.0,
    group_norm: str | Mapping[str, float] | None = None,
    smooth: int = 0,
    backend: str = "auto",
) -> EigMap:
    """`maps.eig_map` of a composited form (`COMPOSITED_FORMS`) with the acquisition and map options above."""
    if form not in COMPOSITED_FORMS:
        raise ValueError(f"unknown composited EIG form {form!r}: choose from {COMPOSITED_FORMS}")
    groups = tuple(groups or H_train.keys())
    backend = resolve_backend(backend, model.device)
    vp = prepare_view(model, camera, max_pairs=max_pairs, plan=backend == "torch",
                      jacobian=any(g in ("means", "scales", "quats", "opacities") for g in groups))
    H_view = view_fisher(model, camera, groups=groups, background=background, vp=vp, backend=backend)
    I = variant_acquisition(H_view, H_train, lam, acq=acq, h_floor=h_floor, group_norm=group_norm)  # [N]
    sums = composite_scalar(vp, I, backend)
    covered = sums.alpha >= alpha_min
    eig = box_filter(cover(variant_pixel_eig(sums, form), covered), smooth)
    return EigMap(eig, covered, sums.alpha, sums.count, form, I)


def pvar_variance(vp: ViewPass, H_train: Mapping[str, Tensor], lam: float = LAMBDA,
                  background: Tensor | None = None) -> Tensor:
    """`pvar`: sum_k J_pk (H_train + lam)^-1 J_pk^T per pixel `[H, W]` (torch chunks; `vp` with its Jacobian)."""
    P = posterior_u(vp.vq, H_train, {g: lam for g in H_train})
    return gaussian_variance_torch(vp, P, background)[..., 0]


@dataclass(frozen=True)
class Variant:
    """One EIG definition: a per-pixel form over a per-Gaussian acquisition (see the module docstring)."""

    name: str
    form: str = "fisherrf"
    acq: str = "ratio"
    h_floor: float = 0.0
    group_norm: str | None = None  # None, "mean" or "train" (divide by the group's median over training views)
    smooth: int = 0
    lam: float = 1e-6


def parse_variant(spec: str) -> Variant:
    """`form[+option...]`: form in fisherrf / faithfusion / diag, or pvar (the per-pixel Laplace predictive
    variance, `pvar_variance`: only floor, lam and box apply); options `log` (acq), `floor=Q`
    (h_floor), `gmean` / `gtrain` (group_norm), `box=K` (smooth), `lam=X`."""
    form, *opts = spec.split("+")
    if form not in VARIANT_FORMS:
        raise ValueError(f"variant {spec!r}: form must be one of {VARIANT_FORMS}")
    kw: dict = {}
    for o in opts:
        key, _, val = o.partition("=")
        if key == "log" and not val:
            kw["acq"] = "log"
        elif key == "floor":
            kw["h_floor"] = float(val)
        elif key in ("gmean", "gtrain") and not val:
            kw["group_norm"] = key[1:]
        elif key == "box":
            kw["smooth"] = int(val)
        elif key == "lam":
            kw["lam"] = float(val)
        else:
            raise ValueError(f"variant {spec!r}: unknown option {o!r}")
    return Variant(spec, form, **kw)


class VariantMaps:
    """All variants' maps of a camera from one H_view (and one compositing pass), each calibrated on the
    training views exactly as the session calibrates its own form."""

    def __init__(self, session, variants: list[Variant], calib_cameras: list[Camera]):
        from faithfusion.eig.calibrate import fit_calibration

        self.session, self.variants = session, variants
        H = session.acc.H
        self.floors = {v.h_floor: floor_train(H, v.h_floor) for v in variants}
        views = [self._view(c) for c in calib_cameras]
        # "gtrain": a group's acquisition divided by its median over the training views' visible Gaussians
        self.scales: dict[tuple, dict[str, float]] = {}
        for v in variants:
            key = (v.acq, v.h_floor, v.lam)
            if v.group_norm == "train" and key not in self.scales:
                self.scales[key] = self._train_scales(views, *key)
        maps = [self._maps(*view) for view in views]
        self.calibrations = {
            v.name: fit_calibration([EigMap(m[v.name], cov, a, n, v.form) for m, cov, a, n in maps], form=v.form,
                                    lam=v.lam, groups=list(H))
            for v in variants
        }

    def _view(self, camera: Camera):
        from faithfusion.eig.fisher import prepare_view, view_fisher

        s = self.session
        model = s.model_for(camera)  # a scene graph's set at the camera's timestep
        vp = prepare_view(model, camera, max_pairs=s.max_pairs)
        bg = s.background(camera)
        Hv = s.acc.to_local(camera, view_fisher(model, camera, groups=tuple(s.acc.H), background=bg, vp=vp))
        return vp, Hv, bg

    def _train_scales(self, views, acq, h_floor, lam) -> dict[str, float]:
        parts: dict[str, list[Tensor]] = {}
        for _, Hv, _ in views:
            seen = sum(h.reshape(h.shape[0], -1).sum(-1) for h in Hv.values()) > 0
            for g, r in group_acquisition(Hv, self.floors[h_floor], lam, acq).items():
                parts.setdefault(g, []).append(r[seen])
        out = {}
        for g, p in parts.items():
            x = torch.cat(p).double()
            x = x[x > 0]
            out[g] = float(x.median()) if x.numel() else 1.0
        return out

    def _maps(self, vp, Hv, bg):
        """({variant: raw map [H, W]}, covered, alpha, count)."""
        cols, cache, pvar = [], {}, {}
        for v in self.variants:
            if v.form == "pvar":
                if (v.h_floor, v.lam) not in pvar:
                    pvar[(v.h_floor, v.lam)] = pvar_variance(vp, self.floors[v.h_floor], v.lam, bg)
                continue
            gn = self.scales[(v.acq, v.h_floor, v.lam)] if v.group_norm == "train" else v.group_norm
            key = (v.acq, v.h_floor, v.lam, v.group_norm)
            if key not in cache:
                cache[key] = len(cols)
                cols.append(variant_acquisition(Hv, self.floors[v.h_floor], v.lam, acq=v.acq, group_norm=gn))
        sums = composite_scalar(vp, torch.stack(cols, -1) if cols else vp.vq.opacities[:, None])  # [H, W, C]
        covered = sums.alpha >= ALPHA_MIN
        out = {}
        for v in self.variants:
            if v.form == "pvar":
                out[v.name] = box_filter(cover(pvar[(v.h_floor, v.lam)], covered), v.smooth)
                continue
            c = cache[(v.acq, v.h_floor, v.lam, v.group_norm)]
            one = PixelSums(sums.wI[..., c], sums.w2I[..., c], sums.count, sums.alpha)
            out[v.name] = box_filter(cover(variant_pixel_eig(one, v.form), covered), v.smooth)
        return out, covered, sums.alpha, sums.count

    def __call__(self, camera: Camera) -> dict[str, tuple[Tensor, Tensor]]:
        """{variant: (raw EIG [H, W], calibrated g [H, W])}."""
        maps = self._maps(*self._view(camera))[0]
        return {k: (m, self.calibrations[k].calibrate(m)) for k, m in maps.items()}
