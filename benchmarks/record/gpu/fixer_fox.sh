#!/bin/bash
# Issue 5 on the fox: the shipped compact Difix on sparse-view renders of a real capture it never saw.
# Curate the fox (train on every 4th photo, 2000 steps at half resolution, 270x480), then evaluate the fixer on
# the held-out photos' renders (PSNR / LPIPS of render, fixed with and without the reference view).
#   bash benchmarks/gpu/fixer_fox.sh        (carry .whl and .gpu; results land in $OUT)
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1
t0=$(date +%s)
python3 -m faithfusion.cli fixer curate --out /tmp/foxdata --synth-seeds --real-scenes .gpu/data/fox --every 4 \
  --scale 0.5 --steps ${CURATE_STEPS:-2000} --device cuda --no-with-eig --no-progress 2>&1 | tail -12 || exit 1
echo "curate $(( $(date +%s) - t0 )) s"
for k in sparse underfit; do
  python3 -m faithfusion.cli fixer evaluate --model faithfusion/fixers/weights/difix --lpips-weights $FAITHFUSION_LPIPS_WEIGHTS \
    --index /tmp/foxdata/index.json --split test --kinds $k --shifts --out $OUT/difix_eval_fox_$k.json &
done
wait
cat $OUT/difix_eval_fox_*.json
echo "total $(( $(date +%s) - t0 )) s"
