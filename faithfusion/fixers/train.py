"""`faithfusion fixer train`: train a fixer on a paired dataset index, with checkpoints and resume.

`model`: `difix` (frames, the image samples of the index) or a video fixer, `eigent`,
`eigent-cogvideox`, `genfusion` or `genfusion-dynamicrafter` (GenFusion's published DynamiCrafter checkpoint from
`--video-pretrained`, trained on its own v-prediction objective, `dynamicrafter.GenFusionDynamiCrafter.training_loss`) (windows of `frames` frames, the video samples of the index; the
random crop is the same in every frame). Video fixers get the per-frame EIG maps (EIGent) or the
render depth (GenFusion) of the samples; GenFusion adds `w_depth` x a depth term where the sample has
`target_depth`: `depth_loss="log_depth"` (default) the mean |log depth error| of the depth `fix` returns
(`genfusion.log_depth_l1`), or `"disparity"` the L1 on the normalised disparity (target normalised with
the render window's range). Both average over the target's valid pixels (finite depth > 0), the pixels
that the depth abs rel of the evaluation (`eval.temporal.abs_rel`: ground truth > 0) averages over.

Outputs under `out/`: `config.json` (the resolved config), `ckpt/step_*.pt` (model, optimizer,
schedule, step), `model/` (a `from_pretrained` folder, refreshed at every checkpoint and at the
end), `train_log.jsonl` (loss terms), and `val/`: per epoch an `epoch_XXX.png` grid (rows of
input | fixed | target) and a line of `metrics.jsonl` (PSNR / LPIPS of input and of fixed frames; for
GenFusion both depth terms and the depth abs rel of the render and of the fixed depth).

`difix_eig` (`--difix-eig`): the compact Difix is conditioned on the calibrated EIG map of each sample (one
more input channel, `DifixConfig.eig_condition`); every sample of the index must carry an `eig` map (curation
writes them by default), else a FixerDataError names the index. With `--init` of an unconditioned compact
Difix (e.g. the shipped weights) it starts from those weights, the EIG channel at zero (`difix.condition_on_eig`).

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
from faithfusion.fixers.load import load_fixer
from faithfusion.fixers.dataset import FixerDataset, StepBatches, VideoFixerDataset, collate, require_map
from faithfusion.fixers.difix import Difix, DifixConfig, condition_on_eig
from faithfusion.fixers.losses import FixerLoss, lpips_from_taps, temporal_difference_l1
from faithfusion.train.checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint
from faithfusion.utils.atomic import append_line, atomic_write, make_output_folder, remove_stale_temps, trim_partial_line
from faithfusion.utils.device import resolve_device
from faithfusion.utils.jsonio import to_plain
from faithfusion.utils.progress import ProgressBar

DEFAULT_LR = {"compact": 3e-4, "sd-turbo": 2e-5, "eigent": 3e-4, "genfusion": 3e-4, "eigent-cogvideox": 1e-4,
              "genfusion-dynamicrafter": 1e-5}
PRETRAINED_BACKBONES = ("sd-turbo", "eigent-cogvideox", "genfusion-dynamicrafter")  # constant learning rate by default
ModelName = Literal["difix", "eigent", "eigent-cogvideox", "genfusion", "genfusion-dynamicrafter"]


@dataclass
class FixerTrainConfig:
    index: Path  # dataset index JSON (see faithfusion/fixers/dataset.py)
    out: Path  # output folder
    backbone: Literal["compact", "sd-turbo"] = "compact"
    pretrained: str = "stabilityai/sd-turbo"  # sd-turbo weights: local folder (hub layout) or hub id
    model: ModelName = "difix"  # difix (frames) | eigent | eigent-cogvideox | genfusion (video windows)
    video_pretrained: str = "THUDM/CogVideoX-2b"  # eigent-cogvideox: a CogVideoX folder (hub layout; its branch/ or a fresh VideoPainter branch) or a VideoPainter branch folder, path or cached hub id; genfusion-dynamicrafter: GenFusion's DynamiCrafter .ckpt
    frames: int = 16  # frames per training window (video fixers)
    depth_loss: Literal["log_depth", "disparity"] = "log_depth"  # GenFusion, where target_depth is given: log_depth = mean |log depth error| of the fixed depth; disparity = L1 on normalised disparity
    w_depth: float = 1.0  # GenFusion: weight of the depth term (0: none)
    init: Path | None = None  # start from a saved fixer folder instead of a fresh model
    difix_eig: bool = False  # Difix: condition on the calibrated EIG map of each sample (an extra input channel; the index must carry EIG maps)
    eigent_on_difix: Path | None = None  # EIGent: build on this saved compact Difix (its per-frame fix is the base the video branch corrects; the Difix branch is frozen)
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
    w_temporal: float = 0.0  # video fixers: weight of the flicker term, mean |frame-to-frame change of the fix - of the target| (losses.temporal_difference_l1)
    gram_warmup: int = 2000  # the Gram term starts after this many steps (Difix)
    lpips_weights: Path | None = None
    use_reference: bool = True
    bf16: bool = True  # autocast to bf16 on CUDA
    ckpt_every: int = 1000
    keep_ckpts: int = 2
    resume: bool = True  # continue from the newest checkpoint in out/ckpt
    max_seconds: float = 0.0  # stop (with a checkpoint) after this much training time; a re-run resumes. 0 = no limit
    log_every: int = 50
    num_workers: int = 2
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    local_files_only: bool | None = None  # pretrained weights: None or True = local files only; False allows hub downloads

    @property
    def is_video(self) -> bool:
        return self.model != "difix"

    def lr_key(self) -> str:
        return self.backbone if self.model == "difix" else self.model

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.lr_key()]

    def resolved_schedule(self) -> str:
        return self.schedule or ("constant" if self.lr_key() in PRETRAINED_BACKBONES else "cosine")


MODEL_CLASSES = {"difix": "Difix", "eigent": "EIGent", "eigent-cogvideox": "EIGentCogVideoX", "genfusion": "GenFusion",
                 "genfusion-dynamicrafter": "GenFusionDynamiCrafter"}


def trimmed(path: Path) -> Path:
    """`path` without a half line left by a kill (the log is appended to line by line)."""
    trim_partial_line(path)
    return path


def check_options(cfg: FixerTrainConfig) -> None:
    """Raise ValueError for options that do not go together (before any data is read)."""
    if cfg.difix_eig and cfg.model != "difix":
        raise ValueError(f"--difix-eig conditions Difix on EIG: it needs --model difix, not {cfg.model!r}")
    if cfg.difix_eig and cfg.backbone != "compact":
        raise ValueError(f"--difix-eig needs the compact backbone; {cfg.backbone!r} takes no EIG channel")


def build_model(cfg: FixerTrainConfig) -> Any:
    check_options(cfg)
    if cfg.eigent_on_difix is not None and (cfg.model != "eigent" or cfg.init is not None):
        raise ValueError("--eigent-on-difix builds a fresh EIGent: it needs --model eigent and no --init")
    if cfg.init is not None:
        model = load_fixer(cfg.init)
        if type(model).__name__ != MODEL_CLASSES[cfg.model]:
            raise ValueError(f"{cfg.init}: holds a {type(model).__name__}, not a {MODEL_CLASSES[cfg.model]}")
        if isinstance(model, Difix) and model.eig_conditioned != cfg.difix_eig:
            if not cfg.difix_eig:
                raise ValueError(f"{cfg.init}: holds a Difix conditioned on EIG; pass --difix-eig to train it")
            model = condition_on_eig(model)  # its weights, the EIG channel at zero
        return model.train()
    if cfg.model == "eigent":
        from faithfusion.fixers.eigent import EIGent

        return EIGent() if cfg.eigent_on_difix is None else EIGent.on_difix(load_fixer(cfg.eigent_on_difix))
    if cfg.model == "eigent-cogvideox":  # a CogVideoX folder (+ VideoPainter branch) or a branch folder, as --video-fixer
        model = load_fixer(cfg.video_pretrained, allow_download=cfg.local_files_only is False)
        if type(model).__name__ != "EIGentCogVideoX":
            raise ValueError(f"--video-pretrained {cfg.video_pretrained}: holds a {type(model).__name__}, not a CogVideoX")
        return model.train()
    if cfg.model == "genfusion-dynamicrafter":  # GenFusion's published DynamiCrafter checkpoint, as --video-fixer
        model = load_fixer(cfg.video_pretrained, allow_download=cfg.local_files_only is False)
        if type(model).__name__ != "GenFusionDynamiCrafter":
            raise ValueError(f"--video-pretrained {cfg.video_pretrained}: holds a {type(model).__name__}, not a "
                             "DynamiCrafter checkpoint")
        return model.train()
    if cfg.model == "genfusion":
        from faithfusion.fixers.genfusion import GenFusion

        return GenFusion()
    return Difix(DifixConfig(backbone=cfg.backbone, pretrained=cfg.pretrained, local_files_only=cfg.local_files_only,
                             eig_condition=cfg.difix_eig))


def model_tag(model: Any) -> str:
    """What a checkpoint records of its model: Difix's backbone (`+eig` when conditioned on EIG), or the video
    fixer's class name."""
    if isinstance(model, Difix):
        return model.config.backbone + ("+eig" if model.eig_conditioned else "")
    return type(model).__name__


