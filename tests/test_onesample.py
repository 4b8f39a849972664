"""One-sample tests and the `compare_with_law` battery: calibration, exact moments, power on planted bugs.

Every battery runs at overall false-alarm rate alpha = 1e-6 (Bonferroni inside), with fixed
seeds; the seeds are not chosen: correct samples give p-values spread over (0, 1) (median
around 0.3–0.5) and planted bugs (scale off by sqrt(2), mean shifted, ULA bias) give p-values
many orders of magnitude below the per-test threshold.
"""

import math

import numpy as np
import pytest
import scipy.stats as st

from sdekit.errors import SDEKitError
from sdekit.processes import overdamped_langevin
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.validate import (
    compare_with_law,
    cvm_critical_value,
    cvm_sf,
    cvm_statistic,
    cvm_test,
    exact_feature_moments,
    ks_test,
    law_1d,
    mmd_test,
    moment_test,
    stein_test,
)
from sdekit.validate.budget import BUDGET
from sdekit.validate.closed_form import MIXTURE_2D
from sdekit.validate.laws import features
from sdekit.validate.stationarity import stationarity_check

N = 20_000
MIX = GaussianMixture(**MIXTURE_2D)
MIX3 = GaussianMixture([0.2, 0.5, 0.3], [[0.0, 1.0, -1.0], [2.0, -1.0, 0.5], [-2.0, 0.0, 1.0]],
                       [np.eye(3) * 0.5, [[1.0, 0.2, 0.0], [0.2, 0.6, 0.1], [0.0, 0.1, 0.3]], np.diag([0.3, 1.2, 0.8])])


# ---------------------------------------------------------------------------------------------
# Cramér–von Mises tail


def test_cvm_tail_matches_published_critical_values():
    """Anderson & Darling (1952) table: 0.461 (5%), 0.743 (1%), 1.168 (0.1%); VALIDATION.md: 2.495 (1e-6)."""
    for w, p in ((0.461, 0.05), (0.743, 0.01), (1.168, 0.001)):
        assert abs(cvm_sf(w) / p - 1) < 0.01
    for alpha, w in ((1e-6, 2.495), (1e-7, 2.945), (1e-8, 3.398)):
        assert abs(cvm_critical_value(alpha) - w) < 2e-3


def test_cvm_tail_is_monotone_where_scipy_is_not():
    """scipy's p-value is non-monotone beyond W^2 ~ 4 (VALIDATION.md §3); ours decreases strictly."""
    ws = np.linspace(0.2, 12.0, 60)
    sf = np.array([cvm_sf(w) for w in ws])
    assert np.all(np.diff(sf) < 0) and sf[-1] > 0


def test_cvm_tail_agrees_with_scipy_in_its_reliable_range():
    rng = np.random.default_rng(1)
    for scale in (1.0, 1.02, 1.04):
        x = rng.standard_normal(10_000) * scale
        ours = cvm_test(x, st.norm(), 1e-6)
        ref = st.cramervonmises(x, "norm")
        assert abs(ours.statistic - ref.statistic) < 1e-9
        assert abs(ours.pvalue - ref.pvalue) < 2e-3


def test_cvm_statistic_has_its_exact_mean_under_the_null():
    """E W^2 = 1/6 for every N; the mean of 400 replicates is within 5.3 standard errors (Var W^2 -> 1/45)."""
    rng = np.random.default_rng(2)
    w = [cvm_statistic(rng.uniform(size=500)) for _ in range(400)]
    assert abs(np.mean(w) - 1 / 6) < 5.3 * math.sqrt(1 / 45 / 400)


# ---------------------------------------------------------------------------------------------
# exact moments


