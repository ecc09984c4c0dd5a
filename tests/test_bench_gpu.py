"""`faithfusion bench` on CUDA: the gsplat references run, peak memory is measured, bf16 fixers are timed.

Run on the device machine: `python -m pytest -m gpu tests/test_bench_gpu.py`."""

from __future__ import annotations

import json

import pytest
import torch

try:
    from tests import scene_fixtures as fx
except ImportError:  # pragma: no cover
    import scene_fixtures as fx

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_a_small_cuda_run_times_gsplat_beside_the_project(tmp_path):
    from faithfusion.bench.config import BenchConfig
    from faithfusion.bench.run import run_bench

    fx.write_drivestudio_scene(tmp_path / "scene", n_steps=3, cams=(0,), size=(64, 48))
    cfg = BenchConfig(out=tmp_path / "bench.json", data=tmp_path / "scene", data_cameras=(0,), holdout_every=0,
                      device="cuda", max_points=2000, random_points=200, train_steps=5, warmup_steps=2, repeats=2,
                      warmup=1, h_train_repeats=1, fixers=("difix",), fixer_width=96, fixer_height=64, fixer_frames=2,
                      fixer_repeats=1, fixer_warmup=1)
    run_bench(cfg, command="test", say=lambda _: None)
    saved = json.loads(cfg.out.read_text())
    assert saved["gsplat"]["unavailable"] is None and saved["device"]["capability"]
    tr = saved["training"]
    assert tr["reference"] == "minimal loop, gsplat.rasterization" and "note" not in tr
    assert tr["trainer"]["peak_memory_gib"] > 0 and tr["plain_loop"]["peak_memory_gib"] > 0
    assert tr["trainer_time_per_iteration_over_plain"] > 0
    assert saved["render"]["forward_ours_over_gsplat"] > 0 and saved["render"]["forward_backward_ours_over_gsplat"] > 0
    assert saved["eig"]["eig_map_over_train_iteration"] > 0 and saved["eig"]["h_train_over_train_pass"] > 0
    difix = saved["fixers"]["difix"]
    if "skipped" not in difix:
        assert difix["fp32"]["frames_per_second"] > 0 and difix["bf16"]["frames_per_second"] > 0
        assert difix["bf16"]["peak_memory_gib"] > 0
