"""The optional model families (diffusers, transformers, peft): `pip install 'faithfusion[models]'`.

The core (recon, render, eval, synth, eig, fuse with the shipped fixers) never imports them; only the
pretrained backbones do (Difix on SD-Turbo, EIGent on CogVideoX), and they call `require_models` first.
"""

from __future__ import annotations

import importlib.util

from faithfusion.errors import UserError

MODELS_EXTRA = ("diffusers", "transformers", "peft")


class MissingExtraError(UserError, ImportError):
    """An optional dependency that a chosen feature needs is not installed: says which extra installs it."""


def require_models(what: str, modules: tuple[str, ...] = MODELS_EXTRA) -> None:
    """Raise MissingExtraError naming `what` and the extra when any of `modules` is not importable."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(
            f"{what} needs {', '.join(missing)} (not installed): pip install 'faithfusion[models]'"
        )
