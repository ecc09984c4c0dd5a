"""Fixer-data curation: paired (degraded render, target, reference) samples from sparse reconstructions.

`curate(CurateConfig(...))` writes a dataset folder that `faithfusion.fixers.dataset` reads.
"""

from faithfusion.curation.run import CurateConfig, curate

__all__ = ["CurateConfig", "curate"]
