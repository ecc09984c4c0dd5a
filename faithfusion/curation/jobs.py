"""Which scenes a curation covers (`SceneJob`s) and the SynthStreet scenes it generates for them."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from faithfusion.curation.config import CurateConfig


@dataclass
class SceneJob:
    """One scene to curate: its name, folder, split and whether it is a SynthStreet scene."""

    name: str
    path: Path
    split: str
    synth: bool
    seed: int | None = None


def scene_jobs(cfg: CurateConfig) -> list[SceneJob]:
    both = set(cfg.synth_seeds) & set(cfg.test_seeds)
    if both:
        raise ValueError(f"seeds {sorted(both)} are in both synth_seeds and test_seeds: the split is by scene")
    out = Path(cfg.out)
    jobs = [SceneJob(f"synth_{s}", out / "scenes" / f"seed_{s}", split, True, s)
            for seeds, split in ((cfg.synth_seeds, "train"), (cfg.test_seeds, "test")) for s in seeds]
    jobs += [SceneJob(f"real_{Path(p).name}", Path(p), cfg.real_split, False) for p in cfg.real_scenes]
    if len({j.name for j in jobs}) != len(jobs):
        raise ValueError("two scenes share a name: " + ", ".join(j.name for j in jobs))
    return jobs


def synth_matches(path: Path, cfg: CurateConfig) -> bool:
    """Whether a SynthStreet folder was generated with this config's size, frames, cameras, shifts and appearance."""
    meta = path / "scene.json"
    if not meta.is_file():
        return False
    s = json.loads(meta.read_text())
    names = [c["name"] for c in s["cameras"].values()]
    wanted = {0.0, *(float(d) for d in cfg.shifts), *(-float(d) for d in cfg.shifts)}
    return (s["width"], s["height"], s["frames"], bool(s["dynamic"])) == (cfg.synth_width, cfg.synth_height, cfg.synth_frames, cfg.dynamic) \
        and sorted(names) == sorted(cfg.synth_cameras) and wanted <= {float(d) for d in s["shifts_m"]} \
        and (s.get("appearance") or {}).get("mode", "classic") == cfg.synth_appearance  # as synth.appearance.scene_appearance


def ensure_synth(job: SceneJob, cfg: CurateConfig) -> None:
    if synth_matches(job.path, cfg):
        return
    from faithfusion.synth import generate

    if job.path.exists():
        shutil.rmtree(job.path)
    generate(job.path, int(job.seed), frames=cfg.synth_frames, cameras=cfg.synth_cameras, width=cfg.synth_width,
             height=cfg.synth_height, shifts=cfg.shifts, dynamic=cfg.dynamic, overwrite=True, appearance=cfg.synth_appearance)
