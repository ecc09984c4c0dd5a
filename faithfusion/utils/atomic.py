"""How is a file written so that a crash, a kill or a full disk never leaves half of it?

Through a temporary file in the target's folder (so the rename stays on one file system), flushed to
disk, then renamed over the target in one step (`os.replace`): a reader sees the old file or the new
one, never a part. On any failure the temporary file is removed; a full disk (ENOSPC) or a refused
write becomes a `DiskWriteError` that names the file and the cause. Temporary files left by a killed
process end in `.tmp` and are removed by `remove_stale_temps` when a run folder is opened again.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import Any, Callable

from faithfusion.errors import UserError

TEMP_SUFFIX = ".tmp"


class DiskWriteError(UserError, OSError):
    """A file could not be written (disk full, no permission, quota): the message names the file."""


def temporary_path(path: Path) -> Path:
    """A fresh hidden name next to `path`, ending in `.tmp`: `.{name}.{pid}.{random}.tmp`."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


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


def atomic_write(path: Path | str, data: bytes | str | None = None, *, save: Callable[[Path], Any] | None = None,
                 what: str = "file") -> Path:
    """Write `data` (bytes, or text as UTF-8) or let `save(tmp)` write a file, then rename it over `path`.

    Exactly one of `data` and `save` is given; `save` must name the file format itself (the temporary name
    ends in `.tmp`, so nothing can be inferred from it). Parent folders are created. An OSError while
    writing becomes a DiskWriteError naming `what` and `path`. Returns `path`.
    """
    if (data is None) == (save is None):
        raise ValueError("atomic_write takes either data or save, not both or neither")
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if save is not None:
            save(tmp)
        else:
            tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if isinstance(err, DiskWriteError):
            raise
        raise DiskWriteError(f"{path}: cannot write the {what}: {describe_os_error(err)}") from err
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def atomic_torch_save(path: Path | str, payload: Any, what: str = "checkpoint") -> Path:
    """`torch.save(payload)` through a temporary file."""
    import torch

    return atomic_write(path, save=lambda tmp: torch.save(payload, tmp), what=what)


def atomic_save_npy(path: Path | str, array: Any, what: str = "array") -> Path:
    """`np.save` through a file object (np.save on a name would append `.npy` to the temporary name)."""
    import numpy as np

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    return atomic_write(path, save=save, what=what)


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


def remove_stale_temps(folder: Path, announce: bool = False) -> list[Path]:
    """Delete the temporary files (`*.tmp`) under `folder` that a killed writer left (and say so, with `announce`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in folder.rglob(f"*{TEMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
            if announce:
                print(f"removed {tmp}, left by an interrupted write")
    return removed


def make_output_folder(folder: Path | str, what: str = "output folder") -> Path:
    """`mkdir -p folder`, or a DiskWriteError naming the folder and the cause (a file in the way, no permission)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DiskWriteError(f"{folder}: cannot create the {what}: {describe_os_error(err)}") from err
    return folder
