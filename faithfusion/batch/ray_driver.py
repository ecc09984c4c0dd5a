"""The Ray executor: each scene's job a Ray task, one GPU each where the cluster has GPUs, else a fixed number of
CPU threads each. Thin: the job itself is faithfusion.batch.job.run_job_logged."""

from __future__ import annotations

import os
from typing import Callable, Iterator

from faithfusion.batch.job import JobSpec, run_job_logged
from faithfusion.errors import UserError


class RayStartError(UserError, RuntimeError):
    """Ray is not installed, or the cluster named by --address cannot be reached."""


def job_resources(cluster: dict, threads: int, gpus_per_job: float) -> dict:
    """The Ray task options of one job: `num_gpus` where the cluster has GPUs (and GPUs are asked for), else
    `num_cpus` = threads."""
    if gpus_per_job > 0 and cluster.get("GPU", 0) > 0:
        return {"num_gpus": gpus_per_job, "num_cpus": max(1, threads)}
    return {"num_cpus": max(1, threads), "num_gpus": 0}


class RayExecutor:
    """Jobs as Ray tasks on a local Ray (`address` None: started here with `workers` x `threads` CPUs) or on an
    existing cluster (`address`: 'auto', 'HOST:PORT' or 'ray://HOST:10001')."""

    def __init__(self, address: str | None, workers: int, threads: int, gpus_per_job: float,
                 job_fn: Callable[[JobSpec], dict] = run_job_logged) -> None:
        try:
            import ray
        except ImportError as err:
            raise RayStartError("faithfusion batch needs Ray: pip install 'faithfusion[batch]' (or ray==2.60.0), "
                                "or pass --engine serial") from err
        self.ray = ray
        env = {k: os.environ[k] for k in ("PYTHONPATH", "FAITHFUSION_LPIPS_WEIGHTS") if k in os.environ}
        env["OMP_NUM_THREADS"] = str(max(1, threads))
        kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False,
                      runtime_env={"env_vars": env})
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=max(1, workers) * max(1, threads), object_store_memory=128 * 2**20, **kwargs)
        except Exception as err:  # noqa: BLE001 - any start failure is the user's cluster or install
            raise RayStartError(f"cannot start or reach Ray (--address {address or 'local'}): {err}") from err
        cluster = ray.cluster_resources()
        self.options = job_resources(cluster, threads, gpus_per_job)
        per_job = self.options["num_gpus"] or self.options["num_cpus"]
        capacity = int(cluster.get("GPU" if self.options["num_gpus"] else "CPU", 1) // per_job)
        self.slots = max(1, min(workers, capacity) if workers > 0 else capacity)
        self.remote = ray.remote(max_retries=0)(job_fn).options(**self.options)
        self.pending: dict = {}

    def describe(self) -> str:
        res = self.ray.cluster_resources()
        return (f"Ray {self.ray.__version__}: {int(res.get('CPU', 0))} CPUs, {int(res.get('GPU', 0))} GPUs; "
                f"per job {self.options}; {self.slots} at once")

    def submit(self, job: JobSpec) -> None:
        self.pending[self.remote.remote(job)] = job

    def completed(self, tick: Callable[[], None]) -> Iterator[tuple[JobSpec, dict]]:
        while self.pending:
            ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=0.5)
            tick()
            for ref in ready:
                job = self.pending.pop(ref)
                try:
                    result = self.ray.get(ref)
                except Exception as err:  # noqa: BLE001 - the worker died (out of memory, killed): the job failed
                    result = {"name": job.scene.name, "method": job.method, "status": "failed", "steps": job.steps,
                              "run": str(job.run), "error": f"worker lost: {type(err).__name__}: {str(err).splitlines()[0]}",
                              "log": str(job.log)}
                yield job, result

    def close(self) -> None:
        self.ray.shutdown()
