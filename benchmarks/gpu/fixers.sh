#!/bin/bash
# On one GPU: curate SynthStreet (train seeds 0-5, held-out seeds 8-10; 480x320, 40 frames, 2000
# reconstruction steps each, 9 scenes at once), train the compact Difix, evaluate it on the held-out seeds.
#   bash benchmarks/gpu/fixers.sh          (carry .whl and .gpu; results land in $OUT)
# This reproduces faithfusion/fixers/weights/difix/ (see its README.md). On an H100: curation about 5 min
# from scratch, training 3000 steps about 7 min, so a fresh machine needs two calls; /tmp survives between
# calls only while the machine stays warm (stages resume: complete scenes are skipped, training continues
# from its newest checkpoint).
#   STAGES="curate train eval"   (default: all)
#   VIDEO=1         also curate EIG maps and the 16-frame video windows for EIGent / GenFusion
#   VIDEO_ONLY=1    curate the video windows alone (--kinds video; implies VIDEO=1): the final reconstruction,
#                   references and EIG, no per-frame samples and no under-fitted snapshot renders (VIDEO=1 took
#                   about 13 min for the 9 scenes on the H100). MODELS defaults to "eigent genfusion" (Difix needs the
#                   per-frame samples; the shipped Difix is the per-frame baseline of the evaluation). Its dataset
#                   folder is /tmp/fixdata_video (a folder curated with another config is refused).
#   MODELS="difix"  which fixers to train side by side (difix difix-eig eigent genfusion; the video ones need VIDEO=1 and
#                   are evaluated against the Difix of the same call, or the shipped one where this call trains
#                   none: faithfusion fixer evaluate-video)
#                   difix-eig: the compact Difix conditioned on the calibrated EIG map (fixer train --difix-eig); it
#                   makes the curation write EIG maps (the default curation here has none) and is evaluated like
#                   difix, with each sample's EIG. DIFIX_EIG_INIT=DIR starts it from a trained unconditioned Difix
#                   (e.g. faithfusion/fixers/weights/difix), the EIG channel at zero.
#   CURATE_STEPS (2000), TRAIN_SECONDS (wall limit of each training, fitted into BUDGET_SECONDS=570),
#   DIFIX_STEPS (3000), VIDEO_STEPS (1500).
# The trained models come back as $OUT/<model>.tar (model/ = config.json + model.safetensors, the files that
# ship), the evaluation figures as $OUT/<model>_eval_*.json (packed into $OUT/evals.tar where they would pass the
# 8 files that come back, e.g. MODELS="difix difix-eig"), the logs as $OUT/logs.tar.
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1
export OMP_NUM_THREADS=2 NUMBA_NUM_THREADS=2 PYTHONUNBUFFERED=1   # 9 workers share 16 cores
ff="python3 -m faithfusion.cli"; t0=$(date +%s)
STAGES=${STAGES:-"curate train eval"}; MODELS=${MODELS:-$([ -n "${VIDEO_ONLY:-}" ] && echo "eigent genfusion" || echo difix)}
DATA=/tmp/fixdata; [ -n "${VIDEO_ONLY:-}" ] && DATA=/tmp/fixdata_video; RUNS=/tmp/fixers
TRAIN_SECONDS=${TRAIN_SECONDS:-420}; L=$FAITHFUSION_LPIPS_WEIGHTS
video=(--no-with-eig); [ -n "${VIDEO:-}" ] && video=(--video-windows --video-shifts 3 6)
[ -n "${VIDEO_ONLY:-}" ] && video=(--video-windows --video-shifts 3 6 --kinds video)
[[ -z "${VIDEO:-}" && $MODELS == *difix-eig* ]] && video=()   # with EIG maps (curation's default), no video windows
if [[ -n "${VIDEO_ONLY:-}" && $MODELS == *difix* ]]; then echo "VIDEO_ONLY=1 curates no per-frame samples: set MODELS=\"eigent genfusion\""; exit 2; fi
mkdir -p $OUT/logs
if [[ $STAGES == *curate* ]]; then
  timeout ${CURATE_SECONDS:-3000} $ff fixer curate --out $DATA --synth-seeds 0 1 2 3 4 5 --test-seeds 8 9 10 --synth-appearance classic --synth-frames 40 --synth-width 480 \
    --synth-height 320 --steps ${CURATE_STEPS:-2000} --device cuda --shift-stride 4 --underfit-stride 4 \
    "${video[@]}" --workers 9 --no-progress 2>&1 | tail -20 | tee $OUT/logs/curate.log
  cp $DATA/summary.json $OUT/logs/curate_summary.json
  echo "curate $(( $(date +%s) - t0 )) s"
