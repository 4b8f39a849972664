"""Ready-made statistical property checks that raise with a full report when they reject.

Each check runs a calibrated battery at overall false-alarm rate alpha (default 1e-6) and
spends it on the false-alarm ledger; the assertion message is the battery's text table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.sde import SDE
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.validate.checks import check_number
from sdekit.validate.compare import compare_with_law
from sdekit.validate.order import OrderFit
from sdekit.validate.report import Report, format_text
from sdekit.validate.stationarity import StationarityReport, stationarity_check


class StatisticalAssertionError(AssertionError):
    """A calibrated test rejected: the message holds the statistics, thresholds and p-values."""


def assert_law(sample: Any, target: Any, *, alpha: float = 1e-6, name: str = "sample", **kwargs: Any) -> Report:
    """Assert that the rows of ``sample`` are i.i.d. draws of ``target`` (`compare_with_law` at rate alpha)."""
    report = compare_with_law(sample, target, alpha=alpha, name=name, **kwargs)
    if not report.passed:
        raise StatisticalAssertionError(report.to_text())
    return report


def assert_stationary(sde: SDE, target: Gaussian | GaussianMixture, *, h: float, steps: int,
                      allow_bias: bool = False, **kwargs: Any) -> StationarityReport:
    """Assert that K steps from X_0 ~ pi leave X_K ~ pi (`stationarity_check`).

    allow_bias=True also accepts "biased as expected at this step" (needs ``scheme_law=``).
    """
    if allow_bias and kwargs.get("scheme_law") is None:
        raise SDEKitError("allow_bias=True needs scheme_law= (the scheme's own law after K steps, e.g. ula_law): "
                          "without it the verdict can never be 'biased as expected at this step'")
    report = stationarity_check(sde, target, h=h, steps=steps, **kwargs)
    ok = report.verdict == "stationary" or (allow_bias and report.verdict == "biased as expected at this step")
    if not ok:
        detail = report.against_target.to_text()
        if report.against_scheme is not None:
            detail += "\n\n" + report.against_scheme.to_text()
        raise StatisticalAssertionError(report.summary() + "\n\n" + detail)
    return report


def assert_moment_evolution(sde: SDE, x0: Any, t: tuple[float, float], **kwargs: Any) -> list:
    """Assert Dynkin's formula E phi(X_t) - E phi(X_0) = int_0^t E L phi(X_s) ds along simulated paths
    (`sdekit.validate.generator.dynkin_test`)."""
    from sdekit.validate.generator import dynkin_test

    results = dynkin_test(sde, x0, t, **kwargs)
    if not all(r.passed for r in results if r.gating):
        raise StatisticalAssertionError(format_text(results))
    return results


def assert_order(fit: OrderFit, expected: float, *, lo: float = 0.2, hi: float = 0.25,
                 max_halfwidth: float = 0.15) -> OrderFit:
    """Assert the fitted order is in [p - lo, p + hi] with a bootstrap CI half-width below max_halfwidth."""
    if not isinstance(fit, OrderFit):
        raise SDEKitError(f"fit must be an OrderFit (from fit_order, fit_weak_order or fit_order_deterministic); "
                          f"got {type(fit).__name__}")
    expected = check_number(expected, "expected")
    lo, hi = check_number(lo, "lo", minimum=0.0), check_number(hi, "hi", minimum=0.0)
    max_halfwidth = check_number(max_halfwidth, "max_halfwidth", minimum=0.0, strict=True)
    if not (np.isfinite(fit.order) and fit.passes(expected, lo=lo, hi=hi, max_halfwidth=max_halfwidth)):
        raise StatisticalAssertionError(
            f"order {fit.order:.3f} (CI [{fit.ci_low:.3f}, {fit.ci_high:.3f}], half-width {fit.halfwidth:.3f}) "
            f"outside [{expected - lo:.2f}, {expected + hi:.2f}] or CI half-width >= {max_halfwidth}\n{fit.summary()}")
    return fit
