"""DPM-Solver (Lu, Zhou, Bao, Chen, Li & Zhu 2022, "DPM-Solver: a fast ODE solver for diffusion probabilistic model
sampling in around 10 steps") and DPM-Solver++ (Lu et al. 2022b, "DPM-Solver++: fast solver for guided sampling of
diffusion probabilistic models") for a kernel x_t = alpha_t x_0 + sigma_t eps.

With lambda = log(alpha / sigma) (half the log-SNR, increasing as t decreases) and h = lambda_t - lambda_s > 0 for a
step s -> t, the probability-flow ODE has the exact variation-of-constants forms

    x_t = (alpha_t / alpha_s) x_s - alpha_t int_{lambda_s}^{lambda_t} e^{-lambda} epshat(x_lambda) dlambda     (noise)
    x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^{lambda} x0hat(x_lambda) dlambda      (data)

and the solvers Taylor-expand epshat / x0hat in lambda. From the score (Tweedie): epshat = -sigma s(x, alpha, sigma),
x0hat = (x + sigma^2 s) / alpha. Noise prediction ("dpmsolver"), phi = expm1(h):

    order 1 (= DDIM):  x_t = (alpha_t / alpha_s) x_s - sigma_t phi eps_s
    order 2 (r1 = 1/2): s1 = t(lambda_s + r1 h), u = (alpha_s1 / alpha_s) x_s - sigma_s1 expm1(r1 h) eps_s,
                        x_t = (alpha_t / alpha_s) x_s - sigma_t phi eps_s - sigma_t / (2 r1) phi (eps(u, s1) - eps_s)
    order 3 (r1 = 1/3, r2 = 2/3): u1 as u above; D1 = eps(u1, s1) - eps_s;
                        u2 = (alpha_s2 / alpha_s) x_s - sigma_s2 expm1(r2 h) eps_s
                             - sigma_s2 r2 / r1 (expm1(r2 h) / (r2 h) - 1) D1;   D2 = eps(u2, s2) - eps_s;
                        x_t = (alpha_t / alpha_s) x_s - sigma_t phi eps_s - sigma_t / r2 (phi / h - 1) D2

Data prediction ("dpmsolver++"), psi = expm1(-h): order 1 x_t = (sigma_t / sigma_s) x_s - alpha_t psi x0_s; order 2
(singlestep) adds -alpha_t psi / (2 r1) (x0(u, s1) - x0_s); order 3 (singlestep) uses
u2 = (sigma_s2 / sigma_s) x_s - alpha_s2 expm1(-r2 h) x0_s + alpha_s2 r2 / r1 (expm1(-r2 h) / (r2 h) + 1) D1 and
x_t = (sigma_t / sigma_s) x_s - alpha_t psi x0_s + alpha_t / r2 (psi / h + 1) D2.

Multistep order 2 (one evaluation per step; the first step is order 1), with r = h_prev / h:
DPM-Solver++(2M)  x_t = (sigma_t / sigma_s) x_s - alpha_t psi ((1 + 1 / (2 r)) x0_s - 1 / (2 r) x0_prev);
DPM-Solver(2M)    x_t = (alpha_t / alpha_s) x_s - sigma_t phi (eps_s + (eps_s - eps_prev) / (2 r)).

Multistep order 3 (Lu et al. 2022b, Appendix B, "multistep DPM-Solver++(3M)"; the same form in noise prediction;
orders 1, 2, 3, 3, ...), with the outputs m0, m1, m2 (x0hat or epshat) of this and the two previous steps, their
lambda-lengths h, h0, h1 and r0 = h0 / h, r1 = h1 / h: the divided differences D1_0 = (m0 - m1) / r0,
D1_1 = (m1 - m2) / r1, D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1), D2 = (D1_0 - D1_1) / (r0 + r1) (h D1 ~ h m',
h^2 D2 ~ h^2 m'' / 2 at lambda_s), and with w_k = hh phi_k(hh) (`phi_functions.h_phis`: w_1 = expm1(hh),
w_2 = w_1 / hh - 1, w_3 = w_2 / hh - 1/2), hh = -h for data, +h for noise prediction:

DPM-Solver++(3M)  x_t = (sigma_t / sigma_s) x_s - alpha_t (w_1 m0 + w_2 D1 + 2 w_3 D2)
DPM-Solver(3M)    x_t = (alpha_t / alpha_s) x_s - sigma_t (w_1 m0 + w_2 D1 + 2 w_3 D2)

(the exact integral of the quadratic in lambda through m2, m1, m0: with m(lambda_s + v) = m0 + v m' + v^2 m'' / 2,
the m'' term needs the weight h^3 phi_3 = h^2 w_3 on m'' = 2 D2 / h^2). Lower-order final (diffusers'
DPMSolverMultistepScheduler): the last step order 1 when the grid ends at sigma = 0 or with fewer than 15 steps, and
with fewer than 15 steps the one before it at most order 2.

diffusers' DPMSolverMultistepScheduler(solver_order=3), Lu et al.'s dpm_solver code and k-diffusion's
sample_dpmpp_3m_sde weight D2 by w_3, not 2 w_3 (their single-step "taylor" update uses D2 = 2 (D1_1 - D1_0) /
(r2 - r1) ~ h^2 m'', the multistep one D2 ~ h^2 m'' / 2 with the same weight): half the m'' term, a local error
alpha_t h^3 m'' / 12 + O(h^4), so that method is globally second order (measured on Gaussian data: local slopes
2.76, 2.42, 2.15, 2.05 over NFE 10 .. 160; with 2 w_3: 3.6 .. 4.2, third order). sdekit uses 2 w_3; the conformance
test reproduces diffusers' variant through the weights hook and pins the difference. The corrected updates equal
DEIS tAB-3 (noise; `sdekit.diffusion.samplers.deis`) and UniP-3 without corrector (data; `unipc`), which integrate
the same quadratic exactly (tests/test_samplers_unipc_deis.py, to rounding).

SDE-DPM-Solver++(2M) (algorithm "sde-dpmsolver++", multistep; Lu et al. 2022b / Gonzalez et al.): the reverse SDE
dx = [f x - g^2 s] dt + g dW in lambda, for VP-type or any kernel (g^2 = -2 sigma^2 dlambda/dt), reads
dx = [(dlog alpha / dlambda) x - 2 (x - alpha x0hat)] dlambda + noise; its linear part has the propagator
(sigma_t / sigma_s) e^{-h}, the x0 integral gives alpha_t (1 - e^{-2h}) and the noise variance
int (propagator)^2 g^2 = sigma_t^2 (1 - e^{-2h}), all exactly. Hence, with D1 = (x0_s - x0_prev) / r,

    x_t = (sigma_t / sigma_s) e^{-h} x_s - alpha_t expm1(-2h) (x0_s + D1 / 2) + sigma_t sqrt(-expm1(-2h)) z,

z the noise source's draw ``step``. For x0hat constant in lambda the step is exact in law (the update is the
exact transition of the linear SDE); the D1 term is the midpoint-rule correction of the x0 integral (the exact weight
is alpha_t (h - (1 - e^{-2h}) / 2) x0', equal to -alpha_t expm1(-2h) h x0' / 2 to first order in h).

Intermediate points need t(lambda): for VP-type kernels (``ForwardSDE.vp()`` / ``.cosine()``, or a grid of pairs
with alpha^2 + sigma^2 = 1) the closed form alpha = (1 + e^{-2 lambda})^{-1/2}, sigma = (1 + e^{2 lambda})^{-1/2};
otherwise lambda(t) is inverted by bisection on t (it must be strictly decreasing in t).

diffusers (0.35.1; tests/test_diffusers_conformance.py): on the grid of pairs diffusers uses (its ``sigmas`` are
sigma_edm: alpha = 1 / sqrt(1 + sigma^2), sigma_t = sigma alpha; final_sigmas_type "zero" appends the data level
(1, 0)), DPMSolverMultistepScheduler (dpmsolver++ / dpmsolver order 1 and 2, sde-dpmsolver++) equals the multistep
sampler with the default lower-order-final rule to float32 rounding (its step casts the sample to float32), and
DPMSolverSinglestepScheduler orders 1 and 2 equal the singlestep sampler with ``orders=`` (its order_list read as
steps whose intermediate points are the grid points) to 1e-12 in float64. Its order 3 differs in the second
intermediate point (see `dpm_solver_sample`).

Accuracy with the exact score (tests/test_samplers_edm_dpm.py; ForwardSDE.vp(), T = 1, eps = 1e-3, 1-, 2- and
4-D anisotropic mixtures, N = 20000, ``compare_with_law`` at 1e-6 against the exact marginal at eps). The
discretisation bias at the usual ~20 NFE IS detectable for several solvers: DPM-Solver++(2M) fails at 20 NFE on the
logSNR grid in 2-D / 4-D (min p 6e-16 / 9e-11; time-uniform is worse) and passes from 30 NFE; DPM-Solver-2 fails up
to 40 NFE in 2-D / 4-D and passes at 50; DPM-Solver-3 passes at 21 NFE on the logSNR grid (fails time-uniform);
SDE-DPM-Solver++(2M) fails at 25 NFE and passes at 100. DPM-Solver++(3M) (logSNR) fails at 15 NFE (2-D p 1.1e-12) and
passes at 18 (min p 7.1e-4); DPM-Solver(3M) fails at 10 and passes at 12 (min p 2e-6)
(tests/test_samplers_unipc_deis.py; fitted orders 3.9 / 3.7 on Gaussian data over NFE 10 .. 80).
On Gaussian data (logSNR grid) the error against the exact
flow map falls with fitted order ~2 / ~2 / ~3.5 (DPM-Solver-2 / ++(2M) / -3) over NFE 10 .. 80; the time-uniform
grid of the linear-beta VP is still pre-asymptotic there (fitted 1.4 .. 1.8).

Backends: x_T may be a float64 NumPy array or a torch tensor (float32 / float64, any device); a tensor run stays in
torch on that device and dtype (the grid and all coefficients are Python floats), calls the score on tensors, uses
the same normals drawn on that device (`run.sampler_normals`, SDE variant) and returns a tensor (equal to the NumPy
run to rounding in float64). Each score output is checked for kind, shape and finiteness (`score_calls.ScoreCalls`:
on torch without a host synchronisation per call).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.samplers.arrays import State
from sdekit.diffusion.samplers.checks import check_state
from sdekit.diffusion.samplers.lambda_schedule import (
    KernelFn,
    LambdaSchedule,
    half_log_snr,
    is_vp_grid,
    lambda_grid,
    resolve_grid,
    vp_alpha_sigma,
)
from sdekit.diffusion.samplers.phi_functions import h_phis
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError

__all__ = ["DPMSolverResult", "dpm_solver_sample", "lambda_grid", "vp_alpha_sigma"]

ScoreFn = Callable[[State, float, float], State]

ALGORITHMS = ("dpmsolver", "dpmsolver++", "sde-dpmsolver++")
METHODS = ("singlestep", "multistep")
_R = {2: (0.5,), 3: (1.0 / 3.0, 2.0 / 3.0)}  # intermediate-point rules (lambda_s + r h)


def _expm1(h: float) -> float:
    """e^h - 1 without cancellation (a module function so the tests can plant a wrong one)."""
    return math.expm1(h)


# multipliers of the weights (w_1, w_2, w_3) of (m0, D1, D2) in the third-order multistep update: w_3 is doubled
# because D2 ~ h^2 m'' / 2 (module docstring); (1, 1, 1) is the variant of diffusers / Lu et al.'s code (a hook also
# for planted-bug tests)
_THIRD_ORDER_WEIGHTS = (1.0, 1.0, 2.0)


DPMSolverResult = SampleResult  # the one result type of every sampler (`sdekit.diffusion.samplers.run`)


class _Model:
    """eps / x0 predictions from the score by Tweedie; the score's calls are checked and counted (`SamplerRun`)."""

    def __init__(self, run: SamplerRun) -> None:
        self.run = run
        self.last_x0: State | None = None

    def __call__(self, x: State, a: float, s: float, step: int) -> tuple[State, State]:
        sc = self.run.score(x, a, s, step)
        x0 = (x + (s * s) * sc) / a
        if self.last_x0 is None:
            self.last_x0 = x0
        return -s * sc, x0  # (epshat, x0hat)


