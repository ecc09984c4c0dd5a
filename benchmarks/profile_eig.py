"""Where one EIG map's GPU time goes, stage by stage and kernel by kernel (torch.profiler).

    python benchmarks/profile_eig.py --out OUT.json [--run RUN | --random 1200000] [--width 960 --height 540]

With `--run` the model and the first training view of a reconstruction; with `--random N` N random Gaussians
(SH degree 3, a few pixels wide) in front of a 960x540 camera: enough to see what the projection and the
Jacobian cost, whose work depends only on how many Gaussians there are and how many are visible.
Stages (median of repeats, synchronised): projection, projection + Jacobian, tile lists, the Fisher pair kernel,
diag(J^T M J), the acquisition, the compositing, the finished map; then the 30 kernels with the most CUDA time
in a profile of whole maps, and the same for the Jacobian alone.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import torch

from bench_eig import add_view_args, run_view
from common import device_name, git_commit, timed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faithfusion.cameras import Camera, invert_rigid, look_at  # noqa: E402
from faithfusion.eig.fisher import fisher_from_sums, pair_sums, prepare_view, view_fisher  # noqa: E402
from faithfusion.eig.jacobian import view_quantities  # noqa: E402
from faithfusion.eig.maps import acquisition, composite_scalar, eig_map, finish_map  # noqa: E402
from faithfusion.gaussians.model import GaussianModel  # noqa: E402
from faithfusion.render.raster import tile_lists  # noqa: E402
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402


def random_scene(n: int, width: int, height: int, device: torch.device) -> tuple[GaussianModel, Camera]:
    """`n` Gaussians in the frustum of a camera at the origin looking down +z (depth 3..60 m), half in view."""
    g = torch.Generator().manual_seed(0)
    z = 3.0 + 57.0 * torch.rand(n, generator=g) ** 2
    half_w, half_h = 0.75 * 2.0, 0.75 * 2.0 * height / width  # twice the field of view: about half visible
    x = (torch.rand(n, generator=g) * 2 - 1) * half_w * z
    y = (torch.rand(n, generator=g) * 2 - 1) * half_h * z
    model = GaussianModel.random(n, sh_degree=3, seed=0)
    p = model.params
    with torch.no_grad():
        p["means"].copy_(torch.stack([x, y, z], -1))
        p["scales"].copy_(torch.log(0.004 * z[:, None] * (0.5 + torch.rand(n, 3, generator=g))))
        p["opacities"].copy_(torch.logit(0.2 + 0.7 * torch.rand(n, generator=g)))
        p["shN"].copy_(0.1 * torch.randn(p["shN"].shape, generator=g))
    f = 0.5 * width / math.tan(math.radians(35.0))
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    c2w = look_at(torch.zeros(3), torch.tensor([0.0, 0.0, 10.0]), torch.tensor([0.0, -1.0, 0.0]))
    return model.to(device), Camera(K=K, viewmat=invert_rigid(c2w), width=width, height=height).to(device)


def top_kernels(prof, n: int = 30) -> list[dict]:
    rows = []
    for e in prof.key_averages():
        cuda_us = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if cuda_us and e.key and not e.key.startswith(("ProfilerStep", "aten::", "cuda", "Torch-Compiled")):
            rows.append({"kernel": e.key[:160], "calls": e.count, "cuda_ms": cuda_us / 1e3})
    rows.sort(key=lambda r: -r["cuda_ms"])
    return rows[:n]


def profiled(fn, repeats: int = 3) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize()
    return [{**r, "cuda_ms": r["cuda_ms"] / repeats, "calls": r["calls"] / repeats} for r in top_kernels(prof)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--random", type=int, default=1_200_000)
    add_view_args(ap)
    ap.add_argument("--configs", nargs="*", default=[], help="Triton (block,batch,warps) to time the two kernels with")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke run of the script (torch backend, no profile)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    be = "triton" if dev.type == "cuda" else "torch"
    if a.run is not None:
        trainer, view = run_view(a.run, a.width, a.height, dev)
        model, cam = trainer.model, view.camera.to(dev)
    else:
        model, cam = random_scene(a.random, a.width, a.height, dev)
    params = {k: v.detach() for k, v in model.params.items()}
    H_train = {k: torch.rand_like(v) + 0.1 for k, v in params.items()}
    t = lambda f: timed(f, dev, 3, a.repeats)["median_s"]  # noqa: E731
    args = (params, model.sh_degree, cam.viewmat, cam.K, cam.width, cam.height)
    res: dict = {"benchmark": "profile_eig", "device": device_name(dev), "commit": git_commit(),
                 "command": "python " + " ".join(sys.argv), "scene": str(a.run) if a.run else f"random {a.random}",
                 "num_gaussians": len(model), "width": a.width, "height": a.height, "stages_s": {}}
    st = res["stages_s"]
    vq = view_quantities(*args, jacobian=False)
    res["visible"] = int(vq.proj.visible.sum())
    st["projection"] = t(lambda: view_quantities(*args, jacobian=False))
    st["projection_jacobian"] = t(lambda: view_quantities(*args, jacobian=True))
    st["tile_lists"] = t(lambda: tile_lists(vq.proj, cam.width, cam.height))
    vp = prepare_view(model, cam, plan=be == "torch")
    res["intersections"] = int(vp.tiles.flat_ids.numel())
    st["prepare_view"] = t(lambda: prepare_view(model, cam, plan=be == "torch"))
    st["pair_sums"] = t(lambda: pair_sums(vp, None, None, backend=be))
    sums = pair_sums(vp, None, None, backend=be)
    n_sh = params["shN"].shape[1] + 1
    st["fisher_from_sums"] = t(lambda: fisher_from_sums(vp, sums, tuple(H_train), n_sh))
    H_view = view_fisher(model, cam, groups=tuple(H_train), vp=vp, backend=be)
    st["acquisition"] = t(lambda: acquisition(H_view, H_train))
    I = acquisition(H_view, H_train)
    st["composite"] = t(lambda: composite_scalar(vp, I, be))
    ps = composite_scalar(vp, I, be)
    st["finish_map"] = t(lambda: finish_map(ps, "fisherrf"))
    st["eig_map"] = t(lambda: eig_map(model, cam, H_train, backend=be))
    print({k: round(v * 1e3, 2) for k, v in st.items()}, flush=True)
    res["configs"] = {}
    for cfg in a.configs:  # the kernels under other tunables (FAITHFUSION_EIG_TRITON is read at each launch)
        os.environ["FAITHFUSION_EIG_TRITON"] = cfg
        vpc = prepare_view(model, cam, plan=be == "torch")  # the lists follow the configuration's tile
        res["configs"][cfg] = {"intersections": int(vpc.tiles.flat_ids.numel()),
                               "prepare_view_s": t(lambda: prepare_view(model, cam, plan=be == "torch")),
                               "pair_sums_s": t(lambda: pair_sums(vpc, None, None, backend=be)),
                               "composite_s": t(lambda: composite_scalar(vpc, I, be))}
        print(cfg, {k: round(v * 1e3, 2) for k, v in res["configs"][cfg].items()}, flush=True)
    os.environ.pop("FAITHFUSION_EIG_TRITON", None)
    if dev.type != "cuda":
        save_json_atomic(a.out, res)
        return
    res["kernels_eig_map"] = profiled(lambda: eig_map(model, cam, H_train, backend=be))
    res["kernels_jacobian"] = profiled(lambda: view_quantities(*args, jacobian=True))
    for name in ("kernels_eig_map", "kernels_jacobian"):
        print(name)
        for r in res[name][:20]:
            print(f"  {r['cuda_ms']:8.3f} ms  x{r['calls']:<6.1f} {r['kernel'][:110]}")
    save_json_atomic(a.out, res)


if __name__ == "__main__":
    main()
