"""The setup's numba warm-up: after it, generating a scene of another size compiles no SynthStreet kernel."""

import tempfile
from pathlib import Path

from numba.core.dispatcher import Dispatcher


def test_after_compile_kernels_a_scene_of_another_size_compiles_nothing(monkeypatch, tmp_path):
    from faithfusion.synth.generate import generate
    from faithfusion.synth.warm import compile_kernels

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert compile_kernels(dynamic=False) > 0
    assert list((tmp_path / "tmp").iterdir()) == []  # the tiny scenes are gone
    compiled = []
    original = Dispatcher._compile_for_args

    def counting(self, *args, **kwargs):
        compiled.append(self.py_func.__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Dispatcher, "_compile_for_args", counting)
    generate(tmp_path / "scene", seed=3, frames=3, width=40, height=30, shifts=(1.0, 2.0), lidar_azimuths=24)
    assert compiled == []
