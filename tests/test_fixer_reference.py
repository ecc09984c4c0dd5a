"""The one reference rule (faithfusion.fixers.reference), and that curation and fusion both follow it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faithfusion.cameras import Camera
from faithfusion.fixers.reference import ReferencePicker
from tests.scene_fixtures import look_at


def cam(eye, target) -> Camera:
    c2w = torch.from_numpy(look_at(eye, target)).float()
    K = torch.tensor([[20.0, 0, 16], [0, 20.0, 12], [0, 0, 1]])
    return Camera(K=K, viewmat=torch.linalg.inv(c2w), width=32, height=24)


# training views 10, 11, 12 along +x, looking ahead (+x); 13 at x=2 looking back (-x)
TRAIN = {10: cam((0, 0, 0), (5, 0, 0)), 11: cam((2, 0, 0), (7, 0, 0)), 12: cam((4, 0, 0), (9, 0, 0)),
         13: cam((2.1, 0, 0), (-3, 0, 0))}


@pytest.fixture
def picker() -> ReferencePicker:
    return ReferencePicker(list(TRAIN), list(TRAIN.values()))


def test_a_view_of_a_training_frame_takes_that_frame(picker):
    shifted = cam((1.4, 3.0, 0), (6.4, 3.0, 0))  # a view rendered from frame 10, whose centre is nearer 11's
    assert picker.pick(shifted, frame=10) == 10
    assert picker.pick(shifted) == 11  # no frame: the nearest centre facing the same way
    assert picker.pick(cam((1.9, 0.5, 0), (6.9, 0.5, 0)), frame=99) == 11  # 99 is not a training view


def test_only_views_facing_the_same_half_space_count(picker):
    ahead = cam((2.1, 0.1, 0), (7, 0.1, 0))  # nearest centre is 13's, which looks the other way
    back = cam((2.1, 0.1, 0), (-3, 0.1, 0))
    assert picker.pick(ahead) == 11 and picker.pick(back) == 13
    side = cam((4.1, 0, 0), (4.1, 5, 0))  # faces none of them (axes at 90 degrees): the nearest of all
    assert picker.pick(side) == 12
    assert picker.pick_all([ahead, back], [None, 12]) == [11, 12]


def test_mismatched_inputs_are_refused(picker):
    with pytest.raises(ValueError):
        ReferencePicker([1, 2], [TRAIN[10]])
    with pytest.raises(ValueError):
        picker.pick_all([TRAIN[10]], [None, None])


def test_curation_and_fusion_pick_the_same_references(tmp_path):
    from faithfusion.curation.references import References
    from faithfusion.data.load import load_scene
    from faithfusion.fusion.pools import ReferenceImages
    from tests.scene_fixtures import write_drivestudio_scene

    write_drivestudio_scene(tmp_path / "ds", n_steps=4)
    scene = load_scene(tmp_path / "ds", holdout_every=0)
    train = [i for i, f in enumerate(scene.frames) if f.timestep % 2 == 0 and f.cam_name != "2"]
    assert 0 < len(train) < len(scene.frames)
    curated = References(scene, train, 1.0, tmp_path / "refs", tmp_path)
    fused = ReferenceImages(scene, train, scale=0.5)
    rng = np.random.default_rng(0)
    for i in range(len(scene.frames)):
        for d in (0.0, float(rng.uniform(-3, 3))):
            c = scene.shifted_camera(i, d)
            for frame in (None, i):
                want = curated.pick(c, frame)
                assert fused.nearest_id(c, frame) == want
                assert want == (i if frame == i and i in train else want)
            assert fused.nearest_id(c, i) == (i if i in train else fused.nearest_id(c))
