#!/bin/bash
# On one GPU: 8 SynthStreet scenes at the quick size through `faithfusion batch` (Ray), killed once and resumed,
# against the same scenes one after another; once with a whole GPU per job and once with two jobs sharing it
# (0.5 GPU each: one synthesises or evaluates on the CPU while the other trains).
#   Ray must be in .whl (no network on the device): pip download ray==2.60.0 -d .whl  (its dependencies too:
#   pip download ray==2.60.0 -d .whl pulls them). Then from the repo root with .whl and .gpu carried:
#   bash benchmarks/gpu/batch.sh          (SCENES=8 STEPS=1000 GPUS_PER_JOB="1 0.5" by default; results in $OUT)
set -o pipefail
source benchmarks/gpu/setup.sh
python3 -c "import ray" || { echo "ray is missing: add its wheels to .whl (see the head of this script)"; exit 1; }
for G in ${GPUS_PER_JOB:-1 0.5}; do
  python3 benchmarks/bench_batch.py --scenes ${SCENES:-8} --size quick --steps ${STEPS:-1000} --workers 0 --threads 4 \
    --serial-threads 16 --gpus-per-job $G --device cuda --kill-delay 20 --out /tmp/bench_batch_$G \
    --result $OUT/batch_quick_gpu_$G.json 2>&1 | tail -4
done
