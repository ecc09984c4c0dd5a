"""`faithfusion recon-ddp`: one scene trained data-parallel over torchrun's ranks (views sharded, gradients summed)."""

from __future__ import annotations

from faithfusion.train.data_parallel_run import DataParallelConfig, run_data_parallel


def run_recon_ddp_command(cfg: DataParallelConfig) -> dict | None:
    metrics = run_data_parallel(cfg)
    if metrics is not None:
        dp = metrics["data_parallel"]
        print(f"done: {metrics['steps']} steps x {dp['batch']} views on {dp['world']} ranks, {metrics['num_gaussians']} "
              f"Gaussians, {metrics['iterations_per_second']:.1f} it/s, held-out "
              + ", ".join(f"{k} {v:.4f}" for k, v in metrics.get("test", {}).items()) + f"  ->  {cfg.out}/metrics.json")
    return metrics


__all__ = ["DataParallelConfig", "run_recon_ddp_command"]
