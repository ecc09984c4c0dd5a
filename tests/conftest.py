"""Shared test helpers: markers for what a test needs from the machine."""

from __future__ import annotations

import pytest


def lpips_weights_available() -> bool:
    from faithfusion.eval.lpips import LPIPSWeightsError, load_lpips_state

    try:
        load_lpips_state()
    except LPIPSWeightsError:
        return False
    return True


requires_lpips = pytest.mark.skipif(
    not lpips_weights_available(),
    reason="LPIPS weights not found (../shared/weights/lpips_squeeze_v01.npz or $FAITHFUSION_LPIPS_WEIGHTS)",
)
