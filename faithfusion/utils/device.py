"""Which torch device does a `--device` flag name? 'auto' picks CUDA when present, else the CPU."""

from __future__ import annotations

import torch

from faithfusion.errors import UserError


class DeviceError(UserError, RuntimeError):
    """A device was asked for that this machine does not have."""


def resolve_device(name: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' as a `torch.device`; CUDA without CUDA raises `DeviceError`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise DeviceError(f"--device {name}: not a device name (use auto, cpu, cuda or cuda:N)") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {name} was asked for but CUDA is not available on this machine")
    return device
