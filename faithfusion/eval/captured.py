"""Quality of a render function on captured frames that it was not trained on (the sparse-view protocol's score).

Each frame's camera is rendered with `render_fn` (the method's own render: Difix3D+ fixes it) and compared with
the captured image: PSNR / SSIM / LPIPS per view and their means; with a `DistributionEval`, FID / KID of the
renders against the captured images of the same views (`fid`, `kid`) and against the training frames
(`fid_train`, `kid_train`). FID of a few views is biased upwards; KID is the one to read (eval/fid.py).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.data.scene import SceneData

RenderFn = Callable[[Camera], Tensor]
"""camera -> RGB `[H, W, 3]` in [0, 1]."""


def mean_of(rows: list[dict]) -> dict:
    """Means of psnr / ssim / lpips over `rows` (those present in the first row), and the count."""
    keys = [k for k in ("psnr", "ssim", "lpips") if rows and rows[0].get(k) is not None]
    return {k: float(np.mean([r[k] for r in rows])) for k in keys} | {"count": len(rows)}


def evaluate_captured(render_fn: RenderFn, scene: SceneData, ids: list[int], scale: float = 1.0,
                      metrics=None, distribution=None, keep: int = 0) -> dict:
    """{"mean", "per_view", "lpips_net"} over frames `ids` (and FID/KID in "mean" with `distribution`);
    `keep` > 0 also returns the first `keep` (frame, render, gt) triples under "examples"."""
    from faithfusion.eval.metrics import Metrics

    metrics = metrics or Metrics()
    rows, preds, gts, examples = [], [], [], []
    for i in ids:
        with torch.no_grad():
            pred = render_fn(scene.camera(i, scale)).clamp(0, 1).cpu()  # [H, W, 3]
        gt = scene.load_image(i, scale)  # [H, W, 3]
        rows.append({"frame": i, "name": scene.frames[i].image_path.name, **metrics(pred[None], gt[None])})
        if distribution is not None:
            preds.append(pred)
            gts.append(gt)
        if len(examples) < keep:
            examples.append((i, pred, gt))
    mean = mean_of(rows)
    if distribution is not None and rows:
        train = distribution.train_features(scene, scale)
        fg = distribution.of_files(gts, [scene.frames[i].image_path for i in ids])
        mean |= distribution.scores(distribution.features(preds), fg, train)
        distribution.save()
    out = {"mean": mean, "per_view": rows, "lpips_net": metrics.lpips_net}
    if keep:
        out["examples"] = examples
    return out
