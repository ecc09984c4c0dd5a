"""How do nodes densify and prune? The trainer's strategy runs on the concatenated set; node ids ride along.

gsplat's clone, split and prune ops apply to every per-Gaussian tensor of the strategy's running state what
they apply to the parameters (the same property `mark_lineage` uses), so the node id of each Gaussian is
kept there (`NODE_IDS`) and a clone or split half stays in its parent's node, in its parent's frame. A node
Gaussian is cloned or split in its box frame (its mean, rotation and scale are local), from the screen-space
gradient of the composed render, which indexes the same Gaussians. After each refinement the node Gaussians
whose centre left their box (scaled by `--graph.box-margin`) are pruned, as DriveStudio's `cull_out_of_bound`.
"""

from __future__ import annotations

from faithfusion.utils.flags import FlagError

NODE_IDS = "scene_graph_node_ids"
"""Key of the `[N]` node ids (-1 = background) in the strategy's running state."""


def check_strategy(strategy, name: str) -> None:
    """A strategy that rewrites Gaussians in place (MCMC's relocation) would move a Gaussian between nodes
    without its id following: refused."""
    if not getattr(strategy, "carries_lineage", False):
        raise FlagError(f"--scene-graph needs a densification strategy whose clone/split/prune carry per-Gaussian state "
                        f"(default or sparsity); --strategy.name {name} relocates Gaussians in place")


def after_refinement(trainer, step: int) -> int:
    """Keep the graph's node ids in step with the strategy's and, on refinement steps, prune node Gaussians
    outside their box. Returns the number pruned."""
    from gsplat.strategy.ops import remove

    graph, strategy, cfg = trainer.graph, trainer.strategy, trainer.cfg
    graph.node_ids = strategy.state[NODE_IDS]
    s = cfg.strategy
    if not (s.refine_start < step < s.refine_stop and step % s.refine_every == 0):
        return 0
    outside = graph.outside_boxes(trainer.model, cfg.graph.box_margin)
    n = int(outside.sum())
    if n:
        remove(params=trainer.model.params, optimizers=trainer.optimizers, state=strategy.state, mask=outside)
        graph.node_ids = strategy.state[NODE_IDS]
    return n
