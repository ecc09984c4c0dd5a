"""Shared test helpers: markers for what a test needs from the machine."""

from __future__ import annotations

import pytest
import torch


def lpips_weights_available() -> bool:
    from faithfusion.eval.lpips import LPIPSWeightsError, load_lpips_state

    try:
        load_lpips_state()
    except LPIPSWeightsError:
        return False
    return True


requires_lpips = pytest.mark.skipif(
    not lpips_weights_available(),
    reason="LPIPS weights not found (faithfusion/eval/weights/lpips_squeeze_v01.npz, ../shared/weights or $FAITHFUSION_LPIPS_WEIGHTS)",
)


@pytest.fixture
def single_thread():
    """One torch thread for the test: exact float comparisons do not depend on the thread count, and tiny models
    run fastest on one thread (far faster on a busy machine than two that contend)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
