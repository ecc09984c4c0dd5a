"""How are JSON files written and read? Plain types in, atomic writes out, and a named file on bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faithfusion.errors import UserError
from faithfusion.utils.atomic import atomic_write


def to_plain(obj: Any) -> Any:
    """`obj` in JSON/YAML-friendly types: paths as strings, tuples as lists, arrays and tensors as lists.

    Dicts and lists are converted item by item; anything else is returned as it is.
    """
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and type(obj).__module__.split(".")[0] in ("numpy", "torch"):
        return obj.tolist()  # numpy arrays and scalars, torch tensors
    return obj


def json_text(payload: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """`payload` (converted by `to_plain`) as JSON text ending in a newline."""
    return json.dumps(to_plain(payload), indent=indent, sort_keys=sort_keys) + "\n"


def save_json_atomic(path: Path | str, payload: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write `payload` as JSON through a temporary file, so that no reader sees a half-written file."""
    return atomic_write(path, json_text(payload, indent=indent, sort_keys=sort_keys))


def read_json(path: Path | str, error: type[UserError] = UserError) -> Any:
    """The JSON in `path`; a missing, unreadable or malformed file raises `error` naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise error(f"{path}: file not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read the file ({e})") from e
    except json.JSONDecodeError as e:
        raise error(f"{path}: malformed JSON at line {e.lineno}, column {e.colno} ({e.msg})") from e
