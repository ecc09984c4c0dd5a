"""Data-parallel training of one scene: the captured views split into shards, each rank training on its shards,
the gradients of every parameter summed over ranks, and densification decided on the summed statistics.

The effective batch of a step is `views_per_shard` views of each of `shards` shards; its loss is their mean.
A rank holds only the views of its shards (`shards / world` of them). Every rank starts from the same Gaussians
(same seed), sums the same gradients and so takes the same optimizer step; densification (gsplat's clone, split,
prune) acts on statistics summed over ranks with the random numbers of a split drawn from a generator seeded by
the step, so the Gaussian set stays identical on every rank by construction (`check_in_step` verifies the count).

One process with all the shards (`LocalComm`) takes exactly the steps of `world` processes with one shard each,
up to the order of floating-point sums: tests/test_data_parallel.py compares the two.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import torch
from torch import Tensor

from faithfusion.data.scene import SceneData
from faithfusion.errors import UserError
from faithfusion.train.comm import Comm, LocalComm
from faithfusion.train.config import ReconConfig
from faithfusion.train.optim import build_optimizers, means_lr_factor, set_means_lr
from faithfusion.train.trainer import Trainer
from faithfusion.train.views import View

SUPPORTED_STRATEGIES = ("default", "sparsity")
"""Densification whose statistics can be summed over ranks (mcmc relocates with random draws per Gaussian)."""


class DataParallelError(UserError, ValueError):
    """Shards, ranks or settings that data-parallel training cannot run with."""


def shard_ids(train_ids: list[int], shard: int, shards: int) -> list[int]:
    """The training frames of shard `shard` of `shards`: every `shards`-th frame."""
    return train_ids[shard::shards]


@lru_cache(maxsize=256)
def shard_order(seed: int, shard: int, epoch: int, n: int) -> tuple[int, ...]:
    """The shuffled order of a shard's `n` views in pass `epoch` (a function of its arguments alone: resumable)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + shard * 10_007 + epoch)
    return tuple(torch.randperm(n, generator=g).tolist())


def local_shards(shards: int, rank: int, world: int) -> list[int]:
    if shards < world or shards % world:
        raise DataParallelError(f"--shards {shards}: must be a multiple of the number of ranks ({world})")
    per = shards // world
    return list(range(rank * per, (rank + 1) * per))