Inner = list[tuple[float, tuple[float, float]]]  # a single step's intermediate points: (r, (alpha, sigma))


def _rule_points(sched: LambdaSchedule, pa: tuple[float, float], pb: tuple[float, float], order: int) -> Inner:
    """The intermediate points of the fixed rules r1 = 1/2 (order 2), r1 = 1/3, r2 = 2/3 (order 3) at
    lambda_s + r h."""
    lam_s = half_log_snr(*pa)
    h = half_log_snr(*pb) - lam_s
    return [(r, sched.at_lambda(lam_s + r * h)) for r in _R.get(order, ())]


def _grid_points(pairs: list[tuple[float, float]], start: int, end: int) -> Inner:
    """The grid points strictly inside the step pairs[start] -> pairs[end] as intermediate points, with
    r_j = (lambda_j - lambda_s) / h (the general r1, r2 of Lu et al. 2022, section 3.3 and appendix)."""
    lam_s = half_log_snr(*pairs[start])
    h = half_log_snr(*pairs[end]) - lam_s
    return [((half_log_snr(*pairs[j]) - lam_s) / h, pairs[j]) for j in range(start + 1, end)]


def _singlestep(model: _Model, x: State, pa: tuple[float, float], pb: tuple[float, float], inner: Inner,
                plus: bool, step: int) -> State:
    """One DPM-Solver(-++) single step (the sampler's step ``step``) from (alpha, sigma) = pa to pb; its order is
    len(inner) + 1, inner holding the intermediate points (r, (alpha, sigma)) at lambda_s + r h."""
    (a_s, s_s), (a_t, s_t) = pa, pb
    order = len(inner) + 1
    lam_s = half_log_snr(a_s, s_s)
    h = half_log_snr(a_t, s_t) - lam_s
    eps_s, x0_s = model(x, a_s, s_s, step)
    if plus:
        psi = _expm1(-h)
        base = (s_t / s_s) * x - (a_t * psi) * x0_s
        if order == 1:
            return base
        r1, (a1, s1) = inner[0]
        u1 = (s1 / s_s) * x - (a1 * _expm1(-r1 * h)) * x0_s
        d1 = model(u1, a1, s1, step)[1] - x0_s
        if order == 2:
            return base - (a_t * psi / (2.0 * r1)) * d1
        r2, (a2, s2) = inner[1]
        psi2 = _expm1(-r2 * h)
        u2 = (s2 / s_s) * x - (a2 * psi2) * x0_s + (a2 * r2 / r1 * (psi2 / (r2 * h) + 1.0)) * d1
        d2 = model(u2, a2, s2, step)[1] - x0_s
        return base + (a_t / r2 * (psi / h + 1.0)) * d2
    phi = _expm1(h)
    base = (a_t / a_s) * x - (s_t * phi) * eps_s
    if order == 1:
        return base
    r1, (a1, s1) = inner[0]
    u1 = (a1 / a_s) * x - (s1 * _expm1(r1 * h)) * eps_s
    d1 = model(u1, a1, s1, step)[0] - eps_s
    if order == 2:
        return base - (s_t * phi / (2.0 * r1)) * d1
    r2, (a2, s2) = inner[1]
    phi2 = _expm1(r2 * h)
    u2 = (a2 / a_s) * x - (s2 * phi2) * eps_s - (s2 * r2 / r1 * (phi2 / (r2 * h) - 1.0)) * d1
    d2 = model(u2, a2, s2, step)[0] - eps_s
    return base - (s_t / r2 * (phi / h - 1.0)) * d2


