"""FID and KID of a protocol's renders against two reference sets, with the references' features cached.

`gt`: the ground truth of the same views (SynthStreet's gt_shifted/), the set the renders should match.
`train`: the captured training frames, the reference the papers use where a novel view has no ground truth
(FaithFusion's and FreeVS's lane-shift FID on Waymo). Keys in a result: fid, kid, kid_std (against gt) and
fid_train, kid_train, kid_train_std (against the training frames), plus the set sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from torch import Tensor

from faithfusion.eval.fid import FeatureCache, distribution_scores

FeatureFn = Callable[[list[Tensor]], np.ndarray]
"""Images `[H, W, 3]` in [0, 1] -> features `[N, D]`."""

DISTRIBUTION_KEYS = ("fid", "kid", "kid_std", "fid_train", "kid_train", "kid_train_std")


def inception_feature_fn(device: str = "cpu", batch_size: int = 16) -> FeatureFn:
    """The FID network's features (loaded on first use)."""
    from faithfusion.eval.fid import InceptionFeatures

    return InceptionFeatures(device, batch_size).of_list


@dataclass
class DistributionEval:
    """Feature extractor + cache for the references; `scores` gives FID/KID of render features."""

    features: FeatureFn
    cache: FeatureCache = field(default_factory=FeatureCache)
    kid_subset_size: int = 1000
    kid_subsets: int = 100
    _train: np.ndarray | None = None

    def of_files(self, images: list[Tensor], files: list[Path | None]) -> np.ndarray:
        """Features `[N, D]` of images read from `files` (cached by file and image size; None = not cached)."""
        keys = [FeatureCache.key(f, "x".join(map(str, img.shape))) if f is not None else None
                for img, f in zip(images, files)]
        missing = [i for i, k in enumerate(keys) if k is None or self.cache.get(k) is None]
        fresh = self.features([images[i] for i in missing]) if missing else None
        rows: list[np.ndarray | None] = [None if k is None else self.cache.get(k) for k in keys]
        for j, i in enumerate(missing):
            rows[i] = fresh[j]
            if keys[i] is not None:
                self.cache.put(keys[i], fresh[j])
        return np.stack(rows) if rows else np.zeros((0, 0))

    def train_features(self, scene, scale: float = 1.0) -> np.ndarray:
        """Features of the scene's captured training frames (all frames when none is marked for training)."""
        if self._train is None:
            ids = list(scene.train_ids) or list(range(len(scene.frames)))
            images = [scene.load_image(i, scale) for i in ids]
            self._train = self.of_files(images, [scene.frames[i].image_path for i in ids])
        return self._train

    def scores(self, renders: np.ndarray, gt: np.ndarray | None, train: np.ndarray | None) -> dict:
        """FID/KID of render features against gt features and against training-frame features."""
        out: dict = {}
        opts = {"subset_size": self.kid_subset_size, "subsets": self.kid_subsets}
        if gt is not None:
            s = distribution_scores(renders, gt, **opts)
            out |= {"fid": s.fid, "kid": s.kid, "kid_std": s.kid_std, "fid_n": s.count}
        if train is not None:
            s = distribution_scores(renders, train, **opts)
            out |= {"fid_train": s.fid, "kid_train": s.kid, "kid_train_std": s.kid_std, "train_n": s.ref_count}
        return out

    def save(self) -> None:
        self.cache.save()
