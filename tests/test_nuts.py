"""The No-U-Turn Sampler (sdekit.mcmc.nuts).

Calibration as in tests/test_mcmc.py: every `compare_with_law` battery at overall false-alarm rate 1e-6, on the
end states of 20,000 independent chains started exactly in pi (i.i.d. from pi whenever the transition is
pi-invariant); long-run means with z = (estimate - truth) / MCSE (ArviZ) against |z| < 4.89.

Planted bugs (`sdekit.mcmc.nuts.DEFECTS`, each the production step with one helper replaced): the proposal drawn
uniformly over the trajectory (weights ignored), the biased progressive step between subtrees with its ratio
inverted, and the no-U-turn criterion checked at one end only (the end the tree grows towards: the check then
depends on the build direction, so the tree depends on where the chain started). A criterion reversed
consistently at both ends (stop while *not* turning) is still pi-invariant, since every check acts symmetrically on
the aligned subtrees of the final tree, and the battery rightly accepts it, so it is not a planted bug here.

Every run goes through the public driver (`nuts`, or `sdekit.mcmc.defects.planted("nuts", defect)`), whose
per-draw ``stats`` carry the tree depth, leapfrog steps and max-depth hits of each transition.
"""

from __future__ import annotations

import warnings

import numba as nb
import numpy as np
import pytest

from sdekit.errors import SDEKitError
from sdekit.mcmc import nuts
from sdekit.mcmc.defects import planted
from sdekit.mcmc.diagnostics import MCMCWarning
from sdekit.mcmc.nuts import NUTS_STATS
from sdekit.targets import Gaussian, NealFunnel, Rosenbrock
from sdekit.validate import compare_with_law

ALPHA = 1e-6
Z_CRIT = 4.89  # P(|N(0,1)| > 4.89) = 1.0e-6
N = 20_000
TARGET = Gaussian([0.5, -1.0], [[1.0, 0.6], [0.6, 2.0]])
BANANA = Rosenbrock(2, mu=1.0, a=0.5, b=2.5)  # x1 ~ N(1, 1), x2 | x1 ~ N(x1^2, 0.2)
MILD_BANANA = Rosenbrock(2, mu=1.0, a=1.0, b=2.5)  # x1 ~ N(1, 1/2): BANANA's tails mix too slowly for 24,000 draws


def _transitions(defect, target, h, n_steps, *, n=N, seed=0, max_depth=10, x0="target"):
    """``n_steps`` NUTS transitions (no warm-up, fixed step ``h``) of ``n`` chains from exact draws of ``target`` (or
    ``x0``), through the public driver (``defect``: a planted bug of `sdekit.mcmc.nuts.DEFECTS`, or None): (end
    states, per-transition stats (n, n_steps, 3) = tree depth, leapfrog steps, max depth hit, divergent)."""
    run = nuts if defect is None else planted("nuts", defect)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCMCWarning)  # divergences are expected on the banana and the funnel
        res = run(target, step_size=h, max_tree_depth=max_depth, n_chains=n, n_draws=n_steps, n_warmup=0,
                  adapt=False, seed=seed, x0=x0)
    return res.final, np.stack([res.stats[k] for k in NUTS_STATS], axis=-1), res.divergent


# (target, step size, planted defect or None, should pass against pi); steps large enough that a bias shows
STATIONARITY_CASES = [
    (TARGET, 0.9, None, True),
    (TARGET, 0.9, "multinomial_weights_ignored", False),
    (TARGET, 0.9, "top_level_ratio_inverted", False),
    (TARGET, 0.9, "u_turn_checked_at_one_end", False),
]


@pytest.mark.parametrize("target,h,defect,ok", STATIONARITY_CASES,
                         ids=[f"{c[0].__class__.__name__}-{c[2] or 'correct'}" for c in STATIONARITY_CASES])
def test_nuts_is_exactly_invariant_and_planted_bugs_fail(target, h, defect, ok):
    """5 NUTS transitions of 20,000 chains from pi keep pi exactly on a correlated Gaussian (the banana: below);
    each planted bug moves the law far enough that the battery rejects it."""
    final, stats, _ = _transitions(defect, target, h, 5, seed=11)
    report = compare_with_law(final, target, alpha=ALPHA)
    assert report.passed is ok, report.to_text()
    assert np.mean(stats[..., 0]) > 1.5  # real trees, not single leapfrog steps


def test_tree_depth_and_leapfrog_counts_are_reported():
    """On N(0, 10^8) a trajectory of 31 steps of 0.01 never turns (the momentum changes by ~3e-5): every tree is full
    at the maximum depth 5 with 31 leapfrog steps and max_depth_hit; on N(0, 1) at a step of 0.5 trees are
    shallower, and a transition that kept depth j
    took between 2^j - 1 steps (full tree) and 2^(j+1) - 1 (plus a discarded subtree of 2^j)."""
    flat = Gaussian([0.0], [[1e8]])
    _, stats, div = _transitions(None, flat, 0.01, 3, n=50, max_depth=5)
    assert np.all(stats[..., 0] == 5) and np.all(stats[..., 1] == 31) and np.all(stats[..., 2] == 1)
    assert not div.any()
    _, stats, div = _transitions(None, Gaussian([0.0], [[1.0]]), 0.5, 3, n=200, max_depth=10)
    depth, steps = stats[..., 0], stats[..., 1]
    assert np.all(stats[..., 2] == 0) and 1 <= depth.min() and depth.max() < 10
    assert np.all(steps >= 2 ** depth - 1) and np.all(steps <= 2 ** (depth + 1) - 1)
    assert np.any(steps == 2 ** depth - 1) and np.any(steps > 2 ** depth - 1)


