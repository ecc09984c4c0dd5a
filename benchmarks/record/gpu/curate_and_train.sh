#!/bin/bash
# Issue 5 on the GPU: curate the fixer dataset on SynthStreet (seeds 0-7 train, 8-9 test; 480x320, 40 frames,
# 3000 reconstruction steps per seed), train the compact Difix on it, print the held-out lane-shift figures at 3 m.
#   bash benchmarks/gpu/curate_and_train.sh          (carry .whl and .gpu; results land in $OUT)
#
# Stages, each resumable, so that the work can be split over several 10-minute calls:
#   1. curation into /tmp/fixdata (resumes by seed: a seed with samples/<scene>/complete.json is skipped;
#      CURATE_SECONDS bounds the time after which no new seed starts). /tmp/fixdata survives only while the
#      machine stays warm; on a fresh machine curation starts again (it is deterministic).
#   2. fixer training into /tmp/difix (resumes from its newest checkpoint). The checkpoint is copied back as
#      $OUT/difix_ckpt.part_* (split under the 16 MiB per-file limit of $OUT); CARRY IT NEXT TIME as
#      .gpu/difix_ckpt/ (copy the returned difix_ckpt.part_* and difix_ckpt.name there): this script reassembles it into /tmp/difix/ckpt/.
#   3. evaluation of the test split (lane_shift at |d| = 3 m): PSNR / LPIPS of degraded, fixed with and
#      without the reference, against the target -> $OUT/fixer_eval.json.
# STAGES="curate train eval" (default: all three) picks the stages of this call.
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1
ff="python3 -m faithfusion.cli"; t0=$(date +%s)
STAGES=${STAGES:-"curate train eval"}
DATA=${DATA:-/tmp/fixdata}; RUN=${RUN:-/tmp/difix}
CURATE_STEPS=${CURATE_STEPS:-3000}; CURATE_SECONDS=${CURATE_SECONDS:-0}
FIXER_STEPS=${FIXER_STEPS:-3000}
if [[ $STAGES == *curate* ]]; then
  $ff fixer curate --out $DATA --synth-seeds 0 1 2 3 4 5 6 7 --test-seeds 8 9 --synth-appearance classic \
    --synth-frames 40 --synth-width 480 --synth-height 320 --steps $CURATE_STEPS --device cuda \
    --shift-stride ${SHIFT_STRIDE:-4} --underfit-stride 4 --max-seconds $CURATE_SECONDS --no-progress \
    ${CURATE_FLAGS:-} || exit 1
  cp $DATA/summary.json $OUT/curate_summary.json
  echo "curate $(( $(date +%s) - t0 )) s"
fi
if [[ $STAGES == *train* ]]; then
  mkdir -p $RUN/ckpt
  if ls .gpu/difix_ckpt/difix_ckpt.part_* > /dev/null 2>&1 && [ -z "$(ls $RUN/ckpt)" ]; then
    name=$(cat .gpu/difix_ckpt/difix_ckpt.name); cat .gpu/difix_ckpt/difix_ckpt.part_* > $RUN/ckpt/$name
    echo "resuming the fixer from the carried $name"
  fi
  $ff fixer train --index $DATA/index.json --out $RUN --backbone compact --model difix --bf16 \
    --steps $FIXER_STEPS --batch-size 8 --crop 256 --ckpt-every 500 --val-samples 16 --no-progress \
    --lpips-weights $FAITHFUSION_LPIPS_WEIGHTS ${TRAIN_FLAGS:-} || exit 1
  last=$(ls $RUN/ckpt/step_*.pt | sort | tail -1)
  basename $last > $OUT/difix_ckpt.name; split -b 15m $last $OUT/difix_ckpt.part_
  cp $RUN/val/metrics.jsonl $OUT/fixer_val.jsonl 2>/dev/null
  echo "train $(( $(date +%s) - t0 )) s"
fi
if [[ $STAGES == *eval* ]]; then
  python3 -m faithfusion.cli fixer evaluate --index $DATA/index.json --model $RUN/model --split test \
    --kinds lane_shift --shifts 3 --out $OUT/fixer_eval.json || exit 1
fi
echo "total $(( $(date +%s) - t0 )) s"
