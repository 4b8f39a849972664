"""Validation tools: convergence-order estimation (more to come: distributional tests, oracles)."""

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

__all__ = ["ClosedForm", "OrderFit", "brownian_problem", "brownian_terminal", "fit_order", "fit_order_deterministic",
           "gbm_problem", "loglog_slope", "s1_problem", "s2_problem", "s3_problem", "s3_sine_problem",
           "strong_errors"]
