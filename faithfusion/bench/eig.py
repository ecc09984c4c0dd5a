"""(c) What does EIG cost against training? One EIG map against one training iteration on the same view, and
H_train over every captured view against one training pass (as many iterations as captured views).

The EIG map is what `EigSession.eig` computes before calibration (sky background included); H_train is what
`train_accumulator` computes (sky pixels weighted 0). One view's Fisher runs first, untimed, so that kernels
that compile on first use (Triton on CUDA) are built before any timing.
"""

from __future__ import annotations

from faithfusion.bench.timing import ratio, time_block, time_calls


def bench_eig(trainer, warmup: int, repeats: int, h_train_repeats: int) -> dict:
    """Seconds of an EIG map, H_train, a training iteration and a training pass of `trainer`, and their ratios.

    The timed training steps change the trainer's model (they are ordinary steps); EIG is timed first."""
    from faithfusion.eig.fisher import view_fisher
    from faithfusion.eig.maps import eig_map
    from faithfusion.eig.session import sky_background, train_accumulator
    from faithfusion.train.views import ViewPool

    device = trainer.device
    views = trainer.real.views
    view = views[0]
    background = sky_background(trainer)
    view_fisher(trainer.model, view.camera)  # builds the kernels
    built: list = []

    def h_train() -> None:
        built[:] = [train_accumulator(trainer)]

    h = time_calls(h_train, device, warmup=0, repeats=h_train_repeats)
    H = built[0].H

    def one_map():
        bg = background(view.camera) if background is not None else None
        return eig_map(trainer.model, view.camera, H, background=bg)

    m = time_calls(one_map, device, warmup=warmup, repeats=repeats)
    saved = trainer.real, trainer.pools
    trainer.real, trainer.pools = ViewPool("bench", [view]), []
    try:
        it = time_calls(trainer.train_step, device, warmup=warmup, repeats=repeats)
    finally:
        trainer.real, trainer.pools = saved
    pass_s = time_block(trainer.train_step, device, warmup=1, calls=len(views))
    return {
        "resolution": [view.camera.width, view.camera.height], "num_gaussians": len(trainer.model),
        "train_views": len(views),
        "eig_map": m.to_dict(), "h_train": h.to_dict(), "train_iteration": it.to_dict(),
        "train_pass": {"seconds": pass_s, "steps": len(views)},
        "eig_map_over_train_iteration": ratio(m.median_s, it.median_s),
        "h_train_over_train_pass": ratio(h.median_s, pass_s),
    }
