"""ULA, MALA, random-walk Metropolis and HMC on Gibbs densities (sdekit.mcmc).

Calibration: every `compare_with_law` battery runs at overall false-alarm rate alpha = 1e-6
(Bonferroni inside the battery), on the end states of 20000 chains started exactly in pi: the
chains are independent, so the end states are i.i.d. draws from pi whenever the kernel is
pi-invariant, whatever the mixing. MCMC means are checked with z = (mean - E_pi f) / MCSE, the
MCSE from ArviZ's ESS, against |z| < 4.89 (two-sided normal tail 1e-6).

Planted bugs, each shown to fail the same battery that the correct kernel passes (same driver,
same seed, the step replaced by its variant from the module's ``DEFECTS`` through
`sdekit.mcmc.defects.planted`): MALA without the proposal correction and with it reversed;
Metropolis accepting with exp(-dE / 2); HMC without the kinetic energy in the acceptance ratio and
with the momentum not refreshed; ULA with its noise off by sqrt(2).
"""

from __future__ import annotations

import re
import warnings

import numba as nb
import numpy as np
import pytest
from hypothesis import given

from sdekit.errors import ChainNonFiniteError, SDEKitError, SDEKitWarning
from sdekit.mcmc import hmc, mala, rwm, ula
from sdekit.mcmc.adaptation import dual_averaging_init, dual_averaging_reference, dual_averaging_update
from sdekit.mcmc.defects import planted
from sdekit.mcmc.diagnostics import MCMCWarning
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.targets.energy import EnergyTarget
from sdekit.testing import STATISTICAL, gaussian_targets
from sdekit.validate import compare_with_law, ula_law

ALPHA = 1e-6
Z_CRIT = 4.89  # P(|N(0,1)| > 4.89) = 1.0e-6
N = 20_000
TARGET = Gaussian([0.5, -1.0], [[1.0, 0.6], [0.6, 2.0]])
MIXTURE = GaussianMixture([0.35, 0.65], [[-2.0, 0.0], [2.0, 1.0]],
                          [[[0.5, 0.1], [0.1, 0.4]], [[0.6, -0.2], [-0.2, 0.8]]])

SAMPLERS = {"mala": mala, "rwm": rwm, "hmc": hmc, "ula": ula}
# (sampler, kwargs, planted defect or None, should pass against pi); large steps so that a bias would show
STATIONARITY_CASES = [
    ("mala", dict(step_size=0.6), None, True),
    ("mala", dict(step_size=0.6), "no_proposal_correction", False),
    ("mala", dict(step_size=0.6), "reversed_proposal_correction", False),
    ("rwm", dict(step_size=1.2), None, True),
    ("rwm", dict(step_size=1.6, proposal="uniform"), None, True),
    ("rwm", dict(step_size=1.2, proposal_cov=[[1.0, 0.6], [0.6, 2.0]]), None, True),
    ("rwm", dict(step_size=1.2), "acceptance_at_temperature_2", False),
    ("hmc", dict(step_size=0.9, n_leapfrog=4), None, True),
    ("hmc", dict(step_size=0.9, n_leapfrog=4, mass=[2.0, 0.5]), None, True),
    ("hmc", dict(step_size=0.9, n_leapfrog=4, mass=[[1.0, 0.3], [0.3, 0.8]]), None, True),
    ("hmc", dict(step_size=0.9, n_leapfrog=4), "no_kinetic_energy", False),
    ("hmc", dict(step_size=0.9, n_leapfrog=4), "momentum_not_refreshed", False),
]


def _from_pi(name: str, target, steps: int, seed: int = 0, defect: str | None = None, **kw):
    run = SAMPLERS[name] if defect is None else planted(name, defect)
    return run(target, n_chains=N, n_draws=1, n_warmup=0, thin=steps, seed=seed, x0="target",
               **({"adapt": False} if name != "ula" else {}), **kw)


