"""`faithfusion recon`: reconstruct a scene with 3D Gaussian Splatting."""

from __future__ import annotations

from faithfusion.train.config import ReconConfig
from faithfusion.train.recon import run_recon


def run_recon_command(cfg: ReconConfig) -> dict:
    """Train, write RUN/ and print a one-line summary."""
    metrics = run_recon(cfg)
    test = metrics.get("test", {})
    print(
        f"done: {metrics['steps']} steps, {metrics['num_gaussians']} Gaussians, "
        f"{metrics['iterations_per_second']:.1f} it/s, held-out "
        + ", ".join(f"{k} {v:.4f}" for k, v in test.items())
        + f" [{metrics.get('lpips_net', 'LPIPS: network not recorded')}]"
        + f"  ->  {cfg.out}/metrics.json"
    )
    return metrics
