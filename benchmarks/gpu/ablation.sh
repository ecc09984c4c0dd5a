#!/bin/bash
source benchmarks/gpu/setup.sh > /dev/null 2>&1
# The EIG ablation on one GPU (benchmarks/bench_ablation.py): held-out SynthStreet seeds 8-12 at the demo's quick
# size (192x128, 16 frames x 3 cameras, 1000 steps), arms eig / uniform / shuffled / none / eig_repeat / 3dgs, PAR
# (default 6) runs at once on the one GPU, each with THREADS (default 2) CPU threads. Resumable across device
# commands on the same warm machine (work in /tmp/ablation_<hash of DEMO_ARGS>): a finished arm is skipped, an
# interrupted one resumes from its newest round checkpoint. Every run is bounded by `timeout` so that the call ends
# CALL_SECONDS (default 530) after it began (setup included), with its files written; arm results carried back in
# .gpu/ablation/<hash>/arms/ are reused on a fresh machine.
#   bash benchmarks/gpu/ablation.sh            (carry .whl and .gpu; call again until it prints "complete")
#   DEMO_ARGS (extra `faithfusion demo` schedule flags for every arm, e.g. "--faithfusion.fused-share 0.3
#   --faithfusion.pool replace --faithfusion.freeze-original --faithfusion.fused-lidar"), SEEDS ("8 9 10 11 12"),
#   ARMS ("eig uniform shuffled none eig_repeat 3dgs"), PAR (6), THREADS (2), STEPS (the quick size's 1000),
#   RESULT (eig_ablation_h200.json; with DEMO_ARGS eig_ablation_<hash>_h200.json), CALL_SECONDS (530)
# The device returns at most 8 files, 2 folders down, so arm results and log tails come back packed:
# unpack $OUT/ablation/arms_logs.tgz into .gpu/ablation/ (it holds <hash>/arms/seedS_ARM.json and logs/) to continue
# on a fresh machine.
# Results: $OUT/ablation/$RESULT (means per arm, paired differences with 95 % intervals, run-to-run noise),
#          $OUT/ablation/arms_logs.tgz, $OUT/ablation/status.txt
set -o pipefail
t0=$(( $(date +%s) - SECONDS )); deadline=$(( t0 + ${CALL_SECONDS:-530} - 70 ))  # from the shell's start (setup.sh included); 70 s kept for the aggregation
TAG=$(printf '%s' "${DEMO_ARGS:-}" | md5sum | cut -c1-8)
W=/tmp/ablation_$TAG; R=$OUT/ablation; mkdir -p $W/logs $R/logs $R/$TAG/arms
NAME=eig_ablation_h200.json; [ -n "${DEMO_ARGS:-}" ] && NAME=eig_ablation_${TAG}_h200.json
SEEDS=${SEEDS:-8 9 10 11 12}; ARMS=${ARMS:-eig uniform shuffled none eig_repeat 3dgs}; PAR=${PAR:-6}
export OMP_NUM_THREADS=${THREADS:-2} MKL_NUM_THREADS=${THREADS:-2}
B=(python3 benchmarks/bench_ablation.py --out $W --quick --device cuda --seeds $SEEDS --arms $ARMS
   "--demo-args=${DEMO_ARGS:-}")
[ -n "${STEPS:-}" ] && B+=(--steps $STEPS)
left() { echo $(( deadline - $(date +%s) )); }
echo "DEMO_ARGS='${DEMO_ARGS:-}' -> $W" | tee $R/status.txt

for f in .gpu/ablation/$TAG/arms/seed*_*.json; do  # arm results carried back from an earlier machine
  [ -f "$f" ] || continue
  name=$(basename $f .json); s=${name%%_*}; s=${s#seed}; arm=${name#*_}
  mkdir -p $W/seed_$s/$arm; cp -n $f $W/seed_$s/$arm/arm.json
done

for s in $SEEDS; do  # the scenes, generated once per seed (concurrent arms share them)
  timeout $(left) "${B[@]}" --prepare --seeds $s > $W/logs/scene_$s.txt 2>&1 &
done
wait
echo "scenes $(( $(date +%s) - t0 )) s"

for s in $SEEDS; do
  for arm in $ARMS; do
    [ -f $W/seed_$s/$arm/arm.json ] && continue
    [ $(left) -gt 90 ] || break 2
    timeout $(left) "${B[@]}" --only $s:$arm >> $W/logs/seed${s}_$arm.txt 2>&1 &
    while [ $(jobs -rp | wc -l) -ge $PAR ]; do wait -n; done
  done
done
wait
echo "arms $(( $(date +%s) - t0 )) s"

for s in $SEEDS; do for arm in $ARMS; do
  [ -f $W/seed_$s/$arm/arm.json ] && cp $W/seed_$s/$arm/arm.json $R/$TAG/arms/seed${s}_$arm.json
done; done
timeout 40 "${B[@]}" --no-run --result $R/${RESULT:-$NAME} 2>&1 | tail -8 | tee -a $R/status.txt
for f in $W/logs/*.txt; do [ -f $f ] && tail -n 15 $f > $R/logs/$(basename $f); done
echo "$(ls $R/$TAG/arms | wc -l) arm results; total $(( $(date +%s) - t0 )) s" | tee -a $R/status.txt
tar -czf $W/arms_logs.tgz -C $R $TAG logs && rm -rf $R/$TAG $R/logs && mv $W/arms_logs.tgz $R/
