"""sdekit.learn: ScoreMLP, the ScoreModel parametrizations, time_from_logsnr, the training losses and the loop.

What each group checks, and what a planted bug does to it:

* ScoreModel conversions (float64, a fixed random net): for every parametrization P, the four outputs satisfy
  eps = -sigma s, x0 = (x + sigma^2 s) / alpha, v = alpha eps - sigma x0, x = alpha x0 + sigma eps, the output named P
  is the raw net output at c = log(alpha / sigma), and each output equals `sdekit.diffusion.parametrization.convert`
  of the raw output on NumPy copies, all to 1e-10. A wrong sign or a swapped alpha / sigma in any torch formula, or
  reading the net as the wrong parametrization, breaks an equality by O(1).
* time_from_logsnr inverts forward.kernel (NumPy) to 1e-8 for VP, sub-VP, cosine and both VE conventions; a reversed
  bisection comparison sends every t to an end point. ScoreModel(x, alpha_t, sigma_t) equals score(x, t); off the
  schedule s(x; 2 alpha, 2 sigma) = s(x / 2; alpha, sigma) / 2; with conditioning "t" the net sees the time t.
* Losses against closed forms for data N(0, c I_d): the exact score s = -x / (alpha^2 c + sigma^2) gives the
  sigma2-weighted DSM loss E = d E_t[alpha^2 c / (alpha^2 c + sigma^2)] (derivation in `test_dsm_gaussian_closed_form`)
  within 4 standard errors, and beats the score scaled by 0.9 and 1.1 by more than 5 standard errors of the paired
  difference; at a fixed t each weighting gives lambda / sigma^2 times the sigma2 value. DSM(sigma2) of an eps model
  equals eps_loss on the same draws; x0_loss and v_loss are eps_loss times (sigma / alpha)^2 and
  ((alpha^2 + sigma^2) / alpha)^2 (a wrong target, e.g. v = sigma x0 - alpha z, breaks these). Sliced score matching of
  s = -x / c equals -d / (2 c) for both projection laws with and without variance reduction (4 SE), the wrong sign
  s = +x / c gives 3 d / (2 c) (more than 10 SE away); the SSM gradient in a parameter matches its closed form (drops
  the Jacobian term if create_graph is lost).
* Training (ScoreMLP, 2-D three-component mixture, VP, 800 steps, ~2 s on one thread): last-10% mean loss below 0.75
  of the first-10% mean (measured 0.50), the same seed gives identical losses, and the relative MSE of the learned
  score against MixtureMarginals.score is below 0.05 at t = 0.3 and 0.6 (measured 0.010 and 0.007); DPM-Solver with
  the model as its score(x, alpha, sigma) recovers the mixture weights within 0.06 (measured <= 0.03).
* Bad input raises SDEKitError naming the argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scipy.integrate import quad  # noqa: E402

from sdekit.diffusion import parametrization as npconv  # noqa: E402
from sdekit.diffusion.forward import ForwardSDE  # noqa: E402
from sdekit.diffusion.mixture_marginals import MixtureMarginals  # noqa: E402
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample  # noqa: E402
from sdekit.diffusion.torch_schedule import torch_coefficients, torch_kernel  # noqa: E402
from sdekit.errors import SDEKitError  # noqa: E402
from sdekit.learn import (  # noqa: E402
    ScoreMLP,
    ScoreModel,
    dsm_loss,
    eps_loss,
    noise_conditional_ssm_loss,
    sliced_score_matching_loss,
    time_from_logsnr,
    train_score_model,
    v_loss,
    x0_loss,
)
from sdekit.targets import GaussianMixture  # noqa: E402

KINDS = ("score", "eps", "x0", "v")
SCHEDULES = {
    "vp": ForwardSDE.vp,
    "subvp": ForwardSDE.subvp,
    "cosine": ForwardSDE.cosine,
    "ve": ForwardSDE.ve,
    "ve_score_sde": lambda: ForwardSDE.ve(convention="score_sde"),
}
TOL = {"rtol": 1e-10, "atol": 1e-10}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _net(dim: int = 3, seed: int = 0) -> ScoreMLP:
    torch.manual_seed(seed)
    return ScoreMLP(dim, hidden=16, depth=2, embedding_dim=8).double()


def _points(n: int = 7, dim: int = 3, seed: int = 1) -> tuple:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    t = 0.05 + 0.9 * torch.rand(n, generator=g, dtype=torch.float64)
    return x, t


# --------------------------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------------------------


def test_score_mlp_deterministic_from_global_seed():
    """Same global seed -> identical weights and Fourier frequencies; another seed -> different ones (an init that
    ignored torch's generator, or a fixed one, fails one of the two)."""
    a, b, c = _net(seed=5), _net(seed=5), _net(seed=6)
    x, t = _points()
    assert a(x, t).shape == (7, 3)
    torch.testing.assert_close(a(x, t), b(x, t), rtol=0, atol=0)
    assert torch.equal(a.embedding.W, b.embedding.W)
    assert not torch.equal(a.embedding.W, c.embedding.W)
    assert (a(x, t) - c(x, t)).abs().max() > 1e-3


# --------------------------------------------------------------------------------------------
# parametrizations
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("schedule", ["vp", "subvp", "ve"])
def test_parametrization_round_trip(kind, schedule):
    """score, eps, x0, v of one model agree with the formulas, with the raw net output and with the NumPy
    parametrization module (float64, 1e-10). A sign error in any conversion fails by O(1)."""
    fw = SCHEDULES[schedule]()
    net = _net()
    model = ScoreModel(net, fw, parametrization=kind)
    x, t = _points()
    with torch.no_grad():
        out = {k: getattr(model, k)(x, t) for k in KINDS}
        alpha, sigma = torch_kernel(fw, t)
        a, s = alpha[:, None], sigma[:, None]
        raw = net(x, torch.log(alpha) - torch.log(sigma))
    torch.testing.assert_close(out[kind], raw, **TOL)
    torch.testing.assert_close(out["eps"], -s * out["score"], **TOL)
    torch.testing.assert_close(out["x0"], (x + s * s * out["score"]) / a, **TOL)
    torch.testing.assert_close(out["v"], a * out["eps"] - s * out["x0"], **TOL)
    torch.testing.assert_close(x, a * out["x0"] + s * out["eps"], **TOL)
    for target in KINDS:
        ref = npconv.convert(raw.numpy(), kind, target, x.numpy(), alpha.numpy(), sigma.numpy())
        np.testing.assert_allclose(out[target].numpy(), ref, **TOL)


def test_parametrization_is_read():
    """The same net read as eps and as x0 gives different scores (a wrapper that ignored parametrization would not)."""
    fw, net = ForwardSDE.vp(), _net()
    x, t = _points()
    with torch.no_grad():
        s_eps = ScoreModel(net, fw, "eps").score(x, t)
        s_x0 = ScoreModel(net, fw, "x0").score(x, t)
    assert (s_eps - s_x0).abs().max() > 1e-2


# --------------------------------------------------------------------------------------------
# log-SNR and the sampler interface
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_time_from_logsnr_inverts_kernel(schedule):
    """t -> log(alpha_t / sigma_t) (NumPy forward.kernel) -> time_from_logsnr recovers t to 1e-8 on [eps, T], with the
    input's shape. A reversed comparison in the bisection returns an end point and fails by O(1)."""
    fw = SCHEDULES[schedule]()
    ts = np.linspace(fw.eps, fw.T, 201)
    lam = np.array([math.log(a) - math.log(s) for a, s in (fw.kernel(t) for t in ts)])
    back = time_from_logsnr(fw, torch.as_tensor(lam).reshape(3, 67))
    assert back.shape == (3, 67) and back.dtype == torch.float64
    np.testing.assert_allclose(back.reshape(-1).numpy(), ts, rtol=0, atol=1e-8)
    assert abs(float(time_from_logsnr(fw, lam[100])) - ts[100]) < 1e-8


@pytest.mark.parametrize("conditioning", ["logsnr", "t"])
@pytest.mark.parametrize("schedule", ["vp", "subvp", "cosine", "ve"])
def test_alpha_sigma_interface_matches_time(conditioning, schedule):
    """model(x, alpha_t, sigma_t) = model.score(x, t) to 1e-9; off the schedule model(x, 2 alpha, 2 sigma) =
    model.score(x / 2, t) / 2 (the rescaling m = 1/2); NumPy input gives the same numbers as NumPy. Dropping the
    rescaling fails the second check by O(1)."""
    fw = SCHEDULES[schedule]()
    model = ScoreModel(_net(), fw, parametrization="eps", conditioning=conditioning)
    x, t = _points()
    alpha, sigma = torch_kernel(fw, t)
    with torch.no_grad():
        on = model.score(x, t)
        torch.testing.assert_close(model(x, alpha, sigma), on, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(model(x, 2 * alpha, 2 * sigma), model.score(x / 2, t) / 2, rtol=1e-9, atol=1e-9)
    as_np = model(x.numpy(), alpha.numpy(), sigma.numpy())
    assert isinstance(as_np, np.ndarray) and as_np.dtype == np.float64
    np.testing.assert_allclose(as_np, on.numpy(), rtol=1e-9, atol=1e-9)
    a0, s0 = fw.kernel(0.4)
    np.testing.assert_allclose(model(x.numpy(), a0, s0), model.score(x, 0.4).detach().numpy(), rtol=1e-9, atol=1e-9)


class _EchoNet(torch.nn.Module):
    """net(x, c) = c on every coordinate (read as x0 it lets a test recover c from the score)."""

    dim = 2

    def forward(self, x, c):
        return c.to(x)[:, None].expand_as(x).clone()


@pytest.mark.parametrize("schedule", ["vp", "subvp"])
def test_time_conditioning_sees_time(schedule):
    """With conditioning "t" the net gets c = t both from score(x, t) and from model(x, alpha_t, sigma_t) (through
    time_from_logsnr); with "logsnr" it gets log(alpha_t / sigma_t). c is recovered from the x0 reading,
    c = (x + sigma^2 s) / alpha. Passing the log-SNR (or nothing) as t fails by O(1)."""
    fw = SCHEDULES[schedule]()
    x, t = _points(dim=2)
    alpha, sigma = torch_kernel(fw, t)
    for conditioning, want in (("t", t), ("logsnr", torch.log(alpha) - torch.log(sigma))):
        model = ScoreModel(_EchoNet(), fw, parametrization="x0", conditioning=conditioning)
        torch.testing.assert_close(model.x0(x, t)[:, 0], want, **TOL)
        s = model(x, alpha, sigma)
        c = (x + sigma[:, None] ** 2 * s) / alpha[:, None]
        torch.testing.assert_close(c[:, 1], want, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------------------------
# losses: denoising
# --------------------------------------------------------------------------------------------


class _GaussianScore:
    """Exact score of N(0, c I) data under the forward kernel, times k: s = -k x / (alpha^2 c + sigma^2)."""

    def __init__(self, forward, c, k=1.0):
        self.forward, self.c, self.k = forward, c, k

    def score(self, x, t):
        alpha, sigma = torch_kernel(self.forward, t)
        return -self.k * x / (alpha ** 2 * self.c + sigma ** 2)[:, None]


def _gaussian_data(n, d, c, seed):
    g = torch.Generator().manual_seed(seed)
    return math.sqrt(c) * torch.randn(n, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("schedule", ["vp", "ve"])
def test_dsm_gaussian_closed_form(schedule):
    """DSM (sigma2) of the exact score for data N(0, c I_d).

    With x = alpha x0 + sigma z, v = alpha^2 c + sigma^2 and s = -x / v:
    sigma s + z = alpha (alpha c z - sigma x0) / v, so E||sigma s + z||^2 = alpha^2 (alpha^2 c^2 d + sigma^2 c d) / v^2
    = d alpha^2 c / v = d (1 - sigma^2 / v); averaged over t ~ U[eps, T] by quadrature. The Monte-Carlo mean of
    n = 200000 per-example values is within 4 SE of it. The scaled scores 0.9 s and 1.1 s (excess
    (k - 1)^2 d E[sigma^2 / v], ~0.01 here) lose by more than 5 SE of the paired difference (common random numbers:
    same generator seed); measured: closed form within 1.3 SE, margins 60-90 SE. A DSM target of +z / sigma, or a
    sigma instead of sigma^2 weight, moves the mean by many SE.
    """
    fw, d, c, n = SCHEDULES[schedule](), 2, 0.5, 200_000
    x0 = _gaussian_data(n, d, c, seed=3)

    def per_example(k):
        return dsm_loss(_GaussianScore(fw, c, k), x0, fw, generator=torch.Generator().manual_seed(11),
                        reduction="none").numpy()

    exact = per_example(1.0)

    def integrand(t):
        a, s = fw.kernel(t)
        return d * a * a * c / (a * a * c + s * s)

    want = quad(integrand, fw.eps, fw.T, limit=200)[0] / (fw.T - fw.eps)
    se = exact.std() / math.sqrt(n)
    assert abs(exact.mean() - want) < 4 * se, (exact.mean(), want, se)
    for k in (0.9, 1.1):
        diff = per_example(k) - exact
        assert diff.mean() > 5 * diff.std() / math.sqrt(n), (k, diff.mean(), diff.std() / math.sqrt(n))
    mean_loss = dsm_loss(_GaussianScore(fw, c), x0, fw, generator=torch.Generator().manual_seed(11))
    assert mean_loss.ndim == 0 and abs(float(mean_loss) - exact.mean()) < 1e-12


@pytest.mark.parametrize("weighting", ["likelihood", "uniform", "callable"])
def test_dsm_weightings_at_fixed_time(weighting):
    """At t = 0.4 the DSM loss of the exact Gaussian score has mean lambda(t) / sigma_t^2 * d alpha^2 c / v (the
    sigma2 value rescaled): lambda = g(t)^2 ("likelihood"), 1 ("uniform"), 3 + t (a callable). Within 4 SE of
    n = 100000; swapping g for g^2 or ignoring the callable fails by many SE."""
    fw, d, c, n, t = ForwardSDE.vp(), 2, 0.5, 100_000, 0.4
    x0 = _gaussian_data(n, d, c, seed=4)
    lam = {"likelihood": float(torch_coefficients(fw, torch.tensor(t))[1]) ** 2, "uniform": 1.0,
           "callable": 3.0 + t}[weighting]
    w = (lambda tt: 3.0 + tt) if weighting == "callable" else weighting
    vals = dsm_loss(_GaussianScore(fw, c), x0, fw, weighting=w, t=t, generator=torch.Generator().manual_seed(2),
                    reduction="none").numpy()
    a, s = fw.kernel(t)
    want = lam / (s * s) * d * a * a * c / (a * a * c + s * s)
    assert abs(vals.mean() - want) < 4 * vals.std() / math.sqrt(n), (vals.mean(), want)


def test_regression_losses_agree_on_same_draws():
    """Same generator seed -> same t and z. Then DSM(sigma2) of an eps model = eps_loss (sigma^2 ||s + z/sigma||^2 =
    ||epshat - z||^2), x0_loss = (sigma / alpha)^2 eps_loss and v_loss = ((alpha^2 + sigma^2) / alpha)^2 eps_loss per
    example (x0hat - x0 = -(sigma / alpha)(epshat - z), vhat - v = (alpha^2 + sigma^2) / alpha (epshat - z)); 1e-10.
    A wrong v target (sigma x0 - alpha z) or x0 target fails by O(1)."""
    fw = ForwardSDE.vp()
    model = ScoreModel(_net(), fw, parametrization="eps")
    x0 = _points(n=64)[0]

    def run(fn, **kw):
        return fn(model, x0, fw, generator=torch.Generator().manual_seed(7), reduction="none", **kw).detach()

    e = run(eps_loss)
    torch.testing.assert_close(run(dsm_loss, weighting="sigma2"), e, **TOL)
    t = fw.eps + (fw.T - fw.eps) * torch.rand(64, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    alpha, sigma = torch_kernel(fw, t)
    torch.testing.assert_close(run(x0_loss), (sigma / alpha) ** 2 * e, **TOL)
    torch.testing.assert_close(run(v_loss), ((alpha ** 2 + sigma ** 2) / alpha) ** 2 * e, **TOL)


# --------------------------------------------------------------------------------------------
# losses: sliced score matching
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", ["gaussian", "rademacher"])
@pytest.mark.parametrize("variance_reduction", [True, False])
def test_sliced_score_matching_closed_form(distribution, variance_reduction):
    """For x ~ N(0, c I_d) and s = -x / c: v^T grad(v^T s) = -||v||^2 / c has mean -d / c, and
    1/2 (v^T s)^2 (mean 1/2 E||x||^2 / c^2 = d / (2c), as E[v v^T] = I) or 1/2 ||s||^2 (the same mean) add d / (2c):
    J = -d / (2c). The wrong sign s = +x / c gives d / c + d / (2c) = 3d / (2c). n = 100000, d = 3, c = 0.7: the
    right score within 4 SE of -d / (2c), the wrong one more than 10 SE away (and within 4 SE of 3d / (2c))."""
    d, c, n = 3, 0.7, 100_000
    x = _gaussian_data(n, d, c, seed=5)
    for sign, want in ((-1.0, -d / (2 * c)), (1.0, 3 * d / (2 * c))):
        vals = sliced_score_matching_loss(lambda y, sign=sign: sign * y / c, x, variance_reduction=variance_reduction,
                                          distribution=distribution, generator=torch.Generator().manual_seed(8),
                                          reduction="none").detach().numpy()
        se = vals.std() / math.sqrt(n)
        assert abs(vals.mean() - want) < 4 * se, (sign, vals.mean(), want, se)
        if sign > 0:
            assert abs(vals.mean() + d / (2 * c)) > 10 * se


def test_sliced_score_matching_gradient():
    """s_theta(x) = -theta x, Rademacher projections (||v||^2 = d), variance reduction: the per-example loss is
    -theta d + theta^2 ||x||^2 / 2, so d J / d theta = mean(-d + theta ||x||^2) exactly (1e-10). Without
    create_graph the Jacobian term carries no gradient and the -d is lost."""
    d, n = 3, 500
    x = _gaussian_data(n, d, 1.0, seed=6)
    theta = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    loss = sliced_score_matching_loss(lambda y: -theta * y, x, distribution="rademacher", n_projections=2,
                                      generator=torch.Generator().manual_seed(1))
    loss.backward()
    want = float(torch.mean(-d + 0.8 * (x * x).sum(1)))
    assert abs(float(theta.grad) - want) < 1e-10


def test_noise_conditional_ssm_closed_form():
    """At t = 0.4, data N(0, c I_d), exact score s = -x / v (v = alpha^2 c + sigma^2): x_t ~ N(0, v I) so SSM gives
    -d / (2v), weighted by sigma^2: mean -d sigma^2 / (2v), within 4 SE of n = 100000. The sign-flipped score is
    3 d sigma^2 / (2v), far outside."""
    fw, d, c, n, t = ForwardSDE.vp(), 2, 0.5, 100_000, 0.4
    x0 = _gaussian_data(n, d, c, seed=9)
    vals = noise_conditional_ssm_loss(_GaussianScore(fw, c), x0, fw, t=t, generator=torch.Generator().manual_seed(3),
                                      reduction="none").detach().numpy()
    a, s = fw.kernel(t)
    want = -d * s * s / (2 * (a * a * c + s * s))
    assert abs(vals.mean() - want) < 4 * vals.std() / math.sqrt(n), (vals.mean(), want)


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------

MIX = GaussianMixture([0.3, 0.3, 0.4], [[-1.5, -1.0], [1.5, -1.0], [0.0, 1.5]], [0.1 * np.eye(2)] * 3)
STEPS = 800


def _train():
    torch.manual_seed(0)
    fw = ForwardSDE.vp()
    model = ScoreModel(ScoreMLP(2, hidden=64, depth=3, embedding_dim=16), fw, parametrization="eps")
    data = torch.as_tensor(MIX.sample(20_000, seed=1), dtype=torch.float32)
    result = train_score_model(model, data, fw, steps=STEPS, batch_size=256, lr=3e-3, seed=0)
    return model, fw, result


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    return _train()


def test_training_reduces_loss(trained):
    """Mean DSM loss over the last 10% of steps < 0.75 x the first 10% (measured 0.50; the DSM loss has an irreducible
    floor d E_t[...] > 0, so no ratio near 0 is possible). A step that never updates the weights gives ~1."""
    _, _, result = trained
    assert result.steps == STEPS and result.losses.shape == (STEPS,) and np.all(np.isfinite(result.losses))
    k = STEPS // 10
    ratio = result.losses[-k:].mean() / result.losses[:k].mean()
    assert ratio < 0.75, ratio
    assert 0 < result.seconds < 60


def test_training_is_reproducible(trained):
    """The same seed and initial network give bit-identical per-step losses (an unseeded draw anywhere breaks it)."""
    _, _, first = trained
    _, _, second = _train()
    np.testing.assert_array_equal(first.losses, second.losses)


@pytest.mark.parametrize("t", [0.3, 0.6])
def test_learned_score_matches_exact(trained, t):
    """Relative MSE sum ||s_theta - s||^2 / sum ||s||^2 on 4000 fresh x_t against MixtureMarginals' exact score is
    below 0.05 (measured 0.010 at t = 0.3 and 0.007 at 0.6). An untrained net is at ~1 or above."""
    model, fw, _ = trained
    mm = MixtureMarginals(MIX)
    a, s = fw.kernel(t)
    x = mm.sample(4000, a, s, seed=5)
    exact = mm.score(x, a, s)
    with torch.no_grad():
        learned = model.score(torch.as_tensor(x, dtype=torch.float32), t).double().numpy()
    rel = np.sum((learned - exact) ** 2) / np.sum(exact ** 2)
    assert rel < 0.05, rel


def test_trained_model_drives_a_sampler(trained):
    """DPM-Solver-2 (20 steps, NumPy state) with the ScoreModel as its score(x, alpha, sigma): the fractions of 4000
    samples nearest each mixture mean are within 0.06 of the weights (measured <= 0.03). A score of the wrong sign
    sends the samples off to infinity / to one region and fails."""
    model, fw, _ = trained
    x_t = fw.prior_sample(4000, 2, seed=3)
    out = dpm_solver_sample(model, fw, x_t, steps=20, order=2).x
    assert isinstance(out, np.ndarray) and np.all(np.isfinite(out))
    nearest = ((out[:, None, :] - MIX.means[None]) ** 2).sum(-1).argmin(1)
    fractions = np.bincount(nearest, minlength=3) / len(out)
    np.testing.assert_allclose(fractions, MIX.weights, atol=0.06)


@pytest.mark.parametrize("loss", ["v", "ssm"])
def test_training_accepts_a_sampler_callable(loss, caplog):
    """data as a callable (n, generator) -> (n, d), the v and sliced-score-matching losses, a progress bar and
    log_every: runs, logs one line per log_every steps with their mean loss, and another seed gives other losses
    (a seed that did not reach the generator would give equal ones)."""
    fw = ForwardSDE.vp()

    def draw(n, gen):
        return torch.randn(n, 2, generator=gen)

    runs = []
    for seed in (0, 1):
        torch.manual_seed(0)
        model = ScoreModel(ScoreMLP(2, hidden=8, depth=1, embedding_dim=4), fw, parametrization="v")
        with caplog.at_level("INFO", logger="sdekit.learn"):
            res = train_score_model(model, draw, fw, loss=loss, steps=6, batch_size=16, seed=seed, progress=True,
                                    log_every=3)
        runs.append(res.losses)
    assert np.all(np.isfinite(runs[0])) and not np.array_equal(runs[0], runs[1])
    logged = [r.getMessage() for r in caplog.records if r.name == "sdekit.learn"]
    assert len(logged) == 4 and logged[-1] == f"step 6/6: loss {runs[1][3:].mean():.6g}"


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def test_bad_input_names_the_argument():
    """Each bad argument raises SDEKitError naming it."""
    fw, net = ForwardSDE.vp(), _net(dim=2)
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    model = ScoreModel(net, fw)
    cases = [
        ("parametrization", lambda: ScoreModel(net, fw, parametrization="noise")),
        ("conditioning", lambda: ScoreModel(net, fw, conditioning="sigma")),
        ("forward", lambda: ScoreModel(net, "vp")),
        ("weighting", lambda: dsm_loss(model, x0, fw, weighting="snr")),
        ("x0", lambda: dsm_loss(model, torch.zeros(4, 3, dtype=torch.float64), fw)),
        ("x0", lambda: eps_loss(model, torch.zeros(4, dtype=torch.float64), fw)),
        ("t", lambda: dsm_loss(model, x0, fw, t=torch.ones(3))),
        ("distribution", lambda: sliced_score_matching_loss(lambda y: -y, x0, distribution="uniform")),
        ("n_projections", lambda: sliced_score_matching_loss(lambda y: -y, x0, n_projections=0)),
        ("loss", lambda: train_score_model(model, x0, fw, loss="nce", steps=1)),
        ("weighting", lambda: train_score_model(model, x0, fw, weighting="snr", steps=1)),
        ("activation", lambda: ScoreMLP(2, activation="swish")),
        ("embedding_dim", lambda: ScoreMLP(2, embedding_dim=7)),
        ("sigma", lambda: model(x0, 1.0, 0.0)),
        ("alpha", lambda: model(x0, torch.ones(3), 0.5)),
        ("forward", lambda: time_from_logsnr("vp", 0.0)),
    ]
    for name, call in cases:
        with pytest.raises(SDEKitError, match=name):
            call()
