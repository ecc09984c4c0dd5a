"""Paired fixer data: (degraded render, target, reference view) read from a JSON index.

The index (written by the curation step):

    {"root": ".", "samples": [{"degraded": "a.png", "target": "b.png", "reference": "c.png",
      "eig": "e.npy", "depth": "d.npy", "alpha": "m.npy",          # optional, [H, W] float
      "scene": "synth_0", "split": "train" | "test",
      "kind": "lane_shift" | "sparse" | "underfit" | "cross_camera", "shift": 3.0}]}   # shift optional

Video samples (kind "video", or any sample whose "degraded" is a list; for the video fixers, EIGent
and GenFusion; `read_index` skips them, `read_video_index` reads them) hold lists of T frame paths:

    {"kind": "video", "degraded": [T paths], "target": [T paths], "reference": "r.png",
     "eig": [T .npy], "depth": [T .npy], "target_depth": [T .npy],   # optional, [H, W] float
     "reference_depth": "rd.npy", "scene": ..., "split": ...}         # optional

Paths are relative to `<index folder>/<root>`. A sample item is a dict of tensors: `degraded`,
`target` `[H, W, 3]` in [0, 1], `reference` `[H, W, 3]` (the whole reference image resized to the
sample's size: it is never cropped), `has_ref`, optional `eig`/`depth`/`alpha` `[H, W]`, and the
metadata strings. Training items are random crops (the same window in every per-pixel map);
the randomness comes from a seed passed with the index, so a run is repeatable step by step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from faithfusion.data.images import decoded_rgb
from faithfusion.errors import UserError

MAPS = ("eig", "depth", "alpha")  # optional per-pixel maps


class FixerDataError(UserError, ValueError):
    """A fixer dataset index or file that cannot be read: names the file and the problem."""


@dataclass
class FixerSample:
    degraded: Path
    target: Path
    reference: Path | None
    maps: dict[str, Path]
    scene: str
    split: str
    kind: str
    shift: float | None


def _load_index(index: str | Path) -> tuple[Path, list[dict]]:
    """The index's base folder (paths are relative to it) and its raw sample records."""
    index = Path(index)
    try:
        data = json.loads(index.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FixerDataError(f"{index}: cannot read the fixer index ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        raise FixerDataError(f"{index}: not a fixer index (no 'samples' list)")
    return (index.parent / data.get("root", ".")).resolve(), data["samples"]


def read_index(index: str | Path) -> list[FixerSample]:
    """All samples of a fixer dataset index, paths resolved."""
    base, samples = _load_index(index)
    out = []
    for i, s in enumerate(samples):
        if is_video_sample(s):
            continue
        for key in ("degraded", "target"):
            if key not in s:
                raise FixerDataError(f"{index}: sample {i} has no {key!r}")
        out.append(FixerSample(
            degraded=base / s["degraded"],
            target=base / s["target"],
            reference=base / s["reference"] if s.get("reference") else None,
            maps={k: base / s[k] for k in MAPS if s.get(k)},
            scene=str(s.get("scene", "")),
            split=str(s.get("split", "train")),
            kind=str(s.get("kind", "")),
            shift=float(s["shift"]) if s.get("shift") is not None else None,
        ))
    return out


def require_map(data: "FixerDataset", name: str, why: str) -> None:
    """Raise FixerDataError naming the index unless every sample of `data` has the per-pixel map `name`."""
    lacking = [s for s in data.samples if name not in s.maps]
    if lacking:
        raise FixerDataError(
            f"{data.index}: {why} needs an {name!r} map per sample, but {len(lacking)} of {len(data.samples)} "
            f"{data.split or 'all'} samples have none (e.g. {lacking[0].degraded}); curate the dataset with "
            f"EIG maps (`faithfusion fixer curate`, --with-eig, the default)")


def load_image(path: Path) -> Tensor:  # -> [H, W, 3] float in [0, 1]
    arr = np.asarray(decoded_rgb(path), dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy())


def load_map(path: Path) -> Tensor:  # -> [H, W] float
    try:
        arr = np.load(path).astype(np.float32)
    except (OSError, ValueError) as e:
        raise FixerDataError(f"{path}: cannot read the per-pixel map ({e})") from e
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise FixerDataError(f"{path}: per-pixel map must be [H, W], got {arr.shape}")
    return torch.from_numpy(arr)


def resize_image(img: Tensor, size: tuple[int, int]) -> Tensor:  # [H, W, C] -> [h, w, C]
    if tuple(img.shape[:2]) == tuple(size):
        return img
    x = F.interpolate(img.permute(2, 0, 1)[None], size=size, mode="bilinear", align_corners=False, antialias=True)
    return x[0].permute(1, 2, 0)


def resize_map(m: Tensor, size: tuple[int, int]) -> Tensor:  # [H, W] -> [h, w], nearest (keeps values)
    if tuple(m.shape) == tuple(size):
        return m
    return F.interpolate(m[None, None], size=size, mode="nearest")[0, 0]


class FixerDataset(torch.utils.data.Dataset):
    """Items of one split. `crop`: random square crops of that side (training); None: whole frames,
    resized to `size` (H, W) when given. Index with `i` or `(i, seed)` (the seed draws the crop)."""

    def __init__(self, index: str | Path, split: str | None = "train", crop: int | None = 256,
                 size: tuple[int, int] | None = None) -> None:
        self.index = Path(index)
        self.samples = [s for s in read_index(index) if split is None or s.split == split]
        self.split = split
        self.crop = crop
        self.size = size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        i, seed = key if isinstance(key, tuple) else (key, None)
        s = self.samples[i]
        deg, tgt = load_image(s.degraded), load_image(s.target)
        if deg.shape != tgt.shape:
            raise FixerDataError(f"{s.degraded} and {s.target} differ in size: {tuple(deg.shape)} vs {tuple(tgt.shape)}")
        maps = {k: load_map(p) for k, p in s.maps.items()}
        for k, m in maps.items():
            if tuple(m.shape) != tuple(deg.shape[:2]):
                maps[k] = resize_map(m, tuple(deg.shape[:2]))
        if self.size is not None:
            deg, tgt = resize_image(deg, self.size), resize_image(tgt, self.size)
            maps = {k: resize_map(m, self.size) for k, m in maps.items()}
        if self.crop is not None:
            deg, tgt, maps = self._random_crop(deg, tgt, maps, seed)
        h, w = deg.shape[:2]
        if s.reference is not None:
            ref, has_ref = resize_image(load_image(s.reference), (h, w)), True
        else:
            ref, has_ref = torch.zeros_like(deg), False
        item: dict[str, Any] = {"degraded": deg, "target": tgt, "reference": ref, "has_ref": has_ref, **maps,
                                "scene": s.scene, "kind": s.kind, "index": i}
        return item

    def _random_crop(self, deg: Tensor, tgt: Tensor, maps: dict[str, Tensor], seed: int | None):
        c = int(self.crop)
        h, w = deg.shape[:2]
        if h < c or w < c:  # upscale so that the crop fits
            k = c / min(h, w)
            size = (max(c, round(h * k)), max(c, round(w * k)))
            deg, tgt = resize_image(deg, size), resize_image(tgt, size)
            maps = {n: resize_map(m, size) for n, m in maps.items()}
            h, w = size
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        y = int(torch.randint(0, h - c + 1, (1,), generator=g))
        x = int(torch.randint(0, w - c + 1, (1,), generator=g))
        win = (slice(y, y + c), slice(x, x + c))
        return deg[win], tgt[win], {n: m[win] for n, m in maps.items()}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep a per-pixel map only if every item has it; lists for the metadata."""
    out: dict[str, Any] = {}
    for k in items[0]:
        vals = [it.get(k) for it in items]
        if any(v is None for v in vals):
            continue
        if isinstance(vals[0], Tensor):
            out[k] = torch.stack(vals)
        elif isinstance(vals[0], bool):
            out[k] = torch.tensor(vals)
        else:
            out[k] = vals
    return out


class StepBatches(torch.utils.data.Sampler):
    """Batches of `(index, crop seed)` for steps `start..total-1`, a function of (seed, step) alone.

    Each epoch is a fresh permutation (seeded by seed and epoch) cut into `batch_size` batches
    (the rest dropped), so resuming at any step yields exactly the batches a straight run would.
    """

    def __init__(self, n: int, batch_size: int, total: int, start: int = 0, seed: int = 0) -> None:
        if n < batch_size:
            raise ValueError(f"{n} training samples are fewer than a batch of {batch_size}")
        self.n, self.batch_size, self.total, self.start, self.seed = n, batch_size, total, start, seed
        self.per_epoch = n // batch_size

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def batch(self, step: int) -> list[tuple[int, int]]:
        epoch, k = divmod(step, self.per_epoch)
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        idx = perm[k * self.batch_size:(k + 1) * self.batch_size].tolist()
        return [(i, (self.seed * 1_000_003 + step) * 64 + j) for j, i in enumerate(idx)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            yield self.batch(step)


# --- video windows ------------------------------------------------------------------------

VIDEO_MAPS = ("eig", "depth", "target_depth")  # optional per-frame maps of a video sample


def is_video_sample(s: dict[str, Any]) -> bool:
    return s.get("kind") == "video" or isinstance(s.get("degraded"), list)


@dataclass
class VideoFixerSample:
    degraded: list[Path]
    target: list[Path]
    reference: Path | None
    reference_depth: Path | None
    maps: dict[str, list[Path]]  # name -> T paths
    scene: str
    split: str
    kind: str = "video"
    cameras: list[dict] | None = None  # per frame: K, camtoworld_m (metres), width, height
    shift: float | None = None  # the window's final lane shift (metres, left +)


def read_video_index(index: str | Path) -> list[VideoFixerSample]:
    """The video samples of a fixer dataset index, paths resolved and frame counts checked."""
    base, samples = _load_index(index)
    out = []
    for i, s in enumerate(samples):
        if not is_video_sample(s):
            continue
        t = len(s.get("degraded") or [])
        lists = {k: s[k] for k in ("degraded", "target", *VIDEO_MAPS) if s.get(k)}
        for k, v in lists.items():
            if not isinstance(v, list) or len(v) != t or t == 0:
                raise FixerDataError(f"{index}: video sample {i}: {k!r} must list the same T > 0 frames as 'degraded'")
        if "target" not in lists:
            raise FixerDataError(f"{index}: video sample {i} has no 'target'")
        out.append(VideoFixerSample(
            degraded=[base / p for p in s["degraded"]],
            target=[base / p for p in s["target"]],
            reference=base / s["reference"] if s.get("reference") else None,
            reference_depth=base / s["reference_depth"] if s.get("reference_depth") else None,
            maps={k: [base / p for p in lists[k]] for k in VIDEO_MAPS if k in lists},
            scene=str(s.get("scene", "")),
            split=str(s.get("split", "train")),
            kind=str(s.get("kind", "video")),
            cameras=s.get("cameras") if isinstance(s.get("cameras"), list) and len(s["cameras"]) == t else None,
            shift=float(s["shift"]) if s.get("shift") is not None else None,
        ))
    return out


def resize_frames(x: Tensor, size: tuple[int, int], is_map: bool) -> Tensor:
    """`[T, H, W, 3]` (bilinear, antialiased) or `[T, H, W]` maps (nearest) -> size."""
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    if is_map:
        return F.interpolate(x[:, None], size=size, mode="nearest")[:, 0]
    y = F.interpolate(x.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False, antialias=True)
    return y.permute(0, 2, 3, 1)


class VideoFixerDataset(torch.utils.data.Dataset):
    """Windows of T = `frames` consecutive frames of the video samples of one split.

    Items: `degraded`, `target` `[T, h, w, 3]`, `reference` `[h, w, 3]` (whole, resized, never
    cropped), `has_ref`, optional `eig`/`depth`/`target_depth` `[T, h, w]` and `reference_depth`
    `[h, w]`, and for whole frames of samples that record them `K` `[T, 3, 3]` and `camtoworld` `[T, 4, 4]`
    (metres). A sample longer than `frames` gives a random window of `frames` frames (the first
    window when indexed without a seed); `crop`: one random square window, the same in every frame
    and map. Index with `i` or `(i, seed)` (the seed draws the window and the crop).
    """

    def __init__(self, index: str | Path, split: str | None = "train", crop: int | None = 256,
                 size: tuple[int, int] | None = None, frames: int | None = 16) -> None:
        self.index = Path(index)
        self.samples = [s for s in read_video_index(index) if split is None or s.split == split]
        self.split, self.crop, self.size, self.frames = split, crop, size, frames

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        i, seed = key if isinstance(key, tuple) else (key, None)
        s = self.samples[i]
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        t = len(s.degraded)
        first = 0  # without a seed (validation) the window starts at the first frame
        if self.frames is not None and t > self.frames:
            first = int(torch.randint(0, t - self.frames + 1, (1,), generator=g)) if g is not None else 0
            t = self.frames
        pick = slice(first, first + t)
        deg = torch.stack([load_image(p) for p in s.degraded[pick]])  # [T, H, W, 3]
        tgt = torch.stack([load_image(p) for p in s.target[pick]])
        if deg.shape != tgt.shape:
            raise FixerDataError(f"{s.degraded[0]}: degraded and target frames differ in size: {tuple(deg.shape)} vs {tuple(tgt.shape)}")
        hw = tuple(deg.shape[1:3])
        maps = {k: resize_frames(torch.stack([load_map(p) for p in ps[pick]]), hw, True) for k, ps in s.maps.items()}
        if self.size is not None:
            deg, tgt = resize_frames(deg, self.size, False), resize_frames(tgt, self.size, False)
            maps = {k: resize_frames(m, self.size, True) for k, m in maps.items()}
        if self.crop is not None:
            deg, tgt, maps = self._random_crop(deg, tgt, maps, g)
        h, w = deg.shape[1:3]
        item: dict[str, Any] = {"degraded": deg, "target": tgt}
        if s.reference is not None:
            item["reference"], item["has_ref"] = resize_image(load_image(s.reference), (h, w)), True
        else:
            item["reference"], item["has_ref"] = torch.zeros_like(deg[0]), False
        if s.reference_depth is not None:
            item["reference_depth"] = resize_map(load_map(s.reference_depth), (h, w))
        item.update(maps)
        if s.cameras is not None and self.crop is None:  # whole frames: cameras scaled to the item's size
            cams = s.cameras[pick]
            K = torch.tensor([c["K"] for c in cams], dtype=torch.float32)  # [T, 3, 3]
            K[:, 0] *= w / torch.tensor([float(c["width"]) for c in cams])[:, None]
            K[:, 1] *= h / torch.tensor([float(c["height"]) for c in cams])[:, None]
            item["K"], item["camtoworld"] = K, torch.tensor([c["camtoworld_m"] for c in cams], dtype=torch.float32)
        item.update({"scene": s.scene, "kind": s.kind, "index": i})
        return item

    def _random_crop(self, deg: Tensor, tgt: Tensor, maps: dict[str, Tensor], g: torch.Generator | None):
        c = int(self.crop)
        h, w = deg.shape[1:3]
        if h < c or w < c:  # upscale so that the crop fits
            k = c / min(h, w)
            size = (max(c, round(h * k)), max(c, round(w * k)))
            deg, tgt = resize_frames(deg, size, False), resize_frames(tgt, size, False)
            maps = {n: resize_frames(m, size, True) for n, m in maps.items()}
            h, w = size
        y = int(torch.randint(0, h - c + 1, (1,), generator=g))
        x = int(torch.randint(0, w - c + 1, (1,), generator=g))
        win = (slice(None), slice(y, y + c), slice(x, x + c))
        return deg[win], tgt[win], {n: m[win] for n, m in maps.items()}


# --- several datasets as one ----------------------------------------------------------------------

PATH_KEYS = ("degraded", "target", "reference", "reference_depth", "eig", "depth", "alpha", "target_depth")


@dataclass
class MergeConfig:
    """Merge curated fixer datasets into one index (the files stay where they are)."""

    out: Path
    """The merged index.json (its folder may be anywhere: paths are rewritten relative to it)."""
    indexes: tuple[Path, ...]
    """The index.json files to merge; scene names are prefixed by their dataset folder's name when they clash."""
    overwrite: bool = False


def merge_indexes(cfg: MergeConfig) -> dict:
    """Write one index listing every sample of `cfg.indexes`; returns {dataset: samples}."""
    import os

    from faithfusion.utils.jsonio import save_json_atomic

    out = Path(cfg.out)
    if out.exists() and not cfg.overwrite:
        raise FileExistsError(f"{out}: exists; pass --overwrite to replace it")
    folder = out.parent.resolve()
    seen: dict[str, str] = {}
    merged, counts = [], {}
    for index in cfg.indexes:
        base, samples = _load_index(index)
        tag = Path(index).resolve().parent.name
        counts[str(index)] = len(samples)
        for s in samples:
            s = dict(s)
            scene = str(s.get("scene", ""))
            if seen.setdefault(scene, tag) != tag:
                scene = s["scene"] = f"{tag}/{scene}"
            for k in PATH_KEYS:
                v = s.get(k)
                if isinstance(v, str) and v:
                    s[k] = Path(os.path.relpath(base / v, folder)).as_posix()
                elif isinstance(v, list):
                    s[k] = [Path(os.path.relpath(base / p, folder)).as_posix() for p in v]
            merged.append(s)
    folder.mkdir(parents=True, exist_ok=True)
    save_json_atomic(out, {"root": ".", "version": 1, "samples": merged, "merged_from": [str(i) for i in cfg.indexes]})
    print(f"{out}: {len(merged)} samples from " + ", ".join(f"{k} ({v})" for k, v in counts.items()))
    return counts
