"""The fixer training loss: L2 + LPIPS + 0.5 * Gram (Difix's recipe), on LPIPS' SqueezeNet features.

Difix uses LPIPS-VGG and a Gram (style) loss on VGG-16 features. We have no VGG weights offline,
so both the LPIPS term and the Gram matrices use the taps of `faithfusion.eval.lpips.LPIPS`
(SqueezeNet-1.1, 7 layers). Gram matrices are per image, normalised by C * h * w, and compared
by their relative squared error, averaged over images and taps. The L2 term is the MSE of the images mapped to [-1, 1] (Difix's
model space), i.e. 4x the MSE in [0, 1]. If the LPIPS weights cannot be found the loss
falls back to L2 only, warns once, and says so in every loss dict (`"fallback"`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from faithfusion.eval.lpips import LPIPS, LPIPSWeightsError

MIN_SIDE = 32  # SqueezeNet's stride-2 conv and three max-pools leave nothing of smaller images


def gram_matrix(f: Tensor) -> Tensor:  # [B, C, h, w] -> [B, C, C]
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def _unit(x: Tensor, eps: float = 1e-10) -> Tensor:  # normalise over channels, as LPIPS does
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def lpips_from_taps(net: LPIPS, fa: list[Tensor], fb: list[Tensor]) -> Tensor:  # -> [B]
    total = 0.0
    for lin, a, b in zip(net.lins, fa, fb):
        total = total + lin((_unit(a) - _unit(b)) ** 2).mean(dim=(2, 3))  # [B, 1]
    return total[:, 0]


def gram_from_taps(fa: list[Tensor], fb: list[Tensor], eps: float = 1e-8) -> Tensor:  # -> scalar
    """Relative Gram error per image and tap, ||G_a - G_b||^2 / ||G_b||^2, averaged.

    Relative, so that each tap counts alike whatever its activation scale (Difix balances its VGG
    layers with hand-set weights instead); it is of the order of the LPIPS term.
    """
    out = []
    for a, b in zip(fa, fb):
        ga, gb = gram_matrix(a), gram_matrix(b)  # [B, C, C]
        out.append((ga - gb).pow(2).sum(dim=(1, 2)) / (gb.pow(2).sum(dim=(1, 2)) + eps))  # [B]
    return torch.stack(out).mean()


def temporal_difference_l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean |(pred_t - pred_t-1) - (target_t - target_t-1)| over consecutive frames of windows `[N, T, H, W, 3]`.

    A video fixer's flicker term: frame-to-frame changes the target does not have (a per-frame fixer's
    independent repaints) cost, the true motion between frames does not (the crops are the same in every frame).
    """
    if pred.shape != target.shape or pred.ndim != 5 or pred.shape[1] < 2:
        raise ValueError(f"temporal_difference_l1: needs two windows [N, T>=2, H, W, 3] alike, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    return ((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])).abs().mean()


class FixerLoss(nn.Module):
    """`forward(pred, target, gram=True) -> (loss, terms)` for images `[..., H, W, 3]` in [0, 1].

    `terms` holds floats: `loss`, `l2`, `lpips`, `gram` (the unweighted terms), and `fallback`
    (a sentence) when LPIPS is unavailable and the loss is L2 only.
    """

    def __init__(
        self,
        lpips_weights: str | Path | dict[str, Tensor] | None = None,
        w_l2: float = 1.0,
        w_lpips: float = 1.0,
        w_gram: float = 0.5,
        use_lpips: bool = True,
    ) -> None:
        super().__init__()
        self.w_l2, self.w_lpips, self.w_gram = w_l2, w_lpips, w_gram
        self.net: LPIPS | None = None
        self.fallback: str | None = None
        if use_lpips:
            try:
                self.net = LPIPS(lpips_weights)
            except LPIPSWeightsError as err:
                self.fallback = f"L2 only: LPIPS weights not found ({err})"
                warnings.warn(f"FixerLoss: {self.fallback}", stacklevel=2)
        else:
            self.fallback = "L2 only: LPIPS disabled"

    @property
    def has_lpips(self) -> bool:
        return self.net is not None

    def forward(self, pred: Tensor, target: Tensor, gram: bool = True) -> tuple[Tensor, dict[str, float | str]]:
        if pred.shape != target.shape or pred.shape[-1] != 3:
            raise ValueError(f"FixerLoss: need [..., H, W, 3] pairs of equal shape, got {tuple(pred.shape)}, {tuple(target.shape)}")
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, target = pred.float(), target.float()
            l2 = (2 * (pred - target)).pow(2).mean()  # MSE of the [-1, 1] images, as Difix computes it
            loss = self.w_l2 * l2
            terms: dict[str, float | str] = {"l2": float(l2.detach())}
            if self.net is not None:
                if min(pred.shape[-3:-1]) < MIN_SIDE:
                    raise ValueError(f"FixerLoss: LPIPS needs images of at least {MIN_SIDE} px a side, got {tuple(pred.shape[-3:-1])}")
                self.net.to(pred.device)
                a = pred.reshape(-1, *pred.shape[-3:]).permute(0, 3, 1, 2) * 2 - 1  # [B, 3, H, W] in [-1, 1]
                b = target.reshape(-1, *target.shape[-3:]).permute(0, 3, 1, 2) * 2 - 1
                fa = self.net.taps(a)
                with torch.no_grad():
                    fb = self.net.taps(b)
                lp = lpips_from_taps(self.net, fa, fb).mean()
                loss = loss + self.w_lpips * lp
                terms["lpips"] = float(lp.detach())
                if gram and self.w_gram > 0:
                    g = gram_from_taps(fa, fb)
                    loss = loss + self.w_gram * g
                    terms["gram"] = float(g.detach())
            else:
                terms["fallback"] = self.fallback or "L2 only"
        terms["loss"] = float(loss.detach())
        return loss, terms
