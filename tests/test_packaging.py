"""Installable beside other tools: ranges in pyproject, the exact set in constraints.txt, optional model families."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MODEL_FAMILIES = ("diffusers", "transformers", "peft")


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"constraints.txt: {line!r} is not an exact pin"
            pins[req.name.lower().replace("_", "-")] = spec.version
    return pins


def test_dependencies_are_ranges_and_the_constraints_satisfy_them() -> None:
    pins = constraints()
    reqs = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    reqs += [Requirement(r) for extra in PYPROJECT["project"]["optional-dependencies"].values() for r in extra]
    for req in reqs:
        assert not any(s.operator == "==" for s in req.specifier), f"{req}: an exact pin belongs in constraints.txt"
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} has no tested version in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"constraints.txt {name}=={pins[name]} is outside {req}"
    assert pins["torch"] == "2.13.0"
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt" in setup


def test_model_families_are_an_extra_and_the_test_extra_keeps_them() -> None:
    core = {Requirement(r).name for r in PYPROJECT["project"]["dependencies"]}
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert not core & set(MODEL_FAMILIES)
    assert {Requirement(r).name for r in extras["models"]} == set(MODEL_FAMILIES)
    assert set(MODEL_FAMILIES) <= {Requirement(r).name for r in extras["test"]}


def test_the_core_does_not_import_the_model_families() -> None:
    """recon, render, eval, synth, eig, fuse (and the CLI's command table) import without diffusers/transformers/peft."""
    code = (
        "import sys\n"
        "import faithfusion.cli, faithfusion.commands.recon, faithfusion.commands.render, faithfusion.commands.eval\n"
        "import faithfusion.commands.synth, faithfusion.commands.eig, faithfusion.commands.fuse, faithfusion.fusion.runner\n"
        "import faithfusion.fixers.load, faithfusion.commands\n"
        "faithfusion.commands.commands(); faithfusion.commands.fuse_table()\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {MODEL_FAMILIES!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_a_missing_extra_names_the_extra(monkeypatch) -> None:
    import importlib.util

    from faithfusion.utils.optional import MissingExtraError, require_models

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"peft .*faithfusion\[models\]"):
        require_models("the SD-Turbo Difix backbone")
