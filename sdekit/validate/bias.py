"""Bias or bug? Classify a sampler's discrepancy at step size h (VALIDATION.md §5 item 3).

A discretised sampler (ULA, Euler–Maruyama, ...) is biased at every h > 0, so "does not match pi"
alone cannot tell a correct scheme from a broken one. `classify_bias` runs the sampler at h and
h/2 on the same seeds and decides in two stages, each a battery at false-alarm rate alpha
(default 1e-6, Bonferroni-split inside the battery):

Stage A (is there a discrepancy at h?). Features phi_j (default x_i and x_i x_j, i <= j) with exact
values E_pi phi_j: d_h = phibar_h - E_pi phi_j, z_h = d_h / se_h, rejected when |z_h| > z* =
Phi^{-1}(1 - alpha_A / (2 k)) for k features; with a Gaussian ``exact_law`` also the KS / moment
chi-square battery of `gaussian_law_tests` (then features and law tests get alpha / 2 each). No
rejection: verdict "consistent" (P(not "consistent" | the sampler draws exactly from pi) <= alpha).

Stage B (is the discrepancy the scheme's bias?).
* With ``scheme_law`` (h -> (mean, cov) of the scheme's own law: the EM moment recursion for linear
  SDEs, V_h = Sigma (I - h Sigma^{-1} / 2)^{-1} for ULA on N(mu, Sigma)): the samples at h and at h/2
  are tested against scheme_law(h) and scheme_law(h/2) by `gaussian_law_tests` (alpha / 2 each).
* Otherwise Richardson: if phibar_h = E_pi phi + c h^p + O(h^{p+1}), the paired per-sample value
  r = (2^p phi(X_{h/2}) - phi(X_h)) / (2^p - 1) has mean E_pi phi + O(h^{p+1}); each feature's
  rbar is z-tested against E_pi phi at alpha / k. The standard error comes from the paired r, so it
  is correct whatever the coupling of the two runs (same seeds make it small). Calling a sampler
  "biased" also needs some feature with d_h significantly nonzero (stage A's threshold).
All pass: "biased as expected for order p"; any fails: "inconsistent: likely bug"
(P(bug verdict | the discrepancy is exactly the modelled bias) <= alpha; for Richardson this holds
while the O(h^{p+1}) remainder is below the standard error, which limits N at a given h).

Planted bugs fail (tests/test_weak_bias.py, 2-D Gaussian, N = 20000): ULA with its noise scaled by
sqrt(2), by 1.1, or its drift sign flipped is "inconsistent: likely bug" on both paths, while correct
ULA at h = 0.2 is "biased as expected for order 1" and exact samplers are "consistent".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats as st

from sdekit.errors import SDEKitError
from sdekit.validate.checks import (
    check_alpha,
    check_callable,
    check_gaussian_law,
    check_number,
    checked_output,
    real_array,
)
from sdekit.validate.stats import CheckResult, gaussian_law_tests
from sdekit.validate.weak import two_sided_z

CONSISTENT = "consistent"
BUG = "inconsistent: likely bug"

Sampler = Callable[[float, int], np.ndarray]
Law = tuple[Any, Any]
SchemeLaw = Callable[[float], Law]
FeatureFn = Callable[[np.ndarray], np.ndarray]


def biased_verdict(order: float) -> str:
    """The verdict string for an explained bias: 'biased as expected for order p'."""
    return f"biased as expected for order {order:g}"


def gaussian_features(mean: Any, cov: Any) -> tuple[FeatureFn, np.ndarray, list[str]]:
    """First and second moments: phi(x) = (x_i, x_i x_j (i <= j)) with E phi = (m_i, S_ij + m_i m_j).

    Returns (features, exact_values, names); the exact values hold for any law with that mean and
    covariance, Gaussian or not.
    """
    m = np.atleast_1d(real_array(mean, "mean"))
    s = np.atleast_2d(real_array(cov, "cov"))
    d = m.size
    if m.ndim != 1 or s.shape != (d, d):
        raise SDEKitError(f"cov must have shape ({d}, {d}) to match mean of shape ({d},); got mean {m.shape}, "
                          f"cov {s.shape}")
    iu, ju = np.triu_indices(d)

    def features(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, x[:, iu] * x[:, ju]], axis=1)

    exact = np.concatenate([m, s[iu, ju] + m[iu] * m[ju]])
    names = [f"x[{i}]" for i in range(d)] + [f"x[{i}]x[{j}]" for i, j in zip(iu, ju)]
    return features, exact, names


@dataclass(frozen=True)
class FeatureBias:
    """One feature phi at h and h/2: discrepancies, their ratio and the Richardson extrapolation.

    d_h = phibar_h - exact (se_h its standard error, z_h = d_h / se_h); likewise at h/2.
    ratio = d_{h/2} / d_h (2^{-p} for a pure order-p bias). extrapolated = mean of
    (2^p phi(X_{h/2}) - phi(X_h)) / (2^p - 1), se_extrapolated its paired standard error, and
    z_extrapolated = (extrapolated - exact) / se_extrapolated.
    """

    name: str
    exact: float
    d_h: float
    se_h: float
    d_h2: float
    se_h2: float
    ratio: float
    extrapolated: float
    se_extrapolated: float

    @property
    def z_h(self) -> float:
        """d_h / se_h."""
        return _z(self.d_h, self.se_h)

    @property
    def z_h2(self) -> float:
        """d_{h/2} / se_{h/2}."""
        return _z(self.d_h2, self.se_h2)

    @property
    def z_extrapolated(self) -> float:
        """(extrapolated - exact) / se_extrapolated."""
        return _z(self.extrapolated - self.exact, self.se_extrapolated)


def _z(d: float, se: float) -> float:
    if se > 0:
        return float(d / se)
    return 0.0 if d == 0 else float(np.copysign(np.inf, d))


@dataclass(frozen=True)
class BiasReport:
    """The outcome of `classify_bias`.

    verdict: "consistent", "biased as expected for order p" or "inconsistent: likely bug".
    kind: the same as one word ("consistent", "biased", "bug"). path: how stage B decided
    ("none" when stage A found nothing, "scheme_law" or "richardson"). features: per-feature numbers.
    discrepancy_checks: stage A (against pi at h). explanation_checks: stage B. note: why, in words.
    """

    name: str
    verdict: str
    kind: str
    path: str
    h: float
    order: float
    alpha: float
    n: int
    features: tuple[FeatureBias, ...]
    discrepancy_checks: tuple[CheckResult, ...]
    explanation_checks: tuple[CheckResult, ...] = ()
    note: str = ""

    @property
    def checks(self) -> tuple[CheckResult, ...]:
        """Every CheckResult used, stage A then stage B."""
        return self.discrepancy_checks + self.explanation_checks

    def feature(self, name: str) -> FeatureBias:
        """The FeatureBias called `name`."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"no feature {name!r}; have {[f.name for f in self.features]}")

    def summary(self) -> str:
        """A text report: verdict, per-feature table and every check with its verdict."""
        lines = [f"{self.name}: {self.verdict}  (h = {self.h:g}, p = {self.order:g}, N = {self.n}, "
                 f"alpha = {self.alpha:g}, path = {self.path})"]
        if self.note:
            lines.append(f"  {self.note}")
        lines.append(f"  {'feature':<10} {'exact':>9} {'d_h':>10} {'z_h':>7} {'d_h/2':>10} {'ratio':>7} "
                     f"{'extrap.':>10} {'z_extr':>7}")
        for f in self.features:
            lines.append(f"  {f.name:<10} {f.exact:>9.4g} {f.d_h:>+10.3e} {f.z_h:>+7.1f} {f.d_h2:>+10.3e} "
                         f"{f.ratio:>7.3f} {f.extrapolated:>10.4g} {f.z_extrapolated:>+7.2f}")
        for stage, checks in (("A: discrepancy at h", self.discrepancy_checks),
                              ("B: explanation", self.explanation_checks)):
            if checks:
                lines.append(f"  stage {stage}")
            for c in checks:
                lines.append(f"    [{c.verdict}] {c.name} {c.test}: statistic {c.statistic:.4g} vs {c.threshold:.4g}"
                             f", p = {c.pvalue:.3g}")
        return "\n".join(lines)


