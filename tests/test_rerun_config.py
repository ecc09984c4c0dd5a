"""`--config RUN/config.yaml`: a run's flags come back (explicit flags override), for recon and fuse."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from faithfusion.cli import main, parse_config, resolve
from faithfusion.commands import commands
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
from faithfusion.train.recon import write_config
from faithfusion.train.run import NotARunError
from tests.scene_fixtures import write_nerfstudio_scene


def parsed(args: list[str]):
    command, flags, prog = resolve(commands(), args, "faithfusion")
    return parse_config(command, flags, prog)


def plain(cfg) -> dict:
    d = asdict(cfg)
    d.pop("config")
    return d


def written_run(tmp_path: Path) -> tuple[Path, ReconConfig]:
    """A config.yaml as `recon` writes it, with flags far from the defaults."""
    cfg = ReconConfig(data=tmp_path / "scene", out=tmp_path / "run", steps=3, device="cpu", holdout_every=2, sh_degree=1,
                      ssim_lambda=0.3, cameras=(0, 2), progress=False, ckpt_every=0, resume=True, ply_global_frame=True,
                      init=InitConfig(random_points=20, shell_radius=(3.0, 9.0)), strategy=StrategyConfig(name="mcmc", refine_start=1000))
    (tmp_path / "run").mkdir()
    write_config(tmp_path / "run", cfg, {"scene": {"frames": 4}})
    return tmp_path / "run" / "config.yaml", cfg


def test_config_gives_back_the_runs_flags_and_flags_override(tmp_path) -> None:
    path, original = written_run(tmp_path)
    again = parsed(["recon", "--config", str(path)])
    expected = plain(original) | {"resume": False}  # --resume / --overwrite are asked anew
    expected["data"] = original.data.resolve()
    assert plain(again) == expected and again.config == path
    assert parsed(["recon", f"--config={path.parent}"]).strategy.name == "mcmc"  # the run folder works too
    over = parsed(["recon", "--config", str(path), "--steps", "7", "--out", str(tmp_path / "run2"), "--init.random-points", "5"])
    assert (over.steps, over.out, over.init.random_points) == (7, tmp_path / "run2", 5)
    assert over.init.shell_radius == (3.0, 9.0) and over.cameras == (0, 2) and over.sh_degree == 1


def test_config_of_another_command_or_no_run_is_refused(tmp_path) -> None:
    path, _ = written_run(tmp_path)
    with pytest.raises(NotARunError, match="faithfusion recon"):
        parsed(["fuse", "3dgs", "--config", str(path)])
    data = yaml.safe_load(path.read_text())
    data["_run"]["method"] = "difix3d"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(NotARunError, match="fuse difix3d"):
        parsed(["recon", "--config", str(path)])
    assert parsed(["fuse", "difix3d", "--config", str(path)]).sh_degree == 1
    with pytest.raises(NotARunError, match="no such file"):
        parsed(["recon", "--config", str(tmp_path / "nothere.yaml")])
    (tmp_path / "other.yaml").write_text("a: 1\n")
    with pytest.raises(NotARunError, match="not the config.yaml"):
        parsed(["recon", "--config", str(tmp_path / "other.yaml")])


def test_recon_reruns_from_its_config(tmp_path, capsys) -> None:
    write_nerfstudio_scene(tmp_path / "ns", n=4, size=(24, 18))
    first = tmp_path / "a"
    main(["recon", "--data", str(tmp_path / "ns"), "--out", str(first), "--steps", "2", "--device", "cpu", "--holdout-every", "2",
          "--no-progress", "--ckpt-every", "0", "--sh-degree", "1", "--init.random-points", "10", "--strategy.refine-start", "1000",
          "--no-save-renders"])
    second = tmp_path / "b"
    main(["recon", "--config", str(first / "config.yaml"), "--out", str(second)])
    a, b = (yaml.safe_load((d / "config.yaml").read_text()) for d in (first, second))
    assert b["config"] == str(first / "config.yaml") and b["out"] == str(second)
    for key in set(a) - {"config", "out", "_run"}:
        assert a[key] == b[key], key
    assert (second / "point_cloud.ply").is_file()
