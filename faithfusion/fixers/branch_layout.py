"""Is a folder a VideoPainter branch? The layout's names, without the model (so that kind detection needs no torch modules)."""

from __future__ import annotations

import json
from pathlib import Path

BRANCH_CLASS = "CogvideoXBranchModel"
BRANCH_WEIGHTS = "diffusion_pytorch_model.safetensors"


def is_branch_folder(path: Path) -> bool:
    """A folder holding a VideoPainter branch (`config.json` naming CogvideoXBranchModel)."""
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("_class_name") == BRANCH_CLASS
    except (OSError, json.JSONDecodeError):
        return False
