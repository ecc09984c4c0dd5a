"""Is another process writing this run folder? RUN/.lock holds the writer's process id.

A second process on the same folder is refused; a lock left by a process that no longer runs (killed,
crashed) is taken over with a message. The lock is re-entrant within one process (a fusion demo runs
several runs in one process) and is removed when the process ends or `release_run_lock` is called.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path

from faithfusion.errors import UserError

LOCK_NAME = ".lock"
_held: set[Path] = set()


class RunLockedError(UserError):
    """Another running process holds the run folder."""


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _read_pid(lock: Path) -> int | None:
    try:
        return int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def acquire_run_lock(folder: Path) -> Path:
    """Take RUN/.lock for this process; RunLockedError if a live process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = (folder / LOCK_NAME).resolve()
    if lock in _held:
        return lock
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _read_pid(lock)
            if pid == os.getpid():
                break
            if pid is not None and process_alive(pid):
                raise RunLockedError(
                    f"{folder}: in use by process {pid} ({lock.name} holds its id); wait for it to finish or stop it"
                )
            print(f"{folder}: taking over the lock of process {pid}, which is no longer running")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        break
    _held.add(lock)
    return lock


def release_run_lock(folder: Path) -> None:
    lock = (Path(folder) / LOCK_NAME).resolve()
    if lock in _held:
        _held.discard(lock)
        if _read_pid(lock) == os.getpid():
            lock.unlink(missing_ok=True)


@atexit.register
def _release_all() -> None:
    for lock in list(_held):
        release_run_lock(lock.parent)
