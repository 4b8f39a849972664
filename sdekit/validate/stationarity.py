"""Stationarity from pi: start N chains exactly at the target, run K steps, test the end state.

No mixing is needed (the chains start in pi), so this works for well-separated modes. A
correct sampler of pi that is exactly pi-invariant (an exact OU step, MALA) passes for any K; a
discretised SDE sampler is biased by O(h^p). Where the scheme's own law after K steps is known,
the check is bias-aware: it tests the end state against pi *and* against the scheme's law, and
says which one it is:

- "stationary": passes against pi (bias, if any, below resolution at this N);
- "biased as expected at this step": fails against pi, passes against the scheme's own law;
- "wrong": fails against the scheme's law (or against pi when no scheme law is known).

Scheme laws (VALIDATION.md §1a, §1c, §2(iii)): a linear one-step scheme X' = M X + c + G xi
started from N(m0, S0) has, after K steps, mean m_K = M m_{K-1} + c and covariance
S_K = M S_{K-1} M^T + G G^T (`linear_scheme_law`). ULA (Euler–Maruyama on dX = s dt + sqrt(2) dW)
for pi = N(mu, Sigma) is that with M = I - h Sigma^{-1}, c = h Sigma^{-1} mu, G G^T = 2h I, whose
fixed point is V_h = Sigma (I - h Sigma^{-1} / 2)^{-1} (`ula_law`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.sde import SDE
from sdekit.simulate import simulate
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.validate.checks import check_alpha, check_count, check_number, check_seed, real_array
from sdekit.validate.compare import ALL_TESTS, check_tests, compare_with_law
from sdekit.validate.laws import law_1d
from sdekit.validate.report import Report
from sdekit.validate.stats import CheckResult

VERDICTS = ("stationary", "biased as expected at this step", "wrong")
MIN_PATHS = 20  # the one-sample battery needs at least 20 draws


def linear_scheme_law(m: np.ndarray, gg: np.ndarray, mean0: np.ndarray, cov0: np.ndarray, steps: int,
                      c: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Law of X_K for X' = M X + c + G xi, X_0 ~ N(mean0, cov0): m' = M m + c, S' = M S M^T + G G^T."""
    mean = np.atleast_1d(real_array(mean0, "mean0")).copy()
    d = mean.shape[0]
    shapes = {"m": (d, d), "gg": (d, d), "cov0": (d, d), "c": (d,)}
    given = {"m": m, "gg": gg, "cov0": cov0, "c": np.zeros(d) if c is None else c}
    arrays = {}
    for name, v in given.items():
        a = real_array(v, name)
        a = a.reshape(shapes[name]) if a.size == 1 and d == 1 else a
        if a.shape != shapes[name] or not np.all(np.isfinite(a)):
            raise SDEKitError(f"{name} must be finite of shape {shapes[name]} (d = {d} from mean0); "
                              f"got shape {a.shape}")
        arrays[name] = a
    if mean.ndim != 1 or not np.all(np.isfinite(mean)):
        raise SDEKitError(f"mean0 must be a finite vector; got shape {mean.shape}")
    m, gg, cov, shift = arrays["m"], arrays["gg"], arrays["cov0"].copy(), arrays["c"]
    for _ in range(check_count(steps, "steps", 0)):
        mean = m @ mean + shift
        cov = m @ cov @ m.T + gg
    return mean, 0.5 * (cov + cov.T)


def ula_law(target: Gaussian, h: float, steps: int | None = None) -> Gaussian:
    """Law of ULA (EM on dX = grad log pi dt + sqrt(2) dW) for pi = N(mu, Sigma) after ``steps`` steps
    from pi: N(mu, S_K), S_{k+1} = M S_k M^T + 2h I, M = I - h Sigma^{-1}; steps=None gives the fixed
    point V_h = Sigma (I - h Sigma^{-1} / 2)^{-1} (stable iff h < 2 lambda_min(Sigma))."""
    if not isinstance(target, Gaussian):
        raise SDEKitError(f"target must be a Gaussian (ULA's law is closed-form only there); got {type(target)}")
    h = check_number(h, "h", minimum=0.0, strict=True)
    cov = target.cov
    lam_min = float(np.linalg.eigvalsh(cov).min())
    if not 0 < h < 2 * lam_min:
        raise SDEKitError(f"h must be in (0, 2 lambda_min(Sigma)) = (0, {2 * lam_min:.4g}) for ULA; got {h}")
    d = target.dim
    prec = np.linalg.inv(cov)
    if steps is None:
        v = cov @ np.linalg.inv(np.eye(d) - 0.5 * h * prec)
        return Gaussian(target.mean, 0.5 * (v + v.T))
    m = np.eye(d) - h * prec
    _, s = linear_scheme_law(m, 2 * h * np.eye(d), target.mean, cov, check_count(steps, "steps", 0))
    return Gaussian(target.mean, s)