class DataParallelTrainer(Trainer):
    """The Trainer's loop with a batch of views per step spread over ranks (real views only: no fusion pools)."""

    def __init__(self, scene: SceneData, cfg: ReconConfig, device: torch.device, comm: Comm | None = None,
                 shards: int | None = None, views_per_shard: int = 1) -> None:
        self.comm = comm or LocalComm()
        self.shards = shards or self.comm.world
        self.views_per_shard = views_per_shard
        self.my_shards = local_shards(self.shards, self.comm.rank, self.comm.world)
        if cfg.strategy.name not in SUPPORTED_STRATEGIES:
            raise DataParallelError(f"--strategy.name {cfg.strategy.name}: data-parallel training supports "
                                    f"{', '.join(SUPPORTED_STRATEGIES)}")
        if views_per_shard < 1:
            raise DataParallelError(f"--views-per-shard {views_per_shard}: must be at least 1")
        too_small = [k for k in range(self.shards) if not shard_ids(scene.train_ids, k, self.shards)]
        if too_small:
            raise DataParallelError(f"{scene.source}: {len(scene.train_ids)} training views cannot fill {self.shards} shards")
        super().__init__(scene, cfg, device)
        if self.strategy.inner.refine_scale2d_stop_iter > 0:
            raise DataParallelError("data-parallel densification sums grad2d and count; scale2d refinement is not supported")
        # gsplat's batch rule: learning rates x sqrt(batch), Adam betas for the batch
        self.optimizers = build_optimizers(self.model, cfg.lr, self.scene_scale, self.batch_size)
        self.strategy.initialize(self.model.params, self.optimizers, self.scene_scale)
        by_index = {v.index: v for v in self.real.views}
        self.shard_views: dict[int, list[View]] = {
            k: [by_index[i] for i in shard_ids(scene.train_ids, k, self.shards)] for k in self.my_shards}

    @property
    def batch_size(self) -> int:
        return self.shards * self.views_per_shard

    def real_view_ids(self) -> list[int]:
        return [i for k in self.my_shards for i in shard_ids(self.scene.train_ids, k, self.shards)]

    def shard_view(self, shard: int, slot: int) -> View:
        """View `slot` of shard `shard` at the current step (a pure function of step, slot, shard and seed)."""
        views = self.shard_views[shard]
        epoch, k = divmod(self.step * self.views_per_shard + slot, len(views))
        return views[shard_order(self.cfg.seed, shard, epoch, len(views))[k]]

    def grad_params(self) -> list[Tensor]:
        extra = [m.parameters() for m in (self.sky, self.appearance) if m is not None]
        return [*self.model.params.values(), *(p for group in extra for p in group)]

    def all_reduce_grads(self) -> None:
        """Sum every parameter's gradient over ranks, in one flat buffer (a missing gradient counts as zero)."""
        params = self.grad_params()
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        self.comm.all_reduce_sum(flat)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n

    def add_densify_statistics(self, infos: list[dict]) -> None:
        """Add this step's screen-space gradient norms and visibility counts, summed over every view of every rank,
        to the strategy's running statistics (what gsplat adds for one view per step, for each view of the batch)."""
        inner, state = self.strategy.inner, self.strategy.state
        if self.step >= inner.refine_stop_iter:
            return
        before = {key: state.get(key) for key in ("grad2d", "count")}
        state["grad2d"], state["count"] = None, None
        for info in infos:
            for name in ("grad", "absgrad"):  # undo the loss's 1/batch: gsplat's threshold is for one view's loss
                g = getattr(info[inner.key_for_gradient], name, None)
                if g is not None:
                    g.mul_(self.batch_size)
            inner._update_state(self.model.params, state, info, packed=False)
        for key in ("grad2d", "count"):
            self.comm.all_reduce_sum(state[key])
            if before[key] is not None:
                state[key] = before[key] + state[key]

    @contextmanager
    def densify_on_summed_statistics(self):
        """Let the strategy act on the summed statistics (its own per-view update off) with step-seeded random numbers."""
        inner = self.strategy.inner
        inner._update_state = lambda *args, **kwargs: None  # instance attribute over the class method
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.cfg.seed * 7919 + self.step)
                yield
        finally:
            del inner._update_state

    def check_in_step(self) -> None:
        """Every rank has the same number of Gaussians (after a densification step)."""
        n = torch.tensor([len(self.model)], dtype=torch.float64, device=self.device)
        self.comm.all_reduce_sum(n)
        if int(n[0]) != len(self.model) * self.comm.world:
            raise RuntimeError(f"rank {self.comm.rank}: the Gaussian sets of the ranks differ after step {self.step}")

    def train_step(self) -> dict:
        """One step over the batch: each rank's views, gradients summed over ranks, one optimizer step everywhere."""
        cfg = self.cfg
        factor = means_lr_factor(self.step, self.total_steps, cfg.lr.means_final_ratio)
        means_lr = cfg.lr.means * self.scene_scale * factor
        set_means_lr(self.optimizers["means"], cfg.lr.means * self.scene_scale * (self.batch_size ** 0.5), factor)
        infos, total = [], torch.zeros((), device=self.device)
        for shard in self.my_shards:
            for slot in range(self.views_per_shard):
                view = self.shard_view(shard, slot)
                loss, out, pred, target = self.view_loss(view, self.real)
                if cfg.opacity_reg > 0:
                    loss = loss + cfg.opacity_reg * self.model.opacities.mean()
                if cfg.scale_reg > 0:
                    loss = loss + cfg.scale_reg * self.model.scales.mean()
                self.strategy.pre_backward(self.model.params, self.optimizers, self.step, out.info)
                (loss / self.batch_size).backward()
                infos.append(out.info)
                total = total + loss.detach() / self.batch_size
        self.all_reduce_grads()
        self.add_densify_statistics(infos)
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        for extra in (self.sky_optimizer, self.appearance_optimizer):
            if extra is not None:
                extra.step()
                extra.zero_grad(set_to_none=True)
        with self.densify_on_summed_statistics():
            self.strategy.post_backward(self.model.params, self.optimizers, self.step, infos[-1], means_lr)
            self.strategy.after_optimizer_step(self.model.params, self.optimizers, self.step, means_lr)
        if self.step % self.strategy.inner.refine_every == 0:
            self.check_in_step()
        self.step += 1
        self.comm.all_reduce_sum(total)
        with torch.no_grad():
            mse = ((pred.detach().clamp(0, 1) - target) ** 2).mean()
            psnr = -10 * torch.log10(mse.clamp_min(1e-10))
        return {"loss": total, "psnr": psnr, "pool": "real", "paired": []}
