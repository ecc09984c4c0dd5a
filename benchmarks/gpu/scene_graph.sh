#!/bin/bash
# Issue 24's figures (benchmarks/bench_scene_graph.py): the lane-shift table with and without nodes, vehicle-pixel
# PSNR at 0 m, the picture strip, every fusion method with --scene-graph on dynamic seeds 8 and 9 at the quick size,
# and 3DGS + FaithFusion at the full demo size on seed 8. In as many device commands as it needs, each stopped in
# time for its files to come back (CALL_SECONDS, default 540; the benchmark gets CALL_SECONDS - 40):
#   bash benchmarks/gpu/scene_graph.sh                  (carry .whl and .gpu)
# then, after each call, unpack its results where the next call finds them and call again until log.txt says "done":
#   mkdir -p .gpu/scene_graph && tar xzf FILES_AT/scene_graph/results.tgz -C .gpu/scene_graph
# Finished units (a table run, a fusion method on a seed, the full-size demo) are skipped on any machine from these
# carried results; an interrupted unit restarts, except that on the same warm machine the work folder
# (/tmp/scene_graph) is still there, so the full-size demo resumes from its checkpoints (it needs two calls).
# PARTS (default "table strip fusion gpu"), SEEDS ("8 9"), GPU_SEED (8), BENCH_FLAGS (more bench flags, e.g.
# "--fusion-steps 300"). CPU check of this logic: SETUP=/dev/null PYTHON=.venv/bin/python DEVICE=cpu OUT=/tmp/o \
#   BENCH_FLAGS="--steps 20 --shifts 3 --fusion-steps 20" bash benchmarks/gpu/scene_graph.sh
# Results ($OUT/scene_graph/, 4 files): scene_graph.json (the summary), strip.png, log.txt, results.tgz.
set -o pipefail
source ${SETUP:-benchmarks/gpu/setup.sh} > /dev/null 2>&1
t0=$(date +%s); W=${WORK:-/tmp/scene_graph}; R=$OUT/scene_graph
mkdir -p $W $R
# earlier calls' results (never over a newer file of this machine's work folder)
[ -d .gpu/scene_graph ] && cp -rn .gpu/scene_graph/. $W/
timeout $(( ${CALL_SECONDS:-540} - 40 )) ${PYTHON:-python3} benchmarks/bench_scene_graph.py --out $W \
  --device ${DEVICE:-cuda} --seeds ${SEEDS:-8 9} --gpu-seed ${GPU_SEED:-8} --parts ${PARTS:-table strip fusion gpu} \
  ${BENCH_FLAGS:-} > $R/log.txt 2>&1
rc=$?
[ $rc -eq 0 ] && echo "done" >> $R/log.txt
echo "bench rc $rc after $(( $(date +%s) - t0 )) s (rc 124: stopped in time, call again)"
grep -a -E "^table|^checks|^background_only|^scene_graph|^done|Error|error:" $R/log.txt | cut -c1-300 | tail -12
# the small results of the finished units: table rows and strip rows, fusion methods' demo_method.json, the demos'
# demo.json (no scenes, no checkpoints, no run folders)
(cd $W && find . -maxdepth 4 \( -path './table/seed_*/*.json' -o -path './table/seed_*/strip_*.png' \
   -o -path './fusion/seed_*/*/demo_method.json' -o -path './gpu_seed_*/demo.json' -o -name 'strip.*' \) -type f \
   -not -path '*/scene/*' \
   | tar czf $R/results.tgz -T -)
for f in scene_graph.json strip.png; do [ -f $W/$f ] && cp $W/$f $R/; done
echo "carried back: $(tar tzf $R/results.tgz | wc -l) result files; total $(( $(date +%s) - t0 )) s"
