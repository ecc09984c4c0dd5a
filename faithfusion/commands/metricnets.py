"""`faithfusion metricnets train`: the vehicle detector and lane segmenter of NTA-IoU / NTL-IoU, trained on CPU."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class MetricNetsTrainConfig:
    """Train the metric networks on SynthStreet ground truth of the training seeds (0-7) at 192 x 128; the shipped
    ones in faithfusion/eval/weights/metricnets/ were made by this command with its defaults."""

    out: Path = Path("runs/metricnets")
    data: Path | None = None
    """Where the scenes and the view cache go (default OUT/data); reused when present."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)
    vehicle_steps: int = 1200
    lane_steps: int = 1000
    seed: int = 0
    init: Path | None = None
    """Continue from this metric-network folder (e.g. faithfusion/eval/weights/metricnets) instead of from scratch;
    a network given 0 steps is then copied unchanged."""
    vehicle_lr: float = 2e-3
    """Peak learning rate of the detector's one-cycle schedule."""
    lane_lr: float = 3e-3
    """Peak learning rate of the segmenter's one-cycle schedule."""


def run_metricnets_train(cfg: MetricNetsTrainConfig) -> dict:
    from faithfusion.errors import UserError
    from faithfusion.eval.metricnets.data import HELDOUT_SEEDS
    from faithfusion.eval.metricnets.train import check_steps, train_metricnets

    if set(cfg.seeds) & set(HELDOUT_SEEDS):
        raise UserError(f"--seeds {sorted(set(cfg.seeds) & set(HELDOUT_SEEDS))}: held-out seeds (8-12) are not for training")
    if cfg.init is not None and not (Path(cfg.init) / "config.json").is_file():
        raise UserError(f"--init {cfg.init}: not a metric-network folder (no config.json)")
    try:
        check_steps(cfg.vehicle_steps, cfg.lane_steps, cfg.init is not None)
    except ValueError as e:
        raise UserError(str(e)) from None
    return train_metricnets(cfg.out, cfg.data, cfg.seeds, cfg.vehicle_steps, cfg.lane_steps, cfg.seed, init=cfg.init,
                            vehicle_lr=cfg.vehicle_lr, lane_lr=cfg.lane_lr)


def metricnets_commands() -> dict:
    return {"train": (MetricNetsTrainConfig, run_metricnets_train, "train the NTA-IoU / NTL-IoU metric networks (CPU)")}
