"""`faithfusion recon-ddp`: one scene trained data-parallel over the ranks of a torchrun (or in one process).

    torchrun --nproc-per-node 2 -m faithfusion.cli recon-ddp --data SCENE --out RUN

Rank 0 owns the run folder (lock, config.yaml, checkpoints, evaluation, metrics.json); every rank loads the
scene, holds its shards' views and, with --resume, the newest checkpoint. The folder is what `recon` writes, so
`render`, `eval` and `--resume` (with the same number of shards) work on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from faithfusion.train.config import ReconConfig


@dataclass
class DataParallelConfig(ReconConfig):
    """Reconstruct a scene with data-parallel 3DGS over the ranks of torchrun (`torchrun --nproc-per-node N -m
    faithfusion.cli recon-ddp ...`): views sharded over ranks, gradients summed, densification on the summed statistics.

    Each step trains on `views_per_shard` views of each of `shards` shards (the batch); for the view budget of a
    `recon` run of S steps give --steps S / batch and the strategy's step numbers divided likewise."""

    shards: int = 0
    """Shards of the training views (0: one per rank); a multiple of the number of ranks."""
    views_per_shard: int = 1
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """auto: NCCL where CUDA is, else gloo."""


def run_data_parallel(cfg: DataParallelConfig) -> dict | None:
    """Train on every rank; rank 0 writes the run folder and returns the metrics (None on the other ranks)."""
    from faithfusion.train.checkpoint import checkpoint_path, load_latest_checkpoint, save_checkpoint
    from faithfusion.train.comm import end_process_group, start_process_group
    from faithfusion.train.data_parallel import DataParallelTrainer
    from faithfusion.train.lock import release_run_lock
    from faithfusion.train.recon import finish_run, load_scene_for, open_run_folder, out_of_memory_names, write_config

    comm, device = start_process_group(cfg.backend, cfg.device)
    try:
        error = None
        if comm.rank == 0:
            try:
                open_run_folder(cfg)
            except Exception as err:  # noqa: BLE001 - told to every rank, raised everywhere
                error = err
        error = comm.broadcast_object(None if error is None else error)
        if error is not None:
            raise error
        out = Path(cfg.out)
        scene = load_scene_for(cfg)
        trainer = DataParallelTrainer(scene, cfg, device, comm, cfg.shards or comm.world, cfg.views_per_shard)
        if cfg.resume:
            found = load_latest_checkpoint(out / "ckpt", device)
            if found is not None:
                trainer.load_state_dict(found[1])
                if comm.rank == 0:
                    print(f"resumed from {found[0]} at step {trainer.step}")
        if comm.rank == 0:
            write_config(out, cfg, {"scene": scene.summary(), "device": str(device), "world": comm.world,
                                    "batch": trainer.batch_size})

        def on_step(tr: DataParallelTrainer, stats: dict) -> None:
            if comm.rank == 0 and cfg.ckpt_every > 0 and tr.step % cfg.ckpt_every == 0 and tr.step < cfg.steps:
                save_checkpoint(checkpoint_path(out / "ckpt", tr.step), tr.state_dict())

        with out_of_memory_names(f"training {out} (rank {comm.rank})", out / "ckpt"):
            trainer.fit(cfg.steps, progress=cfg.progress and comm.rank == 0, on_step=on_step)
        metrics = None
        if comm.rank == 0:
            save_checkpoint(checkpoint_path(out / "ckpt", trainer.step), trainer.state_dict())
            metrics = finish_run(trainer, scene, cfg, out)
            metrics["data_parallel"] = {"world": comm.world, "shards": trainer.shards, "batch": trainer.batch_size}
            from faithfusion.utils.jsonio import save_json_atomic

            save_json_atomic(out / "metrics.json", metrics)
            release_run_lock(out)
        comm.barrier()
        return metrics
    finally:
        end_process_group()