def difix_eig(model: Any, item_eig: Tensor | None, device: torch.device) -> Tensor | None:
    """The EIG maps `[N, H, W]` a Difix step feeds its model: the batch's for a conditioned Difix, else None."""
    if not getattr(model, "eig_conditioned", False):
        return None
    if item_eig is None:
        raise ValueError("a Difix conditioned on EIG got a batch without EIG maps")
    return item_eig.to(device)


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
        eig = difix_eig(model, item["eig"][None] if "eig" in item else None, device)  # [1, H, W] or None
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda"):
            fixed = model(deg, ref, eig).float()
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
    out["lpips_net"] = loss.net.name if loss.net is not None else f"unavailable: {loss.fallback}"
    val_dir.mkdir(parents=True, exist_ok=True)
    if rows:
        width = rows[0].shape[1]
        rows = [r if r.shape[1] == width else np.asarray(Image.fromarray(r).resize((width, round(r.shape[0] * width / r.shape[1]))))
                for r in rows]
        Image.fromarray(np.concatenate(rows, axis=0)).save(val_dir / f"epoch_{epoch:03d}.png")
    append_line(val_dir / "metrics.jsonl", json.dumps(out))
    return out


# --- video fixers ----------------------------------------------------------------------------


def video_forward(model: Any, batch: dict[str, Any], cfg: FixerTrainConfig, device: torch.device
                  ) -> tuple[Tensor, Tensor | None, Any]:
    """A batch of windows through a video fixer -> (images `[N, T, h, w, 3]`, GenFusion's normalised
    disparity `[N, T, h, w]` or None, GenFusion's disparity range or None)."""
    from faithfusion.fixers.genfusion import GenFusion

    deg = batch["degraded"].to(device)  # [N, T, c, c, 3]
    ref = batch["reference"].to(device) if cfg.use_reference and bool(batch["has_ref"].all()) else None
    if hasattr(model, "training_loss"):  # a diffusion model: validation samples it (`fix`), as fusion does
        depth = batch["depth"].to(device) if "depth" in batch else None
        return model.fix(deg, ref, depth=depth).images.float(), None, None
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda")
    if isinstance(model, GenFusion):
        depth = batch["depth"].to(device) if "depth" in batch else None
        ref_depth = batch["reference_depth"].to(device) if ref is not None and "reference_depth" in batch else None
        disp, valid, rdisp, rvalid, rng = model.prepare_depth(depth, ref_depth, deg)
        with torch.autocast(**autocast):
            rgb, d = model(deg, disp, valid, ref, rdisp, rvalid)
        return rgb.float(), d.float(), rng
    eig = batch["eig"].to(device) if "eig" in batch else None
    with torch.autocast(**autocast):
        return model(deg, ref, eig).float(), None, None


