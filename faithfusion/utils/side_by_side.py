"""Jobs side by side in spawned processes that share the CPU's threads.

On a small CPU, single-thread processes side by side do more work per second than one process with every
thread (torch's many small ops scale poorly across threads). Each job starts with its share of the threads;
when a job ends, its threads go to the next waiting job or, when none waits, to the jobs still running
(SIGUSR1 asks a job's process for one more thread), so the last job finishes on the whole CPU.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable

from faithfusion.errors import UserError

GIVE_THREAD = getattr(signal, "SIGUSR1", None)
"""The signal that hands a running job one more thread (None where the platform has no SIGUSR1)."""


class SideBySideError(UserError, RuntimeError):
    """A job failed in its process; names the job and carries its traceback."""


@dataclass
class Job:
    name: str
    fn: Callable[..., Any]
    """A picklable (module-level) function; its return value is discarded."""
    args: tuple = ()


def supported() -> bool:
    """Whether jobs can be handed threads while they run (a POSIX platform)."""
    return GIVE_THREAD is not None


def _one_more_thread(signum, frame) -> None:
    import torch

    torch.set_num_threads(torch.get_num_threads() + 1)


def _child(job: Job, threads: int, conn) -> None:
    """The process of one job: its thread count, the handler that raises it, the job; reports to `conn`."""
    import torch

    signal.signal(GIVE_THREAD, _one_more_thread)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {GIVE_THREAD})  # blocked since the spawn: a gift may wait here
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        job.fn(*job.args)
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it with the job's name
        conn.send(("failed", traceback.format_exc()))
        raise SystemExit(1)
    conn.send(("done", {"seconds": time.perf_counter() - t0, "threads_at_end": torch.get_num_threads()}))


def run_side_by_side(jobs: list[Job], threads: int) -> dict[str, dict]:
    """Run each job in its own spawned process, at most `threads` at once, `threads` shared among them.

    Returns name -> {"seconds": the job's wall seconds, "threads_at_end": its thread count when it ended}.
    A failed job stops the others (their processes are terminated) and raises SideBySideError with its traceback."""
    if not supported():
        raise SideBySideError("side-by-side jobs need SIGUSR1 (a POSIX platform)")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"job names must be distinct, got {names}")
    ctx = mp.get_context("spawn")
    waiting = list(jobs)
    running: dict[Any, tuple[Job, Any, Any]] = {}  # sentinel -> (job, process, parent end of its pipe)
    results: dict[str, dict] = {}
    free = threads

    def start(job: Job, n: int) -> None:
        parent, child = ctx.Pipe(duplex=False)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {GIVE_THREAD})  # the child inherits the block across exec
        try:
            proc = ctx.Process(target=_child, args=(job, n, child), name=f"side-by-side {job.name}", daemon=True)
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        child.close()
        running[proc.sentinel] = (job, proc, parent)

    def stop_all() -> None:
        for _, proc, _ in running.values():
            proc.terminate()
        for _, proc, _ in running.values():
            proc.join()

    slots = min(threads, len(waiting))
    for k in range(slots):  # the threads split as evenly as they go; the first jobs get the remainder
        n = threads // slots + (1 if k < threads % slots else 0)
        start(waiting.pop(0), n)
        free -= n
    while running:
        for sentinel in wait(list(running)):
            job, proc, conn = running.pop(sentinel)
            proc.join()
            message = conn.recv() if conn.poll() else ("failed", f"its process exited with code {proc.exitcode}")
            conn.close()
            if message[0] != "done":
                stop_all()
                raise SideBySideError(f"job {job.name} failed:\n{message[1]}")
            results[job.name] = message[1]
            freed = message[1]["threads_at_end"] + free
            free = 0
            if waiting:
                start(waiting.pop(0), freed)
            else:
                pids = [p.pid for _, p, _ in running.values()]
                for k in range(freed if pids else 0):  # round robin over the jobs still running
                    give_thread(pids[k % len(pids)])
                free = 0 if pids else freed
    return results


def give_thread(pid: int) -> None:
    """Ask the job running in process `pid` to use one more thread."""
    import os

    try:
        os.kill(pid, GIVE_THREAD)
    except ProcessLookupError:  # it ended meanwhile: its own end hands its threads on
        pass
