#!/bin/bash
# Issue 7 on one GPU: the fusion comparison at the demo's quick size (192x128, 16 frames x 3 cameras, 1000 steps per
# method), many (seed, variant) runs side by side, each a benchmarks/bench_fusion.py process on its own folder.
#   bash benchmarks/gpu/fusion_quick.sh        (carry .whl and .gpu; results land in $OUT)
# Runs (each VARIANT:methods:schedule settings), on the held-out seeds 8-10 and on the training seeds 0-2 (for choices
# made by a rule on the training seeds):
#   base            3dgs difix3d difix3d+ genfusion (published schedules)
#   ff_alt          faithfusion (fused views instead of a captured view 40 % of the steps: the previous default)
#   ff_pair_lwW     faithfusion faithfusion-no-eig, fused views paired with the step's captured view, loss weight W
#   difix3d_pair    difix3d with its novel views paired (a control: what pairing alone gives Difix3D)
# VARIANTS and SEEDS narrow it down; the aggregate JSONs come back in $OUT/fusion_quick.tar.
set -o pipefail
source benchmarks/gpu/setup.sh > /dev/null 2>&1
export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 FAITHFUSION_EIG_COMPILE=0 PYTHONUNBUFFERED=1
t0=$(date +%s); ROOT=/tmp/fusion_quick; mkdir -p $ROOT/logs
declare -A METHODS=( [base]="3dgs difix3d difix3d+ genfusion" [ff_alt]="faithfusion"
  [ff_pair_lw0.1]="faithfusion faithfusion-no-eig" [ff_pair_lw0.3]="faithfusion faithfusion-no-eig"
  [ff_pair_lw1.0]="faithfusion faithfusion-no-eig" [difix3d_pair]="difix3d" )
declare -A SCHED=( [base]="" [ff_alt]="--faithfusion.no-paired" [ff_pair_lw0.1]="--faithfusion.loss-weight 0.1"
  [ff_pair_lw0.3]="--faithfusion.loss-weight 0.3" [ff_pair_lw1.0]="--faithfusion.loss-weight 1.0" [difix3d_pair]="--difix3d.paired" )
VARIANTS=${VARIANTS:-"base ff_alt ff_pair_lw0.1 ff_pair_lw0.3 ff_pair_lw1.0 difix3d_pair"}
SEEDS=${SEEDS:-"8 9 10 0 1 2"}
for v in $VARIANTS; do
  for s in $SEEDS; do
    m=${METHODS[$v]}
    if [[ $s -lt 8 ]]; then   # training seeds: only what a choice needs (3DGS and FaithFusion)
      case $v in base) m=3dgs ;; ff_pair_*) m=faithfusion ;; *) continue ;; esac
    fi
    python3 benchmarks/bench_fusion.py --out $ROOT/$v --seeds $s --quick --device cuda --methods $m \
      --demo-args="${SCHED[$v]}" --result $ROOT/$v/seed_$s.json > $ROOT/logs/${v}_seed$s.log 2>&1 &
  done
done
wait
echo "runs done $(( $(date +%s) - t0 )) s"
for v in $VARIANTS; do   # aggregate per variant over the held-out and over the training seeds
  python3 benchmarks/bench_fusion.py --out $ROOT/$v --seeds 8 9 10 --quick --device cuda --methods ${METHODS[$v]} \
    --demo-args="${SCHED[$v]}" --no-run --result $ROOT/$v/heldout.json 2>&1 | tail -8 | sed "s/^/$v heldout: /"
  [ -d $ROOT/$v/seed_0 ] && python3 benchmarks/bench_fusion.py --out $ROOT/$v --seeds 0 1 2 --quick --device cuda \
    --methods ${METHODS[$v]} --demo-args="${SCHED[$v]}" --no-run --result $ROOT/$v/training.json 2>&1 | tail -8 | sed "s/^/$v training: /"
done
grep -l -i "error\|Traceback" $ROOT/logs/*.log | head; for f in $(grep -l Traceback $ROOT/logs/*.log | head -2); do tail -5 $f; done
(cd $ROOT && tar -cf $OUT/fusion_quick.tar */*.json */seed_*/*/demo_method.json logs)
echo "total $(( $(date +%s) - t0 )) s"
