"""Fixers: models that repair rendered frames (the `Fixer` protocol), their losses, data and training.

`load_fixer(dir)` rebuilds any saved fixer; `Difix` is the one-step fixer (compact | sd-turbo).
"""

from faithfusion.fixers.base import Fixer, FixerModel, FixerOutput, register_fixer, registered_fixers
from faithfusion.fixers.difix import Difix, DifixConfig
from faithfusion.fixers.eigent import EIGent, EIGentCogVideoX, EIGentCogVideoXConfig, EIGentConfig
from faithfusion.fixers.genfusion import GenFusion, GenFusionConfig
from faithfusion.fixers.load import load_fixer

__all__ = ["Difix", "DifixConfig", "EIGent", "EIGentConfig", "EIGentCogVideoX", "EIGentCogVideoXConfig", "GenFusion", "GenFusionConfig", "Fixer", "FixerModel", "FixerOutput", "load_fixer", "register_fixer", "registered_fixers"]
