"""How is a file written so that a crash, a kill or a full disk never leaves a half-written one?

Every writer goes through `atomic_write(path, write)`: `write(tmp)` fills a temporary file in the
same folder (`.NAME.PID.tmp`), which is flushed to disk (fsync) and then renamed over `path` in one
step (`os.replace`). A reader sees the old file or the new one, never a part. On any failure the
temporary file is removed; a full disk (ENOSPC) or a refused write becomes a `DiskWriteError` that
names the file and the cause.

Temporary files left by a killed process (`*.tmp`) are removed by `remove_stale_temps` when a run
folder is opened again.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Callable

from faithfusion.errors import UserError

TEMP_SUFFIX = ".tmp"


class DiskWriteError(UserError, OSError):
    """A file could not be written (disk full, no permission, quota): the message names the file."""


def temp_path_for(path: Path) -> Path:
    """The temporary file that `atomic_write` fills before renaming it to `path`."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename is still atomic
    finally:
        os.close(fd)


def describe_os_error(err: OSError) -> str:
    """The cause in words a user acts on."""
    if err.errno == errno.ENOSPC:
        return "no space left on the device (free some disk space, then run again with --resume)"
    if err.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if err.errno == errno.EROFS:
        return "read-only file system"
    return err.strerror or str(err)


def atomic_write(path: Path, write: Callable[[Path], None], what: str = "file") -> Path:
    """Call `write(tmp)`, fsync `tmp`, rename it to `path`; on failure remove `tmp` and re-raise.

    An OSError while writing becomes a DiskWriteError naming `what` and `path`. Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise DiskWriteError(f"{path}: cannot write the {what}: {describe_os_error(err)}") from err
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def write_bytes_atomic(path: Path, data: bytes, what: str = "file") -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), what)


def write_text_atomic(path: Path, text: str, what: str = "file") -> Path:
    return write_bytes_atomic(path, text.encode(), what)


def write_json_atomic(path: Path, payload, what: str = "JSON file", indent: int = 2) -> Path:
    return write_text_atomic(path, json.dumps(payload, indent=indent), what)


def torch_save_atomic(path: Path, payload, what: str = "checkpoint") -> Path:
    import torch

    return atomic_write(path, lambda tmp: torch.save(payload, tmp), what)


def save_npy_atomic(path: Path, array, what: str = "array") -> Path:
    """np.save through a file object (np.save on a name would append `.npy` to the temporary name)."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    return atomic_write(path, write, what)


def trim_partial_line(path: Path) -> None:
    """Cut a line-per-record log (JSONL) back to its last complete line (a kill can leave half a line)."""
    path = Path(path)
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def append_line(path: Path, line: str) -> None:
    """Append one record to a JSONL log in a single write, after cutting any half line a kill left."""
    path = Path(path)
    trim_partial_line(path)
    with open(path, "ab") as f:
        f.write((line.rstrip("\n") + "\n").encode())


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files (`.*.tmp`, `*.tmp`) under `folder` left by a killed writer."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in folder.rglob(f"*{TEMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
