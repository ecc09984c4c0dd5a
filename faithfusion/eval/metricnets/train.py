"""How are the metric networks trained? On SynthStreet ground-truth views of the training seeds, on the CPU.

The detector learns CenterNet's targets (a Gaussian per vehicle centre, focal loss; L1 on log size and offset at
the centres; no loss on the background inside ignored vehicles' boxes) on whole 192 x 128 views; the segmenter
learns the lane-line masks (binary cross-entropy + Dice) on random 64 x 96 crops. Both see horizontal flips, colour
jitter, blur and noise (a render is softer than the ground truth). Deterministic per seed on one thread.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from faithfusion.eval.metricnets.nets import STRIDE, LaneNet, VehicleNet


def centre_targets(boxes: np.ndarray, ignore: np.ndarray, H: int, W: int):
    """Targets of one view at stride 4: heat [h, w], size [2, h, w] (log w, log h), offset [2, h, w],
    centre [h, w] bool, weight [h, w] (0 on the background inside ignored boxes)."""
    h, w = H // STRIDE, W // STRIDE
    heat = np.zeros((h, w), np.float32)
    size = np.zeros((2, h, w), np.float32)
    offset = np.zeros((2, h, w), np.float32)
    centre = np.zeros((h, w), bool)
    weight = np.ones((h, w), np.float32)
    for x0, y0, x1, y1 in ignore:
        weight[int(y0 // STRIDE):int(math.ceil(y1 / STRIDE)), int(x0 // STRIDE):int(math.ceil(x1 / STRIDE))] = 0.0
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for x0, y0, x1, y1 in boxes:
        bw, bh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        i, j = min(int(cx), w - 1), min(int(cy), h - 1)
        sx, sy = max(bw / STRIDE / 6, 0.5), max(bh / STRIDE / 6, 0.5)
        heat = np.maximum(heat, np.exp(-((xs - i) ** 2 / (2 * sx * sx) + (ys - j) ** 2 / (2 * sy * sy))))
        heat[j, i] = 1.0
        centre[j, i] = True
        size[:, j, i] = np.log([bw, bh])
        offset[:, j, i] = [cx - i, cy - j]
    weight[heat > 0.01] = 1.0
    return heat, size, offset, centre, weight


def focal_loss(logits: Tensor, heat: Tensor, weight: Tensor) -> Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of centres."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p ** 2 * (1 - heat) ** 4 * (1 - pos) * weight).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1.0)


def augment(x: Tensor, rng: np.random.Generator) -> Tensor:  # [B, 3, H, W] in [0, 1]
    """Colour jitter, blur (sigma up to 1.2 px) and noise per image."""
    B = x.shape[0]
    gain = torch.from_numpy(rng.uniform(0.75, 1.25, (B, 1, 1, 1)) * rng.uniform(0.92, 1.08, (B, 3, 1, 1))).float()
    bias = torch.from_numpy(rng.uniform(-0.06, 0.06, (B, 1, 1, 1))).float()
    x = x * gain + bias
    out = []
    for b in range(B):
        s = rng.uniform(0, 1.2) if rng.random() < 0.5 else 0.0
        xb = x[b:b + 1]
        if s > 0.2:
            r = torch.arange(-2, 3, dtype=torch.float32)
            k = torch.exp(-r ** 2 / (2 * s * s))
            k = k / k.sum()
            xb = F.conv2d(F.pad(xb, (2, 2, 0, 0), mode="replicate"), k.view(1, 1, 1, 5).repeat(3, 1, 1, 1), groups=3)
            xb = F.conv2d(F.pad(xb, (0, 0, 2, 2), mode="replicate"), k.view(1, 1, 5, 1).repeat(3, 1, 1, 1), groups=3)
        out.append(xb)
    x = torch.cat(out)
    x = x + torch.from_numpy(rng.normal(0, rng.uniform(0, 0.02), x.shape)).float()
    return x.clamp(0, 1)


def _images(arrays: dict, idx: np.ndarray) -> Tensor:
    return torch.from_numpy(arrays["images"][idx]).permute(0, 3, 1, 2).float() / 255.0


def train_vehicles(arrays: dict, steps: int = 1200, batch: int = 16, lr: float = 2e-3, seed: int = 0, log=print,
                   net: VehicleNet | None = None) -> VehicleNet:
    """The detector, trained for `steps` batches of whole views (from `net` when given, else from scratch)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = VehicleNet() if net is None else net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    N, H, W = arrays["images"].shape[:3]
    by_view: list[list[np.ndarray]] = [[np.zeros((0, 4)), np.zeros((0, 4))] for _ in range(N)]
    for v, kept, *box in arrays["boxes"]:
        by_view[int(v)][0 if kept else 1] = np.vstack([by_view[int(v)][0 if kept else 1], box])
    t0 = time.time()
    for step in range(steps):
        idx = rng.integers(0, N, batch)
        flip = rng.random(batch) < 0.5
        x = _images(arrays, idx)
        x[flip] = x[flip].flip(-1)
        targets = []
        for b, i in enumerate(idx):
            kept, ign = (bx.copy() for bx in by_view[i])
            if flip[b]:
                for bx in (kept, ign):
                    bx[:, [0, 2]] = W - bx[:, [2, 0]]
            targets.append(centre_targets(kept, ign, H, W))
        heat, size, offset, centre, weight = (torch.from_numpy(np.stack(t)) for t in zip(*targets))
        ph, ps, po = net(augment(x, rng))
        m = centre[:, None].expand_as(size).float()
        n = centre.sum().clamp(min=1)
        loss = focal_loss(ph[:, 0], heat, weight) + 0.5 * ((ps - size).abs() * m).sum() / n + ((po - offset).abs() * m).sum() / n
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            log(f"vehicles step {step}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f} s)")
    return net.eval()


