"""`metricnets train --init`: continuing from a metric-network folder, a network given 0 steps copied unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import faithfusion.eval.metricnets.data as data
from faithfusion.eval.metricnets.nets import LaneNet, VehicleNet
from faithfusion.eval.metricnets.shipped import load_metricnet_modules, save_metricnets
from faithfusion.eval.metricnets.train import train_metricnets


def _fake_views(N: int = 3, H: int = 128, W: int = 192) -> dict:
    rng = np.random.default_rng(0)
    lanes = np.zeros((N, H, W), bool)
    lanes[:, 90:120, 60:64] = True
    return {"images": rng.integers(0, 255, (N, H, W, 3), dtype=np.uint8), "lanes": lanes,
            "boxes": np.array([[0, 1, 10, 20, 60, 50]], np.float32), "views": np.zeros((N, 4), np.float32)}


@pytest.fixture
def init(tmp_path, monkeypatch):
    """A metric-network folder of untrained nets, and the scene generation replaced by three random views."""
    torch.manual_seed(0)
    folder = tmp_path / "init"
    save_metricnets(folder, VehicleNet(), LaneNet(), {"input_size": [128, 192], "width": 16, "threshold": 0.25,
                                                      "lane_threshold": 0.45, "steps": {"vehicles": 7, "lanes": 5}, "seed": 3})
    monkeypatch.setattr(data, "ensure_scene", lambda root, seed: root / f"seed_{seed}")
    monkeypatch.setattr(data, "cached_view_arrays", lambda cache, scenes: _fake_views())
    return folder


def test_continue_the_lanes_only(tmp_path, init):
    torch.set_num_threads(1)
    out = tmp_path / "out"
    cfg = train_metricnets(out, tmp_path / "data", (0,), vehicle_steps=0, lane_steps=2, init=init, lane_lr=1e-3, log=lambda s: None)
    # the detector is copied byte for byte (float16 -> float32 -> float16), the segmenter moved from the init's
    assert (out / "vehicles.safetensors").read_bytes() == (init / "vehicles.safetensors").read_bytes()
    _, before, _ = load_metricnet_modules(init)
    _, after, saved = load_metricnet_modules(out)
    assert saved == json.loads(json.dumps(cfg))
    moved = max((a - b).abs().max().item() for a, b in zip(after.state_dict().values(), before.state_dict().values()))
    assert moved > 0
    assert cfg["steps"] == {"vehicles": 0, "lanes": 2} and cfg["steps_total"] == {"vehicles": 7, "lanes": 7}
    assert cfg["init"]["folder"] == str(init.resolve()) and cfg["init"]["seed"] == 3 and cfg["lr"]["lanes"] == 1e-3
    assert cfg["threshold"] == 0.25 and 0.3 <= cfg["lane_threshold"] <= 0.8


def test_zero_steps_need_an_init(tmp_path, init):
    from faithfusion.commands.metricnets import MetricNetsTrainConfig, run_metricnets_train
    from faithfusion.errors import UserError

    with pytest.raises(ValueError, match="from scratch"):
        train_metricnets(tmp_path / "out", tmp_path / "data", (0,), vehicle_steps=0, lane_steps=2, log=lambda s: None)
    with pytest.raises(UserError, match="--lane-steps"):
        run_metricnets_train(MetricNetsTrainConfig(out=tmp_path / "o", lane_steps=0))
    with pytest.raises(UserError, match="not a metric-network folder"):
        run_metricnets_train(MetricNetsTrainConfig(out=tmp_path / "o", init=tmp_path / "nowhere"))


def test_accuracy_benchmark_keeps_the_previous_figures(tmp_path, monkeypatch, init):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "metricnets_accuracy.py"
    spec = importlib.util.spec_from_file_location("metricnets_accuracy", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "ensure_scene", lambda root, seed: root / f"seed_{seed}")
    monkeypatch.setattr(bench, "cached_view_arrays", lambda cache, scenes: _fake_views())
    out = tmp_path / "acc.json"
    out.write_text(json.dumps({"lane_iou_mean_per_view": 0.5, "vehicle_ap50": 0.25, "commit": "abc", "views": 9,
                               "previous": {"lane_iou_mean_per_view": 0.125}}))
    argv = ["x", "--work", str(tmp_path), "--seeds", "8", "--nets", str(init), "--out", str(out), "--keep-previous"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    new = json.loads(out.read_text())
    assert new["previous"] == {"lane_iou_mean_per_view": 0.5, "vehicle_ap50": 0.25, "commit": "abc",
                               "previous": {"lane_iou_mean_per_view": 0.125}}
    assert new["views"] == 3 and new["nets"] == str(init) and new["lane_threshold"] == 0.45
    monkeypatch.setattr(sys, "argv", argv[:-1])  # without --keep-previous the file is replaced whole
    bench.main()
    assert "previous" not in json.loads(out.read_text())
