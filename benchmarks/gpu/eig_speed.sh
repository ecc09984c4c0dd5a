#!/bin/bash
# On the GPU: the EIG kernels against the torch path (tests), then the cost of one 960x540 EIG map and
# of H_train against training on a SynthStreet reconstruction (bench_eig.py), where the map's time goes and the
# kernels' tunables (bench_eig_kernels.py), and (ANALYSIS=1) the EIG-vs-error analysis. VIDEO_SPEED=1 also times
# the shipped EIGent and GenFusion on 16-frame 960x540 windows.
#   bash benchmarks/gpu/eig_speed.sh [SEED]      (carry .whl and .gpu; results land in $OUT)
#   BACKEND=triton|torch (default triton), STEPS (7000), ANALYSIS=1, SKIP_TESTS=1, PROFILE=1 (benchmarks/profile_eig.py on the run)
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1
SEED=${1:-0}; STEPS=${STEPS:-7000}; ff="python3 -m faithfusion.cli"; t0=$(date +%s)
[ -z "${SKIP_TESTS:-}" ] && python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_eig_triton.py tests/test_eig_gpu.py 2>&1 | tail -4
if [ -n "${VIDEO_SPEED:-}" ]; then
  python3 benchmarks/bench_video_fixer_speed.py --model both --eigent faithfusion/fixers/weights/eigent \
    --genfusion faithfusion/fixers/weights/genfusion --result $OUT/video_fixer_speed.json 2>&1 | grep -v Warning | tail -4
fi
echo "tests $(( $(date +%s) - t0 )) s"
[ -d /tmp/ss$SEED ] || $ff synth --out /tmp/ss$SEED --seed $SEED --no-progress > /dev/null || exit 1
[ -f /tmp/run$SEED/metrics.json ] || $ff recon --data /tmp/ss$SEED --out /tmp/run$SEED --steps $STEPS --holdout-every 10 \
  --no-progress --overwrite > /dev/null || exit 1
echo "scene + recon $(( $(date +%s) - t0 )) s"
an=(); [ -n "${ANALYSIS:-}" ] && an=(--analysis /tmp/ss$SEED)
python3 benchmarks/bench_eig.py --run /tmp/run$SEED --out /tmp/eig$SEED --backend ${BACKEND:-triton} --no-compile \
  "${an[@]}" --result $OUT/eig_speed_seed$SEED.json 2>&1 | grep -v Warning | tail -8
python3 benchmarks/bench_eig_kernels.py --run /tmp/run$SEED --out $OUT/eig_kernels_seed$SEED.json 2>&1 | grep -v Warning | tail -30
[ -n "${ANALYSIS:-}" ] && cp /tmp/eig$SEED/analysis/eig_vs_error.json $OUT/eig_vs_error_seed$SEED.json \
  && cp /tmp/eig$SEED/analysis/eig_vs_error.png $OUT/eig_vs_error_seed$SEED.png
[ -n "${PROFILE:-}" ] && (cd benchmarks && python3 profile_eig.py --run /tmp/run$SEED --out $OUT/profile_eig_seed$SEED.json \
  2>&1 | grep -v Warn | tail -30)
echo "total $(( $(date +%s) - t0 )) s"
