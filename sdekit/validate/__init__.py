"""Validation: tell a correct sampler from a biased one from a buggy one, with numbers.

- `compare_with_law`: N i.i.d. draws against an exact law (KS and Cramér–von Mises on marginals and
  random projections, exact-covariance moment chi-square, Stein identity, one-sample MMD), gated
  at an overall false-alarm rate (default 1e-6, Bonferroni inside); returns a `Report` (text,
  Markdown, figure).
- `stationarity_check`: chains started exactly in pi, K steps, bias-aware via the scheme's own law.
- Fokker–Planck: `generator_test` / `generator_scan` (local generator with the martingale control
  variate), `dynkin_test`, `linear_moment_test`, the 1-D Chang–Cooper reference
  (`fokker_planck_reference`, `fokker_planck_chi2_test`) and the pointwise identity
  (`check_fokker_planck_identity`).
- Convergence order: `strong_errors` / `fit_order`, `weak_errors` / `fit_weak_order`,
  `em_weak_errors_linear`, `work_precision`; bias or bug: `classify_bias`.
- The checks behind `sdekit validate` (`closed_form`, `suite`) and the power study (`power`).
"""

from sdekit.validate.bias import BiasReport, classify_bias
from sdekit.validate.compare import compare_with_law
from sdekit.validate.fokker_planck import (
    FokkerPlanck1D,
    FPSolution,
    PointMass,
    check_fokker_planck_identity,
    check_sde_fokker_planck_identity,
    fokker_planck_chi2_test,
    fokker_planck_reference,
    solve_fokker_planck_1d,
)
from sdekit.validate.generator import (
    TestFunction,
    dynkin_test,
    generator,
    generator_scan,
    generator_test,
    linear_moment_test,
)
from sdekit.validate.laws import Law1D, exact_feature_moments, law_1d
from sdekit.validate.onesample import (
    cvm_critical_value,
    cvm_sf,
    cvm_statistic,
    cvm_test,
    ks_test,
    mmd_test,
    moment_test,
    random_directions,
    stein_test,
)
from sdekit.validate.order import (
    ClosedForm,
    OrderFit,
    brownian_problem,
    brownian_terminal,
    fit_order,
    fit_order_deterministic,
    gbm_problem,
    loglog_slope,
    s1_problem,
    s2_problem,
    s3_problem,
    s3_sine_problem,
    strong_errors,
)
from sdekit.validate.report import Report
from sdekit.validate.stationarity import (
    StationarityReport,
    classify_stationarity,
    linear_scheme_law,
    stationarity_check,
    ula_law,
)
from sdekit.validate.stats import (
    CheckResult,
    deterministic_check,
    gaussian_law_tests,
    ks_law_test,
    moment_chi2,
    whiten,
)
from sdekit.validate.weak import WeakErrors, em_weak_errors_linear, fit_weak_order, weak_errors
from sdekit.validate.work_precision import WorkPrecision, work_precision

__all__ = [
    "compare_with_law", "Law1D", "exact_feature_moments", "law_1d", "cvm_critical_value", "cvm_sf", "cvm_statistic",
    "cvm_test", "ks_test", "mmd_test", "moment_test", "random_directions", "stein_test", "ClosedForm", "OrderFit",
    "brownian_problem", "brownian_terminal", "fit_order", "fit_order_deterministic", "gbm_problem", "loglog_slope",
    "s1_problem", "s2_problem", "s3_problem", "s3_sine_problem", "strong_errors", "Report", "StationarityReport",
    "classify_stationarity", "linear_scheme_law", "stationarity_check", "ula_law", "CheckResult",
    "deterministic_check", "gaussian_law_tests", "ks_law_test", "moment_chi2", "whiten", "BiasReport",
    "classify_bias", "FokkerPlanck1D", "FPSolution", "PointMass", "check_fokker_planck_identity",
    "check_sde_fokker_planck_identity", "fokker_planck_chi2_test", "fokker_planck_reference", "solve_fokker_planck_1d",
    "TestFunction", "dynkin_test", "generator", "generator_scan", "generator_test", "linear_moment_test",
    "WeakErrors", "em_weak_errors_linear", "fit_weak_order", "weak_errors", "WorkPrecision", "work_precision",
]
