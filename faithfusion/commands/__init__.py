"""The entry points: one module per `faithfusion` command, on top of the library (nothing below imports them).

`commands()` is the command table of `faithfusion`; a group (`fuse`, `fixer`) is a table of its own, whose
entries are its subcommands (`faithfusion fuse faithfusion ...`, `faithfusion fixer train ...`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from faithfusion.errors import USER_ERROR_EXIT_CODE, UserError

__all__ = ["Command", "Group", "USER_ERROR_EXIT_CODE", "UserError", "commands", "convert_table", "fixer_table", "fuse_table",
           "metricnets_table", "protocol_table"]


@dataclass(frozen=True)
class Command:
    config: type
    """The dataclass whose fields are the command's flags."""
    run: Callable[[Any], Any]
    """config -> result: what the command does."""
    help: str = ""
    """One line for the listing of its group."""
    description: str | None = None
    """The head of its `--help` (None: the config's docstring)."""
    defaults_from: Callable[[Any], Any] | None = None
    """`--config PATH` -> the config to start from (a run's config.yaml); None: the command has no --config."""


@dataclass(frozen=True)
class Group:
    """A command whose first argument names one of its subcommands."""

    table: Callable[[], dict[str, Command]]
    help: str = ""


def fuse_table() -> dict[str, Command]:
    from functools import partial

    from faithfusion.commands.fuse import fuse_commands
    from faithfusion.train.run import flags_from_config

    return {name: Command(cls, fn, text, description=text, defaults_from=partial(flags_from_config, cls=cls, method=name))
            for name, (cls, fn, text) in fuse_commands().items()}


def fixer_table() -> dict[str, Command]:
    from faithfusion.commands.fixer import fixer_commands

    return {name: Command(cls, fn, text) for name, (cls, fn, text) in fixer_commands().items()}


def convert_table() -> dict[str, Command]:
    from faithfusion.commands.convert import convert_commands

    return {name: Command(cls, fn, text) for name, (cls, fn, text) in convert_commands().items()}


def metricnets_table() -> dict[str, Command]:
    from faithfusion.commands.metricnets import metricnets_commands

    return {name: Command(cls, fn, text) for name, (cls, fn, text) in metricnets_commands().items()}


def protocol_table() -> dict[str, Command]:
    from faithfusion.commands.protocol import protocol_commands

    return {name: Command(cls, fn, text) for name, (cls, fn, text) in protocol_commands().items()}


def commands() -> dict[str, Command | Group]:
    """`faithfusion NAME` -> the command (or group of subcommands) it runs."""
    from faithfusion.commands.batch import BatchConfig, run_batch_command
    from faithfusion.commands.bench import BenchConfig, run_bench_command
    from faithfusion.commands.demo import DemoConfig, run_demo
    from faithfusion.commands.eig import EigConfig, run_eig
    from faithfusion.commands.eig_analysis import AnalysisConfig, run_analysis
    from faithfusion.commands.eig_form_choice import FormChoiceConfig, run_form_choice
    from faithfusion.commands.eval import EvalConfig, run_eval
    from faithfusion.commands.recon import ReconConfig, run_recon_command
    from faithfusion.commands.recon_ddp import DataParallelConfig, run_recon_ddp_command
    from faithfusion.commands.render import RenderConfig, render_run
    from faithfusion.commands.report import ReportConfig, run_report
    from faithfusion.commands.synth import SynthConfig, run_synth
    from faithfusion.train.run import flags_from_config
    from faithfusion.commands.view import ViewConfig, run_view

    return {
        "recon": Command(ReconConfig, run_recon_command, "reconstruct a scene with 3D Gaussian Splatting",
                         defaults_from=flags_from_config),
        "recon-ddp": Command(DataParallelConfig, run_recon_ddp_command, "one scene, data-parallel over torchrun's ranks"),
        "render": Command(RenderConfig, render_run, "render a trained run, optionally from a shifted lane"),
        "eval": Command(EvalConfig, run_eval, "evaluate a finished run (lane shift or held-out frames)"),
        "eig": Command(EigConfig, run_eig, "per-pixel EIG maps of a run's frames"),
        "eig-analysis": Command(AnalysisConfig, run_analysis, "EIG against the true error of lane-shifted renders"),
        "eig-form-choice": Command(FormChoiceConfig, run_form_choice,
                                   "the written rule's EIG form from a training-seed eig-analysis summary"),
        "synth": Command(SynthConfig, run_synth, "generate a SynthStreet scene"),
        "fuse": Group(fuse_table, "reconstruct with a fusion method: `faithfusion fuse METHOD --help`"),
        "demo": Command(DemoConfig, run_demo, "the synthetic street end to end, with a report"),
        "bench": Command(BenchConfig, run_bench_command, "training, render, EIG, fixers and fusion timed against gsplat and 3DGS"),
        "report": Command(ReportConfig, run_report, "one self-contained HTML page of evaluated runs"),
        "batch": Command(BatchConfig, run_batch_command, "many scenes, one job each (synth, recon or fuse, eval), scheduled by Ray"),
        "view": Command(ViewConfig, run_view, "a run in the browser: drive timeline, lane-shift slider, EIG / depth / ground-truth layers"),
        "fixer": Group(fixer_table, "fixer data and models: `faithfusion fixer {curate,train,merge,evaluate,evaluate-video}`"),
        "metricnets": Group(metricnets_table, "the NTA-IoU / NTL-IoU metric networks: `faithfusion metricnets train --out DIR`"),
        "protocol": Group(protocol_table, "protocols that train every method themselves: `faithfusion protocol sparse --help`"),
        "convert": Group(convert_table, "raw dataset files into a readable layout: `faithfusion convert waymo --help`"),
    }