def _long_run_z(target, **kw):
    """8 adapted chains x 3000 draws: z = (estimate - truth) / MCSE (ArviZ) of every coordinate's mean and
    variance, each against |z| < 4.89."""
    res = nuts(target, n_chains=8, n_draws=3000, n_warmup=1000, seed=3, step_size=0.5, **kw)
    assert np.all(np.abs(res.mean_z(target.mean)) < Z_CRIT), res.mean_z(target.mean)
    sq = (res.samples - target.mean) ** 2
    z = res.expectation_z(sq, np.diag(target.cov))
    assert np.all(np.abs(z) < Z_CRIT), z
    assert set(NUTS_STATS) <= set(res.stats) and res.stats["n_leapfrog"].shape == (8, 3000)


def test_funnel_divergences_are_flagged_and_long_runs_match_its_moments():
    """On Neal's funnel (scale 3) a step of 1 diverges in the neck: many transitions flag it; a step of 0.05 on
    the mouth (v = 3) does not. On the funnel of scale 1 (target_accept 0.9), long-run means and variances pass
    the MCSE z-tests. (One test: one compiled kernel for the funnel's energy.)"""
    funnel = NealFunnel(5, 3.0)
    _, stats, div = _transitions(None, funnel, 1.0, 4, n=200, seed=2)
    assert 0.05 < div.mean() < 1.0
    start = np.tile([3.0, 1.0, -1.0, 0.5, 0.0], (50, 1))
    _, _, calm = _transitions(None, funnel, 0.05, 4, n=50, seed=2, x0=start)
    assert not calm.any()
    _long_run_z(NealFunnel(5, 1.0), target_accept=0.9)


def test_banana_from_exact_starts_and_in_long_runs():
    """5 transitions of 20,000 chains from exact draws of a banana (where ~2 % of the transitions diverge) keep
    it exactly (battery at 1e-6); long runs on a milder banana (BANANA's tails mix too slowly for 24,000 draws)
    pass the MCSE z-tests of means and variances. (One test: one compiled kernel for the banana's energy.)"""
    final, stats, _ = _transitions(None, BANANA, 0.2, 5, seed=11)
    report = compare_with_law(final, BANANA, alpha=ALPHA)
    assert report.passed, report.to_text()
    assert np.mean(stats[..., 0]) > 1.5
    _long_run_z(MILD_BANANA, target_accept=0.95)


def test_same_seed_same_numbers_whatever_the_thread_count():
    """Each chain's numbers depend only on (seed, chain): 1 thread and all threads give the same bits."""
    before = nb.get_num_threads()
    try:
        nb.set_num_threads(1)
        one = nuts(TARGET, n_chains=4, n_draws=50, n_warmup=50, seed=9)
        nb.set_num_threads(nb.config.NUMBA_NUM_THREADS)
        many = nuts(TARGET, n_chains=4, n_draws=50, n_warmup=50, seed=9)
    finally:
        nb.set_num_threads(before)
    assert np.array_equal(one.samples, many.samples)
    assert np.array_equal(one.stats["n_leapfrog"], many.stats["n_leapfrog"])
    assert not np.array_equal(nuts(TARGET, n_chains=4, n_draws=50, n_warmup=50, seed=10).samples, one.samples)


@pytest.mark.parametrize("kw,match", [
    (dict(max_tree_depth=0), "max_tree_depth"),
    (dict(max_tree_depth=2.5), "max_tree_depth"),
    (dict(max_tree_depth=True), "max_tree_depth"),
    (dict(max_tree_depth=31), "max_tree_depth"),
    (dict(divergence_threshold=-1.0), "divergence_threshold"),
    (dict(mass=[1.0, -2.0]), "mass"),
    (dict(mass=np.eye(3)), "mass"),
])
def test_bad_input_names_the_argument(kw, match):
    with pytest.raises(SDEKitError, match=match):
        nuts(TARGET, **kw)


def test_saturated_trees_are_warned_about():
    """Transitions cut at max_tree_depth fire the end-of-run 'tree_depth' check (share > 1 %) with one warning
    line; an adapted run on a well-scaled target does not."""
    flat = Gaussian([0.0], [[1e8]])
    with pytest.warns(MCMCWarning, match="maximum tree depth"):
        res = nuts(flat, step_size=0.01, max_tree_depth=5, adapt=False, n_chains=2, n_draws=20, n_warmup=0)
    assert "tree_depth" in res.diagnostics.fired and res.diagnostics.values["tree_depth"] == 40
    with pytest.warns(MCMCWarning, match="maximum tree depth"):  # warm-up gradients: 30 full trees of 31 steps
        warm = nuts(flat, step_size=0.01, max_tree_depth=5, adapt=False, n_chains=2, n_draws=20, n_warmup=30)
    assert np.array_equal(warm.extras["warmup_stats"]["n_leapfrog"], [30 * 31, 30 * 31])
    assert np.array_equal(warm.extras["warmup_stats"]["max_depth_hit"], [30, 30])
    ok = nuts(TARGET, n_chains=4, n_draws=500, n_warmup=300, seed=2)
    assert "tree_depth" not in ok.diagnostics.fired and ok.diagnostics.values["tree_depth"] == 0
