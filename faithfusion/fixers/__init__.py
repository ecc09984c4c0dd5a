"""Fixers: models that repair rendered frames (the `Fixer` protocol), their losses, data and training.

`load_fixer(dir)` rebuilds any saved fixer; `Difix` is the one-step fixer (compact | sd-turbo).
"""

from faithfusion.fixers.base import Fixer, FixerModel, FixerOutput, load_fixer, register_fixer, registered_fixers
from faithfusion.fixers.difix import Difix, DifixConfig

__all__ = ["Difix", "DifixConfig", "Fixer", "FixerModel", "FixerOutput", "load_fixer", "register_fixer", "registered_fixers"]
