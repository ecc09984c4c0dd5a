"""`faithfusion bench`: the timing utilities against a fake clock, each fixer's figures, and a whole tiny run's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from faithfusion.bench.config import BenchConfig
from faithfusion.bench.timing import peak_memory, ratio, time_block, time_calls
from faithfusion.errors import UserError

try:
    from tests import scene_fixtures as fx
except ImportError:  # pragma: no cover
    import scene_fixtures as fx


class FakeClock:
    """A clock that the timed function moves forward by a given number of seconds per call."""

    def __init__(self, durations: list[float]) -> None:
        self.now, self.durations, self.calls = 100.0, list(durations), 0

    def __call__(self) -> float:
        return self.now

    def work(self) -> None:
        self.now += self.durations[self.calls]
        self.calls += 1


def test_time_calls_reads_each_call_alone_after_the_warmup():
    clock = FakeClock([50.0, 50.0, 3.0, 1.0, 2.0, 10.0])  # two warm-up calls, then four timed ones
    t = time_calls(clock.work, "cpu", warmup=2, repeats=4, clock=clock)
    assert clock.calls == 6
    assert (t.min_s, t.max_s, t.median_s, t.mean_s) == (1.0, 10.0, 2.5, 4.0)
    assert t.per_second == pytest.approx(0.4) and t.to_dict()["repeats"] == 4


def test_time_block_times_the_calls_together():
    clock = FakeClock([7.0, 1.0, 2.0, 3.0])
    assert time_block(clock.work, "cpu", warmup=1, calls=3, clock=clock) == 6.0
    assert clock.calls == 4


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"warmup": -1}])
def test_time_calls_refuses_no_repeats(kwargs):
    with pytest.raises(ValueError):
        time_calls(lambda: None, "cpu", **kwargs)


def test_ratio_and_peak_memory_off_cuda():
    assert ratio(3.0, 2.0) == 1.5 and ratio(1.0, 0.0) is None and ratio(None, 1.0) is None
    with peak_memory("cpu") as mem:
        torch.zeros(3)
    assert mem.gib is None


def test_fixer_fps_with_an_identity_fixer_and_a_note_without_weights(monkeypatch, tmp_path, single_thread):
    import faithfusion.fusion.fixers as ff
    from faithfusion.bench.fixers import bench_fixer, fixer_inputs

    args = fixer_inputs("genfusion", 3, 8, 12, torch.device("cpu"))
    assert args["images"].shape == (1, 3, 8, 12, 3) and args["depth"].shape == (1, 3, 8, 12)
    assert fixer_inputs("difix", 3, 8, 12, torch.device("cpu"))["images"].shape == (3, 1, 8, 12, 3)
    monkeypatch.setattr(ff, "WEIGHTS_ROOT", tmp_path)  # no shipped weights there
    assert "no difix fixer" in bench_fixer("difix", torch.device("cpu"), 16, 16, 2, 0, 1)["skipped"]
    monkeypatch.setattr(ff, "choose_fixer", lambda spec, kind, device, flag="--fixer":
                        ff.ChosenFixer(ff.identity_fixer(kind), kind, ff.IDENTITY))
    row = bench_fixer("eigent", torch.device("cpu"), 16, 16, 2, 0, 1)
    assert row["class"] == "EIGent" and row["window"] and set(row) >= {"fp32", "note"} and "bf16" not in row
    assert row["fp32"]["frames_per_second"] > 0
    assert row["fp32"]["frames_per_second"] == pytest.approx(2 / row["fp32"]["median_s"])


def tiny_config(tmp_path: Path, **over) -> BenchConfig:
    fx.write_drivestudio_scene(tmp_path / "scene", n_steps=3, cams=(0,), size=(32, 24))
    settings = dict(out=tmp_path / "bench.json", data=tmp_path / "scene", data_cameras=(0,), holdout_every=0,
                    device="cpu", max_points=150, random_points=20, train_steps=2, warmup_steps=1, repeats=1, warmup=0,
                    h_train_repeats=1, skip=("fixers",))
    settings.update(over)
    return BenchConfig(**settings)


def test_a_tiny_run_writes_the_json_with_device_commit_and_positive_ratios(tmp_path, single_thread):
    from faithfusion.bench.run import run_bench

    cfg = tiny_config(tmp_path)
    result = run_bench(cfg, command="faithfusion bench (test)", say=lambda _: None)
    saved = json.loads(cfg.out.read_text())
    assert saved["command"] == "faithfusion bench (test)" and saved["commit"] and saved["device"]["device"] == "cpu"
    assert saved["skipped"] == {"fixers": "--skip", "fusion": "optional: pass --fusion"}
    assert set(saved["seconds"]) == {"scene", "training", "render", "eig", "total"}
    tr = saved["training"]
    assert tr["trainer"]["num_gaussians"] == tr["plain_loop"]["num_gaussians"] > 0  # the same Gaussians
    assert "torch rasterizer" in tr["reference"] and "note" in tr  # no gsplat on the CPU, and the JSON says so
    for value in (tr["trainer_time_per_iteration_over_plain"], saved["eig"]["eig_map_over_train_iteration"],
                  saved["eig"]["h_train_over_train_pass"], tr["trainer"]["iterations_per_second"]):
        assert value > 0
    assert saved["render"]["faithfusion_render"]["forward"]["median_s"] > 0 and "gsplat_rasterization" not in saved["render"]
    assert saved["eig"]["train_pass"]["steps"] == saved["scene"]["train_views"] == 3
    assert result["eig"] == saved["eig"]


def test_bad_flags_and_an_existing_file_are_refused(tmp_path):
    from faithfusion.bench.run import run_bench

    cfg = tiny_config(tmp_path, skip=("warp",))
    with pytest.raises(UserError, match="--skip warp"):
        run_bench(cfg)
    cfg.out.write_text("{}")
    with pytest.raises(UserError, match="--overwrite"):
        run_bench(tiny_config(tmp_path))
    with pytest.raises(UserError, match="--train-steps"):
        run_bench(tiny_config(tmp_path, train_steps=0, overwrite=True))
    assert cfg.out.read_text() == "{}"


def test_the_command_is_listed():
    from faithfusion.commands import commands

    assert commands()["bench"].config is BenchConfig


def test_fusion_end_to_end_against_3dgs(tmp_path, single_thread):
    from faithfusion.bench.run import run_bench

    cfg = tiny_config(tmp_path, skip=("training", "render", "eig", "fixers"), fusion=True,
                      fusion_methods=("3dgs", "difix3d"), fusion_steps=8)
    saved = run_bench(cfg, command="test", say=lambda _: None)
    rows = saved["fusion"]["methods"]
    assert set(rows) == {"3dgs", "difix3d"} and rows["3dgs"]["wall_over_3dgs"] == 1.0
    assert rows["difix3d"]["rounds"] >= 1 and rows["difix3d"]["wall_over_3dgs"] > 0
    assert all(r["steps"] == 8 for r in rows.values()) and saved["fusion"]["warmup_seconds"] > 0
    assert json.loads(cfg.out.read_text())["fusion"] == saved["fusion"]


def test_time_blocks_splits_the_calls_and_times_each_block():
    from faithfusion.bench.timing import block_sizes, time_blocks

    assert block_sizes(7, 3) == [3, 2, 2] and sum(block_sizes(100, 5)) == 100
    clock = FakeClock([9.0] + [1.0, 1.0, 1.0, 5.0, 2.0, 2.0, 2.0])  # one warm-up call, then 7 calls in blocks 3, 2, 2
    assert time_blocks(clock.work, "cpu", warmup=1, calls=7, blocks=3, clock=clock) == [3.0, 7.0, 4.0]
    assert clock.calls == 8
