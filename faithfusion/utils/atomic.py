"""How is a file written so that no reader ever sees half of it? Through a temporary file, then a rename.

The temporary file lies in the target's folder (so the rename stays on one file system), is flushed to
disk before `os.replace` puts it in place, and is removed if writing it fails.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Callable


def temporary_path(path: Path) -> Path:
    """A fresh hidden name next to `path`, ending in `.tmp`: `.{name}.{pid}.{random}.tmp`."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def atomic_write(path: Path | str, data: bytes | str | None = None, *, save: Callable[[Path], Any] | None = None) -> Path:
    """Write `data` (bytes, or text as UTF-8) or let `save(tmp)` write a file, then rename it over `path`.

    Exactly one of `data` and `save` is given; `save` must name the file format itself (the temporary name
    ends in `.tmp`, so nothing can be inferred from it). Parent folders are created. Returns `path`.
    """
    if (data is None) == (save is None):
        raise ValueError("atomic_write takes either data or save, not both or neither")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        if save is not None:
            save(tmp)
        else:
            tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_torch_save(path: Path | str, payload: Any) -> Path:
    """`torch.save(payload)` through a temporary file."""
    import torch

    return atomic_write(path, save=lambda tmp: torch.save(payload, tmp))
