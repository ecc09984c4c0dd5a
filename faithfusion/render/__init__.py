"""One `render()` front over two rasterizers: gsplat (CUDA) and the project's pure-PyTorch one (CPU)."""

from faithfusion.render.api import RenderOutput, render, pick_backend

__all__ = ["RenderOutput", "render", "pick_backend"]