def test_feature_moments_of_a_centred_gaussian_follow_isserlis():
    """Cov(x_i x_j, x_k x_l) = S_ik S_jl + S_il S_jk and Cov(x, x x) = 0 for N(0, S)."""
    s = np.array([[1.0, 0.4, -0.2], [0.4, 0.8, 0.1], [-0.2, 0.1, 0.5]])
    mean, cov = exact_feature_moments(Gaussian(np.zeros(3), s))
    iu, ju = np.triu_indices(3)
    assert np.allclose(mean[3:], s[iu, ju]) and np.allclose(mean[:3], 0)
    assert np.allclose(cov[:3, :3], s) and np.allclose(cov[:3, 3:], 0)
    expect = s[iu][:, iu] * s[ju][:, ju] + s[iu][:, ju] * s[ju][:, iu]
    assert np.allclose(cov[3:, 3:], expect, atol=1e-14)


def test_feature_moments_of_a_mixture_match_monte_carlo():
    """Exact E phi and Cov phi vs 1e6 draws: every entry within 6 Monte Carlo standard errors."""
    mean, cov = exact_feature_moments(MIX3)
    f = features(MIX3.sample(1_000_000, seed=3))
    se = np.sqrt(np.diag(cov) / f.shape[0])
    assert np.all(np.abs(f.mean(axis=0) - mean) < 6 * se)
    emp = np.cov(f, rowvar=False)
    # the standard error of a covariance entry is bounded by sqrt(E[(f_i f_j)^2] / n); estimate it empirically
    fc = f - f.mean(axis=0)
    fc2 = fc**2
    se_cov = np.sqrt(np.array([(fc2[:, [i]] * fc2).mean(axis=0) for i in range(f.shape[1])]) / f.shape[0])
    assert np.all(np.abs(emp - cov) < 6 * se_cov)


# ---------------------------------------------------------------------------------------------
# the battery: correct samples pass, planted bugs fail


@pytest.mark.parametrize("target", [Gaussian([1.0, -1.0], [[1.0, 0.3], [0.3, 0.5]]), MIX, MIX3],
                         ids=["gaussian2", "mixture2", "mixture3"])
def test_exact_samples_pass_and_distorted_samples_fail(target):
    x = target.sample(N, seed=11)
    report = compare_with_law(x, target, name="exact")
    assert report.passed, report.to_text()
    assert report.min_pvalue > 1e-4  # sanity: exact samples are far from the threshold
    for bug, y in (("scale sqrt(2)", target.mean + (x - target.mean) * math.sqrt(2)),
                   ("scale 1/sqrt(2)", target.mean + (x - target.mean) / math.sqrt(2)),
                   ("shift 0.1 sd", x + 0.1 * np.sqrt(np.diag(target.cov)))):
        bad = compare_with_law(y, target, name=bug)
        assert not bad.passed, f"{bug} was not caught:\n{bad.to_text()}"


def test_every_test_in_the_battery_rejects_a_scaled_sample():
    """noise off by sqrt(2) on a mixture: each gating test alone rejects (p < 1e-12)."""
    x = MIX.mean + (MIX.sample(N, seed=5) - MIX.mean) * math.sqrt(2)
    report = compare_with_law(x, MIX)
    for r in report.results:
        assert (not r.passed) and (r.gating is False or r.pvalue < 1e-12), r


def test_stein_sees_ula_bias_on_a_mixture_where_it_is_strongest():
    """ULA (h = 0.1) on a 1-D two-mode mixture with within-mode variance 0.3, 100 steps from pi:
    the within-mode variance is inflated by ~20% (V_h = s^2 / (1 - h / (2 s^2))), diluted by the
    between-mode variance. Measured over 6 seeds: Stein p in [2e-17, 5e-10], moment chi-square p in
    [7e-8, 5e-3]. The Stein test alone rejects at 1e-6 on each of 3 seeds."""
    g = GaussianMixture([0.3, 0.7], [-2.0, 2.0], [0.3, 0.3])
    for seed in range(3):
        r = stationarity_check(overdamped_langevin(1, target=g), g, h=0.1, steps=100, n_paths=N, seed=seed)
        stein = next(x for x in r.against_target.results if x.test == "Stein")
        assert stein.pvalue < 1e-6 / 4 and not stein.passed, stein


