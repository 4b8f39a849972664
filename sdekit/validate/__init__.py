"""Validation tools: calibrated tests against closed-form laws and convergence-order estimation."""

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
from sdekit.validate.stats import (
    CheckResult,
    deterministic_check,
    gaussian_law_tests,
    ks_law_test,
    moment_chi2,
    whiten,
)

__all__ = ["ClosedForm", "OrderFit", "brownian_problem", "brownian_terminal", "fit_order", "fit_order_deterministic",
           "gbm_problem", "loglog_slope", "s1_problem", "s2_problem", "s3_problem", "s3_sine_problem",
           "strong_errors", "CheckResult", "deterministic_check", "gaussian_law_tests", "ks_law_test",
           "moment_chi2", "whiten"]
