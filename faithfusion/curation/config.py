"""What a curation run is asked to do (`CurateConfig`), and whether an existing folder may be resumed."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from faithfusion.utils.atomic import atomic_write

RUNTIME_FIELDS = ("overwrite", "progress", "device", "max_seconds", "workers", "only")  # may differ between a run and its resume
IMAGE_KINDS = ("underfit", "sparse", "cross_camera", "lane_shift")  # per-frame samples
KINDS = (*IMAGE_KINDS, "video")


@dataclass
class CurateConfig:
    """Curate a paired fixer dataset (Difix3D's degradations plus SynthStreet lane shifts)."""

    out: Path
    """Dataset folder: index.json, samples/, scenes/, recon/."""
    synth_seeds: tuple[int, ...] = (0,)
    """SynthStreet seeds of the training split (generated into out/scenes/seed_N unless present)."""
    test_seeds: tuple[int, ...] = ()
    """Held-out SynthStreet seeds (split "test"): the split is by scene, never by frame."""
    real_scenes: tuple[Path, ...] = ()
    """Captured scenes (any format load_scene reads): sparse views vs the held-out photos."""
    real_split: Literal["train", "test"] = "test"
    """Split of the real scenes' samples."""
    synth_frames: int = 40
    synth_width: int = 480
    synth_height: int = 320
    synth_cameras: tuple[str, ...] = ("front", "front_left", "front_right")
    synth_appearance: Literal["classic", "varied"] = "varied"
    """SynthStreet look: varied (palettes, light, weather, exposure drawn per seed: tens of streets, not one look)
    or classic (the demo's look; the shipped fixer weights were curated with it)."""
    shifts: tuple[float, ...] = (1, 2, 3, 4, 5, 6)
    """Lane shifts in metres (both signs are used); SynthStreet renders their ground truth."""
    dynamic: bool = False
    """SynthStreet: moving vehicles."""
    every: int = 2
    """Train on every k-th timestep (real scenes: every k-th image)."""
    holdout_camera: int = 2
    """Camera id left out of training (cross-camera samples); ignored when it is the only camera."""
    steps: int = 3000
    """Reconstruction steps (checkpoints at 25, 50, 75 and 100 %)."""
    device: str = "auto"
    scale: float = 1.0
    """Image resolution factor of the reconstruction and of every sample."""
    random_points: int = 50_000
    """Random initial Gaussians of the reconstruction (InitConfig.random_points)."""
    max_points: int = 300_000
    underfit_stride: int = 4
    """Under-fitted checkpoints render every n-th view of the trained cameras (a different offset each)."""
    shift_stride: int = 2
    """Lane-shift image samples at every n-th timestep."""
    video_windows: bool = False
    """Also write video samples (EIGent / GenFusion)."""
    video_frames: int = 16
    """Frames per video window."""
    video_ramp: int = 9
    """Frames of the lateral ramp from 0 to the full shift (the first window frames)."""
    video_shifts: tuple[float, ...] = ()
    """Shift magnitudes of the lane-shift windows (both signs); empty = every shift."""
    kinds: tuple[str, ...] = ()
    """Sample kinds to write, of underfit, sparse, cross_camera, lane_shift, video; empty = the four per-frame kinds,
    plus video with --video-windows. `--kinds video`: the video windows only (no under-fitted snapshot renders)."""
    with_eig: bool = True
    """Write calibrated EIG maps (faithfusion.eig) per sample."""
    eig_calib_views: int = 16
    seed: int = 0
    max_seconds: float = 0.0
    """Start no new scene after this many seconds (0 = no limit); a re-run resumes."""
    overwrite: bool = False
    """Replace the samples of a non-empty `out` written with another config."""
    progress: bool = True
    workers: int = 1
    """Scenes curated at once, each in its own process (they share the device); the index lists them all."""
    only: tuple[str, ...] = ()
    """Curate only these scenes (names such as synth_3) in this process; the index still lists every complete one."""

    def resolved_kinds(self) -> tuple[str, ...]:
        """The kinds this run writes, in KINDS order."""
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown sample kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        wanted = set(self.kinds) if self.kinds else {*IMAGE_KINDS, *(("video",) if self.video_windows else ())}
        return tuple(k for k in KINDS if k in wanted)

    def default_kinds(self) -> tuple[str, ...]:
        return dataclasses.replace(self, kinds=()).resolved_kinds()


def plain(x: Any) -> Any:
    """Dataclass values as YAML/JSON-friendly plain types."""
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    return x


def config_record(cfg: CurateConfig) -> dict:
    """What must match for a run to resume another: the config less its runtime fields.

    `kinds` is recorded as the kinds written, and only where they differ from the default ones (so that a
    record without kinds means the default ones, and listing the default kinds changes nothing). A record
    without `synth_appearance` means classic (the only look before the option)."""
    d = plain(dataclasses.asdict(cfg))
    kinds = cfg.resolved_kinds()
    d.pop("kinds")
    if kinds != cfg.default_kinds():
        d["kinds"] = list(kinds)
    if d.get("synth_appearance") == "classic":  # folders curated before the option existed record none and are classic
        d.pop("synth_appearance")
    return {k: v for k, v in d.items() if k not in RUNTIME_FIELDS}


def prepare_out(cfg: CurateConfig) -> None:
    """Create `out`; refuse a non-empty one written with another config unless `overwrite`."""
    out = Path(cfg.out)
    path = out / "curate_config.yaml"
    record = config_record(cfg)
    if out.exists() and any(out.iterdir()):
        old = yaml.safe_load(path.read_text()) if path.is_file() else None
        if old != record:
            if not cfg.overwrite:
                why = "holds another config (curate_config.yaml)" if old is not None else "is not a curation folder"
                raise FileExistsError(f"{out}: not empty and {why}; pass --overwrite to replace its samples")
            for name in ("samples", "recon", "index.json", "summary.json"):
                p = out / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    atomic_write(path, yaml.safe_dump(record, sort_keys=False), what="curation config")
