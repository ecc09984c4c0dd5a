"""The EIG kernels' tunables (`faithfusion.eig.kernel_config`): parsed without Triton, clear errors."""

import pytest

from faithfusion.eig.kernel_config import DEFAULT, ENV, KernelConfig, default_config, parse_config


def test_kernel_config_parsing():
    """The tunables: list tiles default to the block; malformed or inconsistent settings name the variable."""
    assert parse_config("8,32,4") == KernelConfig(8, 32, 4, 8)
    assert parse_config("8,32,4,16") == KernelConfig(8, 32, 4, 16)
    for bad in ("8,32", "8,x,4", "8,32,4,12", "0,32,4"):
        with pytest.raises(ValueError, match="FAITHFUSION_EIG_TRITON"):
            parse_config(bad)


def test_default_config_reads_the_environment(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert default_config() == DEFAULT and DEFAULT.tile % DEFAULT.block == 0
    monkeypatch.setenv(ENV, "16,16,8")
    assert default_config() == KernelConfig(16, 16, 8, 16)
