"""UniPC (Zhao, Bai, Rao, Zhou & Lu 2023, "UniPC: a unified predictor-corrector framework for fast sampling of
diffusion models", NeurIPS): the multistep predictor UniP-p and the corrector UniC-p on an (alpha, sigma) grid, in
lambda = log(alpha / sigma), as diffusers' UniPCMultistepScheduler (and the authors' code).

Notation: the model output m is x0hat ("data" prediction, diffusers' predict_x0=True, the default) or epshat
("noise"), both from the score by Tweedie (x0hat = (x + sigma^2 s) / alpha, epshat = -sigma s). For a step from level
s = s_0 to t with h = lambda_t - lambda_s, hh = -h (data) or +h (noise), the first-order part is

    data:  x_t = (sigma_t / sigma_s) x_s - alpha_t expm1(hh) m_0,
    noise: x_t = (alpha_t / alpha_s) x_s - sigma_t expm1(hh) m_0

(DPM-Solver(++)-1, i.e. DDIM), and UniPC adds - c_t B(h) sum_k a_k D_k with c_t = alpha_t (data) or sigma_t (noise),
where B(h) = hh ("bh1") or expm1(hh) ("bh2", the default), D_k = (m_{s_k} - m_0) / r_k the scaled differences of
earlier outputs m_{s_k} at r_k = (lambda_{s_k} - lambda_s) / h (< 0: the previous levels), and the weights a solve
the order conditions (paper, Theorem 3.1 / eq. 9) R a = g with R_{jk} = r_k^j and
g_j = (j + 1)! hh phi_{j+2}(hh) / B(h) (`phi_functions.h_phis`), j = 0, 1, ...:

* UniP-p (predictor, order p): the p - 1 previous outputs m_{i-1}, ..., m_{i-p+1}; a from the (p - 1) x (p - 1)
  system; UniP-2 uses a_1 = 1/2 (the authors' simplification, diffusers' too);
* UniC-p (corrector, order p + 1): after the predictor has reached x_t and the model has been evaluated there
  (m_t = m(x_t^pred), the call the next step needs anyway: no extra NFE), the same step is redone from x_s with the
  p - 1 previous differences plus D_t = m_t - m_0 at r = 1, a from the p x p system (UniC-1 uses a = 1/2), giving the
  corrected x_t^c; the next step starts from x_t^c and uses m_t (evaluated at x_t^pred) as its m_0.

UniPC-p = UniP-p + UniC-p has order p + 1 (paper, Theorem 3.3). The corrector follows every step but the last (no
model call follows it); corrector=False gives UniP-p alone (order p). Orders: step i has order min(order, i + 1)
(warm-up) and with lower_order_final (default) min(order, steps - i) (diffusers' rule, at any number of steps); the
corrector after step i has the order of step i. A step onto sigma = 0 (to_zero, or a grid ending at sigma = 0) is the
final denoise x = alpha_t x0hat (the limit of the first-order update; no correction follows it).

diffusers (0.35.1; tests/test_samplers_unipc_deis_conformance.py): UniPCMultistepScheduler (bh1 / bh2, orders 1-3,
predict_x0 True / False, with and without corrector via ``disable_corrector``) equals `unipc_sample` on the same
(alpha, sigma) pairs to float32 rounding and to 1e-12 in float64. diffusers differs at a final sigma = 0 (its
default final_sigmas_type "zero") for bh1 and for noise prediction: there its update multiplies B(h) = -inf or
expm1(h) = inf by 0 and returns NaN; sdekit's final denoise is the limit of the update (bh2 / data prediction: equal).

Accuracy with the exact score (tests/test_samplers_unipc_deis.py; ForwardSDE.vp(), T = 1, eps = 1e-3, logSNR grid,
N = 20000, ``compare_with_law`` at 1e-6, 1-, 2- and 4-D anisotropic mixtures): UniPC-2 (bh2, data) passes at 20 NFE
(min p 0.013) and fails at 15 (2-D p 5.6e-9); UniPC-3 passes at 15 (min p 1.6e-4) and fails at 12 (2-D p 4e-47);
UniP-2 without corrector fails at 20 and passes at 25 (min p 4.5e-7 .. 30: 3.4e-4). Fitted global orders on Gaussian
data: UniPC-1 / -2 1.9 / 2.8 (NFE 10 .. 80), UniPC-3 3.7 (NFE 40 .. 320; pre-asymptotic below), UniP-2 / -3 1.8 / 3.9.

Callback and trajectory: a step's state is reported once it is final, i.e. after its correction (so step i is
reported right after the model call of step i + 1); the denoised estimate reported is the x0hat the step started
from.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.samplers.arrays import State
from sdekit.diffusion.samplers.checks import check_state
from sdekit.diffusion.samplers.lambda_schedule import KernelFn, half_log_snr
from sdekit.diffusion.samplers.multistep_grid import check_flag, check_order, multistep_orders, multistep_pairs
from sdekit.diffusion.samplers.phi_functions import h_phis
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError

__all__ = ["B_FUNCTIONS", "PREDICTIONS", "unipc_sample", "unipc_weights"]

ScoreFn = Callable[[State, float, float], State]

B_FUNCTIONS: dict[str, Callable[[float], float]] = {"bh1": lambda hh: hh, "bh2": math.expm1}
PREDICTIONS = ("data", "noise")
_SIMPLE_WEIGHT = 0.5  # a_1 of UniP-2 and UniC-1 (the authors' simplification; a module constant for planted bugs)


def unipc_weights(rks: list[float], hh: float, b_h: float) -> list[float]:
    """The UniPC weights a (module docstring): for the predictor the r_k of the previous outputs, for the corrector
    the same plus r = 1 for the new point (last); R a = g with R_{jk} = r_k^j, g_j = (j + 1)! hh phi_{j+2}(hh) / B(h),
    except a = [1/2] for UniP-2 and UniC-1."""
    n = len(rks)
    if n == 0:
        return []
    if n == 1:
        return [_SIMPLE_WEIGHT]
    phis = h_phis(hh, n + 1)
    g = [math.factorial(j + 1) * phis[j + 1] / b_h for j in range(n)]
    mat = np.array([[r ** j for r in rks] for j in range(n)])
    return np.linalg.solve(mat, np.array(g)).tolist()


def _unipc_update(x: State, pa: tuple[float, float], pb: tuple[float, float], m0: State,
                  diffs: list[tuple[float, State]], b_name: str, data: bool) -> State:
    """One UniP (corrector False) or UniC (True; diffs then end with (1, m_t)) update from pa = (alpha_s, sigma_s)
    to pb: diffs are (r_k, m_k) pairs of earlier (or the new) outputs."""
    (a_s, s_s), (a_t, s_t) = pa, pb
    h = half_log_snr(a_t, s_t) - half_log_snr(a_s, s_s)
    hh = -h if data else h
    ratio, c = (s_t / s_s, a_t) if data else (a_t / a_s, s_t)
    x_t = ratio * x - (c * math.expm1(hh)) * m0
    if diffs:
        b_h = B_FUNCTIONS[b_name](hh)
        weights = unipc_weights([r for r, _ in diffs], hh, b_h)
        res = None
        for w, (r, m) in zip(weights, diffs):
            term = (m - m0) * (w / r)
            res = term if res is None else res + term
        x_t = x_t - (c * b_h) * res
    return x_t


def unipc_sample(score: ScoreFn, forward: ForwardSDE | KernelFn | ArrayLike, x_T: ArrayLike, *, order: int = 2,
                 steps: int | None = None, skip: str = "logSNR", variant: str = "bh2", corrector: bool = True,
                 prediction: str = "data", lower_order_final: bool | None = None, to_zero: bool = False,
                 t_span: tuple[float, float] | None = None, seed: int = 0, path_offset: int = 0,
                 noise: NoiseFn | None = None, callback: Callable | None = None,
                 return_trajectory: bool = False) -> SampleResult:
    """UniPC (Zhao et al. 2023; module docstring): UniP-``order`` with B(h) = ``variant`` ("bh1": h, "bh2":
    expm1(h)), followed by UniC-``order`` after every step but the last when ``corrector`` (order + 1 overall);
    NFE = steps.

    score(x, alpha, sigma) -> grad log p at x = alpha x_0 + sigma eps. forward: a ForwardSDE (from T to eps, or
    t_span), a kernel t -> (alpha, sigma) with t_span = (T, eps), or an (m, 2) array of (alpha, sigma) pairs from the
    noisiest to the cleanest (then that is the grid; steps None or m - 1). steps (default 20) and skip ("logSNR",
    default, or "time_uniform") make the grid of a ForwardSDE / kernel. order 1, 2 or 3. prediction "data" (x0hat,
    diffusers' predict_x0=True) or "noise" (epshat). lower_order_final None / True: step i has order
    min(order, steps - i) (diffusers' rule); False: no lowering (not allowed when the grid ends at sigma = 0). to_zero
    appends the data level (1, 0), reached by the final denoise. The seed, path_offset and noise are accepted and
    unused (a deterministic sampler; `sdekit.diffusion.samplers.run`).

    Returns a `SampleResult` (x, nfe, alphas, sigmas); a torch x_T runs in torch on its device and dtype.
    """
    if not callable(score):
        raise SDEKitError(f"score must be a callable score(x, alpha, sigma); got {type(score).__name__}")
    order = check_order(order, (1, 2, 3))
    if variant not in B_FUNCTIONS:
        raise SDEKitError(f"variant must be one of {tuple(B_FUNCTIONS)}; got {variant!r}")
    if prediction not in PREDICTIONS:
        raise SDEKitError(f"prediction must be one of {PREDICTIONS}; got {prediction!r}")
    corrector = check_flag(corrector, "corrector")
    lower_order_final = check_flag(lower_order_final, "lower_order_final", allow_none=True)
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    x = check_state(x_T, "x_T")
    pairs = multistep_pairs(forward, steps, skip, t_span, to_zero)
    n_steps = len(pairs) - 1
    orders = multistep_orders(n_steps, order, lower_order_final, pairs[-1][1] == 0, "unipc")
    lams = [half_log_snr(a, s) if s > 0 else math.inf for a, s in pairs]
    data = prediction == "data"
    run.start(x, *pairs[0])
    hist: list[State] = []  # model outputs of the previous levels, newest first
    x_prev: State | None = None  # the state the previous step started from (its corrector redoes that step)
    pending: tuple[int, State | None] | None = None  # the previous step, reported once final
    for i, k in enumerate(orders):
        (a_s, s_s), (a_t, s_t) = pairs[i], pairs[i + 1]
        sc = run.score(x, a_s, s_s, i)
        x0 = (x + (s_s * s_s) * sc) / a_s
        m = x0 if data else -s_s * sc
        if corrector and x_prev is not None:  # UniC-p of the previous step (order orders[i - 1]) with m_t = m
            h_prev = lams[i] - lams[i - 1]
            diffs = [((lams[i - 1 - j] - lams[i - 1]) / h_prev, hist[j]) for j in range(1, orders[i - 1])]
            x = _unipc_update(x_prev, pairs[i - 1], pairs[i], hist[0], diffs + [(1.0, m)], variant, data)
        if pending is not None:
            run.step_done(pending[0], x, a_s, s_s, pending[1])
        hist = ([m] + hist)[:order]
        x_prev = x
        if s_t == 0:  # the final denoise: the limit of the first-order update as sigma_t -> 0
            x = a_t * x0
        else:
            h = lams[i + 1] - lams[i]
            diffs = [((lams[i - j] - lams[i]) / h, hist[j]) for j in range(1, k)]
            x = _unipc_update(x, pairs[i], pairs[i + 1], m, diffs, variant, data)
        pending = (i, x0)
    assert pending is not None
    run.step_done(pending[0], x, *pairs[-1], pending[1])
    return run.finish(x)
