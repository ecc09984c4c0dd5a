#!/bin/bash
# Every test marked `gpu` on the device: the pure-PyTorch rasterizer and the EIG kernels held against gsplat
# and Triton, and the fixers on CUDA. Run from the repo root with .whl and .gpu carried:
#   bash benchmarks/gpu/gpu_tests.sh        (writes $OUT/gpu_tests.log, $OUT/gpu_tests.xml, $OUT/render_parity.json)
set -o pipefail
source benchmarks/gpu/setup.sh
mkdir -p $OUT
FF_GPU_RESULTS=$OUT/render_parity.json timeout ${TEST_SECONDS:-420} python3 -m pytest -m gpu -q -p no:cacheprovider --continue-on-collection-errors \
  --junitxml=$OUT/gpu_tests.xml tests 2>&1 | tee $OUT/gpu_tests.log | tail -25
