#!/bin/bash
source benchmarks/gpu/setup.sh > $OUT/setup.log 2>&1 || { tail -5 $OUT/setup.log; exit 1; }
# `faithfusion bench` at the GPU size on one GPU: a generated SynthStreet scene at 960x540 (20 timesteps x 3
# cameras), the trainer against a minimal gsplat loop (200 timed steps), the render against gsplat's rasterization,
# the EIG map and H_train against a training iteration and pass, each shipped fixer at 960x540 in fp32 and bf16.
# With FUSION=1 a second command runs every fusion method end to end against 3DGS at 480x320 with
# FUSION_STEPS (default 300) steps on 10 timesteps (saved after each method: 3dgs, faithfusion, difix3d,
# genfusion). Every command runs under `timeout`; the whole script (setup included, $SECONDS) stays under 8.5 minutes.
#   git rev-parse HEAD > .gpu/COMMIT; then, carrying .whl and .gpu:  bash benchmarks/gpu/bench.sh   [FUSION=1]
# Results: $OUT/bench_h200.json (named for the H200; the JSON's device says which card ran it),
#          $OUT/bench_fusion_h200.json with FUSION=1, and the logs $OUT/bench.log, $OUT/bench_fusion.log.
set -o pipefail
t0=$(date +%s)
timeout ${BENCH_SECONDS:-240} python3 -m faithfusion.cli bench --out $OUT/bench_h200.json --overwrite --device cuda \
  --width 960 --height 540 --frames 20 --train-steps 200 --warmup-steps 20 --repeats 10 --warmup 3 \
  --fixer-width 960 --fixer-height 540 --fixer-frames 16 --fixer-repeats 5 --fixer-warmup 2 > $OUT/bench.log 2>&1
echo "bench rc $? after $(( $(date +%s) - t0 )) s"
tail -n 8 $OUT/bench.log
if [ "${FUSION:-0}" = "1" ]; then
  left=$(( 470 - SECONDS ))
  timeout $left python3 -m faithfusion.cli bench --out $OUT/bench_fusion_h200.json --overwrite --device cuda \
    --width 480 --height 320 --frames 10 --skip training render eig fixers --fusion \
    --fusion-steps ${FUSION_STEPS:-300} > $OUT/bench_fusion.log 2>&1
  echo "fusion rc $? after $(( $(date +%s) - t0 )) s (limit $left s)"
  tail -n 8 $OUT/bench_fusion.log
fi
python3 - <<'PY'
import json, os
for name in ("bench_h200.json", "bench_fusion_h200.json"):
    path = os.path.join(os.environ["OUT"], name)
    if not os.path.exists(path):
        continue
    d = json.load(open(path))
    print(name, d["device"].get("name"), d["commit"][:10], json.dumps(d["seconds"]))
    tr, r, e = d.get("training", {}), d.get("render", {}), d.get("eig", {})
    if tr:
        print("train it/s ours %.1f plain %.1f ratio %.3f peak GiB %s / %s" % (
            tr["trainer"]["iterations_per_second"], tr["plain_loop"]["iterations_per_second"],
            tr["trainer_time_per_iteration_over_plain"], tr["trainer"]["peak_memory_gib"], tr["plain_loop"]["peak_memory_gib"]))
    if r:
        print("render ours/gsplat fwd %s fwd+bwd %s" % (r.get("forward_ours_over_gsplat"), r.get("forward_backward_ours_over_gsplat")))
    if e:
        print("eig map/iteration %.2f  H_train/pass %.2f" % (e["eig_map_over_train_iteration"], e["h_train_over_train_pass"]))
    for k, v in d.get("fixers", {}).items():
        print("fixer", k, {dt: round(v[dt]["frames_per_second"], 1) for dt in ("fp32", "bf16") if dt in v} or v)
    for k, v in d.get("fusion", {}).get("methods", {}).items():
        print("fusion", k, round(v["wall_seconds"], 1), v.get("wall_over_3dgs"))
PY
echo "total $SECONDS s (setup included)"
