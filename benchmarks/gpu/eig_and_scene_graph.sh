#!/bin/bash
# Two resumable GPU jobs side by side on one card, so that one device command advances both: the multi-scene EIG
# analysis (eig_analysis.sh, issue 20) and the scene graph at the GPU size (scene_graph.sh with PARTS=gpu, issue 24),
# plus the GPU train-step tests (tests/test_train_step.py -m gpu) on the first call. Each job keeps its own resume
# rules; call again on the same warm machine until both say they are finished.
#   git rev-parse HEAD > .gpu/COMMIT; bash benchmarks/gpu/eig_and_scene_graph.sh     (carry .whl and .gpu)
#   PAR (eig_analysis's seeds at once, default 6), CALL_SECONDS (default 530, each job's own limit), TESTS=0 skips the tests
# Results (at most 8 files come back): eig_analysis.sh's $OUT files (eig_analysis.tgz, status.txt, ...),
#   $OUT/scene_graph.tgz (scene_graph.sh's $OUT/scene_graph/: log.txt, results.tgz, scene_graph.json, strip.png),
#   $OUT/train_step_tests.txt. Unpack for a fresh machine:
#   tar -C .gpu -xzf eig_analysis.tgz; tar xzf scene_graph.tgz && tar xzf scene_graph/results.tgz -C .gpu/scene_graph
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1 || { echo "setup failed"; exit 1; }
export SETUP=/dev/null CALL_SECONDS=${CALL_SECONDS:-530}
if [ "${TESTS:-1}" = "1" ]; then
  timeout 120 python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_train_step.py > $OUT/train_step_tests.txt 2>&1 &
fi
(OUT=$OUT/sg PARTS=gpu bash benchmarks/gpu/scene_graph.sh 2>&1 | sed 's/^/[scene_graph] /') &
PAR=${PAR:-6} bash benchmarks/gpu/eig_analysis.sh 2>&1 | sed 's/^/[eig_analysis] /'
wait
[ -f $OUT/train_step_tests.txt ] && tail -3 $OUT/train_step_tests.txt
[ -d $OUT/sg/scene_graph ] && tar czf $OUT/scene_graph.tgz -C $OUT/sg scene_graph && rm -rf $OUT/sg
ls $OUT
