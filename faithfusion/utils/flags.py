"""Is a numeric command-line flag usable? Checks that raise a FlagError naming the flag and the value."""

from __future__ import annotations

import math

from faithfusion.errors import UserError


class FlagError(UserError, ValueError):
    """A flag's value is NaN, infinite or out of its range."""


def require_finite(flag: str, value: float) -> float:
    if not math.isfinite(float(value)):
        raise FlagError(f"{flag} {value}: must be a finite number")
    return value


def require_at_least(flag: str, value: float, low: float) -> float:
    require_finite(flag, value)
    if value < low:
        raise FlagError(f"{flag} {value}: must be at least {low}")
    return value


def require_positive(flag: str, value: float) -> float:
    require_finite(flag, value)
    if value <= 0:
        raise FlagError(f"{flag} {value}: must be greater than 0")
    return value


def require_between(flag: str, value: float, low: float, high: float) -> float:
    require_finite(flag, value)
    if not low <= value <= high:
        raise FlagError(f"{flag} {value}: must be between {low} and {high}")
    return value


def require_device(flag: str, name: str) -> str:
    """A device name this machine has (`cuda` only where CUDA is available)."""
    from faithfusion.utils.device import DeviceError, resolve_device

    try:
        resolve_device(name)
    except DeviceError as e:
        raise FlagError(str(e).replace("--device", flag, 1)) from None
    return name
