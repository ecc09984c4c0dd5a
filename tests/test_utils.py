"""faithfusion.utils: JSON files, atomic writes, device names, the progress bar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from faithfusion.data.scene import SceneError
from faithfusion.errors import UserError
from faithfusion.utils.atomic import atomic_torch_save, atomic_write
from faithfusion.utils.device import DeviceError, resolve_device
from faithfusion.utils.jsonio import read_json, save_json_atomic, to_plain
from faithfusion.utils.progress import ProgressBar


def test_to_plain_converts_paths_tuples_arrays_and_tensors():
    payload = {"p": Path("a/b"), "t": (1, (2, 3)), "a": np.arange(3), "s": np.float32(0.5), "x": torch.tensor([1.0, 2.0])}
    plain = to_plain(payload)
    assert plain == {"p": "a/b", "t": [1, [2, 3]], "a": [0, 1, 2], "s": 0.5, "x": [1.0, 2.0]}
    assert type(plain["s"]) is float
    json.dumps(plain)  # no TypeError


def test_save_json_atomic_round_trip_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "r.json"
    save_json_atomic(path, {"b": 1, "a": (2,)}, indent=1, sort_keys=True)
    assert path.read_text() == '{\n "a": [\n  2\n ],\n "b": 1\n}\n'
    assert read_json(path) == {"a": [2], "b": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_read_json_names_the_file_and_uses_the_given_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,')
    with pytest.raises(UserError, match="bad.json: malformed JSON at line 1"):
        read_json(bad)
    with pytest.raises(SceneError, match="missing.json: file not found"):
        read_json(tmp_path / "missing.json", SceneError)


def test_atomic_write_keeps_the_old_file_and_removes_the_temporary_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write(path, "old")

    def failing(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, save=failing)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    with pytest.raises(ValueError):
        atomic_write(path)


def test_atomic_write_writes_through_a_hidden_tmp_file_in_the_same_folder(tmp_path):
    seen = []
    atomic_write(tmp_path / "img.png", save=lambda tmp: (seen.append(tmp), tmp.write_bytes(b"x")))
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".img.png.") and seen[0].suffix == ".tmp"
    assert (tmp_path / "img.png").read_bytes() == b"x"


def test_atomic_torch_save_round_trip(tmp_path):
    atomic_torch_save(tmp_path / "c.pt", {"w": torch.arange(4)})
    assert torch.equal(torch.load(tmp_path / "c.pt")["w"], torch.arange(4))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="not a device name"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda")


def test_progress_bar_counts_and_throttles():
    with ProgressBar("t", 20, enabled=False, figures="loss {task.fields[loss]:.2f}", every=10, loss=0.0) as bar:
        bar.update(5, loss=1.0)
        task = bar.bar.tasks[0]
        assert task.completed == 0 and task.fields["loss"] == 0.0  # step 5 is not shown with every=10
        bar.update(10, loss=2.0)
        assert task.completed == 10 and task.fields["loss"] == 2.0
        bar.restart(None)
        bar.advance("ignored")
        assert bar.bar.tasks[0].completed == 1
        assert not bar.due(10)  # disabled: the trainer need not fetch figures for it
    shown = ProgressBar("t", 20, every=10)
    assert shown.due(10) and shown.due(0) and not shown.due(5)
