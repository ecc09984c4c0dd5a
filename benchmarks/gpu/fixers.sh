#!/bin/bash
# Issues 5 and 6 on one GPU in one call: curate SynthStreet (train seeds 0-5, held-out seeds 8-10) and the fox
# (sparse views, test only), train the compact Difix, EIGent and GenFusion fixers side by side, evaluate Difix.
#   bash benchmarks/gpu/fixers.sh          (carry .whl and .gpu; results land in $OUT)
#
# Every stage is resumable while the machine stays warm (/tmp survives): curation skips complete scenes and
# training continues from its newest checkpoint. The trained models come back as $OUT/<model>.tar
# (config.json + model.safetensors: what faithfusion/fixers/weights/<model>/ ships).
#   STAGES="curate train eval"   (default: all)
#   CURATE_STEPS (2000) reconstruction steps per scene; TRAIN_SECONDS (240) wall limit of each training (less
#   when the call's BUDGET_SECONDS (570) would be passed);
#   DIFIX_STEPS (3000), VIDEO_STEPS (1500) the cosine schedules' lengths.
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1
export NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-2} PYTHONUNBUFFERED=1
ff="python3 -m faithfusion.cli"; t0=$(date +%s)
STAGES=${STAGES:-"curate train eval"}
DATA=/tmp/fixdata; FOX=/tmp/foxdata; RUNS=/tmp/fixers
TRAIN_SECONDS=${TRAIN_SECONDS:-240}; L=$FAITHFUSION_LPIPS_WEIGHTS
mkdir -p $OUT/logs
if [[ $STAGES == *curate* ]]; then
  $ff fixer curate --out $FOX --real-scenes .gpu/data/fox --every 4 --scale 0.5 --steps ${CURATE_STEPS:-2000} \
    --device cuda --underfit-stride 4 --no-progress > $OUT/logs/curate_fox.log 2>&1 &
  fox=$!
  $ff fixer curate --out $DATA --synth-seeds 0 1 2 3 4 5 --test-seeds 8 9 10 --synth-frames 40 --synth-width 480 \
    --synth-height 320 --steps ${CURATE_STEPS:-2000} --device cuda --shift-stride 4 --underfit-stride 4 \
    --video-windows --video-shifts 3 6 --workers 9 --no-progress 2>&1 | tail -20 | tee $OUT/logs/curate.log
  wait $fox; tail -12 $OUT/logs/curate_fox.log
  cp $DATA/summary.json $OUT/logs/curate_summary.json
  echo "curate $(( $(date +%s) - t0 )) s"
fi
if [[ $STAGES == *train* ]]; then
  left=$(( ${BUDGET_SECONDS:-570} - ($(date +%s) - t0) - 100 ))  # keep time for packing and evaluation
  (( left < TRAIN_SECONDS )) && TRAIN_SECONDS=$left; echo "training for at most $TRAIN_SECONDS s"
  common="--index $DATA/index.json --bf16 --no-progress --lpips-weights $L --max-seconds $TRAIN_SECONDS --ckpt-every 250"
  $ff fixer train $common --out $RUNS/difix --model difix --backbone compact --steps ${DIFIX_STEPS:-3000} \
    --batch-size 8 --crop 256 --gram-warmup 1000 > $OUT/logs/train_difix.log 2>&1 &
  $ff fixer train $common --out $RUNS/eigent --model eigent --steps ${VIDEO_STEPS:-1500} --batch-size 1 \
    --crop 192 --frames 16 --gram-warmup 500 > $OUT/logs/train_eigent.log 2>&1 &
  $ff fixer train $common --out $RUNS/genfusion --model genfusion --steps ${VIDEO_STEPS:-1500} --batch-size 1 \
    --crop 192 --frames 16 --gram-warmup 500 > $OUT/logs/train_genfusion.log 2>&1 &
  wait
  for m in difix eigent genfusion; do
    tail -4 $OUT/logs/train_$m.log; cp $RUNS/$m/val/metrics.jsonl $OUT/logs/val_$m.jsonl 2>/dev/null
    tar -C $RUNS/$m -cf $OUT/$m.tar model config.json train_log.jsonl
  done
  echo "train $(( $(date +%s) - t0 )) s"
fi
if [[ $STAGES == *eval* ]]; then
  ev="python3 -m faithfusion.fixers.evaluate --model $RUNS/difix/model --lpips-weights $L"
  $ev --index $DATA/index.json --split test --kinds lane_shift --shifts 3 --out $OUT/difix_eval_3m.json &
  $ev --index $DATA/index.json --split test --kinds lane_shift --shifts 6 --out $OUT/difix_eval_6m.json &
  $ev --index $FOX/index.json --split test --kinds sparse --shifts "" --out $OUT/difix_eval_fox.json &
  wait
  cat $OUT/difix_eval_*.json
fi
tar -C $OUT -cf $OUT/logs.tar logs && rm -r $OUT/logs   # $OUT returns at most 8 files
echo "total $(( $(date +%s) - t0 )) s"
