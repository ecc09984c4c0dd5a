"""A rich progress bar that shows loss, PSNR and the Gaussian count while training."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainProgress:
    def __init__(self, total: int, start: int = 0, enabled: bool = True, every: int = 10) -> None:
        self.enabled = enabled
        self.every = every
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  psnr {task.fields[psnr]:.2f}  N {task.fields[n]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, loss=0.0, psnr=0.0, n=0)

    def __enter__(self) -> "TrainProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, step: int, loss: float, psnr: float, n: int) -> None:
        if step % self.every == 0:
            self.progress.update(self.task, completed=step, loss=loss, psnr=psnr, n=n)
