"""LPIPS v0.1 with the SqueezeNet-1.1 backbone, built here (no torchvision, no lpips package).

The network: torchvision's `squeezenet1_1().features`, tapped after the ReLUs of layers
1, 4, 7, 9, 10, 11, 12 (64, 128, 256, 384, 384, 512, 512 channels). Each tap is unit-normalised
over channels, the two images' features are differenced and squared, weighted by a 1x1 linear
head (no bias), averaged over space and summed over the 7 taps. Inputs in [-1, 1] first go
through the scaling layer (x - shift) / scale.

Weights are never downloaded: they ship inside the package (`faithfusion/eval/weights/`, 2.9 MB;
torchvision's weights BSD-3-Clause, LPIPS heads BSD-2-Clause; see the README there).
`load_lpips_state` looks, in order, at: an explicit path, the env var FAITHFUSION_LPIPS_WEIGHTS
(both overrides: a missing or incomplete file is an error, never skipped), the packaged
`faithfusion/eval/weights/lpips_squeeze_v01.npz`, `<repo>/../shared/weights/lpips_squeeze_v01.npz`, then
torchvision's hub cache (`squeezenet1_1-*.pth`, backbone only) completed by LPIPS heads from the
`lpips` or `torchmetrics` package files if either is installed.

`LPIPS_NAME` names the network ("LPIPS (SqueezeNet-1.1, v0.1)"); every JSON and report that holds an
LPIPS figure carries it beside the figure (`lpips_net`).
"""

from __future__ import annotations

import glob
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from faithfusion.errors import UserError

ENV_VAR = "FAITHFUSION_LPIPS_WEIGHTS"
NPZ_NAME = "lpips_squeeze_v01.npz"
REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGED_NPZ = Path(__file__).resolve().parent / "weights" / NPZ_NAME
LPIPS_NAME = "LPIPS (SqueezeNet-1.1, v0.1)"
"""The metric's name, written beside every LPIPS figure (backbone and LPIPS release)."""

# LPIPS v0.1 scaling layer constants (also stored in the npz).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

# torchvision squeezenet1_1.features: index -> (in, squeeze, expand) of each Fire module.
FIRE_LAYOUT = {
    3: (64, 16, 64),
    4: (128, 16, 64),
    6: (128, 32, 128),
    7: (256, 32, 128),
    9: (256, 48, 192),
    10: (384, 48, 192),
    11: (384, 64, 256),
    12: (512, 64, 256),
}
TAPS = (1, 4, 7, 9, 10, 11, 12)  # feature indices whose outputs LPIPS compares
TAP_CHANNELS = (64, 128, 256, 384, 384, 512, 512)


class LPIPSWeightsError(UserError, FileNotFoundError):
    """The LPIPS weights could not be found (or only in part): says what is missing and where we looked."""


class Fire(nn.Module):
    """SqueezeNet Fire module: 1x1 squeeze, then 1x1 and 3x3 expands concatenated (all ReLU)."""

    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        s = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1x1(s)), torch.relu(self.expand3x3(s))], dim=1)


def squeezenet11_features() -> nn.Sequential:
    """An uninitialised replica of torchvision's `squeezenet1_1().features` (same indices and keys)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, stride=2), nn.ReLU()]
    for i in range(2, 13):
        if i in (2, 5, 8):
            layers.append(nn.MaxPool2d(3, stride=2, ceil_mode=True))
        else:
            layers.append(Fire(*FIRE_LAYOUT[i]))
    return nn.Sequential(*layers)


# --- weights -------------------------------------------------------------------------------


def _backbone_keys() -> list[str]:
    keys = ["features.0.weight", "features.0.bias"]
    for i in FIRE_LAYOUT:
        for part in ("squeeze", "expand1x1", "expand3x3"):
            keys += [f"features.{i}.{part}.weight", f"features.{i}.{part}.bias"]
    return keys


BACKBONE_KEYS = _backbone_keys()
HEAD_KEYS = [f"lins.{k}.weight" for k in range(7)]


def _canonical(key: str) -> str | None:
    """Map a key of any known source (npz, torchvision, lpips package) to our module's names."""
    parts = key.split(".")
    if key.startswith("features."):  # torchvision
        return key
    if parts[0] == "net" and parts[1].startswith("slice"):  # npz / lpips: net.slice2.3.squeeze.weight
        return "features." + ".".join(parts[2:])
    if parts[0] == "scaling_layer":
        return key
    if parts[0].startswith("lin") and parts[0][3:].isdigit() and key.endswith("model.1.weight"):  # lin3.model.1.weight
        return f"lins.{int(parts[0][3:])}.weight"
    if parts[0] == "lins" and parts[1].isdigit() and key.endswith("model.1.weight"):  # lins.5.model.1.weight
        return f"lins.{int(parts[1])}.weight"
    return None


