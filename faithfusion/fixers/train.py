"""`faithfusion fixer train`: train a Difix fixer on a paired dataset index, with checkpoints and resume.

Outputs under `out/`: `config.json` (the resolved config), `ckpt/step_*.pt` (model, optimizer,
schedule, step), `model/` (a `from_pretrained` folder, refreshed at every checkpoint and at the
end), `train_log.jsonl` (loss terms), and `val/`: per epoch an `epoch_XXX.png` grid (rows of
input | fixed | target) and a line of `metrics.jsonl` (PSNR / LPIPS of input and of fixed frames).

Recipe (Difix): AdamW (weight decay 1e-2), grad-norm clip 1.0, loss L2 + LPIPS + 0.5 Gram with the
Gram term switched on after `gram_warmup` steps, bf16 autocast on CUDA. Learning rate 2e-5 for
`sd-turbo` (Difix's README); 3e-4 with warm-up and cosine decay for the `compact` backbone,
which trains from scratch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from faithfusion.eval.metrics import psnr
from faithfusion.fixers.base import load_fixer
from faithfusion.fixers.dataset import FixerDataset, StepBatches, collate
from faithfusion.fixers.difix import Difix, DifixConfig
from faithfusion.fixers.losses import FixerLoss, lpips_from_taps
from faithfusion.train.checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint

DEFAULT_LR = {"compact": 3e-4, "sd-turbo": 2e-5}


@dataclass
class FixerTrainConfig:
    index: Path  # dataset index JSON (see faithfusion/fixers/dataset.py)
    out: Path  # output folder
    backbone: Literal["compact", "sd-turbo"] = "compact"
    pretrained: str = "stabilityai/sd-turbo"  # sd-turbo weights: local folder (hub layout) or hub id
    init: Path | None = None  # start from a saved fixer folder instead of a fresh model
    steps: int = 20000
    epochs: int | None = None  # when set: steps = epochs * (training samples // batch_size)
    batch_size: int = 4
    crop: int = 256  # random square training crops
    val_size: tuple[int, int] | None = None  # (H, W) to resize validation frames to; None: whole frames
    val_samples: int = 16  # validation frames per epoch (from the "test" split)
    val_grid: int = 4  # of which this many go into the PNG grid
    lr: float | None = None  # None: 3e-4 (compact), 2e-5 (sd-turbo)
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    schedule: Literal["constant", "cosine"] | None = None  # None: cosine (compact), constant (sd-turbo)
    warmup: int = 200  # linear warm-up steps of the learning rate
    w_l2: float = 1.0
    w_lpips: float = 1.0
    w_gram: float = 0.5
    gram_warmup: int = 2000  # the Gram term starts after this many steps (Difix)
    lpips_weights: Path | None = None
    use_reference: bool = True
    bf16: bool = True  # autocast to bf16 on CUDA
    ckpt_every: int = 1000
    keep_ckpts: int = 2
    resume: bool = True  # continue from the newest checkpoint in out/ckpt
    log_every: int = 50
    num_workers: int = 2
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    local_files_only: bool | None = None  # sd-turbo: None follows $HF_HUB_OFFLINE

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.backbone]

    def resolved_schedule(self) -> str:
        return self.schedule or ("cosine" if self.backbone == "compact" else "constant")


def _jsonable(x: Any) -> Any:
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, (tuple, list)):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    return x


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(cfg: FixerTrainConfig) -> Difix:
    if cfg.init is not None:
        model = load_fixer(cfg.init)
        if not isinstance(model, Difix):
            raise ValueError(f"{cfg.init}: holds a {type(model).__name__}, not a Difix")
        return model.train()
    return Difix(DifixConfig(backbone=cfg.backbone, pretrained=cfg.pretrained, local_files_only=cfg.local_files_only))


def lr_lambda(schedule: str, warmup: int, total: int):
    def f(step: int) -> float:
        w = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        if schedule == "constant":
            return w
        progress = min(1.0, step / max(1, total))
        return w * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    return f


# --- validation ----------------------------------------------------------------------------


def _to_uint8(x: Tensor) -> np.ndarray:  # [H, W, 3] in [0, 1]
    return (x.detach().float().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


@torch.no_grad()
def validate(model: Difix, data: FixerDataset, loss: FixerLoss, cfg: FixerTrainConfig, device: torch.device,
             epoch: int, step: int, val_dir: Path) -> dict[str, Any]:
    """PSNR / LPIPS of inputs and fixed frames over up to `val_samples` frames; writes the grid PNG."""
    model.eval()
    rows, rec = [], {"psnr_input": [], "psnr": [], "lpips_input": [], "lpips": []}
    for i in range(min(len(data), cfg.val_samples)):
        item = data[i]
        deg, tgt = item["degraded"][None].to(device), item["target"][None].to(device)  # [1, H, W, 3]
        ref = item["reference"][None].to(device) if cfg.use_reference and item["has_ref"] else None
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda"):
            fixed = model(deg, ref).float()
        rec["psnr_input"].append(float(psnr(deg, tgt)))
        rec["psnr"].append(float(psnr(fixed, tgt)))
        if loss.net is not None:
            for key, x in (("lpips_input", deg), ("lpips", fixed)):
                fa = loss.net.taps(x.permute(0, 3, 1, 2) * 2 - 1)
                fb = loss.net.taps(tgt.permute(0, 3, 1, 2) * 2 - 1)
                rec[key].append(float(lpips_from_taps(loss.net, fa, fb).mean()))
        if len(rows) < cfg.val_grid:
            rows.append(np.concatenate([_to_uint8(deg[0]), _to_uint8(fixed[0]), _to_uint8(tgt[0])], axis=1))
    model.train()
    out: dict[str, Any] = {"epoch": epoch, "step": step, "frames": len(rec["psnr"])}
    out.update({k: (float(np.mean(v)) if v else None) for k, v in rec.items()})
    val_dir.mkdir(parents=True, exist_ok=True)
    if rows:
        width = rows[0].shape[1]
        rows = [r if r.shape[1] == width else np.asarray(Image.fromarray(r).resize((width, round(r.shape[0] * width / r.shape[1]))))
                for r in rows]
        Image.fromarray(np.concatenate(rows, axis=0)).save(val_dir / f"epoch_{epoch:03d}.png")
    with open(val_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(out) + "\n")
    return out


# --- training ------------------------------------------------------------------------------


class _Progress:
    """A rich progress bar with the latest loss (silent when disabled)."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("[bold]fixer"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TimeRemainingColumn(),
                            disable=not enabled)
        self.task = self.bar.add_task("fixer", total=total, completed=start, loss=0.0)

    def __enter__(self) -> "_Progress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def update(self, step: int, loss: float) -> None:
        self.bar.update(self.task, completed=step, loss=loss)


