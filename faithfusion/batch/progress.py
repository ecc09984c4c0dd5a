"""The batch's progress view: one bar for the scenes, and a line per running scene with its stage (read from
the stage file each job writes, so it works for any executor on a shared file system)."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from faithfusion.batch.job import JobSpec
from faithfusion.utils.jsonio import read_json


class BatchProgress:
    def __init__(self, total: int, finished: int, enabled: bool = True) -> None:
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            disable=not enabled)
        self.overall = self.bar.add_task("[bold]scenes", total=total, completed=finished)
        self.running: dict[str, tuple[JobSpec, Any, float]] = {}

    def __enter__(self) -> "BatchProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def started(self, job: JobSpec) -> None:
        task = self.bar.add_task(f"  {job.scene.name}: queued", total=None)
        self.running[job.scene.name] = (job, task, time.time())

    def tick(self) -> None:
        """Redraw each running scene's stage from its stage file."""
        for name, (job, task, t0) in self.running.items():
            stage = "queued"
            if job.status.is_file():
                try:
                    info = read_json(job.status)
                    if info.get("time", 0) >= t0 - 1:  # not a stage left by an earlier batch
                        stage = info.get("stage", stage) + (f" (resumed from {info['resumed_from']})" if info.get("resumed_from") else "")
                except Exception:  # noqa: BLE001 - a stage file being replaced: keep the last line
                    continue
            self.bar.update(task, description=f"  {name}: {stage}")

    def finished(self, job: JobSpec, result: dict) -> None:
        _, task, _ = self.running.pop(job.scene.name)
        self.bar.remove_task(task)
        self.bar.update(self.overall, advance=1)
        mark = "done" if result.get("status") == "done" else f"[red]failed[/red]: {result.get('error', '')}"
        self.bar.console.print(f"{job.scene.name}: {mark}")
