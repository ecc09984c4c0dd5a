"""The combined map (eig/combined.py) and the form-choice rule (eig/form_choice.py): small known inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from faithfusion.eig.combined import combined_map, image_gradient, rank_normalise
from faithfusion.eig.form_choice import FormChoiceError, choose_form, choose_form_file
from faithfusion.eval.uncertainty import auroc


def test_rank_normalise_is_the_empirical_cdf_with_ties_averaged():
    x = torch.tensor([3.0, 1.0, 2.0, 2.0])
    # ranks 4, 1, 2.5, 2.5 (the two 2s share ranks 2 and 3), over n = 4
    assert rank_normalise(x).tolist() == [1.0, 0.25, 0.625, 0.625]
    # any shape; a constant map is all ties: (n + 1) / 2 / n
    y = torch.full((2, 3), 7.0, dtype=torch.float64)
    assert torch.equal(rank_normalise(y), torch.full((2, 3), 3.5 / 6, dtype=torch.float64))
    z = torch.tensor([[0.5, -1.0], [0.5, 10.0]])
    assert rank_normalise(z).tolist() == [[0.625, 0.25], [0.625, 1.0]]
    # against scipy's average ranks on random ties
    from scipy.stats import rankdata

    r = torch.randint(0, 5, (7, 9)).double()
    np.testing.assert_allclose(rank_normalise(r).numpy(), rankdata(r.numpy().ravel()).reshape(7, 9) / 63, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="NaN"):
        rank_normalise(torch.tensor([1.0, float("nan")]))


def test_combined_map_is_the_mean_of_ranks_and_invariant_to_monotone_rescaling():
    g = torch.Generator().manual_seed(0)
    eig = torch.randint(0, 40, (12, 16), generator=g).double()  # ties included
    grad = torch.randint(0, 40, (12, 16), generator=g).double()
    c = combined_map(eig, grad)
    assert c.shape == (12, 16) and torch.allclose(c, 0.5 * (rank_normalise(eig) + rank_normalise(grad)).float())
    for f_eig, f_grad in ((lambda x: torch.exp(x / 8), lambda x: 1e-6 * x ** 3 + 5.0),
                          (lambda x: 1e9 * x, lambda x: torch.log1p(x))):
        assert torch.equal(combined_map(f_eig(eig), f_grad(grad)), c)
    # not invariant to a change of ranks: the test can fail
    assert not torch.equal(combined_map(-eig, grad), c)
    with pytest.raises(ValueError, match="shape"):
        combined_map(eig, grad[:, :3])


def test_combined_map_detects_better_than_either_partially_informative_input():
    rng = np.random.default_rng(0)
    n = 20_000
    y = rng.random(n) < 0.2  # positives
    # each input: the label plus its own noise, on wildly different scales
    eig = np.exp(1.0 * y + rng.normal(size=n))
    grad = 1e-4 * (1.0 * y + rng.normal(size=n)) + 3.0
    a_eig, a_grad = auroc(eig, y), auroc(grad, y)
    a_comb = auroc(combined_map(torch.from_numpy(eig), torch.from_numpy(grad)).numpy(), y)
    assert 0.65 < a_eig < 0.8 and 0.65 < a_grad < 0.8
    assert a_comb > max(a_eig, a_grad) + 0.03


def test_image_gradient_of_a_ramp_and_a_flat_image():
    rgb = torch.zeros(4, 5, 3)
    assert torch.equal(image_gradient(rgb), torch.zeros(4, 5))
    rgb[..., :] = torch.arange(5.0)[None, :, None] * 0.1  # a horizontal ramp, slope 0.1 per pixel
    g = image_gradient(rgb)
    assert torch.allclose(g[:, 1:-1], torch.full((4, 3), 0.1)) and torch.allclose(g[:, 0], torch.full((4,), 0.05))


def _summary(scores: dict[str, tuple[float, float]]) -> dict:
    """A fabricated training summary: {form: (AUROC at 3 m, at 6 m)}."""
    per_shift = {}
    for k, key in enumerate(("3.0", "6.0")):
        per_shift[key] = {"maps": {f: {"auroc_unobserved": {"mean": v[k], "lo": v[k] - 0.05, "hi": v[k] + 0.05},
                                       "spearman_l1": {"mean": 0.9}} for f, v in scores.items()}}
    per_shift["+3.0"] = {"maps": {f: {"auroc_unobserved": {"mean": 0.99}} for f in scores}}  # signed rows: not read
    return {"per_shift": per_shift}


def test_form_choice_applies_the_written_rule(tmp_path, capsys):
    base = {"fisherrf": (0.70, 0.68), "jitter_std": (0.95, 0.95), "combined": (0.99, 0.99)}
    # pixel beats fisherrf by 0.02 on the mean over 3 and 6 m; the baselines and `combined` are no candidates
    c = choose_form(_summary(base | {"faithfusion": (0.69, 0.69), "pixel": (0.74, 0.68)}))
    assert (c.chosen, c.best) == ("pixel", "pixel") and c.scores["pixel"] == pytest.approx(0.71)
    # the best within 0.01 of fisherrf (exactly 0.01 included): fisherrf stays
    c = choose_form(_summary(base | {"faithfusion": (0.71, 0.69), "pixel": (0.60, 0.60)}))
    assert (c.chosen, c.best) == ("fisherrf", "faithfusion")
    c = choose_form(_summary(base | {"faithfusion": (0.71, 0.692), "pixel": (0.60, 0.60)}))
    assert (c.chosen, c.best) == ("faithfusion", "faithfusion")  # by 0.011
    # the 6 m rows alone are not enough (the first GPU run's training summary): a clear error naming the file
    s = _summary(base | {"faithfusion": (0.69, 0.69), "pixel": (0.74, 0.68)})
    del s["per_shift"]["3.0"]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(s))
    with pytest.raises(FormChoiceError, match=r"train\.json: no rows for \|shift\| 3\.0 m"):
        choose_form_file(path)
    s = _summary({"fisherrf": (0.7, 0.7), "faithfusion": (0.7, 0.7)})
    with pytest.raises(FormChoiceError, match="'pixel'"):
        choose_form(s)
    # the command prints the choice
    from faithfusion.commands.eig_form_choice import FormChoiceConfig, run_form_choice

    path.write_text(json.dumps(_summary(base | {"faithfusion": (0.69, 0.69), "pixel": (0.74, 0.68)})))
    assert run_form_choice(FormChoiceConfig(summary=path)) == "pixel"
    out = capsys.readouterr().out
    assert "chosen: pixel" in out and "pixel        0.7100" in out
