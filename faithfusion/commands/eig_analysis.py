"""`faithfusion eig-analysis`: does EIG predict the error of lane-shifted renders?

One run (`--run`): eig/analysis.py, OUT/eig_vs_error.{json,png}. Many runs (`--runs R1 R2 ...`): per-view
statistics of every map on each run's own SynthStreet scene (eig/view_stats.py, OUT/views/NAME.json, reused when
present with the same settings), then their means and 95 % intervals over scenes (eig/multiscene.py):
OUT/eig_analysis.json, OUT/eig_analysis.md, OUT/retained.png.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from faithfusion.eig.analysis import analyse, plot_analysis
from faithfusion.errors import UserError


class AnalysisSettingsError(UserError, ValueError):
    """Flags that do not make a multi-scene analysis, or an output folder made with other settings."""


@dataclass
class AnalysisConfig:
    """EIG against the true error of lane-shifted renders of a run on a SynthStreet scene."""

    run: Path = Path("runs/recon")
    """One run to analyse (ignored when --runs is given)."""
    runs: tuple[Path, ...] = ()
    """Many runs, each on its own SynthStreet scene (its run config names the data folder); needs --out."""
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
    form: Literal["fisherrf", "faithfusion", "pixel"] = "fisherrf"
    jitter_renders: int = 8
    jitter_m: float = 0.02
    jitter_deg: float = 0.2
    samples_per_view: int = 20_000
    calib_views: int = 16
    seed: int = 0
    progress: bool = True
    variants: tuple[str, ...] = ()
    """Other EIG definitions to evaluate on the same pixels (see `parse_variant`), e.g. faithfusion+log+box=5."""
    forms: tuple[str, ...] = ("fisherrf", "faithfusion")
    """--runs: the EIG forms to compare, by the session's form names (fisherrf, faithfusion, pixel; combined, the
    per-view rank mean of pixel and the image gradient, needs pixel among them)."""
    reference: str = "fisherrf"
    """--runs: the map that paired differences are taken against."""
    bootstrap: int = 2000
    """--runs: hierarchical bootstrap resamples (scenes, then views), seeded by --seed."""
    unconstrained_quantile: float = 0.01
    """--runs: a Gaussian is unconstrained when its summed H_train is at most this quantile of the positive ones."""
    exclude_sky: bool = True
    """--runs: evaluate only the non-sky pixels of each shifted view (SynthStreet's sky masks)."""
    aggregate: bool = True
    """--runs: write the summary after the per-view statistics (off: only the statistics, e.g. one run per process)."""


def run_analysis(cfg: AnalysisConfig, session=None, loaded=None) -> dict:
    """Load the run (unless given), build the EIG session, analyse every shift, write JSON + PNG (--runs: the
    multi-scene analysis)."""
    if cfg.runs:
        return run_multiscene(cfg)
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


STAT_KEYS = ("shifts", "frame_stride", "max_frames", "forms", "jitter_renders", "jitter_m", "jitter_deg",
             "samples_per_view", "calib_views", "seed", "unconstrained_quantile", "exclude_sky")
"""The settings a per-view statistics file is made with (a file made otherwise is not reused)."""


def scene_names(runs: tuple[Path, ...]) -> list[str]:
    """The name of each run's statistics file: its folder name (two runs of one name are refused)."""
    names = [Path(r).resolve().name for r in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise AnalysisSettingsError(f"--runs: several run folders are named {', '.join(twice)}; "
                                    "the per-scene files are named after the folder, so give them distinct names")
    return names


def check_settings(cfg: AnalysisConfig) -> None:
    from faithfusion.utils.flags import require_at_least, require_between

    if cfg.out is None:
        raise AnalysisSettingsError("--runs needs --out (the folder for the per-view statistics and the summary)")
    from faithfusion.eig.session import SESSION_FORMS
    from faithfusion.eig.view_stats import check_forms

    unknown = [f for f in cfg.forms if f not in SESSION_FORMS]
    if not cfg.forms or unknown:
        raise AnalysisSettingsError(f"--forms {' '.join(cfg.forms)}: name one or more EIG forms of "
                                    f"{', '.join(SESSION_FORMS)}")
    try:
        check_forms(cfg.forms)
    except ValueError as e:
        raise AnalysisSettingsError(str(e)) from None
    if cfg.reference not in (*cfg.forms, "one_minus_alpha", "jitter_std", "render_grad", "unconstrained"):
        raise AnalysisSettingsError(f"--reference {cfg.reference!r} is none of the maps (--forms or a baseline)")
    require_at_least("--bootstrap", cfg.bootstrap, 100)
    require_at_least("--samples-per-view", cfg.samples_per_view, 10)
    require_between("--unconstrained-quantile", cfg.unconstrained_quantile, 0.0, 0.5)


def run_multiscene(cfg: AnalysisConfig) -> dict:
    """Per-view statistics of every run (kept in OUT/views/), then the bootstrap summary of all of them."""
    import torch

    from faithfusion.eig.multiscene import aggregate, markdown_report, plot_retained
    from faithfusion.eig.view_stats import scene_view_stats
    from faithfusion.train.run import load_run
    from faithfusion.utils.atomic import atomic_write
    from faithfusion.utils.device import resolve_device
    from faithfusion.utils.jsonio import read_json, save_json_atomic, to_plain

    check_settings(cfg)
    out = Path(cfg.out)
    settings = to_plain({k: getattr(cfg, k) for k in STAT_KEYS})
    scenes = []
    for run, name in zip(cfg.runs, scene_names(cfg.runs)):
        path = out / "views" / f"{name}.json"
        if path.is_file():
            stats = read_json(path, AnalysisSettingsError)
            if stats.get("settings") != settings:
                raise AnalysisSettingsError(f"{path}: made with other settings ({stats.get('settings')}); "
                                            "use another --out or remove the file")
            print(f"{name}: reusing {path}")
        else:
            loaded = load_run(Path(run), resolve_device(cfg.device))
            stats = scene_view_stats(loaded, Path(loaded.cfg.data), cfg, name)
            stats = {"run": str(run), "settings": settings, **stats}
            save_json_atomic(path, stats, indent=None)  # one line: the files travel back from the GPU machine
            del loaded
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            print(f"{name}: {len(stats['views'])} views -> {path}")
        scenes.append(stats)
    if not cfg.aggregate:
        return {"scenes": [s["scene"] for s in scenes]}
    masks = {k: "present" if all(s["masks"][k] == "present" for s in scenes) else
             next(s["masks"][k] for s in scenes if s["masks"][k] != "present") for k in scenes[0]["masks"]}
    summary = {
        "config": to_plain(asdict(cfg)), "reference": cfg.reference,
        "bootstrap": {"n": cfg.bootstrap, "seed": cfg.seed, "level": 0.95,
                      "unit": "scenes with replacement, then views within each; statistic: mean over scenes of "
                              "the per-view mean (undefined views skipped)"},
        "pixels": f"up to {cfg.samples_per_view} sampled per view" + (", sky excluded" if cfg.exclude_sky else ""),
        "masks": masks, "unconstrained_rule": scenes[0]["unconstrained"]["rule"],
        "scenes": [{"name": s["scene"], "run": s["run"], "data": s["data"], "views": len(s["views"]),
                    "unconstrained": s["unconstrained"]} for s in scenes],
        "per_shift": aggregate(scenes, cfg.reference, cfg.bootstrap, cfg.seed),
    }
    save_json_atomic(out / "eig_analysis.json", summary)
    atomic_write(out / "eig_analysis.md", markdown_report(summary))
    plot_retained(summary, out / "retained.png")
    print(f"wrote {out / 'eig_analysis.json'}, eig_analysis.md, retained.png ({len(scenes)} scenes)")
    return summary
