"""`compare_with_law`: the one-sample battery of N i.i.d. draws against an exact law.

For a d-dimensional Gaussian or Gaussian-mixture target the battery is:
KS and Cramér–von Mises on each of the d marginals and on R fixed random projections
(a projected mixture is an exact 1-D mixture), the exact-covariance moment chi-square, and the
Stein-identity test with the exact score; one-sample MMD is added as a diagnostic. For a 1-D law
given by a CDF (or a frozen scipy distribution) the battery is KS and CvM.

Every gating test runs at alpha / k for k gating tests (Bonferroni), so the battery's overall
false-alarm rate is at most alpha (default 1e-6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.validate.checks import check_alpha, check_callable, check_count, check_sample
from sdekit.validate.laws import law_1d
from sdekit.validate.onesample import (
    cvm_test,
    ks_test,
    mmd_test,
    moment_test,
    projection_laws,
    random_directions,
    stein_test,
)
from sdekit.validate.report import Panel, Report
from sdekit.validate.stats import CheckResult

ALL_TESTS = ("ks", "cvm", "moments", "stein", "mmd")
PROJECTION_SEED = 20_260_101


def check_tests(tests: Any) -> tuple[str, ...]:
    """tests as a tuple of names from ``ALL_TESTS`` (a single name may be given as a string)."""
    tests = (tests,) if isinstance(tests, str) else tests
    try:
        tests = tuple(tests)
    except TypeError:
        raise SDEKitError(f"tests must be a sequence of names from {ALL_TESTS}; got {tests!r}") from None
    unknown = [t for t in tests if t not in ALL_TESTS]
    if unknown:
        raise SDEKitError(f"tests must be drawn from {ALL_TESTS}; got unknown {unknown}")
    return tests


def compare_with_law(sample: Any, target: Any, *, alpha: float = 1e-6, projections: int = 12,
                     tests: Sequence[str] = ALL_TESTS, score: Callable[[np.ndarray], np.ndarray] | None = None,
                     name: str = "sample") -> Report:
    """Test N i.i.d. draws (rows of ``sample``) against the exact law ``target`` at overall rate alpha.

    target: ``Gaussian`` / ``GaussianMixture`` (any dim); an energy target with ``marginal_law(i)`` and
    ``score`` (``DoubleWell``, ``Rosenbrock``, ``NealFunnel``: KS and CvM on every coordinate with a
    closed-form marginal, plus the Stein test); or for 1-D samples any law `law_1d` accepts (a CDF
    callable, a frozen scipy distribution). score: the exact score for the Stein test
    (default: the target's own). The samples must be independent (one per chain or path, never
    consecutive MCMC states). tests: names from ``ALL_TESTS`` (a single name may be a string).
    The sample must hold real numbers (complex values are refused, never cast) and no non-finite rows.
    sample: (N,) or (N, d); or (N, *shape) with prod(shape) = d, e.g. (N, C, H, W) images against a d = C H W law,
    each draw flattened row-wise (C order, x[n].ravel()); the Stein test's score then receives those (N, d) rows.

    Returns a `Report`: each result has its statistic, threshold, p-value, standardized bias per
    feature and verdict; ``report.passed`` is the battery's verdict.
    """
    alpha = check_alpha(alpha)
    tests = check_tests(tests)
    projections = check_count(projections, "projections", 0)
    if score is not None:
        check_callable(score, "score", "score(x) -> (n, d), the gradient of log pi")
    multivariate = isinstance(target, Gaussian | GaussianMixture)
    by_marginals = not multivariate and hasattr(target, "marginal_law") and hasattr(target, "dim")
    dim = target.dim if (multivariate or by_marginals) else 1
    x = check_sample(sample, dim=dim)
    n = x.shape[0]

    panels: list[Panel] = []
    if by_marginals:
        laws, labels = [], []
        for i in range(dim):
            try:
                laws.append(target.marginal_law(i))
            except SDEKitError:  # no closed-form marginal for this coordinate
                continue
            labels.append(f"x[{i}]")
        if not labels and "stein" not in tests:
            raise SDEKitError(f"{type(target).__name__} has no closed-form marginal and the Stein test is off")
        values = x[:, [int(lab[2:-1]) for lab in labels]]
    elif multivariate:
        eye = np.eye(dim)
        labels = [f"x[{i}]" for i in range(dim)]
        laws = [law_1d(target.project(eye[i])) for i in range(dim)]
        if dim > 1 and projections:
            dirs = random_directions(dim, projections, PROJECTION_SEED)
            laws += projection_laws(target, dirs)
            labels += [f"u{j}.x" for j in range(projections)]
            values = np.concatenate([x, x @ dirs.T], axis=1)
        else:
            values = x
    else:
        laws, labels, values = [law_1d(target)], ["x"], x
    for j, lab in enumerate(labels):
        panels.append(Panel(lab, values[:, j].copy(), laws[j]))

    use_stein = "stein" in tests and (score is not None or multivariate or by_marginals)
    n_gating = (len(labels) * (("ks" in tests) + ("cvm" in tests)) + ("moments" in tests and multivariate)
                + use_stein)
    if n_gating == 0:
        raise SDEKitError(f"tests {tuple(tests)} leave no gating test for this target")
    each = alpha / n_gating
    results: list[CheckResult] = []
    for panel in panels:
        if "ks" in tests:
            results.append(ks_test(panel.values, panel.law, each, name=name, label=f"KS {panel.label}"))
        if "cvm" in tests:
            results.append(cvm_test(panel.values, panel.law, each, name=name, label=f"CvM {panel.label}"))
    if "moments" in tests and multivariate:
        results.append(moment_test(x, target, each, name=name))
    if use_stein:
        results.append(stein_test(x, score or target.score, each, name=name))
    if "mmd" in tests and multivariate:
        results.append(mmd_test(x, target, alpha, name=name))
    return Report(name, alpha, results, panels, n)
