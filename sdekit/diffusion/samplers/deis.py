"""DEIS (Zhang & Chen 2023, "Fast sampling of diffusion models with exponential integrator", ICLR): the exponential
integrator Adams-Bashforth "tAB" on the noise prediction, in the variable rho = sigma / alpha, as diffusers'
DEISMultistepScheduler (algorithm_type "deis", solver_type "logrho").

For a kernel x = alpha x_0 + sigma eps, y = x / alpha obeys the probability-flow ODE dy / drho = epshat(x, rho)
(the DDIM ODE; epshat = -sigma s(x, alpha, sigma) from the score), so a step from level s (rho_s) to t (rho_t < rho_s)
is exactly

    x_t = alpha_t (x_s / alpha_s + int_{rho_s}^{rho_t} epshat(rho) drho).

tAB-p (order p, multistep: one model call per step) replaces epshat by the Lagrange polynomial through the last p
outputs eps_j at rho_j (j = 0 the current level, j = 1, 2 the previous ones), **as a polynomial in log rho**
(diffusers' "logrho"), and integrates it exactly in rho: with v = log(rho / rho_s) (nodes v_j = log(rho_j / rho_s),
v_0 = 0, end v_t = log(rho_t / rho_s) < 0) and P_j(v) = prod_{k != j} (v - v_k) / (v_j - v_k),

    x_t = alpha_t (x_s / alpha_s + sum_j c_j eps_j),   c_j = int_{rho_s}^{rho_t} P_j(log(rho / rho_s)) drho
        = rho_s int_0^{v_t} e^v P_j(v) dv = rho_s [e^v (P_j - P_j' + P_j'')(v)]_0^{v_t}

(closed form: d/dv [e^v Q] = e^v (Q + Q'), and Q = P - P' + P'' solves Q + Q' = P for deg P <= 2; diffusers writes
the same antiderivative in log rho without the shift). tAB-1 is DDIM: x_t = alpha_t (x_s / alpha_s + (rho_t - rho_s)
eps_0). Orders 1, 2, 3, 3, ... (warm-up), with diffusers' lower-order-final rule ("dpm" in `multistep_grid`); a
step onto sigma = 0 (to_zero, or a grid ending at sigma = 0) is the final denoise x = alpha_t x0hat.

diffusers (0.35.1; tests/test_samplers_unipc_deis_conformance.py): DEISMultistepScheduler orders 1-3 on its own
timesteps (its last level sigma_min, never 0) equals `deis_sample` on the same (alpha, sigma) pairs to float32
rounding (float32 tables) and to 1e-12 in float64.

Accuracy with the exact score (tests/test_samplers_unipc_deis.py; ForwardSDE.vp(), T = 1, eps = 1e-3, logSNR grid,
N = 20000, ``compare_with_law`` at 1e-6 against the exact marginal at eps, 1-, 2- and 4-D anisotropic mixtures):
tAB-2 passes at 25 NFE (min p 9e-6) and fails at 20 (2-D p 1.2e-10); tAB-3 passes at 12 (min p 1.8e-6) and fails at
10. Fitted global orders on Gaussian data (NFE 10 .. 80): 1.9 (tAB-2), 3.7 (tAB-3).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from numpy.typing import ArrayLike

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.samplers.arrays import State
from sdekit.diffusion.samplers.checks import check_state
from sdekit.diffusion.samplers.lambda_schedule import KernelFn
from sdekit.diffusion.samplers.multistep_grid import check_flag, check_order, multistep_orders, multistep_pairs
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError

__all__ = ["deis_coefficients", "deis_sample"]

ScoreFn = Callable[[State, float, float], State]

# Q = s0 P + s1 P' + s2 P'' is the antiderivative factor of e^v P(v) (a module constant so tests can plant a bug)
_ANTIDERIVATIVE_SIGNS = (1.0, -1.0, 1.0)


def _poly_mul_linear(p: list[float], root: float, scale: float) -> list[float]:
    """The coefficients (ascending) of p(v) (v - root) scale."""
    out = [0.0] * (len(p) + 1)
    for k, c in enumerate(p):
        out[k + 1] += c * scale
        out[k] -= c * root * scale
    return out


def _poly_eval(p: list[float], v: float) -> float:
    acc = 0.0
    for c in reversed(p):
        acc = acc * v + c
    return acc


def _poly_derivative(p: list[float]) -> list[float]:
    return [k * c for k, c in enumerate(p)][1:] or [0.0]


def deis_coefficients(rhos: list[float], rho_t: float) -> list[float]:
    """The tAB weights c_j = int_{rho_0}^{rho_t} P_j(log(rho / rho_0)) drho of the outputs at rhos = [rho_0 (the
    current level), rho_1, ...] (1 to 3 nodes; module docstring), so that x_t = alpha_t (x_s / alpha_s +
    sum_j c_j eps_j)."""
    rho_s = rhos[0]
    nodes = [math.log(r / rho_s) for r in rhos]
    v_t = math.log(rho_t / rho_s)
    e_t = math.expm1(v_t)  # e^{v_t} - 1, exact near v_t = 0
    coefs = []
    for j, vj in enumerate(nodes):
        basis = [1.0]
        for k, vk in enumerate(nodes):
            if k != j:
                basis = _poly_mul_linear(basis, vk, 1.0 / (vj - vk))
        q_t = q_0 = 0.0
        deriv = basis
        for sign in _ANTIDERIVATIVE_SIGNS[:len(nodes)]:
            q_t += sign * _poly_eval(deriv, v_t)
            q_0 += sign * deriv[0]
            deriv = _poly_derivative(deriv)
        coefs.append(rho_s * ((e_t + 1.0) * q_t - q_0))
    return coefs


def deis_sample(score: ScoreFn, forward: ForwardSDE | KernelFn | ArrayLike, x_T: ArrayLike, *, order: int = 2,
                steps: int | None = None, skip: str = "logSNR", lower_order_final: bool | None = None,
                to_zero: bool = False, t_span: tuple[float, float] | None = None, seed: int = 0,
                path_offset: int = 0, noise: NoiseFn | None = None, callback: Callable | None = None,
                return_trajectory: bool = False) -> SampleResult:
    """DEIS tAB-``order`` (Zhang & Chen 2023; module docstring): the exponential-integrator Adams-Bashforth on
    epshat in rho = sigma / alpha with Lagrange polynomials in log rho, from x_T down the grid; NFE = steps.

    score(x, alpha, sigma) -> grad log p at x = alpha x_0 + sigma eps. forward: a ForwardSDE (from T to eps, or
    t_span), a kernel t -> (alpha, sigma) with t_span = (T, eps), or an (m, 2) array of (alpha, sigma) pairs from the
    noisiest to the cleanest (then that is the grid; steps None or m - 1). steps (default 20) and skip ("logSNR",
    default, or "time_uniform") make the grid of a ForwardSDE / kernel (`lambda_schedule.lambda_grid`). order 1
    (DDIM), 2 or 3. lower_order_final: diffusers' rule by default (`multistep_grid`, rule "dpm"); to_zero appends the
    data level (1, 0), reached by the final denoise. The seed, path_offset and noise are accepted and unused (a
    deterministic sampler; `sdekit.diffusion.samplers.run`).

    Returns a `SampleResult` (x, nfe, alphas, sigmas); a torch x_T runs in torch on its device and dtype.
    """
    if not callable(score):
        raise SDEKitError(f"score must be a callable score(x, alpha, sigma); got {type(score).__name__}")
    order = check_order(order, (1, 2, 3))
    lower_order_final = check_flag(lower_order_final, "lower_order_final", allow_none=True)
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    x = check_state(x_T, "x_T")
    pairs = multistep_pairs(forward, steps, skip, t_span, to_zero)
    n_steps = len(pairs) - 1
    orders = multistep_orders(n_steps, order, lower_order_final, pairs[-1][1] == 0, "dpm")
    run.start(x, *pairs[0])
    eps_hist: list[State] = []  # the outputs of the current and previous levels, newest first
    rho_hist: list[float] = []
    for i, k in enumerate(orders):
        (a_s, s_s), (a_t, s_t) = pairs[i], pairs[i + 1]
        sc = run.score(x, a_s, s_s, i)
        x0 = (x + (s_s * s_s) * sc) / a_s if s_t == 0 or run.wants_denoised else None
        eps_hist = ([-s_s * sc] + eps_hist)[:order]
        rho_hist = ([s_s / a_s] + rho_hist)[:order]
        if s_t == 0:  # the final denoise: the limit of the first-order update as sigma_t -> 0
            x = a_t * ((x + (s_s * s_s) * sc) / a_s)
        else:
            coefs = deis_coefficients(rho_hist[:k], s_t / a_t)
            acc = (1.0 / a_s) * x
            for c, e in zip(coefs, eps_hist):
                acc = acc + c * e
            x = a_t * acc
        run.step_done(i, x, a_t, s_t, x0)
    return run.finish(x)
