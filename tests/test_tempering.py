"""Replica exchange and simulated annealing (`sdekit.mcmc.tempering`).

Every sampler run here uses one compiled kernel (MALA local moves on a `GaussianMixture` energy; a
Gaussian target is passed as a one-component mixture, the same law), so Numba compiles it once; the
planted bugs are kernel variants from ``DEFECTS`` run through `sdekit.mcmc.defects.planted`. Each
`compare_with_law` battery has a false-alarm rate of at most 1e-6 (Bonferroni over its gating tests); a
passing battery on a correct sampler and a failing one on a planted bug are both asserted.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from sdekit.errors import SDEKitError
from sdekit.mcmc.defects import planted
from sdekit.mcmc.mala import mala
from sdekit.mcmc.tempering import (
    annealing_schedule,
    geometric_ladder,
    replica_exchange,
    simulated_annealing,
    tempered_gaussian_law,
)
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.validate.compare import compare_with_law

GATING = ("ks", "cvm", "moments", "stein")  # MMD is a diagnostic only: skip it to save time
MU = np.array([1.0, -0.5])
COV = np.array([[1.0, 0.6], [0.6, 2.0]])
GAUSS = Gaussian(MU, COV)
GAUSS_AS_MIXTURE = GaussianMixture([1.0], [MU], [COV])  # the same law and energy, through the mixture kernel
REFERENCE = (np.array([-2.0, 1.5]), 2.5)
BETAS = np.array([0.0, 0.2, 0.5, 1.0])
N_RUNS = 20_000


def exact_starts(n: int, seed: int) -> np.ndarray:
    """(n, K, d): replica k of every run drawn exactly from pi_k."""
    return np.stack([tempered_gaussian_law(GAUSS, b, REFERENCE).sample(n, seed=seed + k)
                     for k, b in enumerate(BETAS)], axis=1)


def exact_start_run(defect: str | None = None):
    run = replica_exchange if defect is None else planted("replica_exchange", defect)
    return run(GAUSS_AS_MIXTURE, betas=BETAS, reference=REFERENCE, n_rounds=4, n_warmup=0, n_runs=N_RUNS,
               adapt=False, keep_all=True, x0=exact_starts(N_RUNS, 100), seed=5)


def test_tempered_gaussian_law_is_the_product_of_gaussians():
    m, s = REFERENCE
    assert np.allclose(tempered_gaussian_law(GAUSS, 1.0, REFERENCE).cov, COV)
    assert np.allclose(tempered_gaussian_law(GAUSS, 1.0, REFERENCE).mean, MU)
    assert np.allclose(tempered_gaussian_law(GAUSS, 0.0, REFERENCE).cov, s ** 2 * np.eye(2))
    assert np.allclose(tempered_gaussian_law(GAUSS, 0.0, REFERENCE).mean, m)
    law = tempered_gaussian_law(GAUSS, 0.3, REFERENCE)
    x = np.random.default_rng(0).standard_normal((5, 2))
    log_unnorm = 0.3 * GAUSS.log_prob(x) - 0.7 * np.sum((x - m) ** 2, axis=1) / (2 * s ** 2)
    diff = law.log_prob(x) - log_unnorm  # constant in x
    assert np.ptp(diff) < 1e-12
    assert np.allclose(tempered_gaussian_law(GAUSS, 0.25).cov, 4 * COV)  # power tempering: N(mu, S / beta)


def test_replica_exchange_keeps_every_tempered_law_from_exact_starts():
    """Start each replica exactly from its pi_k, run 4 rounds (local MALA + DEO swaps): the beta = 1 and
    beta = 0 replicas still pass the battery (false-alarm rate 1e-6 each)."""
    res = exact_start_run()
    reps = res.extras["replica_samples"]
    assert reps.shape == (N_RUNS, 4, 4, 2)
    assert np.array_equal(res.samples, reps[:, -1])
    top = compare_with_law(reps[:, -1, -1], GAUSS, tests=GATING)
    bottom = compare_with_law(reps[:, 0, -1], tempered_gaussian_law(GAUSS, 0.0, REFERENCE), tests=GATING)
    assert top.passed, top  # measured min p 0.47
    assert bottom.passed, bottom  # measured min p 0.074
    acc = res.extras["swap_acceptance"]
    assert acc.shape == (3,) and np.all((acc > 0.2) & (acc <= 1.0))  # measured 0.39, 0.64, 0.70
    assert res.extras["round_trips"].shape == (N_RUNS,)
    assert res.extras["n_gradients"] == 4 * 4


@pytest.mark.parametrize("defect", ["reversed_swap_exponent", "swap_without_reference"])
def test_planted_swap_bugs_fail_the_battery(defect):
    """Reversed exponent or U in place of U - U_ref in the swap: the beta = 1 replica fails the
    battery (which a correct sampler fails with probability <= 1e-6)."""
    res = exact_start_run(defect)
    top = compare_with_law(res.samples[:, -1], GAUSS, tests=GATING)
    assert not top.passed  # measured min p 0 (reversed exponent), 1e-320 (without reference)


def test_annealing_at_constant_temperature_targets_the_tempered_law():
    """pi^(1/T) of N(mu, S) is N(mu, T S): started exactly there, 5 MALA steps at T keep it."""
    t = 2.5
    law = Gaussian(MU, t * COV)
    res = simulated_annealing(GAUSS_AS_MIXTURE, schedule=np.full(5, t), n_chains=N_RUNS, x0=law.sample(N_RUNS, seed=3),
                              step_size=0.3, seed=11)
    report = compare_with_law(res.final, law, tests=GATING)
    assert report.passed, report  # measured min p 0.49
    assert 0.3 < res.acceptance_rate < 1.0  # measured 0.94


def test_annealing_at_unit_temperature_is_mala_bit_for_bit():
    x0 = np.random.default_rng(1).standard_normal((3, 2))
    sa = simulated_annealing(GAUSS_AS_MIXTURE, schedule=np.ones(40), step_size=0.2, n_chains=3, seed=9, x0=x0)
    ref = mala(GAUSS_AS_MIXTURE, step_size=0.2, n_chains=3, n_draws=40, n_warmup=0, adapt=False, seed=9, x0=x0)
    assert np.array_equal(sa.samples, ref.samples)
    assert np.array_equal(sa.accept_prob, ref.accept_prob)
    assert np.array_equal(sa.potential_energy, ref.potential_energy)


def test_annealing_finds_the_deeper_well_where_cold_mala_stays_stuck():
    """U = -log(0.05 N(-2, 0.3) + 0.95 N(2, 0.3)): the global minimum is the x = 2 well. Annealing
    10 -> 0.05 (geometric, 2000 MALA steps) from the shallow well x = -2 ends near x = 2 in most chains;
    the same 2000 MALA steps at T = 0.05 never leave x = -2."""
    wells = GaussianMixture([0.05, 0.95], [[-2.0], [2.0]], [[[0.3]], [[0.3]]])
    kw = {"n_chains": 200, "x0": [-2.0], "seed": 1, "step_size": 0.1}
    sa = simulated_annealing(wells, schedule="geometric", t_start=10.0, t_end=0.05, n_steps=2000, **kw)
    cold = simulated_annealing(wells, schedule=np.full(2000, 0.05), **kw)
    near_global = np.mean(np.abs(sa.final[:, 0] - 2.0) < 0.5)
    best_global = np.mean(np.abs(sa.extras["best_position"][:, 0] - 2.0) < 0.5)
    assert near_global > 0.6  # measured 0.805
    assert best_global > 0.9  # measured 1.0
    assert np.all(sa.extras["best_energy"] <= sa.potential_energy.min(axis=1))
    assert np.mean(cold.final[:, 0] > 0) < 0.05  # measured 0.0
    assert np.all(np.abs(cold.final[:, 0] + 2.0) < 1.0)  # measured max 0.36 (sd 0.12)
    assert sa.extras["temperatures"][0] == 10.0 and sa.extras["temperatures"][-1] == 0.05


def test_power_tempering_ladder_swaps_and_thread_count_invariance():
    target = GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 0.0]], [np.eye(2) * 0.5, np.eye(2) * 0.5])
    kw = {"n_replicas": 5, "beta_min": 0.05, "n_rounds": 1000, "n_warmup": 300, "n_runs": 3, "seed": 4, "thin": 2}
    default = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = replica_exchange(target, **kw)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # all cores (the test session runs on 1 by default)
        many = replica_exchange(target, **kw)
    finally:
        numba.set_num_threads(default)
    betas = many.extras["betas"]
    assert betas.shape == (5,) and betas[-1] == 1.0 and np.all(np.diff(betas) > 0)
    assert np.isclose(betas[0], 0.05)
    acc = many.extras["swap_acceptance"]
    assert acc.shape == (4,) and np.all((acc >= 0) & (acc <= 1))
    assert many.samples.shape == (3, 500, 2)
    assert many.diagnostics.flags == ()  # long enough to mix: R-hat 1.005, bulk ESS >= 225 per run (measured)
    assert np.all(many.extras["round_trips"] >= 0)
    for key in ("swap_acceptance", "round_trips", "step_sizes"):
        assert np.array_equal(one.extras[key], many.extras[key]), key
    assert np.array_equal(one.samples, many.samples)
    assert np.array_equal(one.potential_energy, many.potential_energy)


def test_ladder_and_schedules():
    assert np.allclose(geometric_ladder(3, 0.04), [0.04, 0.2, 1.0])
    g = annealing_schedule("geometric", 10.0, 0.1, 5)
    assert np.allclose(g, [10, 10 ** 0.5, 1, 10 ** -0.5, 0.1])
    assert np.allclose(annealing_schedule("linear", 3.0, 1.0, 3), [3.0, 2.0, 1.0])
    lg = annealing_schedule("logarithmic", 2.0, 0.5, 50)
    assert lg[0] == 2.0 and np.isclose(lg[1], 2.0 / np.log(np.e + 1)) and lg.min() >= 0.5
    assert np.all(np.diff(lg) <= 0)


@pytest.mark.parametrize("kwargs, word", [
    ({"betas": [0.5, 0.2, 1.0]}, "betas"),
    ({"betas": [0.1, 0.5]}, "betas"),
    ({"betas": [0.0, 0.5, 1.0]}, "betas"),  # beta = 0 needs a reference
    ({"beta_min": 1.5}, "beta_min"),
    ({"n_replicas": 1}, "n_replicas"),
    ({"reference": (np.zeros(3), 1.0)}, "reference mean"),
    ({"reference": (0.0, -1.0)}, "reference sd"),
    ({"reference": 1.0}, "reference"),
    ({"local": "nuts"}, "local"),
    ({"step_size": -0.1}, "step_size"),
    ({"step_size": [0.1, 0.2]}, "step_size"),
    ({"n_local": 0}, "n_local"),
    ({"n_rounds": 0}, "n_rounds"),
    ({"n_runs": 2.5}, "n_runs"),
    ({"thin": 5, "n_rounds": 3}, "thin"),
    ({"seed": -1}, "seed"),
    ({"on_nonfinite": "ignore"}, "on_nonfinite"),
    ({"target_accept": 1.0}, "target_accept"),
    ({"x0": np.zeros((2, 3, 5))}, "x0"),
])
def test_replica_exchange_rejects_bad_inputs(kwargs, word):
    with pytest.raises(SDEKitError, match=word):
        replica_exchange(GAUSS_AS_MIXTURE, **kwargs)


@pytest.mark.parametrize("kwargs, word", [
    ({"schedule": "cubic"}, "schedule"),
    ({"schedule": [1.0, -1.0]}, "schedule"),
    ({"t_start": 0.0}, "t_start"),
    ({"t_end": -1.0}, "t_end"),
    ({"n_steps": 1}, "n_steps"),
    ({"n_chains": 0}, "n_chains"),
    ({"step_size": 0.0}, "step_size"),
    ({"local": "hmc2"}, "local"),
    ({"x0": "nowhere"}, "x0"),
])
def test_simulated_annealing_rejects_bad_inputs(kwargs, word):
    with pytest.raises(SDEKitError, match=word):
        simulated_annealing(GAUSS_AS_MIXTURE, **kwargs)


def test_non_energy_target_is_rejected():
    with pytest.raises(SDEKitError, match="target"):
        replica_exchange(object())
    with pytest.raises(SDEKitError, match="target"):
        tempered_gaussian_law(GAUSS_AS_MIXTURE, 0.5)
