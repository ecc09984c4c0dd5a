"""SynthStreet appearance: classic stays byte-identical to the look before the option, varied is per seed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faithfusion.synth import generate
from faithfusion.synth.appearance import apply_appearance, scene_appearance
from faithfusion.synth.render import render
from faithfusion.synth.rig import RIG, shift_ego
from faithfusion.synth.scene import SynthScene
from faithfusion.synth.world import make_world

TINY = dict(frames=2, cameras=("front", "front_left"), width=64, height=48, shifts=(3.0,), dynamic=True, lidar_azimuths=90)

# Computed with the code of commit 90330ca (before the appearance option existed), by the same recipe as
# `_image_files_digest` and `_render_digest` below, with the pinned venv (Pillow 13.0.0, numpy 2.4.6, numba 0.68.1).
CLASSIC_IMAGE_FILES_SHA256 = "d7cff69c9cc988aa010c5cd1ba2126be0e10c60bf1a4b6bd9fcde62d635c2998"  # generate(seed 5, TINY)
CLASSIC_RENDER_SHA256 = {  # render() of the front camera at frame 1, shifts 0 and 3 m, 64 x 48: (rgb, depth)
    0: ("cda7536ceed1d5e1030fa1e7aa0b6a2c816bb71e6ab093917ea4a3e2bfa7dde7", "9ec6ea1cb376bff87726c828424da7e94282da17ef2f13dce1ff559b684bc0f7"),
    7: ("bb86d09213850eabb7e2b589ced849cf277a3a26aa24b7c8aac7941dc45a6b50", "2c488acf8623baadac06af82a3ccb21548176063ea6c0e40848b6ade306bed1e"),
}


def _image_files_digest(out: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(p for p in out.rglob("*") if p.is_file() and p.parent.name == "images"):
        h.update(str(p.relative_to(out)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _world(seed: int, appearance: str):
    return apply_appearance(make_world(seed, frames=3, dynamic=True, max_shift=3.0), appearance)


def _render(world) -> tuple[np.ndarray, np.ndarray]:  # rgb [2, 48, 64, 3] uint8, depth [2, 48, 64]
    cam = RIG["front"]
    K = cam.intrinsics(64, 48)[None]
    w2c = np.stack([np.linalg.inv(shift_ego(world.ego_pose(1), d) @ cam.cam_to_ego()) for d in (0.0, 3.0)])
    rgb, depth, _ = render(SynthScene(world).arrays_at(1), w2c, np.repeat(K, 2, 0), 64, 48, 2)
    return rgb, depth


def test_classic_scene_files_equal_the_checksum_of_the_code_before_the_option(tmp_path):
    """The stored checksum was computed from the unmodified code (commit 90330ca) before appearance.py existed:
    classic (the default) must keep every image byte and write no appearance record."""
    out = generate(tmp_path / "s", 5, **TINY)
    assert _image_files_digest(out) == CLASSIC_IMAGE_FILES_SHA256
    meta = json.loads((out / "scene.json").read_text())
    assert "appearance" not in meta and scene_appearance(meta) == "classic"


@pytest.mark.parametrize("seed", sorted(CLASSIC_RENDER_SHA256))
def test_classic_render_equals_the_checksum_of_the_code_before_the_option(seed):
    rgb, depth = _render(_world(seed, "classic"))
    assert (hashlib.sha256(rgb.tobytes()).hexdigest(), hashlib.sha256(depth.tobytes()).hexdigest()) == CLASSIC_RENDER_SHA256[seed]


def test_varied_is_deterministic_per_seed_and_keeps_the_layout():
    a, b, classic = _world(3, "varied"), _world(3, "varied"), _world(3, "classic")
    ra, rb, rc = _render(a)[0], _render(b)[0], _render(classic)[0]
    assert a.look.notes == b.look.notes and np.array_equal(ra, rb)
    assert np.abs(ra.astype(int) - rc.astype(int)).mean() > 5  # another look
    # the layout is the classic one: road, ego path, buildings, trees and every vehicle's place and motion
    assert a.ego_lane == classic.ego_lane and np.allclose(a.ego_pose(2), classic.ego_pose(2))
    assert [(x.s, x.l, x.length, x.depth, x.height) for x in a.buildings] == [(x.s, x.l, x.length, x.depth, x.height) for x in classic.buildings]
    assert [(x.s, x.l) for x in a.trees] == [(x.s, x.l) for x in classic.trees]
    assert [(v.track_id, v.s0, v.l, v.speed, v.direction) for v in a.vehicles] == [(v.track_id, v.s0, v.l, v.speed, v.direction) for v in classic.vehicles]
    moving = [(v.kind, v.length) for v in a.vehicles if not v.parked]
    assert moving == [(v.kind, v.length) for v in classic.vehicles if not v.parked]  # moving cars keep their clearances


def test_varied_looks_differ_between_seeds():
    notes = [apply_appearance(make_world(s, frames=2), "varied").look.notes for s in range(12)]
    assert len({n["light"] for n in notes}) == 3  # day, low sun and overcast all occur in 12 seeds
    assert len({n["district"] for n in notes}) >= 3 and len({n["exposure"] for n in notes}) == 12
    assert any(n["wetness"] > 0 for n in notes) and any(n["wetness"] == 0 for n in notes)
    assert all(0.5 <= n["exposure"] <= 2.5 for n in notes)


def test_a_wet_road_changes_colours_only_and_darkens_the_near_asphalt():
    wet = _world(4, "varied")
    wet.look.wetness = 1.0
    dry = _world(4, "varied")
    dry.look.wetness = 0.0
    (rw, dw), (rd, dd) = _render(wet), _render(dry)
    assert np.array_equal(dw, dd)
    near_road = rd[0, 40:, 20:44].astype(float)  # straight ahead below the horizon: asphalt seen steeply
    assert rw[0, 40:, 20:44].mean() < near_road.mean()


def test_varied_scene_records_its_look_and_the_oracle_renders_it(tmp_path):
    from faithfusion.curation.ground_truth import SynthOracle

    out = generate(tmp_path / "v", 4, appearance="varied", lossless_gt=True, **TINY)
    meta = json.loads((out / "scene.json").read_text())
    assert scene_appearance(meta) == "varied" and meta["appearance"]["light"] in ("day", "low sun", "overcast")
    rgb, _ = SynthOracle(out).render(1, -3.0, 0, (48, 64))
    gt = np.asarray(Image.open(out / "gt_shifted" / "-3.0m" / "images" / "001_0.png").convert("RGB"))
    assert np.array_equal((rgb.numpy() * 255).round().astype(np.uint8), gt)


def test_unknown_appearance_is_refused_before_the_folder_is_made(tmp_path):
    with pytest.raises(ValueError, match="unknown SynthStreet appearance"):
        generate(tmp_path / "x", 0, appearance="sunny", **TINY)
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="unknown SynthStreet appearance"):
        apply_appearance(make_world(0, frames=2), "sunny")


def test_defaults_synth_classic_and_curation_varied(tmp_path):
    from faithfusion.commands.synth import SynthConfig
    from faithfusion.curation.config import CurateConfig, config_record

    assert SynthConfig().appearance == "classic"
    cfg = CurateConfig(out=tmp_path)
    assert cfg.synth_appearance == "varied" and config_record(cfg)["synth_appearance"] == "varied"
    # a folder curated before the option (classic, no record of it) resumes with --synth-appearance classic
    assert "synth_appearance" not in config_record(CurateConfig(out=tmp_path, synth_appearance="classic"))
