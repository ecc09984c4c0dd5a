"""Data-parallel training (train/data_parallel.py): two gloo processes with one shard each take the same steps as one
process with both shards (same batch: 2 views averaged), densification included, within a stated tolerance."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig

TOLERANCE = 1e-5
"""Largest absolute difference allowed between the two runs' parameters after training (float32; the rank sums
change only the order of floating-point additions, which for two ranks is none: the runs come out equal)."""


def tiny_cfg(data: Path, out: Path) -> ReconConfig:
    return ReconConfig(data=data, out=out, steps=10, device="cpu", holdout_every=0, progress=False, sh_degree=1,
                       sh_degree_interval=5, backend="torch", seed=3,
                       init=InitConfig(random_points=300),
                       strategy=StrategyConfig(refine_start=2, refine_every=3, refine_stop=100, reset_every=1000,
                                               grow_grad2d=2e-5))


def train(data: Path, out: Path, comm=None, shards: int = 2) -> dict:
    from faithfusion.data.load import load_scene
    from faithfusion.train.data_parallel import DataParallelTrainer

    scene = load_scene(data, holdout_every=0)
    trainer = DataParallelTrainer(scene, tiny_cfg(data, out), torch.device("cpu"), comm, shards=shards)
    n0 = len(trainer.model)
    trainer.fit(10, progress=False)
    return {"n0": n0, "params": {k: v.detach().clone() for k, v in trainer.model.params.items()},
            "sky": [p.detach().clone() for p in trainer.sky.parameters()] if trainer.sky is not None else [],
            "views": len(trainer.real.views)}


def _rank(rank: int, world: int, data: str, out: str, rendezvous: str) -> None:
    import torch.distributed as dist

    from faithfusion.train.comm import TorchComm

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        result = train(Path(data), Path(out) / f"run{rank}", TorchComm())
        torch.save(result, Path(out) / f"rank{rank}.pt")
        dist.barrier()  # neither rank tears gloo down while the other still talks (that aborted a rank now and then)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    from scene_fixtures import write_nerfstudio_scene

    root = tmp_path_factory.mktemp("dp") / "ns"
    write_nerfstudio_scene(root, n=6, size=(48, 36))
    return root


def test_two_gloo_ranks_match_one_process_with_both_shards(scene, tmp_path, single_thread):
    import torch.multiprocessing as mp

    one = train(scene, tmp_path / "one", None, shards=2)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_rank, args=(2, str(scene), str(tmp_path), str(tmp_path / "rendezvous")), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert one["views"] == 6 and [r["views"] for r in ranks] == [3, 3]  # each rank holds only its shard
    n = len(one["params"]["means"])
    assert n != one["n0"], "densification must have acted for the comparison to cover it"
    for r in ranks:
        assert len(r["params"]["means"]) == n
        for key, value in one["params"].items():
            diff = (r["params"][key] - value).abs().max().item()
            assert diff <= TOLERANCE, f"{key}: rank params differ from the one-process run by {diff}"
        for a, b in zip(r["sky"], one["sky"]):
            assert (a - b).abs().max().item() <= TOLERANCE


def test_shards_and_strategy_are_checked(scene, tmp_path):
    from faithfusion.data.load import load_scene
    from faithfusion.train.data_parallel import DataParallelError, DataParallelTrainer, local_shards, shard_ids

    assert shard_ids(list(range(7)), 1, 3) == [1, 4] and local_shards(4, 1, 2) == [2, 3]
    with pytest.raises(DataParallelError, match="multiple of the number of ranks"):
        local_shards(3, 0, 2)
    scene_data = load_scene(scene, holdout_every=0)
    cfg = tiny_cfg(scene, tmp_path / "x")
    with pytest.raises(DataParallelError, match="cannot fill 7 shards"):
        DataParallelTrainer(scene_data, cfg, torch.device("cpu"), None, shards=7)
    cfg.strategy.name = "mcmc"
    with pytest.raises(DataParallelError, match="supports default, sparsity"):
        DataParallelTrainer(scene_data, cfg, torch.device("cpu"), None, shards=2)


def test_recon_ddp_in_one_process_writes_a_run_and_resumes(scene, tmp_path, single_thread, capsys):
    from dataclasses import fields, replace

    from faithfusion.train.data_parallel_run import DataParallelConfig, run_data_parallel

    base = tiny_cfg(scene, tmp_path / "run")
    cfg = DataParallelConfig(**{f.name: getattr(base, f.name) for f in fields(base)}, shards=2)
    cfg.steps, cfg.ckpt_every = 4, 2
    metrics = run_data_parallel(cfg)
    assert metrics["data_parallel"] == {"world": 1, "shards": 2, "batch": 2} and metrics["steps"] == 4
    assert (tmp_path / "run" / "ckpt" / "step_000004.pt").is_file() and (tmp_path / "run" / "point_cloud.ply").is_file()
    again = run_data_parallel(replace(cfg, steps=6, resume=True))
    assert again["steps"] == 6 and "resumed from" in capsys.readouterr().out
