"""Tests of the InDI training loss and its training loop (sdekit.learn.indi_loss; Delbracio & Milanfar 2023, eq. 7).

* At the exact denoiser F* = E[x | x_t] the loss is the Bayes risk. For Gaussian data N(0, diag(v)) and denoising
  y = x + sigma_y n with t ~ U[0, 1] it is sum_i v_i (1 - (sqrt(v_i) / sigma_y) arctan(sigma_y / sqrt(v_i))), and with
  a noise schedule the integral over t of sum_i v_i s^2 / (v_i + s^2), s = t sqrt(sigma_y^2 + eps_t^2) (scipy's
  quad). The Monte Carlo loss (n = 100000 per-example values, float64) must be within 4.89 standard errors of it (a
  two-sided z-test at 1e-6; measured z = 0.41 deterministic, 0.34 with eps_t = 0.8 sqrt(1 - t)); a denoiser for the
  wrong noise level (sigma_y 1.2 instead of 1.5) is rejected by the same test (z = 8.3 and 7.2).
* Training `InDIDenoiser(ScoreMLP)` by `train_indi` on the 2-D mixture decreases the loss, and the trained model's
  held-out loss comes within 5 % of the Monte Carlo Bayes risk on the same draws (measured in the test's docstring).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scipy.integrate import quad  # noqa: E402

from sdekit.diffusion.mixture_marginals import MixtureMarginals  # noqa: E402
from sdekit.errors import SDEKitError  # noqa: E402
from sdekit.learn import InDIDenoiser, ScoreMLP, indi_loss, train_indi  # noqa: E402
from sdekit.restoration import MixtureDenoiser  # noqa: E402
from sdekit.targets import GaussianMixture  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_diffusion_fixtures import make_data  # noqa: E402

Z_1E6 = 4.891638  # two-sided standard normal quantile at 1e-6
VARS = np.array([0.05, 0.3, 2.0])
GAUSS = MixtureMarginals(GaussianMixture([1.0], [np.zeros(3)], [np.diag(VARS)]))
SIGMA_Y = 1.5
N_MC = 100_000


def gaussian_bayes_risk(sigma_y: float, schedule=None) -> float:
    """E_t sum_i v_i s^2 / (v_i + s^2), s = t sqrt(sigma_y^2 + eps_t^2), t ~ U[0, 1]; closed form when eps = 0."""
    if schedule is None:
        r = np.sqrt(VARS) / sigma_y
        return float(np.sum(VARS * (1.0 - r * np.arctan(1.0 / r))))

    def mmse(t: float) -> float:
        s2 = t * t * (sigma_y ** 2 + schedule(t) ** 2)
        return float(np.sum(VARS * s2 / (VARS + s2)))

    return quad(mmse, 0.0, 1.0, epsabs=1e-13, epsrel=1e-12)[0]


def pairs(mm: MixtureMarginals, n: int, sigma_y: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    y, x, noise = mm.sample(n, 1.0, sigma_y, seed=seed, return_pairs=True)
    return torch.as_tensor(x), torch.as_tensor(y)


def monte_carlo(denoiser, x, y, schedule=None, seed=0) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        values = indi_loss(denoiser, x, y, noise_schedule=schedule, generator=gen, reduction="none").numpy()
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))


def schedule(t):
    """eps_t = 0.8 sqrt(1 - t), for numbers and tensors alike."""
    return 0.8 * (1.0 - t) ** 0.5


@pytest.mark.parametrize("noise_schedule", [None, schedule], ids=["deterministic", "noise-injected"])
def test_loss_at_the_exact_denoiser_is_the_bayes_risk(noise_schedule):
    x, y = pairs(GAUSS, N_MC, SIGMA_Y, seed=1)
    risk = gaussian_bayes_risk(SIGMA_Y, noise_schedule)
    mean, se = monte_carlo(MixtureDenoiser(GAUSS, SIGMA_Y, noise_schedule), x, y, noise_schedule)
    assert abs(mean - risk) < Z_1E6 * se, (mean, se, risk, (mean - risk) / se)
    # planted bug: the denoiser of another noise level (sigma_y 1.2), on the same draws
    wrong, wrong_se = monte_carlo(MixtureDenoiser(GAUSS, 1.2, noise_schedule), x, y, noise_schedule)
    assert abs(wrong - risk) > Z_1E6 * wrong_se, (wrong, wrong_se, risk, (wrong - risk) / wrong_se)


def test_identity_denoiser_loss_and_the_closed_form():
    """F(x_t, t) = x_t has loss E[t^2] sigma_y^2 d = sigma_y^2 d / 3; the closed form matches the integral."""
    x, y = pairs(GAUSS, N_MC, SIGMA_Y, seed=2)
    mean, se = monte_carlo(lambda xt, t: xt, x, y)
    assert abs(mean - SIGMA_Y ** 2 * 3 / 3) < Z_1E6 * se, (mean, se)
    assert gaussian_bayes_risk(SIGMA_Y) == pytest.approx(gaussian_bayes_risk(SIGMA_Y, lambda t: 0.0), rel=1e-10)


def test_loss_at_given_times_and_the_indi_denoiser_wrapper():
    x, y = pairs(GAUSS, 64, SIGMA_Y, seed=3)
    t = torch.linspace(0.0, 1.0, 64, dtype=torch.float64)
    manual = (((1 - t)[:, None] * x + t[:, None] * y - x) ** 2).sum(1)
    torch.testing.assert_close(indi_loss(lambda xt, tt: xt, x, y, t=t, reduction="none"), manual)
    torch.manual_seed(0)
    f = InDIDenoiser(ScoreMLP(3, hidden=16, depth=1, fourier_scale=4.0)).double()
    torch.testing.assert_close(f(x, 0.0), x, rtol=0, atol=0)  # F(x, 0) = x
    with torch.no_grad():
        out = f(x, t)
        direct = x - t[:, None] * f.net(x, t)
    torch.testing.assert_close(out, direct)


@pytest.fixture
def one_thread():
    """One torch thread (the CI machine has 2 cores shared by the test process; more threads only contend)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_training_decreases_the_loss_towards_the_bayes_risk(one_thread):
    """1000 Adam steps (batch 256, lr 5e-3, InDIDenoiser(ScoreMLP(2, 64, depth 2)), 2-D mixture, sigma_y = 1, about
    3 s): the held-out loss on 20000 fixed draws falls from 1.65 to 1.023 times the exact denoiser's Monte Carlo
    Bayes risk on the same draws (0.677 -> 0.419 vs 0.410); the batch loss of the first 10 % of steps 0.517 -> last
    10 % 0.416."""
    mm = MixtureMarginals(make_data(2))
    torch.manual_seed(0)
    f = InDIDenoiser(ScoreMLP(2, hidden=64, depth=2, fourier_scale=4.0)).double()
    x, y = pairs(mm, 20_000, 1.0, seed=6)
    bayes, _ = monte_carlo(MixtureDenoiser(mm, 1.0), x, y, seed=7)
    before, _ = monte_carlo(f, x, y, seed=7)
    data = torch.as_tensor(mm.data.sample(20_000, np.random.default_rng(5)))
    result = train_indi(f, data, 1.0, steps=1000, batch_size=256, lr=5e-3, seed=1)
    losses = result.losses
    assert losses.shape == (1000,) and np.all(np.isfinite(losses))
    assert losses[-100:].mean() < 0.9 * losses[:100].mean(), (losses[:100].mean(), losses[-100:].mean())
    after, _ = monte_carlo(f, x, y, seed=7)
    assert before > 1.3 * bayes, (before, bayes)
    assert bayes < after < 1.05 * bayes, (after, bayes)


