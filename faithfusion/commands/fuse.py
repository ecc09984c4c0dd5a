"""`faithfusion fuse METHOD`: one method preset on one scene, each preset a subcommand with its own flags."""

from __future__ import annotations

import json
from functools import partial

from faithfusion.fusion.config import FuseConfig
from faithfusion.fusion.presets import PRESETS
from faithfusion.fusion.runner import MethodRun, run_method


def run_fuse(name: str, cfg: FuseConfig) -> MethodRun:
    """Train preset `name` with `cfg` and print a one-line summary."""
    run = run_method(name, cfg)
    metrics = run.metrics
    if run.stopped:
        print(f"stopped after {metrics['completed_rounds']} rounds (--stop-after-rounds); continue with --resume")
        return run
    rounds = metrics.get("fusion", {}).get("completed_rounds", 0)
    print(f"done: {name}, {metrics['steps']} steps, {rounds} rounds, held-out "
          + json.dumps(metrics.get("test", {})) + f" [{metrics.get('lpips_net', 'LPIPS: network not recorded')}]"
          + f"  ->  {cfg.out}/metrics.json")
    return run


def fuse_commands() -> dict[str, tuple[type, object, str]]:
    """preset name -> (its config class, the function that runs it, its one-line description)."""
    return {name: (p.config, partial(run_fuse, name), p.summary) for name, p in PRESETS.items()}