def disparity_l1(model: Any, disp: Tensor, rng: Any, target_depth: Tensor) -> Tensor:
    """Mean |predicted - target| normalised disparity over the target's valid pixels."""
    from faithfusion.fixers.genfusion import disparity_range, normalise_disparity

    rng = rng if rng is not None else disparity_range(target_depth)
    td, tv = normalise_disparity(target_depth.float(), rng, model.config.min_range)
    return ((disp - td).abs() * tv).sum() / tv.sum().clamp(min=1)


def log_depth_l1(model: Any, disp: Tensor, rng: Any, target_depth: Tensor) -> Tensor:
    """Mean |log(predicted depth) - log(target depth)| over the target's valid pixels (`genfusion.log_depth_l1`)."""
    from faithfusion.fixers.genfusion import disparity_range
    from faithfusion.fixers.genfusion import log_depth_l1 as _log_depth_l1

    rng = rng if rng is not None else disparity_range(target_depth)
    return _log_depth_l1(disp, rng, target_depth.float(), model.config.min_range)


DEPTH_TERMS = {"log_depth": ("log_depth_l1", log_depth_l1), "disparity": ("disparity_l1", disparity_l1)}


def video_loss(model: Any, batch: dict[str, Any], loss_fn: FixerLoss, cfg: FixerTrainConfig, device: torch.device,
               gram: bool) -> tuple[Tensor, dict[str, Any]]:
    if hasattr(model, "training_loss"):  # a diffusion model trains on its own objective (GenFusion's v-prediction MSE)
        if not cfg.use_reference:
            batch = {k: v for k, v in batch.items() if k != "reference"}
        return model.training_loss(batch, device)
    pred, disp, rng = video_forward(model, batch, cfg, device)
    target = batch["target"].to(device)
    loss, terms = loss_fn(pred, target, gram=gram)
    if cfg.w_temporal > 0 and pred.shape[1] > 1:
        term = temporal_difference_l1(pred, target)
        loss = loss + cfg.w_temporal * term
        terms["temporal_l1"] = float(term.detach())
        terms["loss"] = float(loss.detach())
    if disp is not None and "target_depth" in batch and cfg.w_depth > 0:
        name, fn = DEPTH_TERMS[cfg.depth_loss]
        term = fn(model, disp, rng, batch["target_depth"].to(device))
        loss = loss + cfg.w_depth * term
        terms[name] = float(term.detach())
        terms["loss"] = float(loss.detach())
    return loss, terms


