"""The LPIPS weights ship inside the package: found there first, declared as package data, and checked."""

from __future__ import annotations

import hashlib
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import torch

from faithfusion.eval import lpips as lpips_mod
from faithfusion.eval.lpips import LPIPS, LPIPS_NAME, PACKAGED_NPZ, LPIPSWeightsError

ROOT = Path(__file__).resolve().parents[1]
SHA256 = "8e6fe283c39b1ff443b53ef6cbcb6757c4682f1a93ca62e04504ab823a5cc853"


def test_weights_are_in_the_package_and_its_package_data() -> None:
    assert PACKAGED_NPZ.is_file() and PACKAGED_NPZ.parent == ROOT / "faithfusion" / "eval" / "weights"
    assert hashlib.sha256(PACKAGED_NPZ.read_bytes()).hexdigest() == SHA256
    readme = (PACKAGED_NPZ.parent / "README.md").read_text()
    assert "BSD-3-Clause" in readme and "BSD-2-Clause" in readme and SHA256 in readme and "0.1024" in readme
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = data.get("faithfusion.eval", [])
    for name in (PACKAGED_NPZ.name, "README.md"):
        assert any(fnmatch(f"weights/{name}", p) for p in patterns), f"{name} not in package-data of faithfusion.eval"


def test_torchmetrics_check_from_the_packaged_file_alone(monkeypatch, tmp_path) -> None:
    """No ../shared, no env var, no torch hub, no lpips/torchmetrics packages: the packaged npz is all there is."""
    monkeypatch.delenv(lpips_mod.ENV_VAR, raising=False)
    monkeypatch.setattr(lpips_mod, "REPO_ROOT", tmp_path / "clone")  # ../shared of a clone elsewhere: absent
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(lpips_mod, "_package_file", lambda package, *rel: None)
    assert lpips_mod.default_npz_path() == PACKAGED_NPZ
    net = LPIPS()
    assert net.name == LPIPS_NAME == "LPIPS (SqueezeNet-1.1, v0.1)"
    torch.manual_seed(42)
    img1 = torch.rand(2, 3, 100, 100) * 2 - 1
    img2 = torch.rand(2, 3, 100, 100) * 2 - 1
    assert torch.allclose(net.forward_nchw(img1, img2), torch.tensor([0.1024, 0.0938]), atol=1e-4)


def test_a_damaged_install_says_so(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(lpips_mod.ENV_VAR, raising=False)
    monkeypatch.setattr(lpips_mod, "PACKAGED_NPZ", tmp_path / "gone.npz")
    monkeypatch.setattr(lpips_mod, "REPO_ROOT", tmp_path / "clone")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(lpips_mod, "_package_file", lambda package, *rel: None)
    with pytest.raises(LPIPSWeightsError, match="gone.npz is missing: reinstall"):
        LPIPS()


def test_the_env_var_overrides_the_packaged_file(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(lpips_mod.ENV_VAR, str(tmp_path / "mine.npz"))
    with pytest.raises(LPIPSWeightsError, match="mine.npz does not exist"):
        LPIPS()  # an override that names no file is an error, not a fall-back to the packaged weights
