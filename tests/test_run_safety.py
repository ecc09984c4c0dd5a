"""Runs that lose nothing: --overwrite, --resume, checkpoints, locks, atomic writes, full disks, bad flags."""

import errno
import math
import os
from pathlib import Path

import pytest
import torch
import yaml

from faithfusion.utils.atomic import DiskWriteError, atomic_write
from faithfusion.errors import UserError
from faithfusion.utils.flags import FlagError
from faithfusion.train.checkpoint import checkpoints_by_step, latest_checkpoint, load_latest_checkpoint, save_checkpoint
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig, check_recon_config
from faithfusion.train.lock import LOCK_NAME, RunLockedError, acquire_run_lock, release_run_lock
from faithfusion.train.recon import RunFolderError, run_recon
from faithfusion.train.run import load_run
from tests.scene_fixtures import write_nerfstudio_scene


def tiny_cfg(data: Path, out: Path, steps: int, **kw) -> ReconConfig:
    kw.setdefault("strategy", StrategyConfig(refine_start=1000))
    kw.setdefault("ckpt_every", 4)
    return ReconConfig(data=data, out=out, steps=steps, device="cpu", holdout_every=3, progress=False,
                       init=InitConfig(random_points=50), save_renders=False, **kw)


@pytest.fixture
def scene_dir(tmp_path) -> Path:
    write_nerfstudio_scene(tmp_path / "ns", n=6, size=(40, 30))
    return tmp_path / "ns"


def test_overwrite_with_fewer_steps_keeps_only_the_new_run(scene_dir, tmp_path):
    run_recon(tiny_cfg(scene_dir, tmp_path / "run", steps=12))
    run_recon(tiny_cfg(scene_dir, tmp_path / "run", steps=5, overwrite=True))
    assert [s for s, _ in checkpoints_by_step(tmp_path / "run" / "ckpt")] == [4, 5]
    assert load_run(tmp_path / "run").trainer.step == 5


def test_resume_with_other_data_is_refused(scene_dir, tmp_path):
    run_recon(tiny_cfg(scene_dir, tmp_path / "run", steps=4))
    write_nerfstudio_scene(tmp_path / "other", n=6, size=(40, 30))
    before = (tmp_path / "run" / "config.yaml").read_text()
    with pytest.raises(RunFolderError, match="--data"):
        run_recon(tiny_cfg(tmp_path / "other", tmp_path / "run", steps=8, resume=True))
    assert (tmp_path / "run" / "config.yaml").read_text() == before


def test_config_stores_data_as_absolute_path(scene_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_recon(tiny_cfg(Path("ns"), Path("run"), steps=4))
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data"]
    assert Path(stored).is_absolute() and Path(stored) == scene_dir.resolve()
    monkeypatch.chdir(scene_dir)
    assert load_run(tmp_path / "run").trainer.step == 4


def test_corrupt_newest_checkpoint_falls_back_to_older(tmp_path, capsys):
    save_checkpoint(tmp_path / "step_000004.pt", {"step": 4})
    save_checkpoint(tmp_path / "step_000008.pt", {"step": 8})
    (tmp_path / "step_000008.pt").write_bytes(b"truncated")
    path, payload = load_latest_checkpoint(tmp_path)
    assert path.name == "step_000004.pt" and payload["step"] == 4
    assert "step_000008.pt" in capsys.readouterr().out


def test_checkpoints_kept_by_step_not_by_name(tmp_path):
    for step in (999_999, 1_000_000, 1_000_001):
        save_checkpoint(tmp_path / f"step_{step:06d}.pt", {"step": step})
    assert [s for s, _ in checkpoints_by_step(tmp_path)] == [1_000_000, 1_000_001]


def test_disk_full_names_the_file_and_leaves_no_temp(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "step_000004.pt", {"step": 4})

    def full_disk(obj, f, *a, **kw):
        Path(f).write_bytes(b"part")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(DiskWriteError, match=r"step_000008\.pt.*no space left"):
        save_checkpoint(tmp_path / "step_000008.pt", {"step": 8})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000004.pt"]
    monkeypatch.undo()
    assert load_latest_checkpoint(tmp_path)[1]["step"] == 4


def test_disk_full_during_a_run_keeps_the_last_checkpoint(scene_dir, tmp_path, monkeypatch):
    import faithfusion.utils.atomic as atomic

    real = atomic.atomic_torch_save

    def save(path, payload, what="checkpoint"):
        if Path(path).name == "step_000008.pt":
            return atomic.atomic_write(path, save=lambda tmp: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")), what=what)
        return real(path, payload, what)

    monkeypatch.setattr("faithfusion.train.checkpoint.atomic_torch_save", save)
    with pytest.raises(DiskWriteError, match="no space left"):
        run_recon(tiny_cfg(scene_dir, tmp_path / "run", steps=10))
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path / "run" / "ckpt").name == "step_000004.pt"
    assert not list((tmp_path / "run").rglob("*.tmp"))
    metrics = run_recon(tiny_cfg(scene_dir, tmp_path / "run", steps=10, resume=True))
    assert metrics["steps"] == 10


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write(target, "old")

    def broken(tmp):
        Path(tmp).write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, save=broken)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_stale_temps_removed_when_resumed(scene_dir, tmp_path):
    run_recon(tiny_cfg(scene_dir, tmp_path / "run", steps=4))
    stale = tmp_path / "run" / "ckpt" / ".step_000008.pt.12345.tmp"
    stale.write_bytes(b"partial")
    run_recon(tiny_cfg(scene_dir, tmp_path / "run", steps=6, resume=True))
    assert not stale.exists()


