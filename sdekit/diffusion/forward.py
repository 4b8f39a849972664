"""Forward (noising) SDEs dx = f(t) x dt + g(t) dW with closed-form kernels x_t | x_0 ~ N(alpha_t x_0, sigma_t^2 I).

Schedules are data: a float array ``sp = [kind, a, b, c]`` read by two njit functions,
`schedule_coefficients(t, sp) -> (f, g)` and `schedule_kernel(t, sp) -> (alpha, sigma)`, so one
compiled kernel serves every schedule of every kind (Song et al. 2021, "Score-based generative
modeling through stochastic differential equations", §3.4 and App. B; VALIDATION.md §1b):

- VE (kind 0; a = sigma_min, b = sigma_max, c = convention): f = 0,
  sigma(t) = sigma_min (sigma_max / sigma_min)^t, g = sigma(t) sqrt(2 ln(sigma_max / sigma_min)),
  alpha = 1 and sigma_t^2 = sigma(t)^2 - sigma_min^2 exactly (c = 0, sdekit's default); c = 1 gives
  score_sde's convention sigma_t = sigma(t) (data taken as convolved with N(0, sigma_min^2 I)).
- VP (kind 1; a = beta_min, b = beta_max): beta(t) = a + t (b - a), f = -beta / 2, g = sqrt(beta),
  B(t) = a t + (b - a) t^2 / 2, alpha = exp(-B / 2), sigma^2 = 1 - alpha^2.
- sub-VP (kind 2; same a, b): f = -beta / 2, g^2 = beta (1 - exp(-2B)), sigma^2 = (1 - alpha^2)^2.
- cosine (kind 3; a = s, default 0.008; Nichol & Dhariwal 2021): alpha_bar(t) = cos^2(u(t)) / cos^2(u(0)),
  u(t) = (t + s) / (1 + s) pi / 2, alpha = sqrt(alpha_bar), sigma^2 = 1 - alpha_bar,
  f = d log alpha / dt = -pi / (2 (1 + s)) tan(u), g^2 = -2 f (VP-type). f diverges at t = 1: use T < 1.

Every kernel satisfies the schedule ODEs d alpha / dt = f alpha and d sigma^2 / dt = 2 f sigma^2 + g^2
(tested as a property). `ForwardSDE.custom(f, g)` takes any linear schedule as njit scalar
functions f(t, p), g(t, p) and integrates those ODEs for its kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numba as nb
import numpy as np
from scipy.integrate import solve_ivp

from sdekit.diffusion.inputs import real_array, time_value
from sdekit.errors import SDEKitError
from sdekit.sde import SDE

VE, VP, SUBVP, COSINE = 0, 1, 2, 3
KIND_NAMES = {VE: "ve", VP: "vp", SUBVP: "subvp", COSINE: "cosine"}


@nb.njit(cache=True)
def schedule_coefficients(t, sp):
    """(f(t), g(t)) of the forward SDE dx = f(t) x dt + g(t) dW for the schedule sp = [kind, a, b, c]."""
    kind = int(sp[0])
    a = sp[1]
    b = sp[2]
    if kind == 0:
        log_ratio = math.log(b / a)
        return 0.0, a * math.exp(t * log_ratio) * math.sqrt(2.0 * log_ratio)
    if kind == 1:
        beta = a + t * (b - a)
        return -0.5 * beta, math.sqrt(beta)
    if kind == 2:
        beta = a + t * (b - a)
        big_b = a * t + 0.5 * (b - a) * t * t
        return -0.5 * beta, math.sqrt(beta * -math.expm1(-2.0 * big_b))
    u = (t + a) / (1.0 + a) * 0.5 * math.pi
    f = -0.5 * math.pi / (1.0 + a) * math.tan(u)
    return f, math.sqrt(-2.0 * f)


@nb.njit(cache=True)
def schedule_kernel(t, sp):
    """(alpha_t, sigma_t) of the kernel x_t | x_0 ~ N(alpha_t x_0, sigma_t^2 I) for sp = [kind, a, b, c]."""
    kind = int(sp[0])
    a = sp[1]
    b = sp[2]
    if kind == 0:
        s = a * math.exp(t * math.log(b / a))
        if sp[3] != 0.0:
            return 1.0, s
        return 1.0, math.sqrt(max(s * s - a * a, 0.0))
    if kind == 1 or kind == 2:
        big_b = a * t + 0.5 * (b - a) * t * t
        alpha = math.exp(-0.5 * big_b)
        one_minus = -math.expm1(-big_b)  # 1 - alpha^2, accurate for small t
        if kind == 1:
            return alpha, math.sqrt(one_minus)
        return alpha, one_minus
    u0 = a / (1.0 + a) * 0.5 * math.pi
    u = (t + a) / (1.0 + a) * 0.5 * math.pi
    alpha = math.cos(u) / math.cos(u0)
    return alpha, math.sqrt(max(1.0 - alpha * alpha, 0.0))


@nb.njit(cache=True)
def forward_drift(x, t, p):
    """f(t) x, with the schedule in p (a float array sp)."""
    f, _ = schedule_coefficients(t, p)
    return f * x


@nb.njit(cache=True)
def forward_diffusion(x, t, p):
    """g(t) (scalar: the same noise level on every coordinate)."""
    _, g = schedule_coefficients(t, p)
    return g


def _positive(v: Any, name: str) -> float:
    """v as a positive finite float (a bool, an array or a complex number is refused)."""
    if isinstance(v, bool | np.bool_ | str) or np.ndim(v) != 0 or np.iscomplexobj(v):
        raise SDEKitError(f"{name} must be a positive number; got {v!r}")
    try:
        out = float(v)
    except (TypeError, ValueError):
        raise SDEKitError(f"{name} must be a positive number; got {v!r}") from None
    if not (math.isfinite(out) and out > 0):
        raise SDEKitError(f"{name} must be a positive number; got {v!r}")
    return out


def _beta_range(beta_min: Any, beta_max: Any) -> tuple[float, float]:
    """(beta_min, beta_max), both positive and finite, beta_max >= beta_min (beta(t) rises linearly)."""
    lo, hi = _positive(beta_min, "beta_min"), _positive(beta_max, "beta_max")
    if hi < lo:
        raise SDEKitError(f"beta_max must be >= beta_min (beta(t) = beta_min + t (beta_max - beta_min) rises); got "
                          f"beta_min = {lo}, beta_max = {hi}")
    return lo, hi


@dataclass
class ForwardSDE:
    """A forward noising SDE dx = f(t) x dt + g(t) dW on [0, T] with kernel N(alpha_t x_0, sigma_t^2 I).

    Build with `ve`, `vp`, `subvp`, `cosine` or `custom`. ``sp`` is the schedule array the njit
    functions read; ``T`` the end time; ``eps`` the recommended smallest time for sampling.
    """

    name: str
    sp: np.ndarray
    T: float = 1.0
    eps: float = 1e-3
    coefficients_fn: Callable = field(default=schedule_coefficients, repr=False)
    kernel_fn: Callable | None = field(default=schedule_kernel, repr=False)
    custom_kernel: Callable | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Every constructor ends here: T and eps positive and finite with eps < T (sampling runs from T down to
        eps), and a finite schedule array."""
        object.__setattr__(self, "T", _positive(self.T, "T"))
        object.__setattr__(self, "eps", _positive(self.eps, "eps"))
        if not self.eps < self.T:
            raise SDEKitError(f"eps must be smaller than T (sampling runs from T down to eps); got eps = {self.eps}, "
                              f"T = {self.T}")
        try:
            sp = np.ascontiguousarray(self.sp, dtype=float)
        except (TypeError, ValueError):
            raise SDEKitError(f"sp must be a 1-D float array; got {self.sp!r}") from None
        if sp.ndim != 1 or not np.all(np.isfinite(sp)):
            raise SDEKitError(f"sp (the schedule's parameters) must be a finite 1-D array; got {self.sp!r}")
        object.__setattr__(self, "sp", sp)

    # -- constructors

    @classmethod
    def ve(cls, sigma_min: float = 0.01, sigma_max: float = 50.0, *, convention: str = "exact",
           T: float = 1.0, eps: float = 1e-5) -> ForwardSDE:
        """VE SDE; convention "exact" (sigma_t^2 = sigma(t)^2 - sigma_min^2) or "score_sde" (sigma_t = sigma(t))."""
        lo, hi = _positive(sigma_min, "sigma_min"), _positive(sigma_max, "sigma_max")
        if hi <= lo:
            raise SDEKitError(f"sigma_max must exceed sigma_min; got sigma_min = {lo}, sigma_max = {hi}")
        if convention not in ("exact", "score_sde"):
            raise SDEKitError(f"convention must be 'exact' or 'score_sde'; got {convention!r}")
        return cls("ve", np.array([VE, lo, hi, 1.0 if convention == "score_sde" else 0.0]), T, eps)

    @classmethod
    def vp(cls, beta_min: float = 0.1, beta_max: float = 20.0, *, T: float = 1.0, eps: float = 1e-3) -> ForwardSDE:
        """VP SDE with linear beta(t) = beta_min + t (beta_max - beta_min)."""
        lo, hi = _beta_range(beta_min, beta_max)
        return cls("vp", np.array([VP, lo, hi, 0.0]), T, eps)

    @classmethod
    def subvp(cls, beta_min: float = 0.1, beta_max: float = 20.0, *, T: float = 1.0,
              eps: float = 1e-3) -> ForwardSDE:
        """sub-VP SDE: g^2 = beta(t) (1 - exp(-2 B(t))), sigma_t^2 = (1 - alpha_t^2)^2."""
        lo, hi = _beta_range(beta_min, beta_max)
        return cls("subvp", np.array([SUBVP, lo, hi, 0.0]), T, eps)

    @classmethod
    def cosine(cls, s: float = 0.008, *, T: float = 0.999, eps: float = 1e-3) -> ForwardSDE:
        """Cosine VP schedule (Nichol & Dhariwal 2021); f diverges at t = 1, so T < 1."""
        s = _positive(s, "s")
        T = _positive(T, "T")
        if not 0 < T < 1:
            raise SDEKitError(f"T must be in (0, 1) for the cosine schedule (f diverges at t = 1); got {T}")
        return cls("cosine", np.array([COSINE, s, 0.0, 0.0]), T, eps)

    @classmethod
    def custom(cls, f: Callable, g: Callable, params: Any = None, *, T: float = 1.0, eps: float = 1e-3,
               name: str = "custom") -> ForwardSDE:
        """Any linear schedule given as njit scalar functions f(t, p), g(t, p) (p: a float array, default
        empty). The kernel integrates d log alpha / dt = f, d sigma^2 / dt = 2 f sigma^2 + g^2 from
        alpha_0 = 1, sigma_0 = 0 (scipy solve_ivp, rtol 1e-11) with a dense output."""
        if not (hasattr(f, "py_func") and hasattr(g, "py_func")):
            raise SDEKitError("f and g must be numba.njit functions f(t, p), g(t, p) returning floats")
        T, eps = _positive(T, "T"), _positive(eps, "eps")
        if not eps < T:
            raise SDEKitError(f"eps must be smaller than T; got eps = {eps}, T = {T}")
        if not isinstance(name, str) or not name:
            raise SDEKitError(f"name must be a non-empty string; got {name!r}")
        if params is not None and np.iscomplexobj(params):
            raise SDEKitError("params must be real numbers; got a complex array")
        try:
            sp = np.zeros(1) if params is None else np.ascontiguousarray(params, dtype=float).ravel()
        except (TypeError, ValueError):
            raise SDEKitError(f"params must be a 1-D array of numbers; got {params!r}") from None
        if not np.all(np.isfinite(sp)):
            raise SDEKitError(f"params must be finite; got {sp.tolist()[:8]}")
        for role, fn in (("f", f), ("g", g)):
            try:
                value = float(fn(0.0, sp))
            except Exception as exc:  # numba TypingError, a non-float return, user errors
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise SDEKitError(f"{role}(t, p) could not be evaluated at t = 0 with p of shape {sp.shape} as a "
                                  f"float: {first}") from exc
            if not math.isfinite(value):
                raise SDEKitError(f"{role}(0, p) is not finite: {value}")
        fc, gc = f, g

        @nb.njit
        def coefficients(t, p):
            return fc(t, p), gc(t, p)

        def rhs(t, y):
            fv, gv = float(f(t, sp)), float(g(t, sp))
            return [fv, 2.0 * fv * y[1] + gv * gv]

        sol = solve_ivp(rhs, (0.0, float(T)), [0.0, 0.0], rtol=1e-11, atol=1e-13, dense_output=True)
        if not sol.success or not np.all(np.isfinite(sol.y)):
            raise SDEKitError(f"integrating the schedule ODEs on [0, T = {T}] failed (are f and g finite there?): "
                              f"{sol.message}")

        def kernel(t: float) -> tuple[float, float]:
            log_alpha, var = sol.sol(float(t))
            return math.exp(log_alpha), math.sqrt(max(var, 0.0))

        return cls(name, sp, T, eps, coefficients, None, kernel)

    # -- coefficients and kernel

    def f(self, t: float) -> float:
        """Drift coefficient f(t), t >= 0."""
        return float(self.coefficients_fn(time_value(t), self.sp)[0])

    def g(self, t: float) -> float:
        """Diffusion coefficient g(t), t >= 0."""
        return float(self.coefficients_fn(time_value(t), self.sp)[1])

    def kernel(self, t: float) -> tuple[float, float]:
        """(alpha_t, sigma_t): x_t | x_0 ~ N(alpha_t x_0, sigma_t^2 I), t >= 0."""
        t = time_value(t)
        if self.custom_kernel is not None:
            return self.custom_kernel(t)
        a, s = self.kernel_fn(t, self.sp)
        return float(a), float(s)

    def alpha(self, t: float) -> float:
        """alpha_t = exp(int_0^t f)."""
        return self.kernel(t)[0]

    def sigma(self, t: float) -> float:
        """sigma_t, with d sigma^2 / dt = 2 f sigma^2 + g^2, sigma_0 = 0."""
        return self.kernel(t)[1]

    def perturb(self, x0: Any, t: float, seed: Any = None) -> np.ndarray:
        """A draw of x_t = alpha_t x_0 + sigma_t eps, eps ~ N(0, I), for each row of x0 (finite, real)."""
        x0 = np.atleast_2d(real_array(x0, "x0"))
        if not np.all(np.isfinite(x0)):
            raise SDEKitError("x0 must be finite")
        a, s = self.kernel(t)
        return a * x0 + s * np.random.default_rng(seed).standard_normal(x0.shape)

    # -- prior

    def prior_std(self) -> float:
        """Standard deviation of the prior N(0, s^2 I) that approximates p_T: sqrt(alpha_T^2 + sigma_T^2)
        for unit-variance data; sigma_T for VE (data scale negligible at sigma_max), 1 for VP-type."""
        a, s = self.kernel(self.T)
        return s if self.name == "ve" else math.sqrt(a * a + s * s)

    def prior_sample(self, n: int, dim: int, seed: Any = None) -> np.ndarray:
        """n draws of the prior N(0, prior_std^2 I_dim), shape (n, dim)."""
        for name, v, lo in (("n", n, 0), ("dim", dim, 1)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
                raise SDEKitError(f"{name} must be an integer >= {lo}; got {v!r}")
        return self.prior_std() * np.random.default_rng(seed).standard_normal((int(n), int(dim)))

    def prior_log_prob(self, x: Any) -> np.ndarray:
        """log N(x; 0, prior_std^2 I) for rows of x (any dimension d): -|x|^2 / (2 s^2) - d/2 log(2 pi s^2)."""
        x = np.atleast_2d(real_array(x, "x"))
        s2 = self.prior_std() ** 2
        d = x.shape[1]
        return -0.5 * np.sum(x * x, axis=1) / s2 - 0.5 * d * math.log(2 * math.pi * s2)

    # -- as an sdekit SDE

    def sde(self, dim: int) -> SDE:
        """The forward SDE as an sdekit `SDE` (additive scalar noise g(t)) in dimension dim."""
        if self.custom_kernel is None:
            return SDE(forward_drift, forward_diffusion, dim=dim, noise="additive", params=self.sp,
                       name=f"{self.name}_forward")
        coefficients = self.coefficients_fn

        @nb.njit
        def drift(x, t, p):
            f, _ = coefficients(t, p)
            return f * x

        @nb.njit
        def diffusion(x, t, p):
            _, g = coefficients(t, p)
            return g

        return SDE(drift, diffusion, dim=dim, noise="additive", params=self.sp, name=f"{self.name}_forward")


def schedule_residuals(forward: ForwardSDE, ts: Any, dt: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Residuals of the schedule ODEs by central differences at times ts:
    r1 = d log alpha / dt - f, r2 = d sigma^2 / dt - (2 f sigma^2 + g^2)."""
    r1, r2 = [], []
    for t in np.atleast_1d(np.asarray(ts, dtype=float)):
        ap, sp_ = forward.kernel(t + dt)
        am, sm = forward.kernel(t - dt)
        _, s = forward.kernel(t)
        f, g = forward.f(t), forward.g(t)
        r1.append((math.log(ap) - math.log(am)) / (2 * dt) - f)
        r2.append((sp_ * sp_ - sm * sm) / (2 * dt) - (2 * f * s * s + g * g))
    return np.array(r1), np.array(r2)
