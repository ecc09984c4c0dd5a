"""faithfusion batch: the scene list, a batch of tiny SynthStreet scenes run in process, and its resumption after a
scene failed midway (finished scenes skipped, the interrupted one resumed from its checkpoint); one Ray smoke test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faithfusion.batch.config import BatchConfig
from faithfusion.batch.executors import InProcessExecutor
from faithfusion.batch.job import JobSpec, run_job_logged
from faithfusion.batch.run import BatchFailedError, plan_jobs, run_batch
from faithfusion.batch.scenes import SceneListError, parse_scenes


def test_scene_list_seeds_folders_globs_and_errors(tmp_path):
    for name in ("a1", "a2", "b"):
        (tmp_path / name).mkdir()
    specs = parse_scenes(("synth:3", f"synth:5-6,{tmp_path / 'b'}", str(tmp_path / "a*")), tmp_path / "out")
    assert [s.name for s in specs] == ["synth_3", "synth_5", "synth_6", "b", "a1", "a2"]
    assert specs[0].seed == 3 and specs[0].data == tmp_path / "out" / "scenes" / "synth_3"
    assert specs[3].seed is None and specs[3].data == (tmp_path / "b").resolve()
    for bad, words in (("synth:7-2", "inclusive range"), ("synth:x", "give a seed"), (str(tmp_path / "nope"), "no such"),
                       (str(tmp_path / "z*"), "matches no folder"), ("synth:1,synth:1", "two scenes are named")):
        with pytest.raises(SceneListError, match=words):
            parse_scenes(bad, tmp_path / "out")


def tiny_batch(out: Path, **kw) -> BatchConfig:
    return BatchConfig(scenes=("synth:0-1",), out=out, size="tiny", engine="serial", device="cpu", progress=False, **kw)


def test_batch_resumes_after_a_scene_failed_midway(tmp_path, monkeypatch, single_thread):
    from faithfusion.train.trainer import Trainer

    cfg = tiny_batch(tmp_path / "b")
    train_step = Trainer.train_step

    def killed_at_step_7(self):
        if self.step == 7 and "synth_1" in str(self.cfg.out):
            raise RuntimeError("simulated crash at step 7")
        return train_step(self)

    monkeypatch.setattr(Trainer, "train_step", killed_at_step_7)
    with pytest.raises(BatchFailedError, match="1 of 2 scenes failed .synth_1"):
        run_batch(cfg, InProcessExecutor())
    monkeypatch.setattr(Trainer, "train_step", train_step)
    jobs = {j.scene.name: j for j in plan_jobs(cfg)}
    first = json.loads((tmp_path / "b" / "batch_3dgs.json").read_text())
    assert first["counts"] == {"done": 1, "skipped": 0, "failed": 1, "total": 2}
    assert not (jobs["synth_1"].run / "done.json").exists()
    assert (jobs["synth_1"].run / "ckpt" / "step_000006.pt").is_file()  # ckpt every 12 // 5 = 2 steps
    assert "simulated crash at step 7" in jobs["synth_1"].log.read_text()
    stamp = (jobs["synth_0"].run / "done.json").stat().st_mtime_ns

    ran: list[str] = []

    def recording(job: JobSpec) -> dict:
        ran.append(job.scene.name)
        return run_job_logged(job)

    summary = run_batch(cfg, InProcessExecutor(recording))
    assert ran == ["synth_1"]  # finished scenes are not even submitted
    assert summary["counts"] == {"done": 1, "skipped": 1, "failed": 0, "total": 2}
    by_name = {r["name"]: r for r in summary["scenes"]}
    assert by_name["synth_1"]["resumed_from"] == "step 6" and by_name["synth_1"]["status"] == "done"
    assert by_name["synth_0"]["skipped"] and (jobs["synth_0"].run / "done.json").stat().st_mtime_ns == stamp
    metrics = json.loads((jobs["synth_1"].run / "metrics.json").read_text())
    assert metrics["steps"] == 12
    for r in summary["scenes"]:
        assert r["lane_shift_psnr"]["2.0"] > 10  # evaluated against SynthStreet's 2 m ground truth
    # a third run has nothing left to do
    assert run_batch(cfg, InProcessExecutor(recording))["counts"]["skipped"] == 2 and ran == ["synth_1"]


@pytest.mark.slow
def test_ray_batch_smoke(tmp_path, single_thread):
    pytest.importorskip("ray")
    from faithfusion.batch.ray_driver import RayExecutor

    cfg = BatchConfig(scenes=("synth:4-5",), out=tmp_path / "r", size="tiny", device="cpu", progress=False,
                      workers=2, threads=1, steps=4)
    summary = run_batch(cfg, RayExecutor(None, workers=2, threads=1, gpus_per_job=1.0))
    assert summary["counts"] == {"done": 2, "skipped": 0, "failed": 0, "total": 2}
    assert summary["engine"].startswith("Ray 2.")
    assert all(Path(r["run"], "done.json").is_file() for r in summary["scenes"])