@pytest.mark.parametrize("name,kw,defect,ok", STATIONARITY_CASES,
                         ids=[f"{c[0]}-{i}-{c[2] or 'correct'}" for i, c in enumerate(STATIONARITY_CASES)])
def test_adjusted_samplers_are_exactly_invariant_and_planted_bugs_fail(name, kw, defect, ok):
    """Metropolis-adjusted kernels are pi-invariant at any step: 20 large steps from pi keep pi exactly;
    each planted bug moves the law far enough that the same battery rejects it."""
    res = _from_pi(name, TARGET, 20, seed=11, defect=defect, **kw)
    report = compare_with_law(res.final, TARGET, alpha=ALPHA)
    assert report.passed is ok, report.to_text()
    assert 0.0 <= res.acceptance_rate <= 1.0


def test_ula_is_biased_exactly_as_its_gaussian_law_says():
    """ULA at h = 0.3 from pi: rejected against pi, accepted against its exact law after K steps
    (`ula_law`, V_h = S (I - h S^{-1}/2)^{-1} in the limit); with the noise off by sqrt(2) it is rejected
    against that law too."""
    h, k = 0.3, 30
    law = ula_law(TARGET, h, k)
    res = _from_pi("ula", TARGET, k, seed=3, step_size=h)
    assert not compare_with_law(res.final, TARGET, alpha=ALPHA).passed
    assert compare_with_law(res.final, law, alpha=ALPHA).passed
    bad = _from_pi("ula", TARGET, k, seed=3, step_size=h, defect="noise_off_by_sqrt2")
    assert not compare_with_law(bad.final, law, alpha=ALPHA).passed


def test_mala_passes_stein_on_a_mixture_and_a_missing_correction_fails_it():
    """On a two-mode mixture the full battery, incl. the Stein-identity test with the exact score, accepts
    MALA at h = 0.25 after 40 steps from pi; MALA without its proposal correction (a ULA-like bias inside
    each mode) is rejected, and the Stein test is among the tests that reject it."""
    good = _from_pi("mala", MIXTURE, 40, seed=5, step_size=0.25)
    report = compare_with_law(good.final, MIXTURE, alpha=ALPHA)
    assert report.passed, report.to_text()
    biased = _from_pi("mala", MIXTURE, 40, seed=5, step_size=0.25, defect="no_proposal_correction")
    report = compare_with_law(biased.final, MIXTURE, alpha=ALPHA)
    assert not report.passed
    stein = [r for r in report.results if r.test.startswith("Stein")]
    assert stein and not stein[0].passed, report.to_text()


@pytest.mark.parametrize("name,kw", [("mala", {}), ("hmc", dict(n_leapfrog=5)), ("rwm", {})])
def test_long_run_means_and_variances_within_mcse(name, kw):
    """8 adapted chains x 4000 draws from N(0, I) starts: means and variances of each coordinate
    within |z| < 4.89 of the exact values, z from ArviZ's MCSE; R-hat < 1.01."""
    res = SAMPLERS[name](TARGET, n_chains=8, n_draws=4000, n_warmup=1000, seed=7, **kw)
    assert np.all(np.abs(res.mean_z(TARGET.mean)) < Z_CRIT)
    sq = (res.samples - TARGET.mean) ** 2
    assert np.all(np.abs(res.expectation_z(sq, np.diag(TARGET.cov))) < Z_CRIT)
    assert np.all(res.rhat() < 1.01)


def test_mcse_z_detects_metropolis_at_the_wrong_temperature():
    """The same long-run check rejects Metropolis accepting with exp(-dE/2) (it samples pi^{1/2}, twice
    the variance)."""
    res = planted("rwm", "acceptance_at_temperature_2")(TARGET, n_chains=8, n_draws=4000, n_warmup=1000, seed=7)
    sq = (res.samples - TARGET.mean) ** 2
    assert np.max(np.abs(res.expectation_z(sq, np.diag(TARGET.cov)))) > Z_CRIT


