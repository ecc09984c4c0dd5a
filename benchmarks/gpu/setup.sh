# Source at the start of every device command: installs the carried wheels (.whl) and sets paths.
# Data the run needs is carried in .gpu/ (git-ignored): .gpu/data/<scene>, .gpu/weights/lpips_squeeze_v01.npz,
# and .gpu/COMMIT (write it here first: git rev-parse HEAD > .gpu/COMMIT) so results name their commit.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 PYTHONUNBUFFERED=1
[ -f .gpu/COMMIT ] && export GIT_COMMIT=$(cat .gpu/COMMIT)  # the device copy's own git HEAD can be stale
[ -f .gpu/weights/lpips_squeeze_v01.npz ] && export FAITHFUSION_LPIPS_WEIGHTS=$PWD/.gpu/weights/lpips_squeeze_v01.npz  # else the packaged copy
nvidia-smi -L
