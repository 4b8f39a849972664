"""End-of-run MCMC diagnostics (`sdekit.mcmc.diagnostics`) and non-finite proposals.

Every rule of `THRESHOLDS` is made to fire by a run built to break it, and a healthy run (MALA on a
Gaussian) fires none. Non-finite proposals are counted per chain by every Metropolis kernel (MALA, RWM,
HMC, replica exchange), warned about above the stated share, stopped at with ``on_nonfinite="raise"``
(naming the chain and the step) and only counted with ``on_nonfinite="reject"``. Kernels compile per
sampler and energy, so the runs reuse the other MCMC test files' kernels (the built-in Gaussian, a
one-component mixture for tempering) and add two: HMC on the Rosenbrock banana and MALA on one user
energy, ``walled_quadratic``, whose NaN wall is a runtime parameter (at +inf it is a plain quadratic).
"""

from __future__ import annotations

import re
import warnings

import numba as nb
import numpy as np
import pytest
from numba.core.errors import NumbaWarning

from sdekit.errors import ChainNonFiniteError, NonFiniteProposalError, SDEKitWarning
from sdekit.mcmc import hmc, mala, replica_exchange, rwm, simulated_annealing, ula, underdamped_langevin
from sdekit.mcmc.diagnostics import THRESHOLDS, MCMCWarning, NonFiniteProposalWarning
from sdekit.targets import Gaussian, GaussianMixture, Rosenbrock
from sdekit.targets.energy import EnergyTarget

TARGET = Gaussian([0.5, -1.0], [[1.0, 0.6], [0.6, 2.0]])


@nb.njit
def walled_quadratic(x, p, grad):
    """U = |x|^2 / 2 where x[0] < p[0][0]; NaN (energy and gradient) beyond that wall."""
    if x[0] >= p[0][0]:
        for i in range(x.shape[0]):
            grad[i] = np.nan
        return np.nan
    u = 0.0
    for i in range(x.shape[0]):
        grad[i] = x[i]
        u += 0.5 * x[i] * x[i]
    return u


QUADRATIC = EnergyTarget(walled_quadratic, 2, (np.array([np.inf]),), name="quadratic")
WALLED = EnergyTarget(walled_quadratic, 2, (np.array([1.0]),), name="NaN beyond x0 = 1")


class no_sdekit_warning(warnings.catch_warnings):
    """Turn every sdekit warning into an error inside the block."""

    def __enter__(self):
        out = super().__enter__()
        warnings.simplefilter("error", SDEKitWarning)
        return out


