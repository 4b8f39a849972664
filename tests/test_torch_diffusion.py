"""Diffusion models on the torch backend: one specification, both backends, exact laws.

- `DiffusionModel.exact_mixture(...).reverse_sde()` / `.probability_flow()` (njit score) run on torch through their
  registered twins and equal the reference paths on shared noise (1e-10).
- The same SDE built from a torch score (`TorchMixtureScore.score_t`) equals it too.
- Samples from the reverse SDE (torchsde's SRK = SRA1, weak order 2, 200 steps), the PF-ODE (torchdiffeq dopri5)
  and DPM-Solver run on torch with the analytic torch score pass `compare_with_law` against the exact p_eps
  (each battery gated at 1e-6);
  the planted bug (the score's sign flipped in the reverse drift) fails it.
- The PF-ODE likelihood on torch equals the exact log p_eps (exact divergence) and its Hutchinson estimate agrees
  within its standard error; gradients of a small score network flow through an adjoint PF-ODE solve.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchsde")
pytest.importorskip("torchdiffeq")

from sdekit import simulate  # noqa: E402
from sdekit.diffusion import DiffusionModel, ForwardSDE, probability_flow_ode, reverse_sde  # noqa: E402
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample  # noqa: E402
from sdekit.diffusion.torch_likelihood import torch_log_likelihood  # noqa: E402
from sdekit.diffusion.torch_mixture import TorchMixtureScore  # noqa: E402
from sdekit.errors import SDEKitError  # noqa: E402
from sdekit.targets import GaussianMixture  # noqa: E402
from sdekit.validate import compare_with_law  # noqa: E402

torch.set_num_threads(1)
DATA = GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]],
                       [np.eye(2) * 0.3, np.array([[0.5, 0.2], [0.2, 0.4]])])
N = 20_000
TESTS = ("ks", "cvm", "moments", "stein")


@pytest.mark.parametrize("fw", [ForwardSDE.vp(), ForwardSDE.ve(0.01, 10.0)], ids=["vp", "ve"])
def test_one_specification_runs_on_both_backends(fw):
    model = DiffusionModel.exact_mixture(fw, DATA)
    x_t = model.sample_marginal(6, fw.T, seed=1)
    rs = model.reverse_sde()
    a = simulate(rs, x_t, (fw.T, fw.eps), steps=100, seed=3, backend="numpy", save_at="steps")
    b = simulate(rs, torch.as_tensor(x_t), (fw.T, fw.eps), steps=100, seed=3, backend="torch", save_at="steps")
    np.testing.assert_allclose(b.ys.numpy(), a.ys, rtol=1e-11, atol=1e-10)
    torch_score = TorchMixtureScore(DATA, fw)
    c = simulate(reverse_sde(fw, torch_score.score_t, 2), torch.as_tensor(x_t), (fw.T, fw.eps), steps=100, seed=3,
                 backend="torch", save_at="steps")
    np.testing.assert_allclose(c.ys.numpy(), a.ys, rtol=1e-11, atol=1e-10)
    pf = model.probability_flow()
    a = simulate(pf, x_t, (fw.T, fw.eps), steps=50, solver="heun", backend="numpy")
    b = simulate(pf, torch.as_tensor(x_t), (fw.T, fw.eps), steps=50, solver="heun", backend="torch")
    c = simulate(probability_flow_ode(fw, torch_score.score_t, 2), torch.as_tensor(x_t), (fw.T, fw.eps), steps=50,
                 solver="heun", backend="torch")
    np.testing.assert_allclose(b.ys.numpy(), a.ys, rtol=1e-11, atol=1e-10)
    np.testing.assert_allclose(c.ys.numpy(), a.ys, rtol=1e-11, atol=1e-10)


def _flipped(score):
    return lambda x, t: -score(x, t)


def _vp_setup(seed: int) -> tuple:
    """(VP forward SDE, torch exact score, N exact draws of p_T as a tensor, the exact law p_eps)."""
    fw = ForwardSDE.vp()
    model = DiffusionModel.exact_mixture(fw, DATA)
    return fw, TorchMixtureScore(DATA, fw), torch.as_tensor(model.sample_marginal(N, fw.T, seed=seed)), \
        model.marginal(fw.eps)


def test_reverse_sde_with_torch_score_reaches_the_exact_law_and_the_flipped_sign_does_not():
    fw, torch_score, x_t, law = _vp_setup(seed=5)
    good = simulate(reverse_sde(fw, torch_score.score_t, 2), x_t, (fw.T, fw.eps), steps=200, seed=6,
                    solver="sra1", backend="torch")
    rep = compare_with_law(good.final.numpy(), law, tests=TESTS, name="torch reverse SDE")
    assert rep.passed, rep.to_text()
    bad = simulate(reverse_sde(fw, _flipped(torch_score.score_t), 2), x_t, (fw.T, fw.eps), steps=100, seed=6,
                   backend="torch", on_nonfinite="mask")
    finite = bad.final.numpy()[np.isfinite(bad.final.numpy()).all(axis=1)]
    assert finite.shape[0] < 100 or not compare_with_law(finite, law, tests=TESTS).passed


def test_probability_flow_dopri5_and_dpm_solver_on_torch_reach_the_exact_law():
    fw, torch_score, x_t, law = _vp_setup(seed=9)
    pf = simulate(probability_flow_ode(fw, torch_score.score_t, 2), x_t, (fw.T, fw.eps), rtol=1e-7, atol=1e-9,
                  backend="torch")
    rep = compare_with_law(pf.final.numpy(), law, tests=TESTS, name="torch PF-ODE dopri5")
    assert rep.passed, rep.to_text()
    dpm = dpm_solver_sample(torch_score, fw, x_t, order=3, steps=30).x
    assert isinstance(dpm, torch.Tensor)
    rep = compare_with_law(dpm.numpy(), law, tests=TESTS, name="torch DPM-Solver-3")
    assert rep.passed, rep.to_text()
    bad = dpm_solver_sample(lambda x, a, s: -torch_score(x, a, s), fw, x_t, order=3, steps=30).x
    assert not compare_with_law(bad.numpy(), law, tests=TESTS).passed


def test_torch_likelihood_equals_the_exact_log_density():
    fw = ForwardSDE.vp()
    model = DiffusionModel.exact_mixture(fw, DATA)
    torch_score = TorchMixtureScore(DATA, fw)
    x = model.sample_marginal(16, fw.eps, seed=2)
    exact = model.marginal(fw.eps).log_prob(x)

    def prior(z):
        return torch_score.log_prob_t(z, fw.T)

    with torch.no_grad():
        res = torch_log_likelihood(torch_score.score_t, fw, torch.as_tensor(x), steps=100, prior_log_prob=prior)
        hutch = torch_log_likelihood(torch_score.score_t, fw, torch.as_tensor(x), steps=40,
                                     divergence="hutchinson", probes=16, prior_log_prob=prior)
    np.testing.assert_allclose(res.log_prob.numpy(), exact, atol=1e-5)  # RK4, 100 steps: error ~1e-7
    z = (hutch.log_prob.numpy() - exact) / hutch.stderr.numpy()
    assert np.all(np.abs(z) < 5.5), z  # each |z| < 5.5 has false-alarm rate 4e-8 (16 points: < 1e-6)
    # planted bug: the prior's log-density off by log 2 shifts every value
    with torch.no_grad():
        off = torch_log_likelihood(torch_score.score_t, fw, torch.as_tensor(x), steps=20,
                                   prior_log_prob=lambda z: prior(z) + np.log(2.0))
    assert np.all(np.abs(off.log_prob.numpy() - exact) > 0.6)
    with pytest.raises(SDEKitError, match="divergence"):
        torch_log_likelihood(torch_score.score_t, fw, torch.as_tensor(x), divergence="trace")


def _likelihoods(torch_score, fw, x, probes, seed=0):
    """(exact-divergence, Hutchinson) PF-ODE likelihoods of the rows of x, both RK4 with 10 steps."""
    with torch.no_grad():
        exact = torch_log_likelihood(torch_score.score_t, fw, x, steps=10)
        hutch = torch_log_likelihood(torch_score.score_t, fw, x, steps=10, divergence="hutchinson", probes=probes,
                                     probe="gaussian", seed=seed)
    return exact, hutch


@pytest.mark.parametrize("n", [1, 7, 100, 1000])
def test_torch_hutchinson_likelihood_at_any_batch_size(n):
    """The Hutchinson estimate has the batch's shape and agrees with the exact divergence within its standard error.

    Both solves follow the same path (the field does not depend on the probes), so per row the difference is
    mean_j e_j^T A e_j - tr A for Gaussian probes e_j and the path's integrated Jacobian A: unbiased, independent
    across rows and probes. Z = sum of differences / sqrt(sum of squared standard errors) pools n * probes >= 64
    terms; |Z| < 6 has a false-alarm rate below 1e-6 even allowing for the chi-square skew (normal tail 2e-9;
    Edgeworth factor < 15 at 64 terms). The planted bug (probe vectors scaled by 1.2, a wrong normalisation:
    bias 0.44 tr A) fails it at n = 1000 (measured Z = 8.8 already at a scale of 1.1).
    """
    fw = ForwardSDE.vp()
    torch_score = TorchMixtureScore(DATA, fw)
    x = torch.as_tensor(DiffusionModel.exact_mixture(fw, DATA).sample_marginal(n, fw.eps, seed=n))
    probes = max(16, 64 // n)
    exact, hutch = _likelihoods(torch_score, fw, x, probes, seed=n)
    for field in (hutch.log_prob, hutch.stderr, hutch.prior_log_prob, hutch.divergence_integral):
        assert field.shape == (n,)
    assert hutch.x_T.shape == (n, 2)
    torch.testing.assert_close(hutch.x_T, exact.x_T)  # the same path
    assert bool((hutch.stderr > 0).all())
    z = float((hutch.log_prob - exact.log_prob).sum() / torch.sqrt((hutch.stderr ** 2).sum()))
    assert abs(z) < 6.0, z


def test_torch_hutchinson_likelihood_planted_probe_scale_is_caught(monkeypatch):
    import sdekit.diffusion.torch_likelihood as tl

    fw = ForwardSDE.vp()
    torch_score = TorchMixtureScore(DATA, fw)
    x = torch.as_tensor(DiffusionModel.exact_mixture(fw, DATA).sample_marginal(1000, fw.eps, seed=1000))
    real = tl._divergence
    monkeypatch.setattr(tl, "_divergence", lambda v, xs, e, cg: real(v, xs, None if e is None else 1.2 * e, cg))
    exact, hutch = _likelihoods(torch_score, fw, x, 16, seed=1000)
    z = float((hutch.log_prob - exact.log_prob).sum() / torch.sqrt((hutch.stderr ** 2).sum()))
    assert abs(z) > 6.0, z


class _ScoreNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2)).double()

    def forward(self, x, t):
        tt = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0], 1)
        return self.net(torch.cat([x, tt], dim=1))


def test_gradients_of_a_score_network_flow_through_the_adjoint_pf_ode():
    fw = ForwardSDE.vp()
    net = _ScoreNet()
    ode = probability_flow_ode(fw, net, 2)
    x_t = torch.as_tensor(DiffusionModel.exact_mixture(fw, DATA).sample_marginal(8, fw.T, seed=3))
    grads = []
    for adjoint in (False, True):
        net.zero_grad()
        sol = simulate(ode, x_t, (fw.T, fw.eps), rtol=1e-9, atol=1e-11, backend="torch", adjoint=adjoint)
        (sol.final ** 2).mean().backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in net.parameters()]))
    assert grads[0].abs().max() > 1e-3
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-8)
