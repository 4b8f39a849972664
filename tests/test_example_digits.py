"""The digits example end to end in its quick mode (examples/digits.py, `QUICK`: 300 training steps).

Checks, each with the planted bug that fails it:

* the eps loss falls: the mean of the last 10% of steps is below 0.5 of the first 10% (measured 0.30); a run whose
  weights never move stays near 1;
* the generated digits are finite, of shape (n, 1, 8, 8), and their Fréchet distance to the held-out digits is below
  0.3 of that of N(0, I) noise on both feature maps (measured 0.11 on pca16 and 0.07 on mlp64) and above the
  real-vs-real floor; sampling with the score's sign flipped gives an FD above the model's;
* the held-out bits per dimension through the PF-ODE are finite and below those of a standard normal density on the
  same points (measured 2.5 against 4.9); the untrained net (its zero output layer predicts eps = 0) is above the
  standard normal (11.7), so the bound is not met by construction;
* the weights are cached: `train` with the same cache folder loads them (cached=True) and the loaded model gives the
  same outputs bit for bit; a different training setting is a different file.
"""

import dataclasses
import importlib.util
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


def test_samples_are_digits_not_noise(example, quick):
    res, _ = quick
    (name, y), = res.samples.items()
    assert y.shape == (res.config.n_samples, 1, 8, 8) and np.all(np.isfinite(y))
    noise = res.fd["N(0, I) noise"]
    floor = res.fd["real held-out vs training digits (floor)"]
    for feature in ("pca16", "mlp64"):
        assert res.fd[name][feature] < 0.3 * noise[feature], (feature, res.fd)
        assert floor[feature] < res.fd[name][feature], (feature, res.fd)  # the floor is the floor
    # planted bug: the score's sign flipped
    model = res.trained.model
    flipped = example.ScoreModel(_Negated(model.net), example.FORWARD, parametrization="eps")
    bad = example.dpm_solver_2(flipped, res.config.n_samples, res.config.sample_steps, seed=100)
    judge = example.Judge(example.load_split())
    bad_fd = judge.fd(example.to_pixels(bad))
    assert all(bad_fd[f] > res.fd[name][f] for f in ("pca16", "mlp64")), (bad_fd, res.fd[name])


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