def train_fixer(cfg: FixerTrainConfig) -> dict[str, Any]:
    """Run (or resume) a fixer training; returns a summary (steps, last loss terms, last validation)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)

    train_data = FixerDataset(cfg.index, "train", crop=cfg.crop)
    val_data = FixerDataset(cfg.index, "test", crop=None, size=cfg.val_size)
    if len(val_data) == 0:
        val_data = FixerDataset(cfg.index, "train", crop=None, size=cfg.val_size)
    per_epoch = len(train_data) // cfg.batch_size
    if per_epoch == 0:
        raise ValueError(f"{cfg.index}: {len(train_data)} training samples, fewer than a batch of {cfg.batch_size}")
    total = cfg.epochs * per_epoch if cfg.epochs is not None else cfg.steps
    (out / "config.json").write_text(json.dumps(
        {**_jsonable(dataclasses.asdict(cfg)), "resolved": {"lr": cfg.resolved_lr(), "schedule": cfg.resolved_schedule(),
         "steps": total, "steps_per_epoch": per_epoch, "device": str(device)}}, indent=2) + "\n")

    model = build_model(cfg).to(device).train()
    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=cfg.resolved_lr(), betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.resolved_schedule(), cfg.warmup, total))
    loss_fn = FixerLoss(cfg.lpips_weights, w_l2=cfg.w_l2, w_lpips=cfg.w_lpips, w_gram=cfg.w_gram).to(device)

    start = 0
    ckpt_dir = out / "ckpt"
    last = latest_checkpoint(ckpt_dir) if cfg.resume else None
    if last is not None:
        state = load_checkpoint(last, device)
        if state.get("backbone") != model.config.backbone:
            raise ValueError(f"{last}: a {state.get('backbone')} checkpoint, but this run trains {model.config.backbone}")
        model.load_saved_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = int(state["step"])

    def save(step: int) -> None:
        save_checkpoint(checkpoint_path(ckpt_dir, step), {
            "step": step, "backbone": model.config.backbone, "model": model.saved_state_dict(),
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        }, keep_last=cfg.keep_ckpts)
        model.save_pretrained(out / "model")

    sampler = StepBatches(len(train_data), cfg.batch_size, total, start=start, seed=cfg.seed)
    loader = torch.utils.data.DataLoader(train_data, batch_sampler=sampler, collate_fn=collate,
                                         num_workers=cfg.num_workers, persistent_workers=False)
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda")
    terms: dict[str, Any] = {}
    val: dict[str, Any] | None = None
    t0 = time.perf_counter()
    step = start
    with _Progress(total, start, cfg.progress) as bar, open(out / "train_log.jsonl", "a") as log:
        for batch in loader:
            deg, tgt = batch["degraded"].to(device), batch["target"].to(device)  # [N, c, c, 3]
            ref = None
            if cfg.use_reference and bool(batch["has_ref"].all()):
                ref = batch["reference"].to(device)
            with torch.autocast(**autocast):
                pred = model(deg, ref)
            loss, terms = loss_fn(pred.float(), tgt, gram=step >= cfg.gram_warmup)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                terms["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            opt.step()
            sched.step()
            step += 1
            bar.update(step, float(terms["loss"]))
            if step % cfg.log_every == 0 or step == total:
                log.write(json.dumps({"step": step, "lr": sched.get_last_lr()[0], **terms}) + "\n")
                log.flush()
            if step % per_epoch == 0 or step == total:
                val = validate(model, val_data, loss_fn, cfg, device, epoch=math.ceil(step / per_epoch), step=step,
                               val_dir=out / "val")
            if step % cfg.ckpt_every == 0 or step == total:
                save(step)
    if step == start and not (out / "model" / "config.json").is_file():
        model.save_pretrained(out / "model")
    return {"steps": step, "start": start, "seconds": time.perf_counter() - t0, "last": terms, "val": val,
            "model": str(out / "model")}


def main(argv: list[str] | None = None) -> None:
    """`python -m faithfusion.fixers.train --index ... --out ...` (the same config as `faithfusion fixer train`)."""
    import tyro

    cfg = tyro.cli(FixerTrainConfig, args=argv)
    summary = train_fixer(cfg)
    print(json.dumps(_jsonable(summary), indent=2))


if __name__ == "__main__":
    main()
