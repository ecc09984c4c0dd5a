"""Where an EIG map's time goes on the GPU, and the Triton kernels' tunables (block, batch, warps, list tile).

    python benchmarks/bench_eig_kernels.py --run RUN --out OUT.json [--width 960 --height 540]

Times (median of repeats, synchronised) on one training view resized to WxH: the projection with and
without the Jacobian, the tile lists (torch sort against gsplat's intersection), the Fisher pair kernel and
the compositing kernel for every configuration of --configs, and whole EIG maps; one training iteration on
the same view for the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from common import git_commit, timed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_eig import add_view_args, bench_train_step, freeze_strategy_steps, run_view  # noqa: E402
from faithfusion.eig.fisher import pair_sums, prepare_view  # noqa: E402
from faithfusion.eig.jacobian import view_quantities  # noqa: E402
from faithfusion.eig.maps import composite_scalar  # noqa: E402
from faithfusion.eig.session import build_session  # noqa: E402
from faithfusion.render.raster import build_tile_lists, isect_tile_lists  # noqa: E402
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    add_view_args(ap)
    ap.add_argument("--configs", nargs="+", default=["8,32,4,16", "16,16,8", "8,32,4", "8,16,4", "8,64,4", "8,32,2",
                                                        "8,16,2", "4,32,1", "4,16,1", "4,64,2", "16,16,4"])
    a = ap.parse_args()
    dev = torch.device("cuda")
    trainer, view = run_view(a.run, a.width, a.height, dev)
    session = build_session(trainer, calib_views=4, progress=False)
    cam, model = view.camera.to(dev), trainer.model
    params = {k: v.detach() for k, v in model.params.items()}
    bg = session.background(cam)
    res: dict = {"benchmark": "eig_kernels", "device": torch.cuda.get_device_name(dev), "commit": git_commit(),
                 "command": "python " + " ".join(sys.argv), "num_gaussians": len(model), "width": a.width, "height": a.height}
    t = lambda f: timed(f, dev, 2, a.repeats)["median_s"]  # noqa: E731
    args = (params, model.sh_degree, cam.viewmat, cam.K, cam.width, cam.height)
    res["projection_s"] = t(lambda: view_quantities(*args, jacobian=False))
    res["projection_jacobian_s"] = t(lambda: view_quantities(*args, jacobian=True))
    vq = view_quantities(*args, jacobian=False)
    res["visible"] = int(vq.proj.visible.sum())
    res["tile_lists_torch_s"] = t(lambda: build_tile_lists(vq.proj, cam.width, cam.height))
    res["tile_lists_gsplat_s"] = t(lambda: isect_tile_lists(vq.proj, cam.width, cam.height))
    res["prepare_view_s"] = t(lambda: prepare_view(model, cam, plan=False))
    vp = prepare_view(model, cam, plan=False)
    acq = torch.rand(len(model), device=dev)
    res["configs"] = {}
    for cfg in a.configs:  # the tile lists follow the configuration's tile: the view is prepared again
        os.environ["FAITHFUSION_EIG_TRITON"] = cfg
        vp = prepare_view(model, cam, plan=False)
        res["configs"][cfg] = {"intersections": int(vp.tiles.flat_ids.numel()),
                               "prepare_view_s": t(lambda: prepare_view(model, cam, plan=False)),
                               "pair_sums_s": t(lambda: pair_sums(vp, None, bg, backend="triton")),
                               "composite_s": t(lambda: composite_scalar(vp, acq, "triton"))}
        print(cfg, res["configs"][cfg], flush=True)
    best = min(res["configs"], key=lambda c: sum(res["configs"][c][k] for k in ("prepare_view_s", "pair_sums_s",
                                                                              "composite_s")))
    os.environ["FAITHFUSION_EIG_TRITON"] = best
    res["best_config"] = best
    res["eig_map_s"] = t(lambda: session.eig(cam))
    freeze_strategy_steps(trainer)
    res["train_iteration_s"] = bench_train_step(trainer, [view], dev, 3, a.repeats)["median_s"]
    res["ratio_eig_map_over_train_iteration"] = res["eig_map_s"] / res["train_iteration_s"]
    save_json_atomic(a.out, res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
