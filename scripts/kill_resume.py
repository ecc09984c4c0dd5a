"""Does every long command survive SIGKILL at any moment and resume to the same result?

For each command of COMMANDS (tiny CPU inputs): one uninterrupted reference run; then a run that is
killed with SIGKILL at random moments (some right after a temporary file appears, i.e. while a
checkpoint or output is being written) and restarted with its resume arguments after every kill;
finally it runs to the end. The final figures are compared with the reference, and the output folder
is scanned for leftover temporary files, lock files and files that do not load.

    python scripts/kill_resume.py --work /tmp/kill_resume --kills 20 --json benchmarks/results/kill_resume_cpu.json

The command lines are in COMMANDS below (the `faithfusion` CLI through `python -m faithfusion.cli`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "faithfusion.cli"]
LPIPS = os.environ.get("FAITHFUSION_LPIPS_WEIGHTS") or next(
    (str(p) for p in (REPO.parent / "shared" / "weights" / "lpips_squeeze_v01.npz",
                      REPO.parent.parent / "shared" / "weights" / "lpips_squeeze_v01.npz") if p.is_file()),
    str(REPO.parent / "shared" / "weights" / "lpips_squeeze_v01.npz"))

TINY_RECON = ["--steps", "60", "--device", "cpu", "--holdout-every", "3", "--cameras", "0", "--ckpt-every", "5",
              "--init.max-points", "1500", "--init.random-points", "150", "--strategy.refine-start", "10",
              "--strategy.refine-every", "10", "--strategy.refine-stop", "50", "--no-progress", "--no-save-renders"]
TINY_FAITHFUSION = ["--fixer", "identity", "--video-fixer", "identity", "--faithfusion.reference-steps", "60",
                    "--faithfusion.first", "20", "--faithfusion.every", "20", "--faithfusion.max-shift", "2.0",
                    "--faithfusion.video-until", "1.0", "--faithfusion.window", "3", "--faithfusion.calib-views", "2"]
TINY_CURATE = ["--synth-seeds", "0", "--test-seeds", "1", "--synth-frames", "4", "--synth-width", "48",
               "--synth-height", "32", "--synth-cameras", "front", "front_right", "--shifts", "2.0", "--steps", "8",
               "--device", "cpu", "--random-points", "100", "--max-points", "400", "--underfit-stride", "4",
               "--shift-stride", "2", "--no-progress"]
TINY_FIXER_TRAIN = ["--init", str(REPO / "faithfusion" / "fixers" / "weights" / "difix"), "--steps", "30",
                    "--batch-size", "2", "--crop", "32", "--lr", "2e-3", "--schedule", "constant", "--warmup", "0",
                    "--gram-warmup", "0", "--ckpt-every", "3", "--num-workers", "0", "--log-every", "1",
                    "--val-samples", "2", "--val-grid", "2", "--device", "cpu", "--no-progress",
                    "--lpips-weights", LPIPS]


@dataclass
class Command:
    """One command: its first launch, its launch after a kill, and where its figures are."""

    name: str
    first: Callable[[Path, Path], list[str]]  # (work, out) -> argv
    again: Callable[[Path, Path], list[str]]
    figures: Callable[[Path], dict]  # out -> final figures
    needs: list[str] = field(default_factory=list)  # commands whose reference output this one reads


def _metrics_figures(out: Path) -> dict:
    m = json.loads((out / "metrics.json").read_text())
    fig = {"steps": m["steps"], "num_gaussians": m["num_gaussians"], **{f"test.{k}": v for k, v in m["test"].items()}}
    if "fusion" in m:
        fig["completed_rounds"] = m["fusion"]["completed_rounds"]
    return fig


def _demo_figures(out: Path) -> dict:
    fig = {}
    for path in sorted(out.glob("*/eval/lane_shift.json")):
        result = json.loads(path.read_text())
        for mag, row in result["by_magnitude"].items():
            for k, v in row.items():
                if isinstance(v, (int, float)):
                    fig[f"{path.parts[-3]}.{mag}.{k}"] = v
    return fig


def _curate_figures(out: Path) -> dict:
    s = json.loads((out / "summary.json").read_text())
    return {"total": s["total"], **{f"by_kind.{k}": v for k, v in s["by_kind"].items()}}


def _fixer_figures(out: Path) -> dict:
    import torch
    from safetensors.torch import load_file

    state = load_file(str(out / "model" / "model.safetensors"))
    val = [json.loads(line) for line in (out / "val" / "metrics.jsonl").read_text().splitlines()]
    return {"weights_sum_abs": float(sum(v.float().abs().sum() for v in state.values())),
            "weights_checksum": float(sum((v.float() * (1 + torch.arange(v.numel()).reshape(v.shape) % 7)).sum()
                                          for v in state.values())),
            **{f"val.{k}": v for k, v in val[-1].items() if isinstance(v, (int, float))}}


def _scene(work: Path) -> str:
    return str(work / "scene")


COMMANDS: list[Command] = [
    Command("recon",
            lambda w, o: CLI + ["recon", "--data", _scene(w), "--out", str(o)] + TINY_RECON,
            lambda w, o: CLI + ["recon", "--data", _scene(w), "--out", str(o), "--resume"] + TINY_RECON,
            _metrics_figures),
    Command("fuse",
            lambda w, o: CLI + ["fuse", "faithfusion", "--data", _scene(w), "--out", str(o)] + TINY_RECON + TINY_FAITHFUSION,
            lambda w, o: CLI + ["fuse", "faithfusion", "--data", _scene(w), "--out", str(o), "--resume"]
            + TINY_RECON + TINY_FAITHFUSION,
            _metrics_figures),
    Command("fixer curate",
            lambda w, o: CLI + ["fixer", "curate", "--out", str(o)] + TINY_CURATE,
            lambda w, o: CLI + ["fixer", "curate", "--out", str(o)] + TINY_CURATE,
            _curate_figures),
    Command("fixer train",
            lambda w, o: CLI + ["fixer", "train", "--index", str(w / "ref" / "fixer_curate" / "index.json"), "--out", str(o)]
            + TINY_FIXER_TRAIN,
            lambda w, o: CLI + ["fixer", "train", "--index", str(w / "ref" / "fixer_curate" / "index.json"), "--out", str(o),
                                "--resume"] + TINY_FIXER_TRAIN,
            _fixer_figures, needs=["fixer curate"]),
    Command("demo",
            lambda w, o: CLI + ["demo", "--quick", "--steps", "30", "--methods", "3dgs", "--device", "cpu", "--out", str(o)],
            lambda w, o: CLI + ["demo", "--quick", "--steps", "30", "--methods", "3dgs", "--device", "cpu", "--out", str(o),
                                "--resume"],
            _demo_figures),
]
SYNTH = ["synth", "--frames", "6", "--width", "64", "--height", "48", "--cameras", "front", "--shifts", "1.0", "2.0",
         "--no-progress"]


def env() -> dict:
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO), FAITHFUSION_LPIPS_WEIGHTS=LPIPS)
    return e


def run_to_end(argv: list[str], log) -> tuple[int, float]:
    t0 = time.perf_counter()
    rc = subprocess.run(argv, cwd=REPO, env=env(), stdout=log, stderr=subprocess.STDOUT).returncode
    return rc, time.perf_counter() - t0


def temp_files(folder: Path) -> list[Path]:
    """The `*.tmp` files under `folder` (folders that vanish while it is walked, as a writer renames them, are skipped)."""
    found = []
    for root, _, files in os.walk(folder, onerror=lambda err: None):
        found += [Path(root) / f for f in files if f.endswith(".tmp")]
    return found


def launch_and_kill(argv: list[str], out: Path, delay: float, at_temp: bool, log) -> dict:
    """Start `argv`; SIGKILL it after `delay` s, or (at_temp) as soon as a temporary file appears in `out`."""
    proc = subprocess.Popen(argv, cwd=REPO, env=env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.perf_counter()
    before = set(temp_files(out))
    while proc.poll() is None:
        elapsed = time.perf_counter() - t0
        if at_temp and set(temp_files(out)) - before:
            break
        if elapsed >= delay:
            break
        time.sleep(0.002 if at_temp else 0.01)
    finished = proc.poll() is not None
    if not finished:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return {"killed": not finished, "rc": proc.returncode, "seconds": round(time.perf_counter() - t0, 2),
            "temps_after": len(temp_files(out)), "at_temp": at_temp}


def scan(out: Path) -> dict:
    """Leftover temporary and lock files, and output files that do not load."""
    import torch

    corrupt = []
    for p in out.rglob("*"):
        if not p.is_file():
            continue
        try:
            if p.suffix == ".pt":
                torch.load(p, map_location="cpu", weights_only=False)
            elif p.suffix in (".json",):
                json.loads(p.read_text())
            elif p.suffix == ".jsonl":
                [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
            elif p.suffix == ".npy":
                import numpy as np

                np.load(p)
            elif p.suffix in (".png", ".jpg"):
                from PIL import Image

                with Image.open(p) as im:
                    im.load()
        except Exception as err:  # noqa: BLE001 - every failure to load is a finding
            corrupt.append(f"{p.relative_to(out)}: {type(err).__name__}")
    return {"temp_files": [str(p.relative_to(out)) for p in temp_files(out)],
            "lock_files": [str(p.relative_to(out)) for p in out.rglob(".lock")], "corrupt_files": corrupt}


def compare(ref: dict, got: dict, rel: float) -> list[str]:
    diffs = []
    for k in sorted(set(ref) | set(got)):
        a, b = ref.get(k), got.get(k)
        if a is None or b is None:
            if a != b:
                diffs.append(f"{k}: {a} vs {b}")
        elif abs(a - b) > rel * max(1.0, abs(a)):
            diffs.append(f"{k}: {a} vs {b}")
    return diffs


def exercise(cmd: Command, work: Path, kills: int, rng: random.Random, rel: float, logs: Path) -> dict:
    slug = cmd.name.replace(" ", "_")
    ref_out, out = work / "ref" / slug, work / "killed" / slug
    with open(logs / f"{slug}.ref.log", "w") as log:
        rc, ref_seconds = run_to_end(cmd.first(work, ref_out), log)
    if rc != 0:
        return {"command": cmd.name, "error": f"reference run failed (rc {rc}); see {logs / (slug + '.ref.log')}"}
    reference = cmd.figures(ref_out)
    attempts, launches, resumed_ok, finished_early = [], 0, 0, 0
    typical = ref_seconds  # how long a whole launch takes
    with open(logs / f"{slug}.killed.log", "w") as log:
        while len([a for a in attempts if a["killed"]]) < kills and len(attempts) < 3 * kills:
            argv = cmd.first(work, out) if launches == 0 else cmd.again(work, out)
            at_temp = launches % 3 == 2  # every third kill: while a file is being written
            delay = rng.uniform(0.1, 0.7) * typical
            a = launch_and_kill(argv, out, delay, at_temp, log)
            launches += 1
            attempts.append(a)
            if not a["killed"]:
                typical = min(typical, a["seconds"])  # the machine got faster than during the reference run
                if a["rc"] != 0:
                    return {"command": cmd.name, "error": f"a launch after a kill failed (rc {a['rc']}); see {log.name}",
                            "attempts": attempts}
                finished_early += 1  # it finished before the kill: start over from nothing
                shutil.rmtree(out)
                launches = 0
        rc, _ = run_to_end(cmd.again(work, out), log)
    resumed_ok = rc == 0
    final = cmd.figures(out) if resumed_ok else {}
    diffs = compare(reference, final, rel) if resumed_ok else ["final run failed"]
    found = scan(out)
    return {
        "command": " ".join(cmd.again(work, Path("OUT"))[3:]).replace(str(work), "WORK"),
        "name": cmd.name,
        "reference_seconds": round(ref_seconds, 2),
        "kills": sum(a["killed"] for a in attempts),
        "kills_while_writing": sum(a["killed"] and a["at_temp"] and a["temps_after"] > 0 for a in attempts),
        "kills_leaving_temp_files": sum(a["killed"] and a["temps_after"] > 0 for a in attempts),
        "successful_resumes": sum(1 for a in attempts[1:] if a["killed"] or a["rc"] == 0) + int(resumed_ok),
        "finished_before_kill": finished_early,
        "final_run_ok": resumed_ok,
        "matches_uninterrupted": resumed_ok and not diffs,
        "differences": diffs,
        "reference": reference,
        "final": final,
        **found,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/kill_resume"))
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rel", type=float, default=1e-4, help="relative tolerance of the final figures")
    ap.add_argument("--only", nargs="*", default=None, help="command names to run (default: all)")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "kill_resume_cpu.json")
    args = ap.parse_args()
    work = args.work.resolve()
    if work.exists():
        shutil.rmtree(work)
    logs = work / "logs"
    logs.mkdir(parents=True)
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    with open(logs / "synth.log", "w") as log:
        rc, _ = run_to_end(CLI + SYNTH + ["--out", _scene(work)], log)
    if rc != 0:
        raise SystemExit(f"synth failed; see {logs / 'synth.log'}")
    wanted = [c for c in COMMANDS if args.only is None or c.name in args.only]
    for c in list(wanted):
        wanted = [d for d in COMMANDS if d.name in c.needs and d not in wanted] + wanted
    results = []
    for cmd in wanted:
        t1 = time.perf_counter()
        r = exercise(cmd, work, args.kills, rng, args.rel, logs)
        r["wall_seconds"] = round(time.perf_counter() - t1, 1)
        print(json.dumps({k: r.get(k) for k in ("name", "kills", "kills_while_writing", "successful_resumes",
                                                 "matches_uninterrupted", "corrupt_files", "temp_files", "error")}),
              flush=True)
        results.append(r)
        write_summary(args, results, time.perf_counter() - t0)


def write_summary(args, results: list[dict], seconds: float) -> None:
    """The JSON summary of the commands done so far (rewritten after each command)."""
    summary = {
        "what": "SIGKILL at random moments and --resume, per command; final figures vs an uninterrupted run",
        "kills_per_command": args.kills, "seed": args.seed, "relative_tolerance": args.rel,
        "threads": 1, "total_seconds": round(seconds, 1),
        "totals": {"kills": sum(r.get("kills", 0) for r in results),
                   "successful_resumes": sum(r.get("successful_resumes", 0) for r in results),
                   "matching_finals": sum(bool(r.get("matches_uninterrupted")) for r in results),
                   "commands": len(results), "commands_planned": len(COMMANDS) if args.only is None else len(args.only),
                   "corrupt_files": sum(len(r.get("corrupt_files", [])) for r in results),
                   "leftover_temp_files": sum(len(r.get("temp_files", [])) for r in results)},
        "commands": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
