#!/bin/bash
# On one GPU: do the published architectures fit? Difix (SD-Turbo UNet + VAE as nvidia/difix and nvidia/difix_ref)
# at 1024x576 with RANDOM weights in the published configurations (written in code, nothing downloaded), loaded by
# load_fixer as real weights are: bf16 `fix` of 4 frames (seconds per frame, peak memory) and one training step (fp32
# weights, bf16 autocast, AdamW); then the CogVideoX-2b and -5b-I2V transformers on one 49-frame 480x720 window (bf16).
#   git rev-parse HEAD > .gpu/COMMIT; then, carrying .whl and .gpu:  bash benchmarks/gpu/published_arch.sh
# Then EIGent on a random CogVideoX-5b-I2V folder loaded by load_fixer (fresh VideoPainter branch), bf16 `fix` of one
# 49-frame 480x720 window with the VAE plain / tiled / sliced.
# Then (GENFUSION=1) GenFusion's DynamiCrafter RGB-D model, random weights in the published configuration: bf16 `fix`
# of one 16-frame window at 512x960 and 576x1024 (25 DDIM steps, guidance 3.2) and one training step per window.
#   GENFUSION (1; 0 for none), COGVIDEOX ("2b 5b-i2v"; "" for none), EIGENT_COGVIDEOX ("5b-i2v"; "" for none), DTYPES ("bf16"; e.g. "bf16 fp32"), FRAMES (4), SECONDS_LIMIT (500)
# Results: $OUT/published_arch.json (device, commit, command, figures), $OUT/published_arch.log
set -o pipefail
source benchmarks/gpu/setup.sh > $OUT/setup.log 2>&1 || { tail -5 $OUT/setup.log; exit 1; }
python3 -c "import diffusers, peft, transformers; print('diffusers', diffusers.__version__, 'peft', peft.__version__, 'transformers', transformers.__version__)" \
  || { echo "peft / transformers missing on this machine: carry their wheels in .whl"; exit 1; }
t0=$(date +%s)
timeout ${SECONDS_LIMIT:-500} python3 benchmarks/bench_published_arch.py --height 576 --width 1024 --frames ${FRAMES:-4} \
  --dtypes ${DTYPES:-bf16} --cogvideox ${COGVIDEOX-2b 5b-i2v} --eigent-cogvideox ${EIGENT_COGVIDEOX-5b-i2v} \
  $( [ "${GENFUSION:-1}" = 1 ] && echo --genfusion-dynamicrafter --gf-extra-sizes 576 1024 ) --work /tmp/published_arch \
  --result $OUT/published_arch.json > $OUT/published_arch.log 2>&1
echo "rc $? after $(( $(date +%s) - t0 )) s"
grep -v "Warning\|Writing\|Loading\|float32" $OUT/published_arch.log | tail -n 20
