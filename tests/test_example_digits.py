"""The digits example end to end in its quick mode (examples/digits.py, `QUICK`: 300 training steps).

Checks, each with the planted bug that fails it:

* the eps loss falls: the mean of the last 10% of steps is below 0.5 of the first 10% (measured 0.30); a run whose
  weights never move stays near 1;
* every sampler of `SAMPLERS` (eight, each at its quick budget of model evaluations, through `DiffusionNetwork` on
  (n, 1, 8, 8) batches) gives finite digits of that shape whose Fréchet distance to the held-out digits is below 0.3
  of that of N(0, I) noise on both feature maps (measured 0.08-0.21 of it on pca16 and 0.04-0.11 on mlp64); with
  the network's eps prediction sign-flipped every sampler's digits are as far as noise (1.07-1.16 of noise's FD on
  pca16, 0.95-0.99 on mlp64; 32 digits, budgets of at most 11), so the same threshold fails for each of them. (No
  sampler is required to stay above the real-vs-real floor: the FD's own noise at this size is large, and the full
  run has the reverse SDE below one draw of the floor);
* the results are written: a grid per sampler, the FD-vs-NFE plot, results.md / .json with the run's rows;
* the held-out bits per dimension through the PF-ODE are finite and below those of a standard normal density on the
  same points (measured 2.5 against 4.9); the untrained net (its zero output layer predicts eps = 0) is above the
  standard normal (11.7), so the bound is not met by construction;
* the weights are cached: `train` with the same cache folder loads them (cached=True) and the loaded model gives the
  same outputs bit for bit; a different training setting is a different file.
"""

import dataclasses
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchdiffeq")
pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("digits_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # the example's dataclasses look their module up there
    spec.loader.exec_module(mod)
    torch.set_num_threads(1)
    return mod


@pytest.fixture(scope="module")
def quick(example, tmp_path_factory):
    cache = tmp_path_factory.mktemp("digits-cache")
    return example.run(example.QUICK, cache_dir=cache), cache


def test_training_loss_decreases(quick):
    res, _ = quick
    losses = res.trained.losses
    assert not res.trained.cached and losses.shape == (res.config.train_steps,) and np.all(np.isfinite(losses))
    k = len(losses) // 10
    assert losses[-k:].mean() < 0.5 * losses[:k].mean(), (losses[:k].mean(), losses[-k:].mean())


def test_every_sampler_gives_digits_not_noise(example, quick):
    res, _ = quick
    names = [r.sampler for r in res.rows]
    assert len(set(names)) >= 5 and sorted(names) == sorted(example.SAMPLERS), names  # one budget each
    noise = res.reference[example.NOISE]
    for r in res.rows:
        assert r.x.shape == (res.config.n_samples, 1, 8, 8) and np.all(np.isfinite(r.x)), (r.sampler, r.x.shape)
        assert 0 < r.nfe <= example.SAMPLERS[r.sampler].quick_nfe + 1, (r.sampler, r.nfe)
        for feature in ("pca16", "mlp64"):
            assert r.fd[feature] < 0.3 * noise[feature], (r.sampler, feature, r.fd, noise)


def test_flipped_prediction_fails_every_sampler(example, quick):
    """Planted bug: the network's eps prediction read with its sign flipped; every sampler's digits (32, at budgets
    of at most 11 model evaluations) are then as far from the held-out digits as noise is (measured 0.95-1.16 of
    noise's FD), above the 0.3 threshold."""
    res, _ = quick
    n = 32
    flipped = example.ScoreModel(_Negated(res.trained.model.net), example.FORWARD, parametrization="eps")
    cfg = dataclasses.replace(res.config, n_samples=n)
    judge = example.Judge(example.load_split())
    noise = judge.noise(n)
    cheap = {name: dataclasses.replace(s, quick_nfe=min(s.quick_nfe, 11)) for name, s in example.SAMPLERS.items()}
    rows = example.sample_all(flipped, judge, cfg, cheap)
    assert len(rows) == len(example.SAMPLERS)
    for r in rows:
        assert r.x.shape == (n, 1, 8, 8)
        assert all(r.fd[f] > 0.3 * noise[f] for f in ("pca16", "mlp64")), (r.sampler, r.fd, noise)


class _Negated(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, c):
        return -self.net(x, c)


def test_held_out_bits_per_dim(example, quick):
    res, _ = quick
    b = res.bpd
    assert math.isfinite(b["bpd"]) and math.isfinite(b["bpd_se"])
    assert b["bpd"] < b["normal_bpd"], b
    # planted bug: the untrained model (eps = 0) does worse than a standard normal
    untrained = example.build_model(res.config)
    digits = example.load_split()
    cfg = res.config
    worse = example.held_out_bpd(untrained, digits, cfg.bpd_examples, cfg.bpd_steps, cfg.bpd_probes)
    assert worse["bpd"] > worse["normal_bpd"], worse


def test_weights_are_cached(example, quick):
    res, cache = quick
    assert res.trained.path is not None and res.trained.path.parent == cache and res.trained.path.exists()
    again = example.train(example.load_split(), res.config, cache)
    assert again.cached and again.path == res.trained.path
    np.testing.assert_array_equal(again.losses, res.trained.losses)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(again.model.eps(x, 0.3), res.trained.model.eps(x, 0.3), rtol=0, atol=0)
    other = dataclasses.replace(res.config, lr=res.config.lr / 2)
    assert other.training_key() != res.config.training_key()


def test_results_are_written(example, quick, tmp_path):
    """The full run's outputs from the quick run: a grid per sampler, the FD-vs-NFE plot, results.md and .json with a
    row per sampler and budget (the numbers of the run, not recomputed)."""
    pytest.importorskip("matplotlib")
    res, _ = quick
    paths = example.write_results(res, tmp_path)
    names = {p.name for p in paths}
    assert {f"grid_{example.slug(s)}.png" for s in example.SAMPLERS} | {"fd_vs_nfe.png", "results.md",
                                                                         "results.json"} == names
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    data = json.loads((tmp_path / "results.json").read_text())
    assert [(r["sampler"], r["nfe"], r["fd_pca16"]) for r in data["samplers"]] == \
        [(r.sampler, r.nfe, r.fd["pca16"]) for r in res.rows]
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {r.sampler} | {r.nfe} | {r.fd['pca16']:.3f} |" in table for r in res.rows)
