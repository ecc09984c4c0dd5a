"""`faithfusion fuse`: the config and the function the CLI table names."""

from faithfusion.fusion.config import FuseConfig
from faithfusion.fusion.runner import run_fuse

__all__ = ["FuseConfig", "run_fuse"]
