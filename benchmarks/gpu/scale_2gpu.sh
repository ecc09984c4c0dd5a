#!/bin/bash
# On 2 GPUs of one host (a multi-GPU kind; NOT RUN yet, docs/scale.md):
#  1. the batch of benchmarks/gpu/batch.sh with one GPU per job on both GPUs (compare with its one-GPU result);
#  2. one full-size SynthStreet scene: `recon` on one GPU for STEPS steps against `recon-ddp` on 2 GPUs (torchrun,
#     NCCL) for STEPS/2 steps of 2 views each (the same number of views), the strategy's step numbers halved.
#   bash benchmarks/gpu/scale_2gpu.sh     (carry .whl with Ray's wheels, and .gpu; results in $OUT)
set -o pipefail
source benchmarks/gpu/setup.sh
ff="python3 -m faithfusion.cli"; STEPS=${STEPS:-7000}; HALF=$((STEPS / 2))
python3 benchmarks/bench_batch.py --scenes ${SCENES:-8} --size quick --steps ${BATCH_STEPS:-1000} --workers 0 --threads 4 \
  --serial-threads 16 --gpus-per-job 1 --device cuda --kill-delay 20 --out /tmp/bench_batch_2gpu \
  --result $OUT/batch_quick_2gpu.json 2>&1 | tail -4
$ff synth --out /tmp/full --seed 0 --no-progress || exit 1
t0=$(date +%s)
CUDA_VISIBLE_DEVICES=0 $ff recon --data /tmp/full --out /tmp/one --steps $STEPS --holdout-every 10 --no-progress || exit 1
t1=$(date +%s)
torchrun --nproc-per-node 2 -m faithfusion.cli recon-ddp --data /tmp/full --out /tmp/two --steps $HALF --holdout-every 10 \
  --no-progress --strategy.refine-start 250 --strategy.refine-every 50 --strategy.reset-every 1500 \
  --strategy.refine-stop 7500 || exit 1
t2=$(date +%s)
$ff eval --run /tmp/one --frame-stride 2 > /dev/null && $ff eval --run /tmp/two --frame-stride 2 > /dev/null
cp /tmp/one/metrics.json $OUT/recon_1gpu.json; cp /tmp/two/metrics.json $OUT/recon_ddp_2gpu.json
cp /tmp/one/eval/lane_shift.json $OUT/lane_shift_1gpu.json; cp /tmp/two/eval/lane_shift.json $OUT/lane_shift_ddp_2gpu.json
echo "recon 1 GPU $((t1 - t0)) s, recon-ddp 2 GPUs $((t2 - t1)) s (wall, with evaluation)"