def _read(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".npz":
        with np.load(path) as data:
            raw = {k: torch.from_numpy(np.array(data[k], dtype=np.float32)) for k in data.files}
    else:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(raw, dict) and "state_dict" in raw:
            raw = raw["state_dict"]
    out = {}
    for k, v in raw.items():
        c = _canonical(k.removeprefix("module."))
        if c is not None and isinstance(v, Tensor):
            out[c] = v.float()
    return out


def _package_file(package: str, *rel: str) -> Path | None:
    """A file inside an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc, *rel)
        if p.is_file():
            return p
    return None


def shared_npz_path() -> Path:
    return REPO_ROOT.parent / "shared" / "weights" / NPZ_NAME


def default_npz_path() -> Path:
    """The weights a plain `LPIPS()` uses: the packaged file, else the shared one (a clone without package data)."""
    return PACKAGED_NPZ if PACKAGED_NPZ.is_file() else shared_npz_path()


def load_lpips_state(path: str | Path | None = None) -> dict[str, Tensor]:
    """The complete LPIPS-squeeze state dict in our module's names; raises LPIPSWeightsError.

    An explicit `path` (or the env var) must point at a complete file: it is not silently skipped.
    """
    looked: list[str] = []
    explicit: list[tuple[str, Path]] = []
    if path is not None:
        explicit.append(("path argument", Path(path)))
    elif os.environ.get(ENV_VAR):
        explicit.append((f"${ENV_VAR}", Path(os.environ[ENV_VAR])))
    for what, p in explicit:
        if not p.is_file():
            raise LPIPSWeightsError(f"LPIPS weights: {what} {p} does not exist")
        state = _read(p)
        missing = [k for k in BACKBONE_KEYS + HEAD_KEYS if k not in state]
        if missing:
            raise LPIPSWeightsError(f"LPIPS weights: {p} ({what}) lacks {len(missing)} tensors, e.g. {missing[:3]}")
        return state

    sources: list[Path] = []
    npz = default_npz_path()
    looked.append(str(npz))
    if npz.is_file():
        sources.append(npz)
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    looked.append(str(hub / "squeezenet1_1-*.pth"))
    sources += [Path(p) for p in sorted(glob.glob(str(hub / "squeezenet1_1-*.pth")))]
    for pkg, rel in (("lpips", ("weights", "v0.1", "squeeze.pth")), ("torchmetrics", ("functional", "image", "lpips_models", "squeeze.pth"))):
        looked.append(f"package {pkg}: {'/'.join(rel)}")
        f = _package_file(pkg, *rel)
        if f is not None:
            sources.append(f)

    state: dict[str, Tensor] = {}
    for src in sources:
        got = _read(src)
        has_backbone = all(k in got for k in BACKBONE_KEYS)
        has_heads = all(k in got for k in HEAD_KEYS)
        if has_backbone and "features.0.weight" not in state:
            state.update({k: got[k] for k in BACKBONE_KEYS})
        if has_heads and "lins.0.weight" not in state:
            state.update({k: got[k] for k in HEAD_KEYS})
        for k in ("scaling_layer.shift", "scaling_layer.scale"):
            if k in got and k not in state:
                state[k] = got[k]
    missing = []
    if "features.0.weight" not in state:
        missing.append("the SqueezeNet-1.1 backbone")
    if "lins.0.weight" not in state:
        missing.append("the LPIPS v0.1 linear heads")
    if missing:
        found = ", ".join(str(s) for s in sources) or "nothing"
        damaged = "" if PACKAGED_NPZ.is_file() else f"The packaged {PACKAGED_NPZ} is missing: reinstall faithfusion. "
        raise LPIPSWeightsError(
            f"LPIPS weights: missing {' and '.join(missing)}. {damaged}Looked at: {'; '.join(looked)} (found: {found}). "
            f"Pass a path to {NPZ_NAME} or set ${ENV_VAR}; nothing is downloaded."
        )
    return state


# --- the metric ----------------------------------------------------------------------------


def _unit_normalise(x: Tensor, eps: float = 1e-10) -> Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1 (SqueezeNet-1.1). Frozen weights; gradients flow to the inputs (usable as a loss).

    `forward(pred, target)`: images `[..., H, W, 3]` in [0, 1] -> distances `[...]`.
    `forward_nchw(img1, img2, normalize=False)`: torchmetrics' convention, `[B, 3, H, W]` in [-1, 1]
    (in [0, 1] with normalize=True) -> `[B]`.
    """

    def __init__(self, weights: str | Path | dict[str, Tensor] | None = None) -> None:
        super().__init__()
        self.features = squeezenet11_features()
        self.lins = nn.ModuleList([nn.Conv2d(c, 1, 1, bias=False) for c in TAP_CHANNELS])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        state = weights if isinstance(weights, dict) else load_lpips_state(weights)
        self.name = LPIPS_NAME
        own = {k: v for k, v in state.items() if not k.startswith("scaling_layer")}
        self.load_state_dict(own, strict=False)
        missing = [k for k in BACKBONE_KEYS + HEAD_KEYS if k not in own]
        if missing:
            raise LPIPSWeightsError(f"LPIPS weights: state lacks {missing[:3]}...")
        if "scaling_layer.shift" in state:
            self.shift.copy_(state["scaling_layer.shift"].view(1, 3, 1, 1))
            self.scale.copy_(state["scaling_layer.scale"].view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def taps(self, x: Tensor) -> list[Tensor]:  # x [B, 3, H, W] in [-1, 1]
        h = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in TAPS:
                out.append(h)
        return out

    def forward_nchw(self, img1: Tensor, img2: Tensor, normalize: bool = False) -> Tensor:  # [B, 3, H, W] x2 -> [B]
        if img1.shape != img2.shape or img1.ndim != 4 or img1.shape[1] != 3:
            raise ValueError(f"LPIPS: need two [B,3,H,W] batches of equal shape, got {tuple(img1.shape)} and {tuple(img2.shape)}")
        if normalize:
            img1, img2 = img1 * 2 - 1, img2 * 2 - 1
        f1, f2 = self.taps(img1.float()), self.taps(img2.float())
        total = 0.0
        for lin, a, b in zip(self.lins, f1, f2):
            d = (_unit_normalise(a) - _unit_normalise(b)) ** 2  # [B, C, h, w]
            total = total + lin(d).mean(dim=(2, 3))  # [B, 1]
        return total[:, 0]

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:  # [..., H, W, 3] in [0, 1] -> [...]
        if pred.shape != target.shape or pred.shape[-1] != 3 or pred.ndim < 3:
            raise ValueError(f"LPIPS: need [..., H, W, 3] images of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
        batch = pred.shape[:-3]
        a = pred.reshape(-1, *pred.shape[-3:]).permute(0, 3, 1, 2)  # [B, 3, H, W]
        b = target.reshape(-1, *target.shape[-3:]).permute(0, 3, 1, 2)
        return self.forward_nchw(a, b, normalize=True).reshape(batch)
