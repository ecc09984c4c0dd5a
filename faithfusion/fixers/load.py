"""Rebuild any saved fixer from its folder, whichever built-in (or registered) class it holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import faithfusion.fixers.difix  # noqa: F401  (registers Difix)
import faithfusion.fixers.eigent  # noqa: F401  (registers EIGent, EIGentCogVideoX)
import faithfusion.fixers.genfusion  # noqa: F401  (registers GenFusion)
from faithfusion.fixers.base import FixerModel, read_config, registered_fixers


def load_fixer(directory: str | Path, map_location: str | torch.device = "cpu", **overrides: Any) -> FixerModel:
    """Rebuild whichever registered fixer class `directory/config.json` names."""
    registry = registered_fixers()
    name = read_config(directory).get("_class_name")
    if name not in registry:
        raise ValueError(f"{directory}: unknown fixer class {name!r}; registered: {sorted(registry)}")
    return registry[name].from_pretrained(directory, map_location=map_location, **overrides)
