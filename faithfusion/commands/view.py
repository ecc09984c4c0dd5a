"""`faithfusion view`: a run in the browser (viser), with the drive as a timeline, a lane-shift slider and layers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass
class ViewConfig:
    """Serve a trained run in the browser: drive timeline, lane shift (-6..6 m), free camera, and layers
    (render, fixed view, EIG heatmap, depth, ground truth)."""

    run: Path = Path("runs/recon")
    port: int = 8080
    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0 to be reached from other machines)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_side: int | None = None
    """Longer side of the rendered view in pixels (default: 320 on the CPU, the run's own size on CUDA)."""


CPU_MAX_SIDE = 320


def run_view(cfg: ViewConfig):
    from faithfusion.utils.device import resolve_device
    from faithfusion.utils.flags import require_between, require_device, require_positive
    from faithfusion.viewer.server import serve

    require_device("--device", cfg.device)
    require_between("--port", cfg.port, 0, 65535)
    if cfg.max_side is not None:
        require_positive("--max-side", cfg.max_side)
    device = resolve_device(cfg.device)
    max_side = cfg.max_side if cfg.max_side is not None else (CPU_MAX_SIDE if device.type == "cpu" else None)
    return serve(Path(cfg.run), cfg.port, cfg.host, device.type, max_side)
