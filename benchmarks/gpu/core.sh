#!/bin/bash
# On the GPU: render backends against gsplat, then fox reconstruction quality and speed.
#   run from the repo root on the device with .whl and .gpu carried:  bash benchmarks/gpu/core.sh
set -o pipefail
source benchmarks/gpu/setup.sh
mkdir -p $OUT
FF_GPU_RESULTS=$OUT/render_parity.json timeout 150 python3 -m pytest tests/test_render_gpu.py -m gpu -q -s -p no:cacheprovider 2>&1 | tail -15
python3 benchmarks/bench_recon.py --data .gpu/data/fox --out /tmp/fox --steps ${STEPS:-7000} \
  --configs ${CONFIGS:-default,absgrad,mcmc} --speed-steps ${SPEED_STEPS:-2000} \
  --result $OUT/fox_recon.json 2>&1 | grep -v Warning