def test_dual_averaging_reaches_the_target_acceptance_and_matches_the_recursion():
    """Dual averaging (Hoffman & Gelman 2014, Alg. 5): the compiled update equals the reference
    recursion; MALA and HMC adapt from a poor initial step to within 0.06 of their targets."""
    rng = np.random.default_rng(0)
    probs = rng.uniform(size=300)
    state = np.empty(5)
    dual_averaging_init(state, 0.3)
    for a in probs:
        last = dual_averaging_update(state, a, 0.65)
    ref_last, ref_bar = dual_averaging_reference(probs, 0.3, 0.65)
    assert np.isclose(last, ref_last, rtol=1e-12) and np.isclose(np.exp(state[3]), ref_bar, rtol=1e-12)
    for fn, kw, goal in [(mala, {}, 0.574), (hmc, dict(n_leapfrog=5), 0.8)]:
        res = fn(TARGET, step_size=5.0, n_chains=4, n_draws=2000, n_warmup=2000, seed=1, **kw)
        assert abs(res.acceptance_rate - goal) < 0.06, (fn.__name__, res.acceptance_rate)


def test_same_seed_same_numbers_whatever_the_thread_count_or_number_of_chains():
    """Each chain's numbers depend only on (seed, chain)."""
    before = nb.get_num_threads()
    try:
        nb.set_num_threads(1)
        one = mala(TARGET, n_chains=6, n_draws=50, n_warmup=50, seed=9).samples
        nb.set_num_threads(nb.config.NUMBA_NUM_THREADS)  # all cores (the test session runs on 1 by default)
        many = mala(TARGET, n_chains=6, n_draws=50, n_warmup=50, seed=9).samples
    finally:
        nb.set_num_threads(before)
    fewer = mala(TARGET, n_chains=3, n_draws=50, n_warmup=50, seed=9).samples
    assert np.array_equal(one, many)
    assert np.array_equal(fewer, many[:3])
    assert not np.array_equal(mala(TARGET, n_chains=3, n_draws=50, n_warmup=50, seed=10).samples, fewer)


def test_hmc_flags_divergences_and_rejects_them():
    """A step far beyond the leapfrog stability limit (h = 6 on a target with sd <= 1.6) blows the energy up:
    every transition diverges and is rejected; a small step has none."""
    with pytest.warns(MCMCWarning, match="100 of 100 transitions after warm-up diverged"):
        wild = hmc(TARGET, step_size=6.0, n_leapfrog=10, n_chains=2, n_draws=50, n_warmup=0, adapt=False)
    assert wild.n_divergent == 100 and wild.acceptance_rate == 0.0
    assert wild.diagnostics.fired == ("divergences",)
    assert np.all(wild.samples == wild.samples[:, :1])  # never moved
    calm = hmc(TARGET, step_size=0.2, n_leapfrog=10, n_chains=2, n_draws=50, n_warmup=0, adapt=False)
    assert calm.n_divergent == 0


def test_arviz_conversion_and_rhat_sees_chains_stuck_in_different_modes():
    """to_arviz gives posterior x (chain, draw, dim) and sample stats; on a mixture with modes far apart,
    MALA chains started in different modes never cross and split R-hat flags it (> 1.5)."""
    far = GaussianMixture([0.5, 0.5], [[-8.0], [8.0]], [[[0.5]], [[0.5]]])
    with pytest.warns(MCMCWarning) as record:  # deliberately stuck chains: R-hat (and ESS) warn
        res = mala(far, n_chains=4, n_draws=500, n_warmup=200, seed=2, x0=[[-8.0], [-8.0], [8.0], [8.0]])
    assert any(re.match(r"mala: R-hat 1\.\d{3} > 1\.01", str(w.message)) for w in record)
    data = res.to_arviz()
    assert data.posterior["x"].shape == (4, 500, 1)
    assert set(data.sample_stats.data_vars) >= {"acceptance_rate", "diverging", "lp", "step_size"}
    assert res.rhat()[0] > 1.5
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    assert np.size(res.plot_rank()) == 1 and np.shape(res.plot_trace()) == (1, 2)
    assert np.all(np.sign(res.samples[:, :, 0]) == np.array([-1, -1, 1, 1])[:, None])