def depth_abs_rel(pred: Tensor, target: Tensor) -> float | None:
    """`eval.temporal.abs_rel` (over target > 0), or None where the target has no depth."""
    from faithfusion.eval.temporal import abs_rel

    return abs_rel(pred.float().cpu(), target.float().cpu()) if bool((target > 0).any()) else None


@torch.no_grad()
def validate_video(model: Any, data: VideoFixerDataset, loss: FixerLoss, cfg: FixerTrainConfig, device: torch.device,
                   epoch: int, step: int, val_dir: Path) -> dict[str, Any]:
    """PSNR / LPIPS of inputs and fixed windows over up to `val_samples` windows, and for GenFusion both depth
    terms (`log_depth_l1`, `disparity_l1`) and the depth abs rel of the render (`depth_abs_rel_input`) and of
    the fixed depth (`depth_abs_rel`) against the target depth, per window as `evaluate_video` computes it;
    the grid PNG shows each window's middle frame (input | fixed | target)."""
    from faithfusion.fixers.genfusion import denormalise_disparity

    model.eval()
    rec: dict[str, list[float]] = {k: [] for k in ("psnr_input", "psnr", "lpips_input", "lpips", "log_depth_l1",
                                                    "disparity_l1", "depth_abs_rel_input", "depth_abs_rel")}
    rows = []
    for i in range(min(len(data), cfg.val_samples)):
        batch = collate([data[i]])
        fixed, disp, rng = video_forward(model, batch, cfg, device)
        deg, tgt = batch["degraded"][0].to(device), batch["target"][0].to(device)  # [T, H, W, 3]
        fixed = fixed[0]
        rec["psnr_input"].append(float(psnr(deg, tgt)))
        rec["psnr"].append(float(psnr(fixed, tgt)))
        if loss.net is not None:
            fb = loss.net.taps(tgt.permute(0, 3, 1, 2) * 2 - 1)
            for key, x in (("lpips_input", deg), ("lpips", fixed)):
                rec[key].append(float(lpips_from_taps(loss.net, loss.net.taps(x.permute(0, 3, 1, 2) * 2 - 1), fb).mean()))
        if disp is not None and "target_depth" in batch:
            tdepth = batch["target_depth"].to(device)
            for name, fn in DEPTH_TERMS.values():
                rec[name].append(float(fn(model, disp, rng, tdepth)))
            if rng is not None:  # the depth `fix` returns, against the target depth
                for key, pd in (("depth_abs_rel_input", batch["depth"].to(device)),
                                ("depth_abs_rel", denormalise_disparity(disp, rng, model.config.min_range))):
                    value = depth_abs_rel(pd[0], tdepth[0])
                    if value is not None:
                        rec[key].append(value)
        if len(rows) < cfg.val_grid:
            k = deg.shape[0] // 2
            rows.append(np.concatenate([_to_uint8(deg[k]), _to_uint8(fixed[k]), _to_uint8(tgt[k])], axis=1))
    model.train()
    out: dict[str, Any] = {"epoch": epoch, "step": step, "windows": len(rec["psnr"])}
    out.update({k: (float(np.mean(v)) if v else None) for k, v in rec.items()})
    out["lpips_net"] = loss.net.name if loss.net is not None else f"unavailable: {loss.fallback}"
    val_dir.mkdir(parents=True, exist_ok=True)
    if rows:
        Image.fromarray(np.concatenate(rows, axis=0)).save(val_dir / f"epoch_{epoch:03d}.png")
    append_line(val_dir / "metrics.jsonl", json.dumps(out))
    return out


# --- training ------------------------------------------------------------------------------


