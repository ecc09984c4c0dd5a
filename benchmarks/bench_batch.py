"""`faithfusion batch` against running the same scenes one after another, with the batch killed once and resumed.

    OMP_NUM_THREADS=1 python benchmarks/bench_batch.py --scenes 8 --size quick --steps 200 --workers 2 --threads 1 \
        --serial-threads 2 --device cpu --result benchmarks/results/batch_cpu.json

1. SynthStreet scenes synth_0..N-1 are generated once (timed apart), so both arms train and evaluate the same folders.
2. one after another: `faithfusion batch --engine serial --threads T` (one scene at a time, with every thread).
3. the batch: `faithfusion batch --workers W --threads t` under Ray, killed (SIGKILL to it and every process under it) once the
   first scene is finished and `--kill-delay` seconds more have passed, then the same command run again: finished
   scenes are skipped, interrupted ones resume from their checkpoints. Its wall time is both commands together.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, git_commit  # noqa: E402


def faithfusion(*args: str) -> list[str]:
    return [sys.executable, "-m", "faithfusion.cli", "batch", *args]


def env(threads: int) -> dict:
    e = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def run(cmd: list[str], threads: int, log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        subprocess.run(cmd, env=env(threads), stdout=f, stderr=subprocess.STDOUT, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), from /proc: Ray's raylet and workers included."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def run_killed(cmd: list[str], threads: int, log: Path, runs: Path, delay: float) -> dict:
    """Start `cmd`, SIGKILL it and every process under it `delay` s after the first done.json appears; returns what
    was done then."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env(threads), stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        first = None
        while proc.poll() is None:
            done = list(runs.glob("*/done.json"))
            if done and first is None:
                first = time.perf_counter()
            if first is not None and time.perf_counter() - first >= delay:
                tree = descendants(proc.pid)  # the driver and the Ray processes it started, as a crash would end them
                for pid in [proc.pid, *tree]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                proc.wait()
                break
            time.sleep(0.5)
    seconds = time.perf_counter() - t0
    finished = sorted(p.parent.name for p in runs.glob("*/done.json"))
    checkpointed = sorted(p.parent.parent.name for p in runs.glob("*/ckpt/step_*.pt") if p.parent.parent.name not in finished)
    return {"seconds": seconds, "killed": proc.returncode == -signal.SIGKILL, "finished_before_kill": finished,
            "interrupted_with_checkpoint": sorted(set(checkpointed))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--size", default="quick")
    ap.add_argument("--steps", type=int, default=None, help="training steps per scene (default: the size's)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="threads per batch job")
    ap.add_argument("--serial-threads", type=int, default=2, help="threads of the one-after-another run")
    ap.add_argument("--gpus-per-job", type=float, default=1.0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--kill-delay", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_batch"))
    ap.add_argument("--result", type=Path, required=True)
    args = ap.parse_args()

    import shutil

    from faithfusion.batch.sizes import scene_size
    from faithfusion.synth.generate import generate

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    size = scene_size(args.size)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    for seed in range(args.scenes):
        generate(args.out / "scenes" / f"synth_{seed}", seed, frames=size.frames, cameras=size.cameras, width=size.width,
                 height=size.height, shifts=size.shifts, progress=False)
    synth_seconds = time.perf_counter() - t0
    common = ["--scenes", str(args.out / "scenes" / "synth_*"), "--size", args.size, "--device", args.device,
              "--no-progress", *(["--steps", str(args.steps)] if args.steps else [])]
    seq = run(faithfusion(*common, "--engine", "serial", "--threads", str(args.serial_threads), "--out", str(args.out / "serial")),
              args.serial_threads, args.out / "serial.log")
    cmd = faithfusion(*common, "--workers", str(args.workers), "--threads", str(args.threads),
                      "--gpus-per-job", str(args.gpus_per_job), "--out", str(args.out / "batch"))
    runs = args.out / "batch" / "runs" / "3dgs"
    killed = run_killed(cmd, args.threads, args.out / "batch_killed.log", runs, args.kill_delay)
    resumed = run(cmd, args.threads, args.out / "batch_resumed.log")
    summary = json.loads((args.out / "batch" / "batch_3dgs.json").read_text())
    serial = json.loads((args.out / "serial" / "batch_3dgs.json").read_text())
    total = killed["seconds"] + resumed
    import torch

    result = {
        "commit": git_commit(), "command": " ".join(sys.argv), "device": args.device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_count": os.cpu_count(), "load_average_start": load_start, "load_average_end": os.getloadavg(),
        "scenes": args.scenes, "size": args.size, "steps": summary["steps"],
        "synth_seconds_once": synth_seconds,
        "serial": {"seconds": seq, "threads": args.serial_threads, "engine": serial["engine"]},
        "batch": {"killed_run": killed, "resumed_run_seconds": resumed, "seconds_total": total, "engine": summary["engine"],
                  "workers": args.workers, "threads_per_job": args.threads, "counts_after_resume": summary["counts"],
                  "resumed_from": {r["name"]: r.get("resumed_from") for r in summary["scenes"] if not r.get("skipped")}},
        "speedup_batch_over_serial": seq / total,
        "lane_shift_psnr": {r["name"]: r.get("lane_shift_psnr") for r in summary["scenes"]},
    }
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("serial", "speedup_batch_over_serial")}, indent=1))
    print(f"batch total {total:.0f} s (killed after {killed['seconds']:.0f} s, resumed {resumed:.0f} s) -> {args.result}")


if __name__ == "__main__":
    main()
