#!/bin/bash
# Issue 2, the 7000 -> 30000 drop on the fox: two bench_recon configs side by side on one GPU (each 7000 steps,
# then continued to 30000), results as $OUT/fox_recon_<config>.json.
#   bash benchmarks/gpu/fox_long.sh [CONFIG ...]        (default: reg reg_stop7k; carry .whl and .gpu)
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1
configs=${*:-"reg reg_stop7k"}
for c in $configs; do
  python3 benchmarks/bench_recon.py --data .gpu/data/fox --out /tmp/fox_$c --steps 7000 --configs $c \
    --continue-to 30000 --continue-config $c --result $OUT/fox_recon_$c.json > $OUT/fox_$c.log 2>&1 &
done
wait
tail -n 3 $OUT/fox_*.log
