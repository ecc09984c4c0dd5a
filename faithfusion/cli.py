"""The `faithfusion` command: one tyro subcommand per job, each a dataclass config."""

from __future__ import annotations

import sys
from typing import Callable

import tyro

from faithfusion.eval.command import EvalConfig, run_eval
from faithfusion.render.command import RenderConfig, render_run
from faithfusion.train.config import ReconConfig


def _recon(cfg: ReconConfig) -> None:
    from faithfusion.train.recon import run_recon

    metrics = run_recon(cfg)
    test = metrics.get("test", {})
    print(
        f"done: {metrics['steps']} steps, {metrics['num_gaussians']} Gaussians, "
        f"{metrics['iterations_per_second']:.1f} it/s, held-out "
        + ", ".join(f"{k} {v:.4f}" for k, v in test.items())
        + f"  ->  {cfg.out}/metrics.json"
    )


def commands() -> dict[str, tuple[type, Callable]]:
    """name -> (config dataclass, function that runs it)."""
    table: dict[str, tuple[type, Callable]] = {
        "recon": (ReconConfig, _recon),
        "render": (RenderConfig, render_run),
        "eval": (EvalConfig, run_eval),
    }
    from faithfusion.eig.analysis import AnalysisConfig, run_analysis
    from faithfusion.eig.command import EigConfig, run_eig

    table["eig"] = (EigConfig, run_eig)
    table["eig-analysis"] = (AnalysisConfig, run_analysis)
    from faithfusion.fusion.demo import DemoConfig, run_demo

    table["demo"] = (DemoConfig, run_demo)
    from faithfusion.fusion.command import FuseConfig, run_fuse

    table["fuse"] = (FuseConfig, run_fuse)
    try:
        from faithfusion.synth.command import SynthConfig

        table["synth"] = (SynthConfig, lambda cfg: cfg.run())
    except ImportError:
        pass
    return table


def fixer_commands() -> dict[str, tuple[type, Callable]]:
    """`faithfusion fixer NAME`: curation and training of the fixers."""
    from faithfusion.fixers.train import FixerTrainConfig, train_fixer

    from faithfusion.fixers.dataset import MergeConfig, merge_indexes

    table: dict[str, tuple[type, Callable]] = {"train": (FixerTrainConfig, train_fixer), "merge": (MergeConfig, merge_indexes)}
    try:
        from faithfusion.fixers.curate import CurateConfig, curate

        table["curate"] = (CurateConfig, curate)
    except ImportError:
        pass
    return table


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "fixer":
        table, args, prog = fixer_commands(), args[1:], "faithfusion fixer"
    else:
        table, prog = commands(), "faithfusion"
    cfg = tyro.extras.subcommand_cli_from_dict(
        {name: cls for name, (cls, _) in table.items()},
        args=args,
        prog=prog,
        description="FaithFusion: faithful novel-view synthesis of driving scenes."
        + ("" if prog != "faithfusion" else " Fixer jobs: `faithfusion fixer {curate,merge,train}`."),
    )
    for cls, fn in table.values():
        if type(cfg) is cls:
            fn(cfg)
            return
    raise SystemExit(f"no runner for {type(cfg).__name__}")


if __name__ == "__main__":
    main()