def test_second_process_is_refused_and_dead_lock_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(f"{os.getppid()}\n")  # a live process (our parent)
    with pytest.raises(RunLockedError, match=str(os.getppid())):
        acquire_run_lock(run)
    (run / LOCK_NAME).write_text("999999999\n")  # no such process
    acquire_run_lock(run)
    assert "no longer running" in capsys.readouterr().out
    assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())
    release_run_lock(run)
    assert not (run / LOCK_NAME).exists()


@pytest.mark.parametrize(
    "field, value, flag",
    [("steps", -5, "--steps"), ("steps", 0, "--steps"), ("scale", 0.0, "--scale"), ("scale", -1.0, "--scale"),
     ("scale", math.nan, "--scale"), ("scale", math.inf, "--scale"), ("holdout_every", -1, "--holdout-every"),
     ("sh_degree", 7, "--sh-degree"), ("ssim_lambda", math.nan, "--ssim-lambda")],
)
def test_bad_numeric_flags_name_the_flag(field, value, flag):
    cfg = ReconConfig(**{field: value})
    with pytest.raises(FlagError, match=flag):
        check_recon_config(cfg)


def test_negative_steps_write_nothing(scene_dir, tmp_path):
    with pytest.raises(UserError, match="--steps"):
        run_recon(tiny_cfg(scene_dir, tmp_path / "run", steps=-5))
    assert not (tmp_path / "run").exists()


def test_cuda_without_cuda_is_a_user_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(FlagError, match="--device cuda"):
        check_recon_config(ReconConfig(device="cuda"))


def test_resume_and_overwrite_together_refused():
    with pytest.raises(FlagError, match="--resume"):
        check_recon_config(ReconConfig(resume=True, overwrite=True))


def test_render_refuses_nan_shift_and_defaults_into_the_run(scene_dir, tmp_path, monkeypatch):
    from faithfusion.commands.render import RenderConfig, render_run

    run_recon(tiny_cfg(scene_dir, tmp_path / "run", steps=2))
    for bad in (math.nan, math.inf):
        with pytest.raises(FlagError, match="--shift"):
            render_run(RenderConfig(run=tmp_path / "run", shift=bad, device="cpu"))
    monkeypatch.chdir(scene_dir)
    written = render_run(RenderConfig(run=tmp_path / "run", shift=0.5, device="cpu", save_depth=True))
    assert written and all(p.parent == tmp_path / "run" / "novel" for p in written)
    assert not list((tmp_path / "run").rglob("*.tmp"))
    assert (tmp_path / "run" / "novel" / (written[0].stem + "_depth.npy")).is_file()


def test_jsonl_log_drops_half_line_left_by_a_kill(tmp_path):
    from faithfusion.utils.atomic import append_line

    log = tmp_path / "rounds.jsonl"
    log.write_text('{"round": 0}\n{"round": 1, "ste')  # killed mid-line
    append_line(log, '{"round": 1}')
    assert log.read_text().splitlines() == ['{"round": 0}', '{"round": 1}']


def test_an_output_folder_that_cannot_be_made_is_a_user_error_naming_it(scene_dir, tmp_path):
    """A file where a folder should be (or no permission) stops the run before any work, naming the folder."""
    from faithfusion.synth import generate

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(DiskWriteError, match=r"a_file/run: cannot create the run folder"):
        run_recon(tiny_cfg(scene_dir, blocker / "run", steps=2))
    with pytest.raises(DiskWriteError, match=r"a_file/scene: cannot create the scene folder"):
        generate(blocker / "scene", 0, frames=1, cameras=("front",), width=16, height=12, shifts=())
    assert issubclass(DiskWriteError, UserError)