def test_stein_test_uses_the_score_it_is_given():
    """With the wrong score (sign flipped) even exact samples fail."""
    x = MIX.sample(N, seed=4)
    assert stein_test(x, MIX.score, 1e-6).passed
    assert not stein_test(x, lambda y: -MIX.score(y), 1e-6).passed


def test_standardized_bias_points_at_the_biased_feature():
    x = MIX.sample(N, seed=6)
    x[:, 1] += 0.05 * math.sqrt(MIX.cov[1, 1])  # 0.05 sd shift in x1 = 7 standard errors at N = 2e4
    res = moment_test(x, MIX, 1e-6)
    bias = np.abs(res.bias)
    assert int(np.argmax(bias)) == 1 and bias[1] > 5 and bias[0] < 4


def test_mmd_is_a_diagnostic_with_a_rigorous_bound():
    x = MIX.sample(4000, seed=8)
    ok = mmd_test(x, MIX)
    assert ok.gating is False and ok.passed and ok.pvalue == 1.0
    bad = mmd_test(x + np.array([1.0, 0.0]), MIX)
    assert not bad.passed and bad.pvalue < 1e-6


def test_one_dimensional_laws_from_scipy_and_from_a_cdf():
    x = st.gamma(3.0).rvs(size=N, random_state=9)
    assert compare_with_law(x, st.gamma(3.0)).passed
    assert not compare_with_law(x, st.gamma(3.3)).passed
    law = law_1d(st.gamma(3.0).cdf, label="gamma cdf")
    report = compare_with_law(x, law)
    assert report.passed and [r.test for r in report.results] == ["KS x", "CvM x"]


def test_ks_gates_on_its_pvalue_and_reports_the_critical_distance():
    x = np.random.default_rng(10).standard_normal(N)
    res = ks_test(x, st.norm(), 1e-6)
    # DKW–Massart: P(D > eps) <= 2 exp(-2 N eps^2), so the critical distance is at most sqrt(log(2/alpha) / (2N))
    assert res.passed and res.threshold < math.sqrt(math.log(2e6) / (2 * N))


def test_report_renders_as_text_markdown_and_figure(tmp_path):
    pytest.importorskip("matplotlib")
    report = compare_with_law(MIX.sample(3000, seed=12), MIX, projections=2, name="mix")
    text = report.to_text()
    assert "CvM u1.x" in text and "PASS" in text and "std. bias" in text
    md = report.to_markdown()
    assert md.startswith("### mix") and md.count("\n|") == len(report.results) + 2
    path = tmp_path / "fig.png"
    report.figure(path)
    assert path.stat().st_size > 10_000


def test_budget_ledger_counts_every_gating_test():
    before_count, before_total = BUDGET.count, BUDGET.total
    report = compare_with_law(MIX.sample(2000, seed=13), MIX, projections=3)
    gating = [r for r in report.results if r.gating]
    assert BUDGET.count - before_count == len(gating)
    assert BUDGET.total - before_total == pytest.approx(1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=0.0), "alpha"), (dict(alpha=1.5), "alpha"), (dict(tests=("ks", "bogus")), "tests"),
    (dict(projections=-1), "projections"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(SDEKitError, match=match):
        compare_with_law(MIX.sample(100, seed=1), MIX, **kwargs)


def test_bad_samples_are_named():
    with pytest.raises(SDEKitError, match=r"shape \(N, 2\)"):
        compare_with_law(np.zeros((100, 3)), MIX)
    x = MIX.sample(100, seed=1)
    x[7, 0] = np.nan
    with pytest.raises(SDEKitError, match="non-finite rows .*row 7"):
        compare_with_law(x, MIX)
    with pytest.raises(SDEKitError, match="at least"):
        compare_with_law(x[:5], MIX)
