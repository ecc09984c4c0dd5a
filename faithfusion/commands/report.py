"""`faithfusion report RUN...`: one self-contained HTML page of evaluated runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro


@dataclass
class ReportConfig:
    """Write one self-contained HTML page (tables per protocol and method, quality-against-shift plots, image
    strips, the commands) for run folders evaluated with `faithfusion eval`."""

    runs: tyro.conf.Positional[tuple[Path, ...]] = ()
    """Run folders (each with RUN/eval/*.json from `faithfusion eval`)."""
    out: Path = Path("report.html")
    title: str = "FaithFusion report"


def run_report(cfg: ReportConfig) -> Path:
    from faithfusion.eval.report_html import ReportInputError, collect_run, write_html_report

    if not cfg.runs:
        raise ReportInputError("name at least one run folder: faithfusion report RUN... --out report.html")
    path = write_html_report(cfg.out, [collect_run(r) for r in cfg.runs], cfg.title)
    print(f"report -> {path}")
    return path
