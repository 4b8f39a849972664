"""The InDI digits example end to end in its quick mode (examples/indi_digits.py, `QUICK`).

Checks, each with what fails it:

* the InDI loss falls during training: the mean of the last 10 % of steps is below 0.6 of the first 10 % (measured
  0.45); weights that never move stay near 1;
* every restoration of the noisy held-out digits has an MSE below half the noisy input's (measured 0.24-0.25 of
  it) and a Fréchet distance below the noisy input's on both feature maps; the planted bug, the untrained denoiser
  (its zero output layer makes F the identity, so the chain returns y), keeps the noisy MSE and fails;
* one step is the learned posterior mean: the 1-step restoration equals F(y, 1) exactly;
* on the 2-D mixture the exact one-step restoration's MSE is the Monte Carlo Bayes risk (two-sided z-test at 1e-6
  of the difference of the two estimates), its law is rejected (it regresses to the mean), and the exact InDI chain
  at its largest step count passes the law battery; the learned one-step MSE is within 30 % of the Bayes risk
  (measured 13 %);
* the results are written: both figures, results.md with a row per restoration, results.json with the run's
  numbers.
"""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "indi_digits.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("indi_digits_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # the example's dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def quick(example, tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield example.run(example.QUICK, cache_dir=tmp_path_factory.mktemp("indi-cache"))
    finally:
        torch.set_num_threads(before)


def test_training_loss_decreases(quick):
    losses = quick.trained.losses
    assert not quick.trained.cached and losses.shape == (quick.config.train_steps,) and np.all(np.isfinite(losses))
    k = len(losses) // 10
    assert losses[-k:].mean() < 0.6 * losses[:k].mean(), (losses[:k].mean(), losses[-k:].mean())


def _assert_restores(rows):
    noisy = next(r for r in rows if r.name == "noisy input y")
    restored = [r for r in rows if r.name.startswith("InDI")]
    assert restored
    for r in restored:
        assert r.x.shape == noisy.x.shape and np.all(np.isfinite(r.x)), r.name
        assert r.mse < 0.5 * noisy.mse, (r.name, r.mse, noisy.mse)
        assert all(r.fd[f] < noisy.fd[f] for f in ("pca16", "mlp64")), (r.name, r.fd, noisy.fd)


def test_restorations_beat_the_noisy_input(example, quick):
    assert [r.nfe for r in quick.rows if r.name.startswith("InDI")] == list(quick.config.step_counts)
    _assert_restores(quick.rows)


def test_planted_identity_denoiser_fails(example, quick):
    untrained = example.build_denoiser(quick.config)
    rows = example.restore_digits(untrained, quick.clean, quick.y, quick.judge, (1, 5))
    with pytest.raises(AssertionError):
        _assert_restores(rows)
    assert rows[1].mse == pytest.approx(rows[0].mse, rel=1e-6)  # F = identity: the chain returns y


def test_one_step_is_the_learned_posterior_mean(quick):
    one = next(r for r in quick.rows if r.nfe == 1)
    with torch.no_grad():
        direct = quick.trained.model(quick.y, 1.0).numpy().astype(np.float64)
    np.testing.assert_array_equal(one.x, direct)


def test_mixture_against_the_exact_posterior_mean(quick):
    mix = quick.mixture
    rows = {(r.denoiser, r.steps): r for r in mix["rows"]}
    one = rows[("exact", 1)]
    z = (one.mse - mix["bayes_risk"]) / math.hypot(one.mse_se, mix["bayes_risk_se"])
    assert abs(z) < 4.891638, (one.mse, mix["bayes_risk"], z)
    assert not one.law_passed
    last = max(quick.config.mixture_steps)
    assert rows[("exact", last)].law_passed, rows[("exact", last)]
    assert rows[("learned", 1)].mse < 1.3 * mix["bayes_risk"], (rows[("learned", 1)], mix["bayes_risk"])


def test_results_are_written(example, quick, tmp_path):
    pytest.importorskip("matplotlib")
    paths = example.write_results(quick, tmp_path)
    assert {p.name for p in paths} == {"digits.png", "mixture.png", "results.md", "results.json"}
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    data = json.loads((tmp_path / "results.json").read_text())
    assert [(r["restoration"], r["nfe"], r["mse"]) for r in data["digits"]] == \
        [(r.name, r.nfe, r.mse) for r in quick.rows]
    assert len(data["mixture"]["rows"]) == len(quick.mixture["rows"])
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {r.name} | {r.nfe} | {r.mse:.4f} |" in table for r in quick.rows)
