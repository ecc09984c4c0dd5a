"""The `faithfusion` entry point: dispatch to the commands, one-line user errors, --debug tracebacks."""

import pytest

from faithfusion.cli import main
from faithfusion.errors import USER_ERROR_EXIT_CODE


def test_a_user_error_prints_one_line_and_exits_with_the_user_error_code(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FAITHFUSION_DEBUG", raising=False)
    missing = tmp_path / "nowhere"
    with pytest.raises(SystemExit) as exc:
        main(["render", "--run", str(missing), "--out", str(tmp_path / "out")])
    assert exc.value.code == USER_ERROR_EXIT_CODE
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("faithfusion render: error: ") and str(missing) in lines[0]
    assert "Traceback" not in err


def test_a_fuse_subcommand_names_itself_in_the_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FAITHFUSION_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["fuse", "difix3d", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), "--fixer", "identity"])
    assert exc.value.code == USER_ERROR_EXIT_CODE
    assert capsys.readouterr().err.startswith("faithfusion fuse difix3d: error: ")


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    from faithfusion.errors import UserError

    monkeypatch.delenv("FAITHFUSION_DEBUG", raising=False)
    args = ["render", "--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]
    with pytest.raises(UserError):
        main(["--debug", *args])
    monkeypatch.setenv("FAITHFUSION_DEBUG", "1")
    with pytest.raises(UserError):
        main(args)


def test_fuse_lists_the_presets_and_each_shows_only_its_flags(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        main(["fuse", "--help"])
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("difix3d+", "genfusion", "faithfusion+-no-eig"))
    with pytest.raises(SystemExit):
        main(["fuse", "difix3d", "--help"])
    difix_help = capsys.readouterr().out
    assert "--difix3d.warmup" in difix_help and "--faithfusion" not in difix_help and "--genfusion" not in difix_help
    with pytest.raises(SystemExit):
        main(["fuse", "faithfusion", "--help"])
    ff_help = capsys.readouterr().out
    assert "--faithfusion.loss-weight" in ff_help and "--difix3d" not in ff_help and "--method" not in ff_help


def test_fixer_evaluate_is_a_command():
    from faithfusion.commands import fixer_table

    table = fixer_table()
    assert {"curate", "train", "merge", "evaluate", "evaluate-video"} <= set(table)
