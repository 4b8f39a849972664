"""The closed-form checks of `sdekit validate` pass, and fail on planted bugs.

Each check is a battery gated at overall false-alarm rate alpha = 1e-6 (KS on whitened
coordinates and a moment chi-square, Bonferroni inside), with fixed seeds. The planted bugs
are the ones a sampler author makes: noise scaled by sqrt(2) and a drift with flipped sign;
at N = 20,000 paths they move the law by many standard errors, so they fail with p far
below alpha (the tests assert failure, and print nothing when they pass).
"""

import numba as nb
import numpy as np
import pytest

import sdekit
from sdekit.cli import main
from sdekit.processes import GeometricBrownianMotion, OrnsteinUhlenbeck
from sdekit.processes.gbm import gbm_diffusion, gbm_drift
from sdekit.processes.ou import ou_diffusion, ou_drift
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.targets.mixture import mixture_score
from sdekit.validate import closed_form
from sdekit.validate.power import langevin_noise_half, ou_diffusion_sqrt2, ou_drift_flipped
from sdekit.validate.stats import gaussian_law_tests, moment_chi2

N, SEED, ALPHA = 20_000, 2026, 1e-6
# Planted bugs shared with the power table (sdekit.validate.power: the same functions, so their kernels compile once
# per test run): B scaled by sqrt(2), +A x instead of -A x, sqrt(h) Langevin noise instead of sqrt(2h).


@pytest.mark.parametrize("name", sorted(closed_form.CHECKS))
def test_every_builtin_check_passes(name):
    report = closed_form.CHECKS[name].run(N, SEED, ALPHA)
    assert report.results and report.passed, report.to_text()


@pytest.mark.parametrize("drift, diffusion", [(ou_drift, ou_diffusion_sqrt2), (ou_drift_flipped, ou_diffusion)])
def test_ou_checks_catch_planted_bugs(drift, diffusion):
    ou = OrnsteinUhlenbeck(*closed_form.OU_2D)
    buggy = sdekit.SDE(drift, diffusion, dim=2, noise="additive", brownian_dim=3, params=(ou.A, ou.B))
    for check in (closed_form.check_ou_em, closed_form.check_ou_stationary):
        report = check(N, SEED, ALPHA, sde=buggy)
        assert not report.passed, report.to_text()
        assert report.min_pvalue < 1e-12


@nb.njit
def gbm_diffusion_sqrt2(x, t, p):
    return 1.4142135623730951 * gbm_diffusion(x, t, p)


@nb.njit
def gbm_drift_flipped(x, t, p):
    return -1.0 * gbm_drift(x, t, p)


@pytest.mark.parametrize("drift, diffusion", [(gbm_drift, gbm_diffusion_sqrt2), (gbm_drift_flipped, gbm_diffusion)])
@pytest.mark.parametrize("check, calculus", [(closed_form.check_gbm_em, "ito"),
                                             (closed_form.check_gbm_heun, "stratonovich")])
def test_gbm_checks_catch_planted_bugs(drift, diffusion, check, calculus):
    gbm = GeometricBrownianMotion(0.3, 0.8, calculus)
    buggy = sdekit.SDE(drift, diffusion, dim=1, noise="diagonal", calculus=calculus, params=gbm.sde.params)
    report = check(N, SEED, ALPHA, sde=buggy)
    assert not report.passed, report.to_text()


def test_mislabelled_calculus_is_caught():
    """Heun on an Itô-labelled GBM is refused; run on the Stratonovich label it fails the Itô closed form."""
    with pytest.raises(sdekit.IncompatibleSolverError):
        sdekit.simulate(GeometricBrownianMotion(0.3, 0.8, "ito").sde, 1.0, (0.0, 1.0), steps=10, solver="heun")
    gbm = GeometricBrownianMotion(0.3, 0.8, "stratonovich")
    ito = GeometricBrownianMotion(0.3, 0.8, "ito")
    m, v = ito.log_law(1.0, 1.0)
    sol = sdekit.simulate(gbm.sde, 1.0, (0.0, 1.0), steps=1000, n_paths=N, seed=SEED, solver="heun")
    res = gaussian_law_tests("heun vs Itô law", np.log(sol.final), np.array([m]), np.array([[v]]), ALPHA)
    assert not all(r.passed for r in res)


def test_moment_chi2_is_calibrated_and_powerful():
    """Under N(0, I) the statistic has mean df; a sqrt(2)-scaled sample is rejected."""
    rng = np.random.default_rng(0)
    stats = [moment_chi2(rng.standard_normal((2000, 3))) for _ in range(200)]
    df = 3 + 6
    assert abs(np.mean(stats) - df) < 6 * np.sqrt(2 * df / 200)
    z = rng.standard_normal((N, 2))
    assert all(r.passed for r in gaussian_law_tests("ok", z, np.zeros(2), np.eye(2)))
    assert not any(r.passed for r in gaussian_law_tests("bug", 2**0.5 * z, np.zeros(2), np.eye(2))[-1:])


def test_cli_prints_table_writes_report_and_returns_status(capsys, tmp_path):
    """Two worker processes give the same table as one process (checks are keyed by seed, not by process)."""
    args = ["validate", "ou_1d_reverse_time", "gbm_ito_em", "--paths", "5000", "--no-figures"]
    assert main([*args, "--out", str(tmp_path / "serial"), "--jobs", "1"]) == 0
    serial = capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    table = [line.split()[:4] for line in out.splitlines() if line.startswith(("ou_1d", "gbm_ito"))]
    assert table == [line.split()[:4] for line in serial.splitlines() if line.startswith(("ou_1d", "gbm_ito"))]
    assert len(table) == 2
    assert "ou_1d_reverse_time" in out and "min p-value" in out and "2 of 2 checks passed" in out
    md = (tmp_path / "report.md").read_text()
    assert "### gbm_ito_em" in md and "| CvM x |" in md.replace("CvM x[0]", "CvM x")
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "no_such_check"])
    assert exit_info.value.code == 2
    assert main(["validate", "--list"]) == 0 and "strong_order_em_gbm" in capsys.readouterr().out


@nb.njit
def flipped_mixture_score(x, t, p):
    """Planted bug: -grad log pi."""
    return -1.0 * mixture_score(x, t, p)


def test_langevin_checks_catch_planted_bugs():

    gauss = Gaussian(np.array([1.0, -1.0]), np.array([[1.0, 0.3], [0.3, 0.5]]))
    bad = sdekit.SDE(gauss.score_fn, langevin_noise_half, dim=2, noise="additive", params=gauss.params)
    assert not closed_form.check_langevin_gaussian(N, SEED, ALPHA, sde=bad).passed
    mix = GaussianMixture(**closed_form.MIXTURE_2D)
    flipped = sdekit.SDE(flipped_mixture_score, langevin_noise_half, dim=2, noise="additive", params=mix.params)
    assert not closed_form.check_langevin_mixture(N, SEED, ALPHA, sde=flipped).passed