def _third_order_multistep(x: State, pa: tuple[float, float], pb: tuple[float, float], m0: State, m1: State,
                           m2: State, h: float, h0: float, h1: float, plus: bool) -> State:
    """DPM-Solver++(3M) (plus: m = x0hat) / DPM-Solver(3M) (m = epshat) from pa = (alpha_s, sigma_s) to pb with the
    model outputs m0, m1, m2 of this and the two previous steps (lambda-lengths h, h0, h1; module docstring)."""
    (a_s, s_s), (a_t, s_t) = pa, pb
    r0, r1 = h0 / h, h1 / h
    d1_0, d1_1 = (m0 - m1) * (1.0 / r0), (m1 - m2) * (1.0 / r1)
    d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1))
    d2 = (d1_0 - d1_1) * (1.0 / (r0 + r1))
    w0, w1, w2 = (f * w for f, w in zip(_THIRD_ORDER_WEIGHTS, h_phis(-h if plus else h, 3)))
    ratio, c = (s_t / s_s, a_t) if plus else (a_t / a_s, s_t)
    return ratio * x - c * (w0 * m0 + w1 * d1 + w2 * d2)


def _check_orders(orders: Any, method: str, n_intervals: int | None) -> list[int]:
    """orders as a list of ints: 1..3 per single step (summing to the grid's intervals) or 1..3 per multistep
    interval (one per interval, step i of order <= i + 1); or an SDEKitError naming it."""
    allowed = (1, 2, 3)
    entries = list(orders) if isinstance(orders, list | tuple | np.ndarray) else None
    if not entries or any(isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer) or v not in allowed
                          for v in entries):
        raise SDEKitError(f"orders must be a non-empty list of step orders in {allowed} for method {method!r}; "
                          f"got {orders!r}")
    out = [int(v) for v in entries]
    if method == "multistep" and any(k > i + 1 for i, k in enumerate(out)):
        raise SDEKitError(f"orders[i] must be <= i + 1 for method 'multistep' (step i has i previous model "
                          f"outputs; orders[0] must be 1); got {out}")
    need = sum(out) if method == "singlestep" else len(out)
    if n_intervals is not None and need != n_intervals:
        what = "sum(orders)" if method == "singlestep" else "len(orders)"
        raise SDEKitError(f"{what} must equal the grid's number of intervals ({n_intervals}); got {need}")
    return out


