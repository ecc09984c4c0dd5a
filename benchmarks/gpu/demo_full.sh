#!/bin/bash
# The full demo (seed 0, 480x320, 40 frames, 7000 steps per method) on one GPU, in as many device
# commands as it needs: each call continues /tmp/demo_full (`faithfusion demo --resume`: a finished method is
# loaded and evaluated again, an interrupted one resumes from its newest round checkpoint) and is stopped in time
# for its logs to come back (CALL_SECONDS, default 560). Later calls must reach the same warm machine.
#   bash benchmarks/gpu/demo_full.sh               (carry .whl and .gpu)
#   DEMO_METHODS="3dgs" (default "3dgs faithfusion"), DEMO_FLAGS (more `faithfusion demo` flags)
# Results: $OUT/demo/{demo.json,report.md,lane_shift.png,*.lane_shift.json}, $OUT/demo/log.txt.
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1
t0=$(date +%s); D=/tmp/demo_full; mkdir -p $OUT/demo
resume=""; [ -d $D ] && resume="--resume"
timeout $(( ${CALL_SECONDS:-560} - 20 )) python3 -m faithfusion.cli demo --out $D --device cuda $resume \
  --methods ${DEMO_METHODS:-3dgs faithfusion} ${DEMO_FLAGS:-} > $OUT/demo/log.txt 2>&1
echo "demo rc $? after $(( $(date +%s) - t0 )) s ($resume)"
grep -a -E "^round|finished|resumed|demo:" $OUT/demo/log.txt | cut -c1-200 | tail -12
for f in demo.json report.md lane_shift.png; do [ -f $D/$f ] && cp $D/$f $OUT/demo/; done
for m in $D/*/eval/lane_shift.json; do [ -f $m ] && cp $m $OUT/demo/$(basename $(dirname $(dirname $m))).lane_shift.json; done
[ -f $D/demo.json ] && python3 -c "
import json; r = json.load(open('$D/demo.json'))
print({k: round(v) for k, v in r['seconds'].items()}, {m: {d: round(x['psnr'], 2) for d, x in c.items()} for m, c in r['by_magnitude'].items()})"
echo "total $(( $(date +%s) - t0 )) s"