def test_no_library_warning_when_a_user_energy_kernel_compiles_and_caches(monkeypatch, tmp_path):
    """Issue #12 item 5: no NumbaWarning (e.g. "Cannot cache ...") or other library warning while MALA's kernel
    for a user's module-level energy is generated, compiled and cached on disk (into an empty cache folder, so
    it compiles here). First in this file: the later tests reuse the kernel. (Every sampler, on built-in and
    user energies, was checked the same way by a script: see the report of issue #12.)"""
    monkeypatch.setenv("SDEKIT_CACHE_DIR", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("error", NumbaWarning)
        res = mala(QUADRATIC, n_chains=2, n_draws=5, n_warmup=5, seed=8)
    assert res.samples.shape == (2, 5, 2)
    assert len(list(tmp_path.glob("sdekit_mcmc_*.py"))) == 1  # generated (and compiled) here
    assert list((tmp_path / "__pycache__").glob("*.nbi"))  # and cached by Numba


def test_banana_hmc_with_defaults_warns_about_its_divergences():
    """Issue #12: HMC with its defaults on the 2-D Rosenbrock banana diverged thousands of times and nothing
    said so. Now one warning line names the count, the result and summary() carry the flag."""
    with pytest.warns(MCMCWarning) as record:
        res = hmc(Rosenbrock(), n_chains=4, n_draws=500, n_warmup=500, seed=0)
    lines = [str(w.message) for w in record]
    assert any(re.fullmatch(r"hmc: \d+ of 2000 transitions after warm-up diverged \(\d+\.\d\d% > 0\.1%\).*", m)
               for m in lines), lines
    assert all("\n" not in m for m in lines)
    assert all(w.filename == __file__ for w in record)  # the warning points at the caller's line
    assert "divergences" in res.diagnostics.fired and res.n_divergent > 2  # measured 539
    assert res.warnings == tuple(lines)
    assert all("divergences" in row for row in res.summary()["flags"])


def test_healthy_mala_on_a_gaussian_warns_nothing():
    with no_sdekit_warning():
        res = mala(TARGET, n_chains=4, n_draws=1000, n_warmup=1000, seed=0)
    diag = res.diagnostics
    assert diag.flags == () and res.warnings == ()
    assert np.all(diag.values["r_hat"] < 1.01) and np.all(diag.values["ess_bulk"] > 400)  # 1.001, >= 928
    assert abs(diag.values["acceptance"] - 0.574) < 0.05 and diag.values["divergences"] == 0
    assert list(res.summary()["flags"]) == ["", ""]


# (name, run that breaks the rule, the rules that must fire, a regex of one warning line)
RULE_CASES = [
    ("divergences", lambda: hmc(TARGET, step_size=6.0, n_leapfrog=10, n_chains=2, n_draws=50, n_warmup=0,
                                adapt=False),
     {"divergences"}, r"hmc: 100 of 100 transitions after warm-up diverged"),
    ("mixing", lambda: rwm(TARGET, step_size=0.01, adapt=False, n_chains=4, n_draws=200, n_warmup=0,
                           x0=[[-4.0, -4.0], [4.0, 4.0], [-4.0, 4.0], [4.0, -4.0]]),
     {"r_hat", "ess_bulk", "ess_tail"}, r"R-hat \d+\.\d{3} > 1\.01 at coordinate \d"),
    ("ess", lambda: rwm(TARGET, step_size=0.05, adapt=False, n_chains=4, n_draws=200, n_warmup=0, x0="target"),
     {"ess_bulk", "ess_tail"}, r"bulk ESS \d+ at coordinate \d is \d+\.\d per chain < 100 per chain x 4 chains"),
    ("step_size", lambda: mala(Gaussian([0.0], [[1e-10]]), step_size=1.0, n_chains=2, n_draws=200, n_warmup=500),
     {"step_size"}, r"step size collapsed in 2 of 2 chains \(smallest \S+, \S+ x its initial step < 0\.001\)"),
    ("acceptance", lambda: mala(TARGET, step_size=20.0, n_chains=4, n_draws=300, n_warmup=3, seed=1),
     {"acceptance"}, r"mean acceptance after warm-up 0\.\d{3} is outside target_accept 0\.574 ± 0\.15"),
    ("nonfinite", lambda: mala(WALLED, n_chains=2, n_draws=300, n_warmup=300, x0=np.zeros(2)),
     {"nonfinite"}, r"mala: \d+ of 1200 proposals \(\d+\.\d\d% > 0\.1%\) had a non-finite energy or gradient"),
]


@pytest.mark.parametrize("name, run, rules, line", RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_each_rule_fires_on_a_run_built_to_break_it(name, run, rules, line):
    with pytest.warns(MCMCWarning) as record:
        res = run()
    assert rules <= set(res.diagnostics.fired), res.diagnostics.fired
    assert set(res.diagnostics.fired) <= set(THRESHOLDS)
    assert any(re.search(line, str(w.message)) for w in record), [str(w.message) for w in record]
    for flag in res.diagnostics.flags:  # the value crossed the threshold on the stated side
        if flag.check in ("ess_bulk", "ess_tail", "step_size"):
            assert flag.value < flag.threshold or np.isnan(flag.value)
        else:
            assert flag.value > flag.threshold or np.isnan(flag.value)


def test_too_few_draws_skip_mixing_checks_and_say_so():
    """20,000 chains of one draw (the exact-start checks): R-hat, ESS and acceptance are skipped, recorded
    with the reason, and nothing warns."""
    with no_sdekit_warning():
        res = mala(TARGET, step_size=0.5, n_chains=20_000, n_draws=1, n_warmup=0, thin=5, adapt=False, seed=2,
                   x0="target")
    assert res.diagnostics.flags == ()
    assert res.diagnostics.skipped["r_hat"] == "1 draw per chain < 100"
    assert {"ess_bulk", "ess_tail", "acceptance", "step_size"} <= set(res.diagnostics.skipped)
    with pytest.warns(MCMCWarning) as record:  # computed from 100 draws per chain on (and low here)
        small = mala(TARGET, n_chains=2, n_draws=120, n_warmup=100, seed=3)
    assert any("bulk ESS" in str(w.message) for w in record)
    assert "r_hat" in small.diagnostics.values and "r_hat" not in small.diagnostics.skipped


def test_one_chain_skips_r_hat_and_no_library_log_line(capsys, caplog):
    """R-hat compares chains: a run of one chain skips it with the reason (it used to warn 'R-hat undefined ... the
    chains disagree'), keeps ESS, and ArviZ's shape-validation log line never reaches the user."""
    with no_sdekit_warning():
        one = mala(TARGET, n_chains=1, n_draws=4000, n_warmup=500, seed=5)
        one.summary()
    assert one.diagnostics.skipped["r_hat"] == "1 chain: R-hat compares chains, run n_chains >= 2"
    assert "r_hat" not in one.diagnostics.values and np.all(one.diagnostics.values["ess_bulk"] > 0)
    assert "Shape validation" not in capsys.readouterr().err and "Shape validation" not in caplog.text


def test_nonfinite_proposals_counted_warned_raised_or_only_counted():
    """MALA on an energy that is NaN beyond x0 = 1: every proposal there is rejected and counted per chain;
    "warn" warns, "reject" counts the same proposals silently, "raise" names the chain and the 1-based step
    of the first (checked: the chain's count is 0 after step - 1 steps and 1 after that step)."""
    kw = dict(step_size=0.5, adapt=False, n_chains=3, n_warmup=0, seed=4, x0=np.zeros(2))
    with pytest.warns(NonFiniteProposalWarning, match=r"mala: \d+ of 1500 proposals"):
        warned = mala(WALLED, n_draws=500, **kw)
    assert warned.n_nonfinite.shape == (3,) and np.all(warned.n_nonfinite > 10)
    assert np.all(warned.samples[:, :, 0] < 1.0)
    with no_sdekit_warning():
        counted = mala(WALLED, n_draws=500, on_nonfinite="reject", **kw)
    np.testing.assert_array_equal(counted.n_nonfinite, warned.n_nonfinite)
    assert counted.diagnostics.skipped["nonfinite"] == "on_nonfinite='reject'"
    with pytest.raises(NonFiniteProposalError, match=r"chain \d proposed a point with a non-finite energy or "
                                                     r"gradient at step \d+ \(warm-up included\)") as info:
        mala(WALLED, n_draws=500, on_nonfinite="raise", **kw)
    c, step = info.value.chain, info.value.step
    assert isinstance(info.value, ChainNonFiniteError)
    if step > 1:
        before = mala(WALLED, n_draws=step - 1, on_nonfinite="reject", **kw)
        assert before.n_nonfinite[c] == 0
    at = mala(WALLED, n_draws=step, on_nonfinite="reject", **kw)
    assert at.n_nonfinite[c] == 1


HUGE = 1e200  # a step that lands every proposal where the Gaussian energy overflows (inf or NaN)


@pytest.mark.parametrize("sampler, kw", [(rwm, {}), (hmc, dict(n_leapfrog=3))], ids=["rwm", "hmc"])
def test_rwm_and_hmc_count_every_nonfinite_proposal(sampler, kw):
    """RWM proposals and HMC trajectories that meet a non-finite energy are counted per chain: at a step of
    1e200 every one of them (so the count equals the number of steps), none accepted."""
    with pytest.warns(MCMCWarning) as record:  # HMC: each such trajectory is also a divergence
        res = sampler(TARGET, step_size=HUGE, n_chains=2, n_draws=40, n_warmup=0, adapt=False, x0="target", seed=5,
                      **kw)
    assert any(w.category is NonFiniteProposalWarning and ": 80 of 80 proposals (100.00% > 0.1%)" in str(w.message)
               for w in record)
    assert res.n_nonfinite.tolist() == [40, 40]
    assert np.all(res.samples == res.samples[:, :1])
    with pytest.raises(NonFiniteProposalError, match=r"chain 0 proposed .* at step 1 \(warm-up included\)"):
        sampler(TARGET, step_size=HUGE, n_chains=2, n_draws=40, n_warmup=0, adapt=False, x0="target", seed=5,
                on_nonfinite="raise", **kw)


def test_tempering_counts_nonfinite_proposals_per_run():
    """Replica exchange counts the local moves' non-finite proposals of all replicas per run and "raise" names
    the run and the replica; simulated annealing counts too, and skips R-hat, ESS and acceptance (not
    stationary)."""
    mixture = GaussianMixture([1.0], [TARGET.mean], [TARGET.cov])  # the tempering tests' kernel
    kw = dict(betas=[0.5, 1.0], n_rounds=30, n_warmup=0, n_runs=2, adapt=False, seed=6, step_size=HUGE)
    with pytest.warns(NonFiniteProposalWarning, match=r"replica_exchange\[mala, K=2\]: 120 of 120 proposals"):
        res = replica_exchange(mixture, **kw)
    assert res.n_nonfinite.tolist() == [60, 60]
    with pytest.raises(NonFiniteProposalError, match=r"chain 0 \(replica 0; a step is a round.*\) proposed .* "
                                                     r"at step 1 "):
        replica_exchange(mixture, on_nonfinite="raise", **kw)
    with no_sdekit_warning():
        sa = simulated_annealing(mixture, schedule=np.linspace(3.0, 1.0, 300), n_chains=2, seed=7)
    assert sa.n_nonfinite.tolist() == [0, 0]
    assert sa.diagnostics.skipped["r_hat"] == "not stationary: a cooling schedule"
    with pytest.warns(NonFiniteProposalWarning, match=r"simulated_annealing\[mala\]: 300 of 300 proposals"):
        simulated_annealing(mixture, n_steps=150, step_size=HUGE, n_chains=2, seed=7)


def test_unadjusted_samplers_make_no_proposals():
    """ULA and underdamped Langevin have no proposal to reject (n_nonfinite is None; a non-finite state raises
    ChainNonFiniteError, tested in test_mcmc and test_underdamped) and no adaptation to check."""
    for res in (ula(TARGET, step_size=0.1, n_chains=2, n_draws=50),
                underdamped_langevin(TARGET, step_size=0.3, n_chains=2, n_draws=50)):
        assert res.n_nonfinite is None
        assert res.diagnostics.skipped["step_size"] == "no adaptation"
