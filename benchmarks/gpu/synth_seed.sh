#!/bin/bash
# On the GPU, for one SynthStreet seed: generate the scene, reconstruct it (baseline 3DGS),
# evaluate the lane-shift protocol, then the EIG benchmark and the EIG-vs-error analysis.
#   bash benchmarks/gpu/synth_seed.sh SEED        (carry .whl and .gpu; results land in $OUT)
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1
SEED=${1:-0}; STEPS=${STEPS:-7000}; ff="python3 -m faithfusion.cli"
t0=$(date +%s)
$ff synth --out /tmp/ss$SEED --seed $SEED --no-progress || exit 1
echo "synth $(( $(date +%s) - t0 )) s"
$ff recon --data /tmp/ss$SEED --out /tmp/run$SEED --steps $STEPS --holdout-every 10 --no-progress --overwrite || exit 1
echo "recon $(( $(date +%s) - t0 )) s"
$ff eval --run /tmp/run$SEED --frame-stride ${STRIDE:-2} || exit 1
echo "eval $(( $(date +%s) - t0 )) s"
cp /tmp/run$SEED/metrics.json $OUT/recon_seed$SEED.json
cp /tmp/run$SEED/eval/lane_shift.json $OUT/lane_shift_seed$SEED.json
cp /tmp/run$SEED/eval/lane_shift.png $OUT/lane_shift_seed$SEED.png
[ -n "${SKIP_EIG:-}" ] && { echo "total $(( $(date +%s) - t0 )) s"; exit 0; }
python3 benchmarks/bench_eig.py --run /tmp/run$SEED --out /tmp/eig$SEED --analysis /tmp/ss$SEED ${EIG_FLAGS:-} \
  --result $OUT/eig_seed$SEED.json 2>&1 | grep -v Warning | tail -25
cp /tmp/eig$SEED/analysis/eig_vs_error.json $OUT/eig_vs_error_seed$SEED.json
cp /tmp/eig$SEED/analysis/eig_vs_error.png $OUT/eig_vs_error_seed$SEED.png
echo "total $(( $(date +%s) - t0 )) s"
