"""`curate`: every scene not yet complete, then the dataset's index.json and summary.json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from faithfusion.curation.config import CurateConfig, prepare_out
from faithfusion.curation.jobs import SceneJob, scene_jobs
from faithfusion.curation.scene_samples import curate_scenes, is_complete
from faithfusion.curation.workers import curate_in_workers
from faithfusion.utils.atomic import remove_stale_temps
from faithfusion.utils.jsonio import save_json_atomic


def summarise(samples: list[dict]) -> dict:
    """Counts per kind and split, and per (kind, split)."""
    out: dict[str, Any] = {"total": len(samples), "by_kind": {}, "by_split": {}, "by_kind_split": {}, "scenes": {}}
    for s in samples:
        k, sp = s["kind"], s["split"]
        out["by_kind"][k] = out["by_kind"].get(k, 0) + 1
        out["by_split"][sp] = out["by_split"].get(sp, 0) + 1
        key = f"{k}/{sp}"
        out["by_kind_split"][key] = out["by_kind_split"].get(key, 0) + 1
        out["scenes"].setdefault(s["scene"], s["split"])
    return out


def print_summary(summary: dict, done: list[str], skipped: list[str], pending: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"fixer dataset: {summary['total']} samples")
    splits = sorted(summary["by_split"])
    table.add_column("kind")
    for sp in splits:
        table.add_column(sp, justify="right")
    for k in sorted(summary["by_kind"]):
        table.add_row(k, *[str(summary["by_kind_split"].get(f"{k}/{sp}", 0)) for sp in splits])
    con = Console()
    con.print(table)
    con.print(f"scenes curated now: {done or '-'}; skipped (complete): {skipped or '-'}; not reached: {pending or '-'}")


def write_index(root: Path, jobs: list[SceneJob]) -> list[dict]:
    """Merge the per-scene sample lists of the complete scenes into out/index.json (atomically)."""
    samples = []
    for job in jobs:
        if is_complete(root, job):
            samples += json.loads((root / "samples" / job.name / "samples.json").read_text())["samples"]
    save_json_atomic(root / "index.json", {"root": ".", "version": 1, "samples": samples})
    return samples


def curate(cfg: CurateConfig) -> dict:
    """Curate every scene not yet complete, then write index.json and summary.json; returns the summary."""
    root = Path(cfg.out)
    jobs = scene_jobs(cfg)
    cfg.resolved_kinds()  # unknown kinds fail before anything is written
    unknown = set(cfg.only) - {j.name for j in jobs}
    if unknown:
        raise ValueError(f"--only names scenes that are not in this curation: {sorted(unknown)}")
    prepare_out(cfg)
    remove_stale_temps(root)  # left by a killed curation
    t0 = time.perf_counter()
    if cfg.workers > 1:
        before = {j.name for j in jobs if is_complete(root, j)}
        curate_in_workers(cfg, jobs)
        done = [j.name for j in jobs if is_complete(root, j) and j.name not in before]
        skipped, pending = sorted(before), [j.name for j in jobs if not is_complete(root, j)]
    else:
        done, skipped, pending = curate_scenes(cfg, jobs, t0)
    samples = write_index(root, jobs)
    summary = {**summarise(samples), "curated": done, "skipped": skipped, "pending": pending,
               "seconds": time.perf_counter() - t0}
    save_json_atomic(root / "summary.json", summary)
    print_summary(summary, done, skipped, pending)
    return summary