def train_lanes(arrays: dict, steps: int = 1000, batch: int = 16, crop: tuple[int, int] = (64, 96), lr: float = 3e-3,
                seed: int = 0, log=print, net: LaneNet | None = None) -> LaneNet:
    """The segmenter, trained for `steps` batches of random crops (half of them centred on lane pixels), from `net`
    when given, else from scratch."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    net = LaneNet() if net is None else net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    N, H, W = arrays["images"].shape[:3]
    ch, cw = crop
    t0 = time.time()
    for step in range(steps):
        xs, ys = [], []
        for _ in range(batch):
            i = int(rng.integers(N))
            lane = arrays["lanes"][i]
            if rng.random() < 0.5 and lane.any():
                jj, ii = np.nonzero(lane)
                k = int(rng.integers(len(jj)))
                y0 = int(np.clip(jj[k] - ch // 2 + rng.integers(-ch // 4, ch // 4 + 1), 0, H - ch))
                x0 = int(np.clip(ii[k] - cw // 2 + rng.integers(-cw // 4, cw // 4 + 1), 0, W - cw))
            else:
                y0, x0 = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
            img, m = arrays["images"][i, y0:y0 + ch, x0:x0 + cw], lane[y0:y0 + ch, x0:x0 + cw]
            if rng.random() < 0.5:
                img, m = img[:, ::-1], m[:, ::-1]
            xs.append(np.ascontiguousarray(img))
            ys.append(np.ascontiguousarray(m))
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255.0
        y = torch.from_numpy(np.stack(ys)).float()[:, None]
        logits = net(augment(x, rng))
        p = torch.sigmoid(logits)
        dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor(3.0)) + dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            log(f"lanes step {step}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f} s)")
    return net.eval()


@torch.no_grad()
def tune_lane_threshold(net: LaneNet, arrays: dict, views: int = 400, seed: int = 0) -> float:
    """The probability threshold (0.3-0.8) of the best mean per-view lane IoU on `views` training views."""
    rng = np.random.default_rng(seed + 2)
    idx = rng.choice(len(arrays["images"]), min(views, len(arrays["images"])), replace=False)
    idx = [i for i in idx if arrays["lanes"][i].any()]
    probs = torch.cat([torch.sigmoid(net.eval()(_images(arrays, np.array(idx[k:k + 32])))) for k in range(0, len(idx), 32)])[:, 0].numpy()
    truth = arrays["lanes"][idx]
    best = (-1.0, 0.5)
    for thr in np.arange(0.3, 0.81, 0.05):
        pred = probs > thr
        iou = np.mean((pred & truth).sum((1, 2)) / np.maximum((pred | truth).sum((1, 2)), 1))
        best = max(best, (float(iou), round(float(thr), 2)))
    return best[1]


def check_steps(vehicle_steps: int, lane_steps: int, from_init: bool) -> None:
    """Each network needs steps from scratch; with an init folder 0 steps copies it unchanged."""
    if min(vehicle_steps, lane_steps) < 0 or (not from_init and min(vehicle_steps, lane_steps) == 0):
        raise ValueError(f"--vehicle-steps {vehicle_steps} --lane-steps {lane_steps}: each must be > 0 from scratch, "
                         ">= 0 with --init")


def train_metricnets(out, data=None, seeds=None, vehicle_steps: int = 1200, lane_steps: int = 1000, seed: int = 0,
                     log=print, init=None, vehicle_lr: float = 2e-3, lane_lr: float = 3e-3) -> dict:
    """Generate (once) the training seeds' scenes under `data`, train both networks, save them into `out`.
    With `init` (a metric-network folder) both networks continue from its weights, and a network given 0 steps is
    copied unchanged; without it both start from scratch and need steps. Returns the config written to
    `out/config.json`."""
    from pathlib import Path

    from faithfusion.eval.metricnets.data import QUICK, TRAIN_SEEDS, cached_view_arrays, ensure_scene
    from faithfusion.eval.metricnets.shipped import load_metricnet_modules, save_metricnets

    check_steps(vehicle_steps, lane_steps, init is not None)
    start_vehicles = start_lanes = None
    init_cfg: dict = {}
    if init is not None:
        start_vehicles, start_lanes, init_cfg = load_metricnet_modules(Path(init))
    out = Path(out)
    data = Path(data) if data is not None else out / "data"
    seeds = tuple(TRAIN_SEEDS if seeds is None else seeds)
    t0 = time.time()
    scenes = [ensure_scene(data / "scenes", s) for s in seeds]
    arrays = cached_view_arrays(data / "train_views.npz", scenes)
    t_data = time.time() - t0
    log(f"{len(arrays['images'])} views of seeds {list(seeds)} ({t_data:.0f} s)")
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    vehicles = start_vehicles if vehicle_steps == 0 else train_vehicles(arrays, vehicle_steps, lr=vehicle_lr, seed=seed, log=log, net=start_vehicles)
    t_veh = time.time() - t0 - t_data
    if lane_steps == 0:
        lanes, lane_threshold = start_lanes, float(init_cfg.get("lane_threshold", 0.5))
    else:
        lanes = train_lanes(arrays, lane_steps, lr=lane_lr, seed=seed, log=log, net=start_lanes)
        lane_threshold = tune_lane_threshold(lanes, arrays, seed=seed)
    log(f"lane threshold {lane_threshold:.2f} (best mean IoU on 400 training views)")
    t_lanes = time.time() - t0 - t_data - t_veh
    H, W = arrays["images"].shape[1:3]
    config = {
        "input_size": [int(H), int(W)], "width": 16, "threshold": 0.3, "lane_threshold": lane_threshold,
        "trained_on": {"generator": "SynthStreet classic", "seeds": list(seeds), "size": {k: list(v) if isinstance(v, tuple) else v for k, v in QUICK.items()},
                       "views": int(len(arrays["images"])), "vehicles": int((arrays["boxes"][:, 1] == 1).sum())},
        "steps": {"vehicles": vehicle_steps, "lanes": lane_steps}, "lr": {"vehicles": vehicle_lr, "lanes": lane_lr}, "seed": seed,
        "seconds": {"data": round(t_data, 1), "vehicles": round(t_veh, 1), "lanes": round(t_lanes, 1)},
        "threads": torch.get_num_threads(),
    }
    if init is not None:
        prior = init_cfg.get("steps_total", init_cfg.get("steps", {}))
        config["init"] = {"folder": str(Path(init).resolve()), "steps": init_cfg.get("steps"), "seed": init_cfg.get("seed"),
                          "lr": init_cfg.get("lr"), "init": init_cfg.get("init")}
        config["steps_total"] = {k: int(prior.get(k, 0)) + config["steps"][k] for k in ("vehicles", "lanes")}
        if vehicle_steps == 0:
            config["threshold"] = init_cfg.get("threshold", config["threshold"])
    save_metricnets(out, vehicles, lanes, config)
    log(f"saved to {out} ({time.time() - t0:.0f} s in all)")
    return config
