"""Reading a DynamiCrafter / GenFusion checkpoint file and telling it from other checkpoints, without the model
(so that kind detection needs no torch modules of the model).

Layout (Inception3D/GenFusion `Reconstruction/extrapolation/extrapolator.py: create_model`): a PyTorch Lightning
`.ckpt` whose `state_dict` holds the whole `LatentVisualDiffusion` (loaded there with `strict=True`; keys
`framestride_embed` are renamed `fps_embedding` for DynamiCrafter's 256 models), or a DeepSpeed checkpoint whose
`module` dict holds the same keys behind a 16-character prefix (`_forward_module.`). A `.safetensors` file with the
same keys is read too. Prefixes: `model.diffusion_model.`, `first_stage_model.`, `cond_stage_model.`, `embedder.`,
`image_proj_model.`, and the schedule buffers at the top level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

UNET_PREFIX = "model.diffusion_model."
PREFIXES = (UNET_PREFIX, "first_stage_model.", "cond_stage_model.", "embedder.", "image_proj_model.")
DEEPSPEED_PREFIX_LEN = 16  # len("_forward_module.")


class CheckpointReadError(ValueError):
    """The file is not a readable tensor checkpoint (the message says why)."""


def _load(path: Path) -> Any:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # not a zip-format file: mmap needs one
        pass
    except Exception as err:  # noqa: BLE001  (pickle errors have many classes)
        raise CheckpointReadError(
            f"{path}: not loadable as tensors only ({type(err).__name__}: {str(err)[:200]}). If it holds other Python "
            "objects (e.g. Lightning hyper-parameters), re-save its state_dict with torch.save({'state_dict': ...})"
        ) from err
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointReadError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {str(err)[:200]})") from err


def state_from_checkpoint(raw: Any) -> dict[str, Tensor] | None:
    """The model's state dict from a loaded checkpoint (Lightning `state_dict`, DeepSpeed `module`, or flat), with
    the published renames; None if it does not look like a DynamiCrafter checkpoint."""
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("state_dict"), dict):
        sd = raw["state_dict"]
    elif isinstance(raw.get("module"), dict):
        sd = {k[DEEPSPEED_PREFIX_LEN:]: v for k, v in raw["module"].items()}
    else:
        sd = raw
    if not any(isinstance(k, str) and k.startswith(UNET_PREFIX) for k in sd):
        return None
    return {k.replace("framestride_embed", "fps_embedding"): v for k, v in sd.items()}


def read_dynamicrafter_state(path: str | Path) -> dict[str, Tensor]:
    """Every tensor of a DynamiCrafter checkpoint file; a CheckpointReadError if it is not one."""
    path = Path(path)
    sd = state_from_checkpoint(_load(path))
    if sd is None:
        raise CheckpointReadError(f"{path}: not a DynamiCrafter checkpoint (no state_dict / module with "
                                  f"{UNET_PREFIX}* tensors)")
    return sd


def checkpoint_kind(path: Path) -> str | None:
    """"dynamicrafter", "difix-pkl" (a dict with `state_dict_unet`), "other" (a readable checkpoint of neither
    kind) or None (unreadable: the caller's reader says why). Reads only the pickle's index (tensors memory-mapped)."""
    try:
        raw = _load(path)
    except CheckpointReadError:
        return None
    if state_from_checkpoint(raw) is not None:
        return "dynamicrafter"
    return "difix-pkl" if isinstance(raw, dict) and "state_dict_unet" in raw else "other"


def is_dynamicrafter_checkpoint(path: Path) -> bool:
    """Does the file hold a DynamiCrafter state dict? (reads only the pickle's index: tensors are memory-mapped)"""
    try:
        return state_from_checkpoint(_load(path)) is not None
    except CheckpointReadError:
        return False