def dpm_solver_sample(score: ScoreFn, forward: ForwardSDE | KernelFn | ArrayLike, x_T: ArrayLike, *,
                      order: int | None = None, steps: int | None = None, method: str = "singlestep",
                      algorithm: str = "dpmsolver", skip: str = "time_uniform", seed: int = 0,
                      t_span: tuple[float, float] | None = None, path_offset: int = 0, to_zero: bool = False,
                      lower_order_final: bool | None = None, orders: Sequence[int] | None = None,
                      noise: NoiseFn | None = None, callback: Callable | None = None,
                      return_trajectory: bool = False) -> SampleResult:
    """DPM-Solver / DPM-Solver++ (Lu et al. 2022, 2022b) from x_T ~ p_T down to t = eps (see the module docstring
    for the update equations).

    score(x (n, d), alpha, sigma) -> (n, d) ~ grad log p at x = alpha x_0 + sigma eps. forward: a ForwardSDE
    (sampled from T to eps, or t_span), a kernel t -> (alpha, sigma) with t_span = (T, eps), or an (m, 2) array of
    (alpha, sigma) pairs from the noisiest to the cleanest (then that is the grid: steps must be None or m - 1).
    order (default 2) 1 (DDIM / DPM-Solver++1), 2 or 3 for method "singlestep" (NFE = order x steps; intermediate points
    r1 = 1/2 for 2, r1 = 1/3, r2 = 2/3 for 3), 1, 2 or 3 for "multistep" (NFE = steps; order 3 = DPM-Solver(++)(3M);
    "sde-dpmsolver++" 1 or 2). algorithm "dpmsolver" (noise
    prediction), "dpmsolver++" (data prediction) or "sde-dpmsolver++" (multistep only; its noise is the
    noise source's draw ``step``, by default sdekit's per-path streams for (seed, path_offset + row)).
    skip "time_uniform" (default) or "logSNR" (uniform lambda).
    steps defaults to 20. The seed is ignored by the deterministic algorithms (`sdekit.diffusion.samplers.run`).

    Final step (Lu et al. 2022b, section 5; diffusers' ``final_sigmas_type`` / ``lower_order_final``): to_zero
    appends the data level (alpha, sigma) = (alpha(0), 0) = (1, 0) after eps, and a grid of pairs may end at sigma = 0;
    the step onto sigma = 0 is the first-order update, whose limit for every algorithm is the final denoise
    x = alpha_t x0hat(x_s) (one model call, no extra NFE). lower_order_final: the last step is first order (multistep:
    without the D1 correction, and the step before it at most order 2; singlestep: order 1); None (default) applies
    diffusers' rule: the last step first order when the grid ends at sigma = 0, or for multistep orders 2 and 3 with
    fewer than 15 steps, and (multistep) the step before it at most order 2 with fewer than 15 steps.

    orders (instead of order and lower_order_final): the order of every step, for any order schedule.
    Multistep: one order (1, 2 or 3) per grid interval, orders[i] <= i + 1. Singlestep: a step of order k spans k
    intervals of the grid and its intermediate points are the grid points inside it, r_j = (lambda_j - lambda_s) / h
    (DPM-Solver with general r1, r2: Lu et al. 2022, section 3.3 and Algorithms 4-5 of the appendix; the updates above
    with r1, r2 read from the grid), so NFE = sum(orders) = the number of intervals. This is how diffusers'
    DPMSolverSinglestepScheduler groups its timesteps (its ``order_list`` [1, 2, 3, 1, 2, 1, ...] is the steps
    [3, 2, ...]: a new step starts at each 1); a step onto sigma = 0 must have order 1. diffusers differs from
    Lu et al. in one place (tests/test_diffusers_conformance.py): its third-order single step computes the second
    intermediate point u2 by its second-order "midpoint" update, u2 = ... + alpha_s2 (r2 / r1) psi2 / 2 (x0(u1) - x0_s)
    (data prediction; noise prediction alike) instead of Lu et al.'s - alpha_s2 (r2 / r1) (psi2 / (r2 h) + 1) (x0(u1)
    - x0_s) used here (both are O(h^3) accurate; the results differ by O(h^3) per step).

    Returns a `SampleResult` (x, nfe, alphas, sigmas: the step endpoints); a torch x_T runs in torch on its device
    and dtype and gives a tensor x.
    """
    if not callable(score):
        raise SDEKitError(f"score must be a callable score(x, alpha, sigma); got {type(score).__name__}")
    if method not in METHODS:
        raise SDEKitError(f"method must be one of {METHODS}; got {method!r}")
    if algorithm not in ALGORITHMS:
        raise SDEKitError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}")
    allowed = (1, 2) if algorithm == "sde-dpmsolver++" else (1, 2, 3)
    if orders is not None:
        if order is not None:
            raise SDEKitError("give order or orders, not both")
        if lower_order_final is not None:
            raise SDEKitError("lower_order_final must be None when orders is given (orders sets every step's order)")
        order_list: list[int] | None = _check_orders(orders, method, None)
        order = max(order_list)
        if order not in allowed:
            raise SDEKitError(f"orders must hold step orders in {allowed} for algorithm {algorithm!r}; got {orders!r}")
    else:
        order_list = None
        order = 2 if order is None else order
        if isinstance(order, bool) or order not in allowed:
            raise SDEKitError(f"order must be one of {allowed} for algorithm {algorithm!r}; got {order!r}")
    stochastic = algorithm == "sde-dpmsolver++"
    if stochastic and method != "multistep":
        raise SDEKitError("algorithm 'sde-dpmsolver++' needs method='multistep'")
    if not isinstance(to_zero, bool | np.bool_):
        raise SDEKitError(f"to_zero must be a bool; got {to_zero!r}")
    if lower_order_final is not None and not isinstance(lower_order_final, bool | np.bool_):
        raise SDEKitError(f"lower_order_final must be None or a bool; got {lower_order_final!r}")
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    x = check_state(x_T, "x_T")
    default_steps = 20 if order_list is None else max(len(order_list) if method == "multistep" else sum(order_list)
                                                      - int(bool(to_zero)), 1)
    alphas, sigmas, sched, from_pairs = resolve_grid(forward, steps, skip, t_span, default_steps)
    if from_pairs and method == "singlestep" and order_list is None and order > 1 and not is_vp_grid(alphas, sigmas):
        raise SDEKitError("forward given as a grid must be VP-type (alpha^2 + sigma^2 = 1) for single-step "
                          "orders 2 and 3 (their intermediate points use the VP closed form); pass a ForwardSDE, "
                          "a kernel function, or orders= (intermediate points on the grid) otherwise")
    if to_zero:
        if sigmas[-1] == 0:
            raise SDEKitError("to_zero must be False when the grid already ends at sigma = 0")
        alphas, sigmas = np.append(alphas, 1.0), np.append(sigmas, 0.0)
    ends_at_zero = bool(sigmas[-1] == 0)
    n_steps = alphas.size - 1
    if order_list is not None:
        _check_orders(order_list, method, n_steps)
        if ends_at_zero and order_list[-1] != 1:
            raise SDEKitError("orders[-1] must be 1 when the grid ends at sigma = 0: the step onto sigma = 0 is the "
                              "first-order final denoise")
    else:
        if lower_order_final is None:  # diffusers' rule (its default lower_order_final=True)
            lower_last = ends_at_zero or (method == "multistep" and order > 1 and n_steps < 15)
            lower_second = n_steps < 15
        elif ends_at_zero and not lower_order_final:
            raise SDEKitError("lower_order_final must be True (or None) when the grid ends at sigma = 0: the step "
                              "onto sigma = 0 is the first-order final denoise")
        else:
            lower_last = lower_second = bool(lower_order_final)
        order_list = [order] * n_steps
        if method == "multistep":  # warm-up: step i has i previous outputs (orders 1, 2, 3, 3, ...)
            order_list = [min(order, i + 1) for i in range(n_steps)]
            if lower_second and n_steps >= 2:
                order_list[-2] = min(order_list[-2], 2)
        if lower_last:
            order_list[-1] = 1
    model = _Model(run)
    plus = algorithm != "dpmsolver"
    pairs = list(zip(alphas.tolist(), sigmas.tolist()))
    run.start(x, *pairs[0])
    if method == "singlestep":
        start = 0
        for i, k in enumerate(order_list):
            end = start + k if orders is not None else start + 1
            (a_s, s_s), (a_t, s_t) = pairs[start], pairs[end]
            model.last_x0 = None
            if s_t == 0:  # the final denoise: the limit of every first-order update as sigma_t -> 0
                x = a_t * model(x, a_s, s_s, i)[1]
            else:
                inner = (_grid_points(pairs, start, end) if orders is not None
                         else _rule_points(sched, pairs[start], pairs[end], k))
                x = _singlestep(model, x, pairs[start], pairs[end], inner, plus, i)
            run.step_done(i, x, a_t, s_t, model.last_x0)
            start = end
        return run.finish(x)
    outs: list[State] = []  # the model outputs (x0hat or epshat) of the last steps, newest last
    hs: list[float] = []  # their steps' lambda-lengths h
    for i in range(n_steps):
        (a_s, s_s), (a_t, s_t) = pairs[i], pairs[i + 1]
        model.last_x0 = None
        if s_t == 0:  # the final denoise: the limit of every first-order update as sigma_t -> 0
            x = a_t * model(x, a_s, s_s, i)[1]
        else:
            h = half_log_snr(a_t, s_t) - half_log_snr(a_s, s_s)
            eps_s, x0_s = model(x, a_s, s_s, i)
            cur = x0_s if plus else eps_s
            if order_list[i] == 3:
                x = _third_order_multistep(x, (a_s, s_s), (a_t, s_t), cur, outs[-1], outs[-2], h, hs[-1], hs[-2],
                                           plus)
            else:
                pred = cur
                if order_list[i] == 2:  # (1 + 1/(2r)) cur - 1/(2r) prev, r = h_prev / h
                    pred = cur + (cur - outs[-1]) * (h / (2.0 * hs[-1]))
                if stochastic:
                    em2h = _expm1(-2.0 * h)
                    x = (s_t / s_s * math.exp(-h)) * x - (a_t * em2h) * pred \
                        + (s_t * math.sqrt(-em2h)) * run.noise(i, x)
                elif plus:
                    x = (s_t / s_s) * x - (a_t * _expm1(-h)) * pred
                else:
                    x = (a_t / a_s) * x - (s_t * _expm1(h)) * pred
            outs, hs = (outs + [cur])[-2:], (hs + [h])[-2:]
        run.step_done(i, x, a_t, s_t, model.last_x0)
    return run.finish(x)
