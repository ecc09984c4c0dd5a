"""Where do a batch's jobs run? The executor interface `run_batch` drives, and the in-process one (no scheduler).

An executor takes job specs with `submit` and hands back `(job, result)` pairs as jobs end (`completed`), calling
`tick()` while it waits so the driver can redraw its progress view. Ray's is in ray_driver.py.
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol

from faithfusion.batch.job import JobSpec, run_job_logged

JobFn = Callable[[JobSpec], dict]


class Executor(Protocol):
    slots: int
    """How many jobs it runs at once (the driver keeps at most this many submitted)."""

    def submit(self, job: JobSpec) -> None: ...

    def completed(self, tick: Callable[[], None]) -> Iterator[tuple[JobSpec, dict]]:
        """Yield each submitted job with its result as it ends, until none is left running."""
        ...

    def close(self) -> None: ...


class InProcessExecutor:
    """Runs each job in this process, one after another, when the driver asks for results (tests, debugging and
    the one-after-another baseline). `job_fn` is the job function (tests may wrap it)."""

    slots = 1

    def __init__(self, job_fn: JobFn = run_job_logged) -> None:
        self.job_fn = job_fn
        self.queue: list[JobSpec] = []

    def submit(self, job: JobSpec) -> None:
        self.queue.append(job)

    def completed(self, tick: Callable[[], None]) -> Iterator[tuple[JobSpec, dict]]:
        while self.queue:
            job = self.queue.pop(0)
            tick()
            yield job, self.job_fn(job)

    def close(self) -> None:
        self.queue.clear()
