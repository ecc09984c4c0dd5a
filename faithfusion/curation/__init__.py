"""`faithfusion fixer curate`: paired fixer data (degraded render, target, reference) by Difix3D's strategies.

One reconstruction per scene serves every strategy. It trains on a sparse subset (every `every`-th
timestep, without `holdout_camera`) and keeps checkpoints at 25, 50, 75 and 100 % of `steps`; then

- `sparse`: the held-out timesteps of the trained cameras, final model -> the real images;
- `underfit`: training and held-out views from the 25-75 % checkpoints -> the real images;
- `cross_camera`: the left-out camera, final model -> its real images;
- `lane_shift` (SynthStreet only): the ego moved +-d metres, final model -> `gt_shifted/` ground truth;
- `video` (`video_windows`): windows of `video_frames` timesteps for the video fixers: a lateral ramp
  of `video_ramp` frames from 0 to the full shift (as FaithFusion renders it), then frames at the
  full shift; plus windows of the left-out camera. Ramp frames between two generated shifts get their
  ground truth from the SynthStreet renderer itself (`SynthOracle`), exact at any shift.

`kinds` picks the strategies (default: the four per-frame ones, plus `video` with `video_windows`);
`--kinds video` curates the video windows alone: the final reconstruction, references and EIG, but no
under-fitted snapshot renders and no per-frame samples.

Real scenes (`real_scenes`, e.g. the fox) train on every `every`-th image and render the others
(`sparse`, `underfit`). Each sample holds a degraded render PNG, the target PNG, the reference (the
nearest training image), the calibrated EIG map (`with_eig`), the rendered depth (metres) and alpha
(float16 .npy), and the metadata that `faithfusion/fixers/dataset.py` reads.

Layout under `out/`:

    curate_config.yaml        the config (a re-run must match it, or pass --overwrite)
    scenes/seed_N/            generated SynthStreet scenes (kept when present)
    recon/<scene>/ckpt/       the 25/50/75/100 % checkpoints (a stopped reconstruction resumes)
    samples/<scene>/...       PNG / .npy files, samples.json and the completion marker complete.json
    index.json                all samples (relative paths), written atomically
    summary.json              counts per kind and split
"""


from faithfusion.curation.config import CurateConfig
from faithfusion.curation.run import curate

__all__ = ["CurateConfig", "curate"]
