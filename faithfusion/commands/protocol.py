"""`faithfusion protocol NAME`: evaluation protocols that train every method themselves (`protocol sparse`)."""

from __future__ import annotations

from typing import Any, Callable


def protocol_commands() -> dict[str, tuple[type, Callable[[Any], Any], str]]:
    from faithfusion.protocols.sparse import SparseProtocolConfig, run_sparse_protocol

    return {"sparse": (SparseProtocolConfig, run_sparse_protocol,
                       "GenFusion's sparse-view protocol: every method trained on N views, scored on held-out frames")}
