"""A scene-independent EIG scale: a novel view's EIG measured against the training views' own EIG.

FaithFusion's released loss weights bin log(1 + EIG) at 0.05 / 0.2 / 1.0, a range its authors note is
scene-dependent. Here the reference is the scene itself: every training view gets its own EIG map
(its Fisher against H_train, which contains it), and a pixel's EIG is expressed relative to the
`ref_quantile` (default 99th percentile) of the covered training pixels:

    r = EIG / EIG_ref          (multiplicative: a global factor on H, e.g. image size or scene units, cancels)
    g = log2(1 + r)            g = 1 at the reference; ~ linear below it, logarithmic above

So g < 1: the pixel is about as constrained as the captured views already are; g >> 1: the view sees
what no training view constrained. From g:

    loss weight  w(g) = w_min + (1 - w_min) g^k / (g^k + g_half^k)    smooth, monotone, in [w_min, 1)
    soft mask    m(g) = g^k / (g^k + g_half^k)                       (1 on uncovered pixels, like w)
    binary mask  g > mask_threshold  or  uncovered

and `cdf(EIG)`, the fraction of training pixels with a lower EIG. The statistics are a small JSON
(`Calibration.save` / `load`) so a fusion run reuses them across rounds and commands.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from faithfusion.eig.maps import EigMap
from faithfusion.utils.jsonio import save_json_atomic

N_QUANTILES = 101


@dataclass
class Calibration:
    ref: float  # EIG at `ref_quantile` of the covered training pixels
    ref_quantile: float = 0.99
    quantiles: list[float] = field(default_factory=list)  # r = EIG / ref at 0, 1, ..., 100 % of training pixels
    form: str = "fisherrf"
    lam: float = 1e-6
    alpha_min: float = 0.1
    w_min: float = 0.1
    g_half: float = 1.0
    sharpness: float = 2.0
    mask_threshold: float = 1.0
    n_views: int = 0
    n_pixels: int = 0
    groups: list[str] = field(default_factory=list)

    # --- the scale ---------------------------------------------------------------------------------

    def ratio(self, eig: Tensor) -> Tensor:
        return eig / self.ref

    def calibrate(self, eig: Tensor) -> Tensor:
        """g = log2(1 + EIG / EIG_ref), same shape as `eig`."""
        return torch.log2(1.0 + self.ratio(eig).clamp_min(0.0))

    def cdf(self, eig: Tensor) -> Tensor:
        """Fraction of covered training pixels with a lower EIG (linear between stored quantiles)."""
        xp = torch.tensor(self.quantiles, dtype=eig.dtype, device=eig.device)
        fp = torch.linspace(0.0, 1.0, len(self.quantiles), dtype=eig.dtype, device=eig.device)
        return _interp(self.ratio(eig), xp, fp)

    # --- what the fusion loop uses --------------------------------------------------------------

    def _ramp(self, g: Tensor) -> Tensor:
        gk = g.clamp_min(0.0) ** self.sharpness
        return gk / (gk + self.g_half**self.sharpness)

    def weight(self, g: Tensor, covered: Tensor | None = None) -> Tensor:
        """Per-pixel loss weight in [w_min, 1] for a repaired view: low where the model is already sure."""
        w = self.w_min + (1.0 - self.w_min) * self._ramp(g)
        return w if covered is None else torch.where(covered, w, torch.ones_like(w))

    def soft_mask(self, g: Tensor, covered: Tensor | None = None) -> Tensor:
        """Where the fixer should repaint, in [0, 1]."""
        m = self._ramp(g)
        return m if covered is None else torch.where(covered, m, torch.ones_like(m))

    def mask(self, g: Tensor, covered: Tensor | None = None) -> Tensor:
        """Binary repaint mask: g above `mask_threshold`, or uncovered."""
        m = g > self.mask_threshold
        return m if covered is None else m | ~covered

    # --- storage --------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"version": 1, **asdict(self)}

    def save(self, path: Path) -> None:
        save_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        data = json.loads(Path(path).read_text())
        data.pop("version", None)
        return cls(**data)


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """np.interp for tensors: `xp` non-decreasing; clamps to fp[0] / fp[-1] outside."""
    idx = torch.searchsorted(xp, x.reshape(-1).contiguous(), right=True).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    t = ((x.reshape(-1) - x0) / (x1 - x0).clamp_min(1e-30)).clamp(0.0, 1.0)
    return (f0 + t * (f1 - f0)).reshape(x.shape)


def training_samples(maps: Sequence[EigMap], max_samples: int = 1_000_000, seed: int = 0) -> Tensor:
    """Covered-pixel EIG values of the training maps, at most `max_samples` (even share per view) `[S]`."""
    g = torch.Generator().manual_seed(seed)
    per_view = max(1, max_samples // max(len(maps), 1))
    out = []
    for m in maps:
        v = m.eig[m.covered].reshape(-1).double().cpu()
        if v.numel() > per_view:
            v = v[torch.randperm(v.numel(), generator=g)[:per_view]]
        out.append(v)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def fit_calibration(
    maps: Sequence[EigMap], *, ref_quantile: float = 0.99, max_samples: int = 1_000_000, seed: int = 0, **opts
) -> Calibration:
    """Calibration from the training views' own EIG maps (`opts`: form, lam, alpha_min, w_min, g_half, ...)."""
    values = training_samples(maps, max_samples, seed)
    if values.numel() == 0 or float(values.max()) <= 0.0:
        ref = 1.0  # nothing covered or no information: the raw scale is kept
        qs = [0.0] * N_QUANTILES
    else:
        ref = float(torch.quantile(values, ref_quantile))
        if not ref > 0.0:
            ref = float(values[values > 0].min())
        qs = torch.quantile(values / ref, torch.linspace(0, 1, N_QUANTILES, dtype=values.dtype)).tolist()
    if maps and "form" not in opts:
        opts["form"] = maps[0].form
    return Calibration(ref=ref, ref_quantile=ref_quantile, quantiles=qs, n_views=len(maps),
                       n_pixels=int(values.numel()), **opts)


def g_at_weight(cal: Calibration, w: float) -> float:
    """The calibrated value where the loss weight reaches `w` (inverse of `Calibration.weight`)."""
    t = (w - cal.w_min) / (1.0 - cal.w_min)
    if not 0.0 < t < 1.0:
        return 0.0 if t <= 0.0 else math.inf
    return cal.g_half * (t / (1.0 - t)) ** (1.0 / cal.sharpness)