def train_fixer(cfg: FixerTrainConfig) -> dict[str, Any]:
    """Run (or resume) a fixer training; returns a summary (steps, last loss terms, last validation)."""
    check_options(cfg)
    out = Path(cfg.out)
    make_output_folder(out, "fixer run folder")
    remove_stale_temps(out)  # left by a killed run
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)

    if cfg.is_video:
        train_data = VideoFixerDataset(cfg.index, "train", crop=cfg.crop, frames=cfg.frames)
        val_data = VideoFixerDataset(cfg.index, "test", crop=None, size=cfg.val_size, frames=cfg.frames)
        if len(val_data) == 0:
            val_data = VideoFixerDataset(cfg.index, "train", crop=None, size=cfg.val_size, frames=cfg.frames)
    else:
        train_data = FixerDataset(cfg.index, "train", crop=cfg.crop)
        val_data = FixerDataset(cfg.index, "test", crop=None, size=cfg.val_size)
        if len(val_data) == 0:
            val_data = FixerDataset(cfg.index, "train", crop=None, size=cfg.val_size)
        if cfg.difix_eig:
            for data in (train_data, val_data):
                require_map(data, "eig", "--difix-eig")
    per_epoch = len(train_data) // cfg.batch_size
    if per_epoch == 0:
        raise ValueError(f"{cfg.index}: {len(train_data)} training samples, fewer than a batch of {cfg.batch_size}")
    total = cfg.epochs * per_epoch if cfg.epochs is not None else cfg.steps
    atomic_write(out / "config.json", json.dumps(
        {**to_plain(dataclasses.asdict(cfg)), "resolved": {"lr": cfg.resolved_lr(), "schedule": cfg.resolved_schedule(),
         "steps": total, "steps_per_epoch": per_epoch, "device": str(device)}}, indent=2) + "\n", what="fixer run config")

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
        if state.get("backbone") != model_tag(model):
            raise ValueError(f"{last}: a {state.get('backbone')} checkpoint, but this run trains {model_tag(model)}")
        model.load_saved_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = int(state["step"])

    def save(step: int) -> None:
        save_checkpoint(checkpoint_path(ckpt_dir, step), {
            "step": step, "backbone": model_tag(model), "model": model.saved_state_dict(),
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
    with ProgressBar("fixer", total, start=start, enabled=cfg.progress, figures="loss {task.fields[loss]:.4f}",
                     loss=0.0) as bar, open(trimmed(out / "train_log.jsonl"), "a", buffering=1) as log:
        for batch in loader:
            if cfg.is_video:  # windows [N, T, c, c, 3]
                loss, terms = video_loss(model, batch, loss_fn, cfg, device, gram=step >= cfg.gram_warmup)
            else:
                deg, tgt = batch["degraded"].to(device), batch["target"].to(device)  # [N, c, c, 3]
                ref = None
                if cfg.use_reference and bool(batch["has_ref"].all()):
                    ref = batch["reference"].to(device)
                eig = difix_eig(model, batch.get("eig"), device)  # [N, c, c] for a conditioned Difix, else None
                with torch.autocast(**autocast):
                    pred = model(deg, ref, eig)
                loss, terms = loss_fn(pred.float(), tgt, gram=step >= cfg.gram_warmup)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                terms["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            opt.step()
            sched.step()
            step += 1
            bar.update(step, loss=float(terms["loss"]))
            if step % cfg.log_every == 0 or step == total:
                log.write(json.dumps({"step": step, "lr": sched.get_last_lr()[0], **terms}) + "\n")
                log.flush()
            if step % per_epoch == 0 or step == total:
                val = (validate_video if cfg.is_video else validate)(
                    model, val_data, loss_fn, cfg, device, epoch=math.ceil(step / per_epoch), step=step, val_dir=out / "val")
            out_of_time = cfg.max_seconds > 0 and time.perf_counter() - t0 > cfg.max_seconds
            if step % cfg.ckpt_every == 0 or step == total or out_of_time:
                save(step)
            if out_of_time:
                print(f"fixer train: stopped at step {step} of {total} after {cfg.max_seconds:.0f} s; re-run to resume")
                break
    if step == start and not (out / "model" / "config.json").is_file():
        model.save_pretrained(out / "model")
    return {"steps": step, "start": start, "seconds": time.perf_counter() - t0, "last": terms, "val": val,
            "model": str(out / "model")}


def main(argv: list[str] | None = None) -> None:
    """`python -m faithfusion.fixers.train --index ... --out ...` (the same config as `faithfusion fixer train`)."""
    import tyro

    cfg = tyro.cli(FixerTrainConfig, args=argv)
    summary = train_fixer(cfg)
    print(json.dumps(to_plain(summary), indent=2))


if __name__ == "__main__":
    main()
