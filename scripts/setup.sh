#!/usr/bin/env bash
# Create .venv and install FaithFusion with the tested dependency set, constraints.txt (CPU torch from the local disk).
# pyproject.toml itself only states compatible ranges: `pip install -e .` without -c works beside other tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned, so that no other package pulls a CUDA build
.venv/bin/python -m pip install -q -c constraints.txt torch==2.13.0
.venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
.venv/bin/python -c "import faithfusion, torch; print('faithfusion', faithfusion.__version__, 'torch', torch.__version__)"
# numba compiles SynthStreet's kernels once into its cache (about 40 s on 2 cores): here, not in the first demo
.venv/bin/python -m faithfusion.synth.warm
