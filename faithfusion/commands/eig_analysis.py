"""`faithfusion eig-analysis`: does EIG predict the error of lane-shifted renders? (the library: eig/analysis.py)"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from faithfusion.eig.analysis import analyse, plot_analysis


@dataclass
class AnalysisConfig:
    """EIG against the true error of lane-shifted renders of a run on a SynthStreet scene."""

    run: Path = Path("runs/recon")
    data: Path | None = None
    """SynthStreet scene folder with gt_shifted/ (default: the run's data folder)."""
    out: Path | None = None
    """Output folder (default: RUN/eig_analysis)."""
    shifts: tuple[float, ...] = (3.0, 6.0)
    """Shift magnitudes in metres; both signs are evaluated."""
    frame_stride: int = 1
    """Every k-th timestep (all its cameras)."""
    max_frames: int = 0
    """At most this many frames per shift, evenly spaced (0 = all)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    form: Literal["fisherrf", "faithfusion", "diag"] = "fisherrf"
    jitter_renders: int = 8
    jitter_m: float = 0.02
    jitter_deg: float = 0.2
    samples_per_view: int = 20_000
    calib_views: int = 16
    seed: int = 0
    progress: bool = True
    variants: tuple[str, ...] = ()
    """Other EIG definitions to evaluate on the same pixels (see `parse_variant`), e.g. faithfusion+log+box=5."""


def run_analysis(cfg: AnalysisConfig, session=None, loaded=None) -> dict:
    """Load the run (unless given), build the EIG session, analyse every shift, write JSON + PNG."""
    from faithfusion.utils.jsonio import save_json_atomic
    from faithfusion.eig.session import build_session
    from faithfusion.utils.jsonio import to_plain
    from faithfusion.train.run import load_run
    from faithfusion.utils.device import resolve_device

    if loaded is None:
        loaded = load_run(cfg.run, resolve_device(cfg.device))
    if session is None:
        session = build_session(loaded.trainer, form=cfg.form, calib_views=cfg.calib_views, progress=cfg.progress)
    data_root = Path(cfg.data) if cfg.data is not None else Path(loaded.cfg.data)
    out = Path(cfg.out) if cfg.out is not None else Path(cfg.run) / "eig_analysis"
    result = analyse(session, loaded.scene, data_root, cfg, loaded.cfg.scale)
    result = {"config": to_plain(asdict(cfg)), "calibration": session.calibration.to_dict(),
              "timings": session.timings, **result}
    save_json_atomic(out / "eig_vs_error.json", result)
    plot_analysis(result, out / "eig_vs_error.png")
    return result