def _samples(x: Any, what: str, dim: int | None) -> np.ndarray:
    """run's output at one step size as (n, d) real samples, d = dim when pi's dimension is known; (n, *shape)
    output is flattened row-wise (C order) to d = prod(shape)."""
    arr = real_array(x, f"run(h, seed)'s output at {what}")
    shape = arr.shape
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], math.prod(arr.shape[1:]))
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise SDEKitError(f"run(h, seed) must return samples of shape (n, d) with n >= 2; got shape {shape} "
                          f"for {what}")
    if dim is not None and arr.shape[1] != dim:
        raise SDEKitError(f"run(h, seed) returned samples of shape {shape} for {what}; expected (n, {dim}) "
                          f"to match exact_law's dimension {dim} (or (n, *shape) with prod(shape) = {dim})")
    return arr


def _feature_test(name: str, label: str, d: float, se: float, each: float) -> CheckResult:
    z = _z(d, se)
    thr = two_sided_z(each)
    return CheckResult(name, label, abs(z), thr, float(2.0 * st.norm.sf(abs(z))), bool(abs(z) <= thr),
                       bias=(z,), alpha=each)


def classify_bias(run: Sampler, h: float, *, seed: int = 0, order: float = 1.0, exact_law: Law | None = None,
                  scheme_law: SchemeLaw | None = None, features: FeatureFn | None = None,
                  exact_values: Any = None, feature_names: Sequence[str] | None = None, law_tests: bool = True,
                  alpha: float = 1e-6, name: str = "sampler") -> BiasReport:
    """Is the sampler's discrepancy from pi at step h absent, its order-p bias, or a bug?

    run(h, seed) -> samples (n, d): i.i.d. draws of the sampler at step size h (one per chain or
    path); it is called at h and h/2 with the same seed, and should use the same initial states
    and Brownian paths (e.g. noise_substeps = 2 at h) so that the paired Richardson values have
    small variance. exact_law = (mean, cov) of pi gives the default features x_i, x_i x_j and the
    Gaussian law tests of stage A (law_tests=False skips them: use that when pi is not Gaussian but
    its mean and covariance are known). Or give features(x) -> (n, k) with exact_values (k,) =
    E_pi phi. scheme_law(h) -> (mean, cov) of the scheme's own law at step h; without it stage B is
    Richardson at order p. alpha: the false-alarm rate of each stage (module docstring).

    exact_law may also be a ``Gaussian``. Bad input is refused before the sampler runs, or as soon as its output
    is seen: run's samples must be real of shape (n, d), or (n, *shape) flattened row-wise to d = prod(shape),
    with d the dimension of exact_law, exact_law's and
    scheme_law's covariances symmetric positive definite.
    """
    alpha = check_alpha(alpha)
    h = check_number(h, "h", minimum=0.0, strict=True)
    order = check_number(order, "order", minimum=0.0, strict=True)
    check_callable(run, "run", "run(h, seed) -> samples (n, d)")
    if scheme_law is not None:
        check_callable(scheme_law, "scheme_law", "scheme_law(h) -> (mean, cov)")
    dim = None
    if exact_law is not None:
        exact_law = check_gaussian_law(exact_law, "exact_law")
        dim = exact_law[0].shape[0]
    if features is None:
        if exact_law is None:
            raise SDEKitError("give exact_law = (mean, cov) of pi, or features with exact_values (E_pi phi)")
        features, exact_values, default_names = gaussian_features(*exact_law)
        feature_names = feature_names or default_names
    else:
        check_callable(features, "features", "features(x) -> (n, k)")
        if exact_values is None:
            raise SDEKitError("exact_values (E_pi phi per feature) is required with features")
    exact = np.atleast_1d(real_array(exact_values, "exact_values"))
    if exact.ndim != 1 or not np.all(np.isfinite(exact)):
        raise SDEKitError(f"exact_values must be a finite 1-D array (one E_pi phi per feature); got {exact_values!r}")

    x_h = _samples(run(h, seed), f"h = {h:g}", dim)
    x_h2 = _samples(run(h / 2.0, seed), f"h / 2 = {h / 2:g}", dim)
    if x_h.shape != x_h2.shape:
        raise SDEKitError(f"run must return the same shape at h and h/2; got {x_h.shape} and {x_h2.shape}")
    n, n_dim = x_h.shape
    kp = 2.0**order
    base = dict(name=name, h=h, order=order, alpha=alpha, n=n)
    if not (np.all(np.isfinite(x_h)) and np.all(np.isfinite(x_h2))):
        return BiasReport(verdict=BUG, kind="bug", path="none", features=(), discrepancy_checks=(),
                          note="the sampler returned non-finite samples", **base)
    k = exact.size
    meaning = f"(n, {k}), one column per exact value"
    f_h = checked_output(features(x_h.copy()), "features", (n, k), meaning, flat_ok=True)
    f_h2 = checked_output(features(x_h2.copy()), "features", (n, k), meaning, flat_ok=True)
    names = list(feature_names) if feature_names is not None else [f"phi[{j}]" for j in range(k)]
    if len(names) != k:
        raise SDEKitError(f"feature_names must have {k} entries; got {len(names)}")
    sqn = np.sqrt(n)
    r = (kp * f_h2 - f_h) / (kp - 1.0)
    feats = []
    for j in range(k):
        d_h, d_h2 = f_h[:, j].mean() - exact[j], f_h2[:, j].mean() - exact[j]
        feats.append(FeatureBias(
            names[j], float(exact[j]), float(d_h), float(f_h[:, j].std(ddof=1) / sqn), float(d_h2),
            float(f_h2[:, j].std(ddof=1) / sqn), float(d_h2 / d_h) if d_h != 0 else float("nan"),
            float(r[:, j].mean()), float(r[:, j].std(ddof=1) / sqn)))

    # stage A: against pi at h
    gaussian = exact_law is not None and law_tests
    alpha_feat = alpha / 2.0 if gaussian else alpha
    stage_a = [_feature_test(name, f"z {f.name} at h (vs pi)", f.d_h, f.se_h, alpha_feat / k) for f in feats]
    if gaussian:
        stage_a += gaussian_law_tests(f"{name} at h vs pi", x_h, *exact_law, alpha=alpha / 2.0)
    stage_a_t = tuple(stage_a)
    if all(c.passed for c in stage_a_t):
        return BiasReport(verdict=CONSISTENT, kind="consistent", path="none", features=tuple(feats),
                          discrepancy_checks=stage_a_t, note="no discrepancy from pi detectable at h", **base)
    feature_hit = [f.name for f, c in zip(feats, stage_a_t) if not c.passed]

    # stage B: the scheme's own law, or Richardson
    if scheme_law is not None:
        stage_b = []
        for hh, xs in ((h, x_h), (h / 2.0, x_h2)):
            mean, cov = check_gaussian_law(scheme_law(hh), f"scheme_law({hh:g})", n_dim)
            stage_b += gaussian_law_tests(f"{name} at h = {hh:g} vs scheme law", xs, mean, cov, alpha=alpha / 2.0)
        ok = all(c.passed for c in stage_b)
        note = ("discrepancy from pi matches the scheme's own law at h and h/2" if ok
                else "samples differ from the scheme's own law: the discrepancy is not the scheme's bias")
        path = "scheme_law"
    else:
        stage_b = [_feature_test(name, f"Richardson {f.name} (vs pi)", f.extrapolated - f.exact,
                                 f.se_extrapolated, alpha / k) for f in feats]
        rich_ok = all(c.passed for c in stage_b)
        ok = rich_ok and bool(feature_hit)
        if ok:
            note = (f"d_h significantly nonzero for {', '.join(feature_hit)}; the order-{order:g} Richardson "
                    f"extrapolation agrees with pi for every feature")
        elif not feature_hit:
            note = ("the discrepancy at h shows in the law tests but in no feature: it cannot be attributed "
                    "to an O(h^p) bias of the features")
        else:
            bad = [f.name for f, c in zip(feats, stage_b) if not c.passed]
            note = f"the discrepancy does not shrink like h^{order:g}: Richardson extrapolation misses pi for " \
                   f"{', '.join(bad)}"
        path = "richardson"
    return BiasReport(verdict=biased_verdict(order) if ok else BUG, kind="biased" if ok else "bug", path=path,
                      features=tuple(feats), discrepancy_checks=stage_a_t, explanation_checks=tuple(stage_b),
                      note=note, **base)