fi
if [[ $STAGES == *train* ]]; then
  left=$(( ${BUDGET_SECONDS:-570} - ($(date +%s) - t0) - 60 ))  # keep time for packing and evaluation
  (( left < TRAIN_SECONDS )) && TRAIN_SECONDS=$left; echo "training for at most $TRAIN_SECONDS s"
  common="--index $DATA/index.json --bf16 --no-progress --lpips-weights $L --max-seconds $TRAIN_SECONDS --ckpt-every 250"
  for m in $MODELS; do
    case $m in
      difix) args="--model difix --backbone compact --steps ${DIFIX_STEPS:-3000} --batch-size 8 --crop 256 --gram-warmup 1000" ;;
      difix-eig) args="--model difix --difix-eig --backbone compact --steps ${DIFIX_STEPS:-3000} --batch-size 8 --crop 256 --gram-warmup 1000"
                 [ -n "${DIFIX_EIG_INIT:-}" ] && args="$args --init $DIFIX_EIG_INIT" ;;
      *) args="--model $m --steps ${VIDEO_STEPS:-1500} --batch-size 1 --crop 192 --frames 16 --gram-warmup 500" ;;
    esac
    $ff fixer train $common --out $RUNS/$m $args > $OUT/logs/train_$m.log 2>&1 &
  done
  wait
  for m in $MODELS; do
    tail -4 $OUT/logs/train_$m.log; cp $RUNS/$m/val/metrics.jsonl $OUT/logs/val_$m.jsonl 2>/dev/null
    cp $RUNS/$m/train_log.jsonl $OUT/logs/train_log_$m.jsonl 2>/dev/null
    tar -C $RUNS/$m -cf $OUT/$m.tar model config.json
  done
  echo "train $(( $(date +%s) - t0 )) s"
fi
DIFIX=$RUNS/difix/model; [ -d $DIFIX ] || DIFIX=faithfusion/fixers/weights/difix
if [[ $STAGES == *eval* ]]; then
  for m in $MODELS; do   # image fixers: difix (this call's, else the shipped one) and difix-eig
    case $m in difix) model=$DIFIX ;; difix-eig) model=$RUNS/difix-eig/model ;; *) continue ;; esac
    ev="python3 -m faithfusion.cli fixer evaluate --model $model --lpips-weights $L --index $DATA/index.json --split test"
    for d in 1 3 6; do $ev --kinds lane_shift --shifts $d --out $OUT/${m}_eval_${d}m.json & done
    $ev --kinds sparse underfit cross_camera --shifts --out $OUT/${m}_eval_other.json &
  done
  for m in $MODELS; do   # video fixers beside the per-frame Difix: quality, warp error, low-EIG change, depth
    [[ $m = difix || $m = difix-eig ]] && continue
    python3 -m faithfusion.cli fixer evaluate-video --index $DATA/index.json --model $RUNS/$m/model \
      --difix $DIFIX --lpips-weights $L --shifts 3 6 --out $OUT/${m}_eval.json &
  done
  wait
  cat $OUT/*_eval*.json 2>/dev/null | head -c 6000
  if (( $(ls $OUT | grep -cv '^logs$') > 7 )); then   # $OUT returns at most 8 files (logs.tar included)
    (cd $OUT && tar -cf evals.tar *_eval*.json && rm *_eval*.json)
  fi
fi
tar -C $OUT -cf $OUT/logs.tar logs && rm -r $OUT/logs   # $OUT returns at most 8 files
echo "total $(( $(date +%s) - t0 )) s"
