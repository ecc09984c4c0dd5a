"""What was measured where: the device, the commit, the library versions, and whether gsplat's kernels can run."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
"""The checkout that holds the package (its git HEAD names the commit)."""


def git_commit(root: Path = ROOT) -> str:
    """$GIT_COMMIT (a device copy's own HEAD can be stale), else git HEAD of `root`, else .gpu/COMMIT, else 'unknown'."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=root,
                              timeout=10).stdout.strip()
        if head:
            return head
    except (OSError, subprocess.SubprocessError):
        pass
    marker = root / ".gpu" / "COMMIT"
    return marker.read_text().strip() if marker.is_file() else "unknown"


def device_info(device: torch.device) -> dict:
    """Name, kind and thread count of `device`, and the torch / CUDA versions."""
    info = {"device": str(device), "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "load_average_at_start": load_average()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, memory_gib=props.total_memory / 2**30, cuda=torch.version.cuda,
                    capability=f"{props.major}.{props.minor}")
    else:
        info["name"] = f"cpu ({info['cpu']}, {info['cpu_threads']} threads)"
    return info


def load_average() -> list[float] | None:
    """The machine's 1, 5 and 15 minute load averages (other work competing for the CPU), where the OS tells."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def gsplat_missing(device: torch.device) -> str | None:
    """Why gsplat's CUDA rasterizer cannot run here (None when it can)."""
    if device.type != "cuda":
        return "gsplat's rasterizer needs CUDA; this run is on the CPU"
    try:
        import gsplat  # noqa: F401
    except ImportError as e:
        return f"gsplat is not installed ({e})"
    return None


def gsplat_version() -> str | None:
    try:
        import gsplat
    except ImportError:
        return None
    return getattr(gsplat, "__version__", "unknown")
