#!/bin/bash
source benchmarks/gpu/setup.sh > /dev/null 2>&1
# On the GPU: the pixel-EIG kernel against the torch path (gpu tests of tests/test_eig_pixel.py), then the cost of one
# 960x540 pixel-EIG map against a training iteration on a SynthStreet reconstruction (benchmarks/bench_pixel_eig.py,
# the fisherrf map timed beside it). Resumable on the same warm machine: the scene and the run in /tmp are reused,
# an interrupted recon resumes from its last checkpoint (every 1000 steps); every step is bounded by `timeout` so
# the call ends CALL_SECONDS (default 470) after it began. Call again until it prints "complete".
#   bash benchmarks/gpu/pixel_eig_speed.sh [SEED]    (carry .whl and .gpu)   STEPS (default 7000: the eig_speed.sh scene)
# Results: $OUT/pixel_eig_speed_h200.json (device, commit, command, figures: pixel_map_ms, train_iteration_ms, ratio),
#          $OUT/pixel_eig_tests.txt
set -o pipefail
SEED=${1:-0}; STEPS=${STEPS:-7000}; ff="python3 -m faithfusion.cli"; t0=$(date +%s)
deadline=$(( t0 + ${CALL_SECONDS:-470} )); left() { echo $(( deadline - $(date +%s) )); }
scene=/tmp/ss$SEED; run=/tmp/pixrun$SEED
if [ ! -f /tmp/pix_tests.txt ] && [ -z "${SKIP_TESTS:-}" ]; then  # once per machine; the file comes back each call
  timeout $(left) python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_eig_pixel.py 2>&1 | tail -4 > /tmp/pix_tests.txt
fi
[ -f /tmp/pix_tests.txt ] && cp /tmp/pix_tests.txt $OUT/pixel_eig_tests.txt && cat /tmp/pix_tests.txt
echo "tests $(( $(date +%s) - t0 )) s"
if [ ! -f $scene/scene.json ]; then
  timeout $(left) $ff synth --out $scene --seed $SEED --no-progress --overwrite > /tmp/pix_synth.log 2>&1 || { echo "synth unfinished: call again"; exit 1; }
fi
if [ ! -f $run/metrics.json ]; then
  mode="--overwrite"; [ -f $run/config.yaml ] && mode="--resume"
  timeout $(( $(left) - 150 )) $ff recon --data $scene --out $run --steps $STEPS --holdout-every 10 --ckpt-every 1000 \
    --no-save-renders --no-progress --device cuda $mode > /tmp/pix_recon.log 2>&1 || { tail -3 /tmp/pix_recon.log; echo "recon unfinished ($(( $(date +%s) - t0 )) s): call again"; exit 1; }
fi
echo "scene + recon $(( $(date +%s) - t0 )) s"
timeout $(left) python3 benchmarks/bench_pixel_eig.py --run $run --result $OUT/pixel_eig_speed_h200.json 2>&1 | grep -v Warning | tail -6
echo "complete: total $(( $(date +%s) - t0 )) s"
