#!/bin/bash
# Issue 5: where does the compact Difix trade PSNR for LPIPS? Trains loss-weight variants of the shipped recipe
# side by side on fixers.sh's curation (SynthStreet seeds 0-5 train, 8-10 held out) and evaluates each on the
# held-out lane shifts at 1 / 3 / 6 m, with and without the reference view.
#   bash benchmarks/gpu/difix_loss_sweep.sh        (carry .whl and .gpu; resumable: re-run it on the same machine)
# A fresh H100 needs two calls: curation (about 5 min) and the first training minutes, then the rest of the
# training and the evaluation (/tmp survives between calls while the machine stays warm).
#   VARIANTS  "name:args,name:args" (default below: the recipe's L2 + LPIPS + 0.5 Gram with LPIPS and Gram
#             scaled by 0.3, by 0.1 and by 0: L2 alone, the PSNR-optimal end)
#   STEPS (3000, as the shipped model), BUDGET_SECONDS (570: this call's share of the 10-minute limit)
# Results: $OUT/sweep.tar = eval/<name>_<d>m.json + logs; $OUT/<name>.tar = the trained model/ (config + safetensors).
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1
export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
t0=$(date +%s); DATA=/tmp/fixdata; RUNS=/tmp/difix_sweep; L=$FAITHFUSION_LPIPS_WEIGHTS
VARIANTS=${VARIANTS:-"lpips0.3:--w-lpips 0.3 --w-gram 0.15,lpips0.1:--w-lpips 0.1 --w-gram 0.05,l2only:--w-lpips 0 --w-gram 0"}
mkdir -p $RUNS/eval $RUNS/logs
if [ ! -f $DATA/index.json ]; then  # fixers.sh's curation (per-frame samples, no EIG), its log into our tar
  STAGES=curate CURATE_SECONDS=${CURATE_SECONDS:-480} bash benchmarks/gpu/fixers.sh > $RUNS/logs/curate.log 2>&1; tail -3 $RUNS/logs/curate.log
  rm -f $OUT/logs.tar
fi
[ -f $DATA/index.json ] || { echo "curation incomplete: re-run"; exit 1; }
left=$(( ${BUDGET_SECONDS:-570} - ($(date +%s) - t0) - 90 ))  # keep time for the evaluation and packing
echo "curated at $(( $(date +%s) - t0 )) s; training for at most $left s"
IFS=',' read -ra vs <<< "$VARIANTS"
pids=()
for v in "${vs[@]}"; do
  name=${v%%:*}; args=${v#*:}
  if [ -f $RUNS/$name/model/config.json ] && [ -f $RUNS/$name/.done ]; then continue; fi
  (( left > 30 )) || break
  python3 -m faithfusion.cli fixer train --index $DATA/index.json --model difix --backbone compact --steps ${STEPS:-3000} \
    --batch-size 8 --crop 256 --gram-warmup 1000 --bf16 --no-progress --lpips-weights $L --max-seconds $left \
    --ckpt-every 250 --out $RUNS/$name $args >> $RUNS/logs/train_$name.log 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait $p; done
for v in "${vs[@]}"; do
  name=${v%%:*}; grep "stopped at step\|Error" $RUNS/logs/train_$name.log | tail -1
  last=$(tail -1 $RUNS/$name/train_log.jsonl 2>/dev/null | python3 -c "import json,sys; print(json.loads(sys.stdin.read() or '{}').get('step', 0))")
  echo "$name: step $last of ${STEPS:-3000}"
  [ "$last" = "${STEPS:-3000}" ] && [ -f $RUNS/$name/model/config.json ] && touch $RUNS/$name/.done
done
ev="python3 -m faithfusion.cli fixer evaluate --lpips-weights $L --index $DATA/index.json --split test --kinds lane_shift"
for v in "${vs[@]}"; do
  name=${v%%:*}
  [ -f $RUNS/$name/.done ] || { echo "$name: training not finished (re-run to resume)"; continue; }
  for d in 1 3 6; do
    [ -f $RUNS/eval/${name}_${d}m.json ] || $ev --model $RUNS/$name/model --shifts $d --out $RUNS/eval/${name}_${d}m.json > /dev/null &
  done
done
wait
for v in "${vs[@]}"; do
  name=${v%%:*}
  [ -f $RUNS/$name/.done ] || continue
  cp $RUNS/$name/val/metrics.jsonl $RUNS/logs/val_$name.jsonl 2>/dev/null
  tar -C $RUNS/$name -cf $OUT/$name.tar model config.json
  python3 - "$name" $RUNS/eval <<'EOF'
import json, sys
from pathlib import Path
name, ev = sys.argv[1], Path(sys.argv[2])
for d in (1, 3, 6):
    f = ev / f"{name}_{d}m.json"
    if f.exists():
        r = json.loads(f.read_text())
        print(f"{name} {d} m: PSNR {r['degraded_psnr']:.2f} -> {r['fixed_ref_psnr']:.2f} (ref) / {r['fixed_noref_psnr']:.2f};"
              f" LPIPS {r['degraded_lpips']:.3f} -> {r['fixed_ref_lpips']:.3f} / {r['fixed_noref_lpips']:.3f}")
EOF
done
tar -C $RUNS -cf $OUT/sweep.tar eval logs
echo "total $(( $(date +%s) - t0 )) s"