@pytest.mark.parametrize(("call", "word"), [
    (lambda x, y: indi_loss("F", x, y), "denoiser"),
    (lambda x, y: indi_loss(lambda a, t: a, x, y[:3]), "y"),
    (lambda x, y: indi_loss(lambda a, t: a, x.numpy(), y), "x"),
    (lambda x, y: indi_loss(lambda a, t: a, x, y, t=1.5), "t"),
    (lambda x, y: indi_loss(lambda a, t: a, x, y, t=torch.zeros(3)), "t"),
    (lambda x, y: indi_loss(lambda a, t: a, x, y, reduction="sum"), "reduction"),
    (lambda x, y: indi_loss(lambda a, t: a[:, :1], x, y), "denoiser"),
    (lambda x, y: indi_loss(lambda a, t: a, x, y, noise_schedule=-1.0), "noise_schedule"),
    (lambda x, y: InDIDenoiser("net"), "net"),
    (lambda x, y: train_indi(lambda a, t: a, x, 1.0), "denoiser"),
    (lambda x, y: train_indi(InDIDenoiser(ScoreMLP(3)), x, 0.0), "degrade"),
    (lambda x, y: train_indi(InDIDenoiser(ScoreMLP(3)), x, 1.0, steps=0), "steps"),
    (lambda x, y: train_indi(InDIDenoiser(ScoreMLP(3)), x, 1.0, lr=-1.0), "lr"),
    (lambda x, y: train_indi(InDIDenoiser(ScoreMLP(3)), x[:, :2], 1.0), "data"),
])
def test_bad_input_raises_naming_the_argument(call, word):
    x, y = pairs(GAUSS, 8, SIGMA_Y, seed=0)
    with pytest.raises(SDEKitError, match=word):
        call(x, y)