def test_ula_non_finite_stops_with_chain_and_step():
    """ULA beyond its stability limit 2 lambda_min(S) explodes; the run stops naming the chain and step."""
    with pytest.raises(ChainNonFiniteError, match=r"chain \d+ became non-finite .* at step \d+"):
        ula(TARGET, step_size=5.0, n_chains=2, n_draws=2000, seed=0)


@nb.njit
def _log_barrier(x, p, grad):
    # U = -log(1 - |x|^2) on the unit ball: infinite outside it
    r2 = 0.0
    for i in range(x.shape[0]):
        r2 += x[i] * x[i]
    for i in range(x.shape[0]):
        grad[i] = 2.0 * x[i] / (1.0 - r2)
    return -np.log(1.0 - r2) if r2 < 1.0 else np.inf


def test_user_energy_with_infinite_walls_is_never_left():
    """A user energy (EnergyTarget) that is +inf outside the unit disk: MALA rejects every proposal outside,
    so no draw leaves it, and counts them (on_nonfinite="reject": walls on purpose, no warning); a start
    outside raises ChainNonFiniteError at step 0."""
    disk = EnergyTarget(_log_barrier, 2, name="barrier")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SDEKitWarning)
        res = mala(disk, step_size=0.2, n_chains=4, n_draws=1000, n_warmup=300, seed=0, x0=np.zeros(2),
                   on_nonfinite="reject")
    assert np.all(np.sum(res.samples ** 2, axis=2) < 1.0)
    assert res.n_nonfinite.shape == (4,) and np.all(res.n_nonfinite > 0)  # measured 16% of the proposals
    assert res.diagnostics.flags == ()
    with pytest.raises(ChainNonFiniteError, match="initial position"):
        mala(disk, n_chains=2, n_draws=5, n_warmup=0, x0=[2.0, 0.0])


@pytest.mark.parametrize("call,match", [
    (lambda: mala(TARGET, step_size=-1.0), "step_size"),
    (lambda: mala(TARGET, n_chains=0), "n_chains"),
    (lambda: mala(TARGET, target_accept=1.5), "target_accept"),
    (lambda: mala(TARGET, x0=np.zeros(3)), "x0"),
    (lambda: mala(TARGET, x0="prior"), "x0"),
    (lambda: hmc(TARGET, n_leapfrog=0), "n_leapfrog"),
    (lambda: hmc(TARGET, mass=[1.0, -1.0]), "mass"),
    (lambda: hmc(TARGET, mass=np.eye(3)), "mass"),
    (lambda: rwm(TARGET, proposal="cauchy"), "proposal"),
    (lambda: rwm(TARGET, proposal_cov=[[1.0, 2.0], [2.0, 1.0]]), "proposal_cov"),
    (lambda: mala(object()), "dim"),
    (lambda: mala(TARGET, seed=-1), "seed"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(SDEKitError, match=match):
        call()


@STATISTICAL
@given(target=gaussian_targets(min_dim=1, max_dim=3))
def test_mala_keeps_random_gaussians_invariant(target):
    """Property: on random Gaussians, MALA at a step of 1.5 lambda_min (where ULA's bias would show)
    keeps pi exactly after 10 steps from pi."""
    h = 1.5 * float(np.linalg.eigvalsh(target.cov).min())
    res = mala(target, step_size=h, n_chains=10_000, n_draws=1, n_warmup=0, thin=10, adapt=False,
               x0="target", seed=4)
    report = compare_with_law(res.final, target, alpha=ALPHA)
    assert report.passed, report.to_text()
