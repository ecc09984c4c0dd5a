"""How does a long loop show its progress? One rich bar: a label, the count, named figures, elapsed and remaining time."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressBar:
    """A progress bar (silent when `enabled` is False), used as a context manager.

    `label` and `figures` are rich format strings that may name figures as `{task.fields[loss]:.4f}`;
    every figure they name needs an initial value in `initial`. With `every` > 1, `update` redraws
    only on steps that are multiples of `every`.
    """

    def __init__(self, label: str, total: int | None = None, *, start: int = 0, enabled: bool = True,
                 figures: str = "", every: int = 1, **initial: Any) -> None:
        self.every = every
        columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn()]
        if figures:
            columns.append(TextColumn(figures))
        self.bar = Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled)
        self.task = self.bar.add_task(label, total=total, completed=start, **initial)

    def __enter__(self) -> "ProgressBar":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def due(self, step: int) -> bool:
        """Whether `update(step, ...)` would show anything (enabled, and a multiple of `every`)."""
        return not self.bar.disable and step % self.every == 0

    def update(self, step: int, **figures: Any) -> None:
        """Show `step` done, with new figures."""
        if step % self.every == 0:
            self.bar.update(self.task, completed=step, **figures)

    def restart(self, total: int | None, **figures: Any) -> None:
        """Start counting again from zero towards `total` (None: unknown)."""
        self.bar.reset(self.task, total=total, **figures)

    def advance(self, *_: Any, **figures: Any) -> None:
        """One more item done (positional arguments are ignored, so it can serve as a callback)."""
        self.bar.update(self.task, advance=1, **figures)
