"""What a fixer is: the `Fixer` protocol, its output, and how fixer models are saved and found again.

A fixer takes rendered frames (and optionally a reference view, per-pixel EIG and depth) and
returns repaired frames. Saved fixers follow diffusers' habit: a folder with `config.json`
(the model's config dataclass plus `_class_name`) and `model.safetensors`; `register_fixer` makes a
class findable by that name (`faithfusion.fixers.load.load_fixer` rebuilds any saved fixer).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from faithfusion.utils.atomic import atomic_write
from faithfusion.utils.jsonio import to_plain

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

_REGISTRY: dict[str, type["FixerModel"]] = {}

M = TypeVar("M", bound="FixerModel")


@dataclass
class FixerOutput:
    """Repaired frames `[B, T, H, W, 3]` in [0, 1] and, for fixers that predict it, depth `[B, T, H, W]`."""

    images: Tensor  # [B, T, H, W, 3]
    depth: Tensor | None = None  # [B, T, H, W]


@runtime_checkable
class Fixer(Protocol):
    """Anything that repairs rendered frames."""

    def fix(
        self,
        images: Tensor,  # [B, T, H, W, 3] in [0, 1]
        ref: Tensor | None = None,  # [B, H, W, 3] in [0, 1]
        eig: Tensor | None = None,  # [B, T, H, W]
        depth: Tensor | None = None,  # [B, T, H, W]
        ref_depth: Tensor | None = None,  # [B, H, W]: the reference's depth (RGB-D fixers; others ignore it)
    ) -> FixerOutput: ...


def check_fix_inputs(images: Tensor, ref: Tensor | None, eig: Tensor | None, depth: Tensor | None) -> None:
    """Raise ValueError unless the inputs have the shapes of the `Fixer` protocol."""
    if images.ndim != 5 or images.shape[-1] != 3:
        raise ValueError(f"fix: images must be [B, T, H, W, 3], got {tuple(images.shape)}")
    b, t, h, w, _ = images.shape
    if ref is not None and (ref.ndim != 4 or ref.shape[0] != b or ref.shape[-1] != 3):
        raise ValueError(f"fix: ref must be [B={b}, H, W, 3], got {tuple(ref.shape)}")
    for name, x in (("eig", eig), ("depth", depth)):
        if x is not None and tuple(x.shape) != (b, t, h, w):
            raise ValueError(f"fix: {name} must be [B, T, H, W] = {(b, t, h, w)}, got {tuple(x.shape)}")


def register_fixer(cls: type[M]) -> type[M]:
    """Class decorator: make `cls` loadable by `load_fixer` under its class name."""
    _REGISTRY[cls.__name__] = cls
    return cls


def registered_fixers() -> dict[str, type["FixerModel"]]:
    return dict(_REGISTRY)


def _from_jsonable(cls: type, data: dict[str, Any]) -> Any:
    """Build config dataclass `cls` from JSON, turning lists back into tuples where the default is a tuple."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {unknown}")
    kwargs = {}
    for k, v in data.items():
        default = fields[k].default
        kwargs[k] = tuple(v) if isinstance(v, list) and isinstance(default, tuple) else v
    return cls(**kwargs)


class FixerModel(nn.Module):
    """A fixer that is an `nn.Module` with a config dataclass, saved as `config.json` + `model.safetensors`.

    Subclasses set `config_class`, build themselves from `config`, implement `fix`, and may narrow
    what is saved with `saved_state_dict` (e.g. only trained tensors, when frozen base weights are
    reloaded from their own source).
    """

    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    # --- what is saved ---------------------------------------------------------------------

    def saved_state_dict(self) -> dict[str, Tensor]:
        return self.state_dict()

    def load_saved_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load what `saved_state_dict` wrote; every saved tensor must find its place."""
        own = self.state_dict()
        unexpected = sorted(k for k in state if k not in own)
        if unexpected:
            raise ValueError(f"{type(self).__name__}: saved tensors with no place in the model: {unexpected[:5]}")
        missing = sorted(k for k in self.saved_state_dict() if k not in state)
        if missing:
            raise ValueError(f"{type(self).__name__}: saved file lacks {len(missing)} tensors, e.g. {missing[:5]}")
        self.load_state_dict(state, strict=False)

    def config_dict(self) -> dict[str, Any]:
        return {"_class_name": type(self).__name__, **to_plain(dataclasses.asdict(self.config))}

    # --- files -----------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write `config.json` and `model.safetensors` into `directory` (created); returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", dtype=dtype if dtype is not None and v.is_floating_point() else v.dtype).contiguous()
                 for k, v in self.saved_state_dict().items()}
        metadata = {"format": "pt", "class": type(self).__name__}
        atomic_write(directory / WEIGHTS_NAME, save=lambda tmp: save_file(state, str(tmp), metadata=metadata), what="fixer weights")
        atomic_write(directory / CONFIG_NAME, json.dumps(self.config_dict(), indent=2) + "\n", what="fixer config")
        return directory

    @classmethod
    def from_config(cls: type[M], config: Any | dict[str, Any]) -> M:
        if isinstance(config, dict):
            config = _from_jsonable(cls.config_class, {k: v for k, v in config.items() if not k.startswith("_")})
        return cls(config)

    @classmethod
    def from_pretrained(cls: type[M], directory: str | Path, map_location: str | torch.device = "cpu", **overrides: Any) -> M:
        """Rebuild from a folder written by `save_pretrained` on `map_location` (weights and module both);
        `overrides` replace config fields."""
        directory = Path(directory)
        data = read_config(directory)
        name = data.get("_class_name")
        if name != cls.__name__ and not (name in _REGISTRY and issubclass(_REGISTRY[name], cls)):
            raise ValueError(f"{directory}: holds a {name}, not a {cls.__name__}")
        target = _REGISTRY.get(name, cls)
        data.update(overrides)
        model = target.from_config(data)
        state = load_file(str(directory / WEIGHTS_NAME), device=str(map_location))
        own = model.state_dict()
        state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
        model.load_saved_state_dict(state)
        return model.to(map_location).eval()  # load_state_dict copies into the module's own (CPU) tensors


def read_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no {CONFIG_NAME} (not a saved fixer)")
    if not (Path(directory) / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{directory}: no {WEIGHTS_NAME}")
    return json.loads(path.read_text())