@dataclass
class StationarityReport:
    """Outcome of a stationarity check: the verdict, the report against pi and, when given, against
    the scheme's own law."""

    verdict: str
    against_target: Report
    against_scheme: Report | None
    steps: int
    h: float

    @property
    def passed(self) -> bool:
        """True unless the verdict is "wrong"."""
        return self.verdict != "wrong"

    def summary(self) -> str:
        """The verdict and the two reports' summary lines."""
        lines = [f"stationarity after K = {self.steps} steps of h = {self.h:g}: {self.verdict}",
                 "  vs target:      " + self.against_target.summary()]
        if self.against_scheme is not None:
            lines.append("  vs scheme law:  " + self.against_scheme.summary())
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """Markdown: verdict and both reports."""
        out = f"**{self.verdict}** (K = {self.steps}, h = {self.h:g})\n\n" + self.against_target.to_markdown()
        if self.against_scheme is not None:
            out += "\n" + self.against_scheme.to_markdown()
        return out


def classify_stationarity(against_target: Report, against_scheme: Report | None) -> str:
    """'stationary' / 'biased as expected at this step' / 'wrong' from the two reports."""
    for name, r in (("against_target", against_target), ("against_scheme", against_scheme)):
        if not (isinstance(r, Report) or (r is None and name == "against_scheme")):
            raise SDEKitError(f"{name} must be a Report (from compare_with_law); got {type(r).__name__}")
    if against_scheme is not None and not against_scheme.passed:
        return "wrong"
    if against_target.passed:
        return "stationary"
    return "biased as expected at this step" if against_scheme is not None else "wrong"


def _check_scheme_law(scheme_law: Any, dim: int) -> None:
    """scheme_law must be a law of the target's dim (in 1-D also anything `law_1d` takes, e.g. a scipy law)."""
    law_dim = getattr(scheme_law, "dim", None)
    if law_dim is None and dim == 1:
        try:
            law_1d(scheme_law)
            return
        except SDEKitError:
            pass
    if law_dim != dim:
        raise SDEKitError(f"scheme_law must be a law of the same dim as the target ({dim}), e.g. a Gaussian from "
                          f"ula_law; got {type(scheme_law).__name__} of dim {law_dim}")


def stationarity_check(sde: SDE, target: Gaussian | GaussianMixture, *, h: float, steps: int, n_paths: int = 20_000,
                       seed: int = 0, solver: str = "euler_maruyama", scheme_law: Gaussian | None = None,
                       alpha: float = 1e-6, tests: tuple[str, ...] = ALL_TESTS, name: str | None = None,
                       **simulate_kwargs: Any) -> StationarityReport:
    """Draw X_0 ~ pi exactly (``target.sample``), run K = ``steps`` steps of size h, test X_K.

    Tests X_K against pi and, when ``scheme_law`` (the scheme's exact law of X_K) is given, against
    it too; each battery at overall rate alpha (so the check's false-alarm rate is <= 2 alpha).
    Every argument is checked before the solve (n_paths >= 20, scheme_law of the target's dim).
    """
    alpha = check_alpha(alpha)
    if not isinstance(sde, SDE):
        raise SDEKitError(f"sde must be an sdekit.SDE; got {type(sde).__name__}")
    if not (hasattr(target, "dim") and hasattr(target, "sample")):
        raise SDEKitError(f"target must be a Gaussian, a GaussianMixture or another target with dim and an exact "
                          f"sample(n, seed); got {type(target).__name__}")
    steps = check_count(steps, "steps")
    h = check_number(h, "h", minimum=0.0, strict=True)
    n_paths = check_count(n_paths, "n_paths", MIN_PATHS)
    seed = check_seed(seed)
    tests = check_tests(tests)
    if sde.dim != target.dim:
        raise SDEKitError(f"target has dim {target.dim} but the sde has dim {sde.dim}")
    if scheme_law is not None:
        _check_scheme_law(scheme_law, target.dim)
    label = name or f"{sde.name}/{solver} from pi, K={steps}, h={h:g}"
    x0 = target.sample(n_paths, seed=np.random.SeedSequence([seed, 0x57A7]))
    sol = simulate(sde, x0, (0.0, h * steps), steps=int(steps), n_paths=n_paths, seed=seed, solver=solver,
                   **simulate_kwargs)
    end = sol.final
    vs_target = compare_with_law(end, target, alpha=alpha, tests=tests, name=label + " vs pi")
    vs_scheme = None
    if scheme_law is not None:
        vs_scheme = compare_with_law(end, scheme_law, alpha=alpha, tests=tests,
                                     name=label + " vs scheme law")
    return StationarityReport(classify_stationarity(vs_target, vs_scheme), vs_target, vs_scheme, int(steps), float(h))


def verdict_report(name: str, st: StationarityReport, expected: str) -> Report:
    """A Report that passes when the stationarity verdict is ``expected``: the scheme-law battery gates,
    the battery against pi is shown as diagnostics, and one row states the verdict. (Checks with a
    scheme law run each of the two batteries at alpha / 2, so the check's rate stays alpha.)"""
    results: list[CheckResult] = []
    if st.against_scheme is not None:
        results += st.against_scheme.results
    if expected == "stationary":
        results += st.against_target.results
    else:
        results += [dataclasses.replace(r, gating=False, name=r.name) for r in st.against_target.results]
    ok = st.verdict == expected
    results.append(CheckResult(name, f"verdict: {st.verdict}", float(ok), 1.0, float("nan"), ok,
                               note=f"expected: {expected}"))
    return Report(name, st.against_target.alpha, results, st.against_target.panels, st.against_target.n)
