"""log Z by annealed importance sampling, SMC and replica exchange (`sdekit.evidence`) against closed forms.

Each estimate is checked with a z-score z = (log Z_hat + se^2 / 2 - log Z) / se (the se^2 / 2 removes the Jensen
bias of the log of an unbiased estimate of Z) at a two-sided false-alarm rate of 1e-6: |z| < 4.89 for AIS (its
delta-method SE comes from 2,000 particles, so z is normal to a good approximation) and the Student-t quantile for
SMC and replica exchange, whose SE is estimated from 32 independent runs (SMC) or 32 batch means (replica exchange):
t_31 = 6.07. The planted bugs (`AIS_DEFECTS`, `SMC_DEFECTS`, the replica-exchange swap bug) are run with the same
settings and must fail the same check. Few compiled kernels: four energies (the built-in targets), one batch kernel
each.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import stats

from sdekit.errors import SDEKitError
from sdekit.evidence import ais, replica_exchange_log_z, smc
from sdekit.evidence.ais import AIS_DEFECTS, ais_with
from sdekit.evidence.replica import REPLICA_DEFECTS, replica_exchange_log_z_with
from sdekit.evidence.smc import SMC_DEFECTS, smc_with
from sdekit.mcmc import replica_exchange
from sdekit.targets import DoubleWell, Gaussian, GaussianMixture, Rosenbrock
from sdekit.validate.budget import BUDGET

ALPHA = 1e-6
Z_NORMAL = float(stats.norm.isf(ALPHA / 2))  # 4.89
N_RUNS = 32
Z_T31 = float(stats.t.isf(ALPHA / 2, N_RUNS - 1))  # 6.07

GAUSS = Gaussian([1.0, -0.5], [[1.0, 0.6], [0.6, 2.0]])
MIX = GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], [np.eye(2), 0.5 * np.eye(2)])
DW = DoubleWell(2, eps=0.5)
ROSEN = Rosenbrock(2)
# (target, reference, AIS step size at beta = 1): the banana gets the moment-matched Gaussian reference and a step
# small enough for its narrow direction (conditional sd of x_2 is 0.32)
CASES = {
    "gaussian": (GAUSS, (0.0, 2.0), None),
    "mixture": (MIX, (0.0, 3.0), None),
    "double_well": (DW, (0.0, 1.5), None),
    "rosenbrock": (ROSEN, Gaussian(ROSEN.mean, ROSEN.cov), 0.01),
}
AIS_KW = {"n_particles": 2000, "betas": 100, "n_moves": 2, "seed": 11}
SMC_KW = {"n_particles": 500, "n_runs": N_RUNS, "n_moves": 5, "seed": 12}


def _z(res, target) -> float:
    BUDGET.spend(ALPHA, "log_normalizer")
    return res.z_score(target.log_normalizer)


def _ais_planted(defect: str, target, **kw):
    options = {"schedule": "sigmoid", "reference": None, "move": "mala", "n_moves": 1, "step_size": None,
               "n_leapfrog": 5, "dim": None, "seed": 0, "particle_offset": 0, **kw}
    return ais_with(AIS_DEFECTS[defect], target, **options)


def _smc_planted(defect: str, target, **kw):
    options = {"reference": None, "move": "mala", "n_moves": 5, "step_size": None, "n_leapfrog": 5,
               "target_cess": 0.5, "resample_threshold": 0.5, "target_accept": None, "max_steps": 1000, "dim": None,
               "seed": 0, **kw}
    return smc_with(SMC_DEFECTS[defect], target, **options)


# measured z (mala, hmc): gaussian -1.35, 0.48; mixture -1.24, 0.20; double well 0.97, -0.05; rosenbrock -0.48,
# -0.40; se 0.005-0.066. Across 40 seeds (1,000 particles, 50 betas): z mean -0.58..0.27, sd 0.81-1.21 per case.
@pytest.mark.parametrize("move", ["mala", "hmc"])
@pytest.mark.parametrize("case", list(CASES))
def test_ais_log_z_matches_the_closed_form(case, move):
    target, ref, step = CASES[case]
    res = ais(target, reference=ref, move=move, step_size=step, **AIS_KW)
    z = _z(res, target)
    assert abs(z) < Z_NORMAL, (case, move, res, z)
    assert res.log_z_se < 0.2  # measured 0.005-0.066: the check has power
    assert res.log_weights.shape == (2000,) and res.particles.shape == (2000, 2)
    assert res.betas.shape == (100,) and res.acceptance.shape == (99,)
    assert 0 < res.ess <= 2000
    assert res.n_evaluations == (1 + 99 * 2 * (1 if move == "mala" else 5))


# measured z (mala, hmc): gaussian 0.98, 0.91; mixture 0.28, -0.66; double well -0.64, -0.44; rosenbrock -0.23,
# -0.98. Across 40 seeds (200 particles x 32 runs): z mean -0.72..0.34 (the adaptive schedule's O(1/n) bias per run,
# relative to the SE of order sqrt(n_runs / n_particles)), sd 0.96-1.24.
@pytest.mark.parametrize("move", ["mala", "hmc"])
@pytest.mark.parametrize("case", list(CASES))
def test_smc_log_z_matches_the_closed_form(case, move):
    target, ref, _ = CASES[case]
    res = smc(target, reference=ref, move=move, **SMC_KW)
    z = _z(res, target)
    assert abs(z) < Z_T31, (case, move, res, z)
    assert res.log_z_se < 0.1  # measured 0.0075-0.049
    assert res.extras["log_z_runs"].shape == (N_RUNS,)
    assert res.particles.shape == (N_RUNS, 500, 2)
    assert all(b[0] == 0.0 and b[-1] == 1.0 and np.all(np.diff(b) > 0) for b in res.betas)


def test_ais_standard_error_is_calibrated_across_seeds():
    """40 independent AIS runs: sum z^2 ~ chi^2_40 when the SE is right (two-sided 1e-6 bounds 10.2 and 99.9); the
    delta-method SE without its 1 / sqrt(n) (a planted bug, computed from the same weights) falls far outside."""
    n_seeds, n = 40, 500
    zs, zs_bad = [], []
    for seed in range(n_seeds):
        res = ais(GAUSS, n_particles=n, betas=20, reference=(0.0, 2.0), seed=100 + seed)
        zs.append(res.z_score(GAUSS.log_normalizer))
        zs_bad.append((res.log_z - GAUSS.log_normalizer) / (res.log_z_se * np.sqrt(n)))
    BUDGET.spend(ALPHA, "log_normalizer_calibration")
    lo, hi = stats.chi2.ppf(ALPHA / 2, n_seeds), stats.chi2.isf(ALPHA / 2, n_seeds)
    stat = float(np.sum(np.square(zs)))
    assert lo < stat < hi, stat  # measured 37.3 (z mean -0.02, sd 0.97)
    assert not lo < float(np.sum(np.square(zs_bad))) < hi


@pytest.mark.parametrize("defect, target, kw", [
    # the weight at x_k (after the move) instead of x_{k-1}: biased up by ~ sum_k dbeta_k^2 Var V / 2
    ("weight_after_move", MIX, {"betas": 20, "reference": (0.0, 3.0)}),
    ("no_reference_term", GAUSS, {"betas": 20, "reference": (0.0, 2.0)}),
])
def test_ais_planted_bugs_fail(defect, target, kw):
    res = _ais_planted(defect, target, n_particles=2000, seed=11, **kw)
    good = ais(target, n_particles=2000, seed=11, **kw)
    assert abs(_z(good, target)) < Z_NORMAL
    z = _z(res, target)
    assert abs(z) > Z_NORMAL, (defect, res, z)  # measured z: weight_after_move 7.96, no_reference_term -187


@pytest.mark.parametrize("defect", list(SMC_DEFECTS))
def test_smc_planted_bugs_fail(defect):
    # target_cess 0.9: the weights stay uneven for several temperatures between resamplings, which both bugs need
    kw = {"n_particles": 500, "n_runs": N_RUNS, "reference": (0.0, 3.0), "target_cess": 0.9, "n_moves": 2, "seed": 1}
    good = smc(MIX, **kw)
    assert abs(_z(good, MIX)) < Z_T31
    res = _smc_planted(defect, MIX, **kw)
    z = _z(res, MIX)
    assert abs(z) > Z_T31, (defect, res, z)  # measured z: unweighted_increment -17.9, weights kept 8.9 (correct: 0.69)


RE_BETAS = np.array([0.0, 0.05, 0.15, 0.3, 0.5, 0.75, 1.0])
RE_KW = {"betas": RE_BETAS, "reference": (0.0, 3.0), "n_runs": 4, "n_rounds": 2000, "n_warmup": 500,
         "keep_all": True, "seed": 3}
GAUSS_AS_MIXTURE = GaussianMixture([1.0], [GAUSS.mean], [GAUSS.cov])  # normalised: log Z = 0 (one kernel for both)


def test_replica_exchange_stepping_stone_log_z_and_a_planted_bug():
    for target in (GAUSS_AS_MIXTURE, MIX):
        run = replica_exchange(target, **RE_KW)
        res = replica_exchange_log_z(run, target)
        assert res.extras["n_batches_total"] == N_RUNS
        z = _z(res, target)
        assert abs(z) < Z_T31, (res, z)  # measured z 0.09 (gaussian), 0.67 (mixture); 10 seeds: |z| <= 1.9
        assert res.log_z_se < 0.05  # measured 0.014, 0.016
        assert res.extras["log_ratios"].shape == (6,)
        bad = replica_exchange_log_z_with(REPLICA_DEFECTS["upper_rung_samples"][1], run, target,
                                          method="stepping_stone", n_batches=8)
        z_bad = _z(bad, target)
        assert abs(z_bad) > Z_T31, (bad, z_bad)  # measured z 55.9, 43.2
    ti = replica_exchange_log_z(run, MIX, method="thermodynamic_integration")
    assert abs(ti.log_z - res.log_z) < 0.2  # the trapezoid rule's error on 7 rungs (measured 0.058): no z-test


def test_ais_particle_weights_do_not_depend_on_the_particle_count_or_threads():
    for move in ("mala", "hmc"):
        kw = {"betas": 20, "move": move, "reference": (0.0, 2.0), "seed": 5}
        small = ais(GAUSS, n_particles=64, **kw)
        default = numba.get_num_threads()
        try:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
            big = ais(GAUSS, n_particles=256, **kw)
            numba.set_num_threads(1)
            tail = ais(GAUSS, n_particles=192, particle_offset=64, **kw)
        finally:
            numba.set_num_threads(default)
        assert np.array_equal(small.log_weights, big.log_weights[:64])
        assert np.array_equal(small.particles, big.particles[:64])
        assert np.array_equal(tail.log_weights, big.log_weights[64:])
        assert not np.array_equal(small.log_weights, ais(GAUSS, n_particles=64, **{**kw, "seed": 6}).log_weights)


def test_smc_same_seed_same_numbers():
    kw = {"n_particles": 100, "n_runs": 4, "reference": (0.0, 3.0), "seed": 9}
    a = smc(MIX, **kw)
    default = numba.get_num_threads()
    try:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = smc(MIX, **kw)
    finally:
        numba.set_num_threads(default)
    assert np.array_equal(a.extras["log_z_runs"], b.extras["log_z_runs"])
    assert np.array_equal(a.particles, b.particles) and a.log_z == b.log_z
    assert all(np.array_equal(x, y) for x, y in zip(a.betas, b.betas, strict=True))


def test_a_python_energy_and_grad_callable_works():
    prec = GAUSS.params[1]
    calls = []

    def energy_and_grad(x):
        calls.append(x.shape[0])
        r = x - GAUSS.mean
        g = r @ prec
        return 0.5 * np.sum(r * g, axis=1), g

    res = ais(energy_and_grad, dim=2, n_particles=1000, betas=50, reference=(0.0, 2.0), seed=2)
    assert abs(_z(res, GAUSS)) < Z_NORMAL  # measured -0.43
    assert set(calls) == {1000}
    res = smc(energy_and_grad, dim=2, n_particles=200, n_runs=N_RUNS, reference=(0.0, 2.0), move="hmc", seed=2)
    assert abs(_z(res, GAUSS)) < Z_T31

    def wrong_shape(x):
        return np.zeros(x.shape[0] + 1), np.zeros_like(x)

    with pytest.raises(SDEKitError, match=r"energy_and_grad.*U of shape \(10,\)"):
        ais(wrong_shape, dim=2, n_particles=10, betas=3)


@pytest.mark.parametrize("kwargs, word", [
    ({"n_particles": 0}, "n_particles"),
    ({"betas": 1}, "betas"),
    ({"betas": [0.0, 0.5, 0.4, 1.0]}, "betas"),
    ({"betas": [0.1, 1.0]}, "betas"),
    ({"betas": "many"}, "betas"),
    ({"schedule": "cubic"}, "schedule"),
    ({"reference": (0.0, -1.0)}, "reference sd"),
    ({"reference": (np.zeros(3), 1.0)}, "reference mean"),
    ({"reference": Gaussian([0.0], [[1.0]])}, "reference"),
    ({"move": "nuts"}, "move"),
    ({"n_moves": 0}, "n_moves"),
    ({"step_size": -0.1}, "step_size"),
    ({"n_leapfrog": 0}, "n_leapfrog"),
    ({"seed": -1}, "seed"),
    ({"particle_offset": -3}, "particle_offset"),
    ({"dim": 3}, "dim"),
])
def test_ais_rejects_bad_inputs(kwargs, word):
    with pytest.raises(SDEKitError, match=word):
        ais(GAUSS, **kwargs)


@pytest.mark.parametrize("kwargs, word", [
    ({"n_particles": 1}, "n_particles"),
    ({"n_runs": 1}, "n_runs"),
    ({"target_cess": 1.0}, "target_cess"),
    ({"resample_threshold": 0.0}, "resample_threshold"),
    ({"target_accept": 1.5}, "target_accept"),
    ({"max_steps": 1, "target_cess": 0.99}, "max_steps"),
    ({"move": "ula"}, "move"),
])
def test_smc_rejects_bad_inputs(kwargs, word):
    with pytest.raises(SDEKitError, match=word):
        smc(GAUSS, **{"n_particles": 50, "n_runs": 2, **kwargs})


def test_bad_targets_and_replica_runs_are_rejected():
    with pytest.raises(SDEKitError, match="target"):
        ais(object())
    with pytest.raises(SDEKitError, match="dim"):
        ais(lambda x: (x, x))
    kw = {"n_runs": 2, "n_rounds": 40, "n_warmup": 0, "seed": 0}
    with pytest.raises(SDEKitError, match="reference"):
        replica_exchange_log_z(replica_exchange(MIX, keep_all=True, **kw), MIX)
    with pytest.raises(SDEKitError, match="keep_all"):
        replica_exchange_log_z(replica_exchange(MIX, betas=RE_BETAS, reference=(0.0, 3.0), **kw), MIX)
    with pytest.raises(SDEKitError, match="beta = 0"):
        replica_exchange_log_z(replica_exchange(MIX, betas=[0.5, 1.0], reference=(0.0, 3.0), keep_all=True, **kw),
                               MIX)
    run = replica_exchange(MIX, betas=RE_BETAS, reference=(0.0, 3.0), keep_all=True, **kw)
    with pytest.raises(SDEKitError, match="method"):
        replica_exchange_log_z(run, MIX, method="bridge")
    with pytest.raises(SDEKitError, match="n_batches"):
        replica_exchange_log_z(run, MIX, n_batches=30)
    with pytest.raises(SDEKitError, match="result"):
        replica_exchange_log_z(ais(GAUSS, n_particles=10, betas=3), MIX)
