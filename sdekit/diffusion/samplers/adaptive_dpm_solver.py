"""Adaptive step-size DPM-Solver (Lu, Zhou, Bao, Chen, Li & Zhu 2022, "DPM-Solver: a fast ODE solver for diffusion
probabilistic model sampling in around 10 steps", section 4.2 and Algorithm 4 of appendix C; DPM-Solver-12 and
DPM-Solver-23), for a kernel x_t = alpha_t x_0 + sigma_t eps with lambda = log(alpha / sigma).

Each trial step from lambda_s with step h (in lambda) computes, from the same model evaluations, a lower-order and a
higher-order single step to lambda_t = lambda_s + h (the updates of `sdekit.diffusion.samplers.dpm_solver`,
imported unchanged):

* DPM-Solver-12 (order=2): x_low = DPM-Solver-1 (DDIM), x_high = DPM-Solver-2 with r1 = 1/2: 2 model calls;
* DPM-Solver-23 (order=3): x_low = DPM-Solver-2 with r1 = 1/3, x_high = DPM-Solver-3 with r1 = 1/3, r2 = 2/3, which
  reuses the lower step's two evaluations: 3 model calls

(a memo of the model keyed by the level and the point lets the higher update reuse the lower one's evaluations).
The error of the lower step is estimated as

    E = max over the batch of RMS_j [ (x_high - x_low)_j / delta_j ],
    delta_j = max(atol, rtol max(|x_low,j|, |x_prev,j|)),

x_prev the previous accepted step's lower estimate (x_T at the start): one scalar decision per batch, as in Lu et
al.'s Algorithm 4 and their code (the max over the batch of each sample's RMS over its dimensions). The step is
accepted when E <= 1 (x <- x_high, x_prev <- x_low, lambda_s <- lambda_t), and after every trial

    h <- min(theta h E^{-1/order}, lambda_eps - lambda_s),     theta = 0.9,

so the last step lands exactly on t = eps. h starts at h_init = 0.05 (Lu et al.'s default; atol = 0.0078 and
rtol = 0.05 are their defaults for images in [-1, 1]). NFE = order x (number of trials).

Because the decision is one per batch, the step sequence (and so each path's result) depends on the batch it runs
in; a path is reproducible for a fixed batch. Deterministic: the seed and noise are accepted and unused.

Intermediate points come from `lambda_schedule.LambdaSchedule.at_lambda` (the VP closed form for
``ForwardSDE.vp()`` / ``.cosine()``, otherwise bisection of lambda(t)).

Accuracy with the exact score (tests/test_samplers_adaptive_dpm.py; ForwardSDE.vp(), T = 1, eps = 1e-3, 1-, 2-
and 4-D anisotropic mixtures, N = 20000, ``compare_with_law`` at 1e-6 against the exact marginal at eps; default
atol and h_init). NFE used (1-D / 2-D / 4-D): DPM-Solver-23 rtol 1.0: 36 / 54 / 66 (fails in 1-D); rtol 0.5:
42 / 60 / 78 (passes); rtol 0.05: 57 / 81 / 99; rtol 0.02: 63 / 93 / 105. DPM-Solver-12 rtol 0.5: 56 / 82 / 84 (fails
in 1-D); rtol 0.2: 70 / 104 / 102 (passes); rtol 0.05: 96 / 128 / 122. About a third of the trials are rejected.

Backends: x_T may be a float64 NumPy array or a torch tensor (float32 / float64, any device); a tensor run stays in
torch (one host synchronisation per trial for the accept decision) and returns a tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.samplers.arrays import State, is_torch
from sdekit.diffusion.samplers.checks import check_count, check_real, check_state
from sdekit.diffusion.samplers.dpm_solver import _Model, _rule_points, _singlestep
from sdekit.diffusion.samplers.lambda_schedule import KernelFn, half_log_snr, kernel_pair, schedule_of
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError

__all__ = ["AdaptiveResult", "adaptive_dpm_solver_sample"]

ScoreFn = Callable[[State, float, float], State]
ALGORITHMS = ("dpmsolver", "dpmsolver++")
THETA = 0.9


@dataclass(frozen=True)
class AdaptiveResult(SampleResult):
    """A `SampleResult` with the adaptive run's accepted and rejected trial steps (nfe = order x trials)."""

    accepted: int = 0
    rejected: int = 0


def _same(a: State, b: State) -> bool:
    if a is b:
        return True
    if is_torch(a) != is_torch(b) or tuple(a.shape) != tuple(b.shape):
        return False
    if is_torch(a):
        import torch

        return bool(torch.equal(a, b))
    return bool(np.array_equal(a, b))


class _MemoModel(_Model):
    """dpm_solver's model (eps, x0 from the score) that answers a repeated (point, level) of the current trial from
    memory, so the higher-order update reuses the lower-order update's evaluations."""

    def __init__(self, run: SamplerRun) -> None:
        super().__init__(run)
        self.memo: dict[tuple[float, float], tuple[State, tuple[State, State]]] = {}

    def __call__(self, x: State, a: float, s: float, step: int) -> tuple[State, State]:
        hit = self.memo.get((a, s))
        if hit is not None and _same(hit[0], x):
            return hit[1]
        out = super().__call__(x, a, s, step)
        self.memo[(a, s)] = (x, out)
        return out


def _error_ratio(x_low: State, x_high: State, x_prev: State, atol: float, rtol: float) -> float:
    """max over rows of RMS_j (x_high - x_low)_j / max(atol, rtol max(|x_low_j|, |x_prev_j|))."""
    n = x_low.shape[0]
    if is_torch(x_low):
        import torch

        delta = torch.clamp(rtol * torch.maximum(x_low.abs(), x_prev.abs()), min=atol)
        r = ((x_high - x_low) / delta).reshape(n, -1)
        return float(torch.sqrt((r * r).mean(dim=1)).max())
    delta = np.maximum(atol, rtol * np.maximum(np.abs(x_low), np.abs(x_prev)))
    r = ((x_high - x_low) / delta).reshape(n, -1)
    return float(np.sqrt(np.mean(r * r, axis=1)).max())


def _check_order(order: Any) -> int:
    if isinstance(order, bool) or order not in (2, 3):
        raise SDEKitError(f"order must be 2 (DPM-Solver-12) or 3 (DPM-Solver-23); got {order!r}")
    return int(order)


def adaptive_dpm_solver_sample(score: ScoreFn, forward: ForwardSDE | KernelFn, x_T: ArrayLike, *,  # noqa: N803
                               order: int = 2, algorithm: str = "dpmsolver", rtol: float = 0.05,
                               atol: float = 0.0078, h_init: float = 0.05, t_span: tuple[float, float] | None = None,
                               max_trials: int = 100_000, seed: int = 0, path_offset: int = 0,
                               noise: NoiseFn | None = None, callback: Callable | None = None,
                               return_trajectory: bool = False) -> AdaptiveResult:
    """Adaptive step-size DPM-Solver-12 (order 2) or -23 (order 3) (Lu et al. 2022, section 4.2, Algorithm 4; module
    docstring) from x_T ~ p_T down to t = eps.

    score(x (n, *shape), alpha, sigma) -> grad log p at x = alpha x_0 + sigma eps. forward: a ForwardSDE (from T to
    eps, or t_span) or a kernel t -> (alpha, sigma) with t_span = (T, eps) (the steps are chosen on the fly, so a
    fixed grid of pairs is not accepted). algorithm "dpmsolver" (noise prediction, Lu et al.) or "dpmsolver++"
    (data prediction, Lu et al. 2022b). Each trial: x_low (order - 1) and x_high (order) from lambda_s to
    lambda_s + h; E = max over rows of RMS((x_high - x_low) / max(atol, rtol max(|x_low|, |x_prev|))); accept when
    E <= 1; h <- min(0.9 h E^{-1/order}, lambda_eps - lambda_s). rtol > 0, atol > 0, h_init > 0. More than
    max_trials trials is an SDEKitError. Returns an `AdaptiveResult` (the accepted levels; nfe = order x trials,
    accepted, rejected); a torch x_T gives a tensor.
    """
    order = _check_order(order)
    if algorithm not in ALGORITHMS:
        raise SDEKitError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}")
    rtol = check_real(rtol, "rtol", lo=0.0, strict=True)
    atol = check_real(atol, "atol", lo=0.0, strict=True)
    h = check_real(h_init, "h_init", lo=0.0, strict=True)
    max_trials = check_count(max_trials, "max_trials")
    if not callable(forward) and not isinstance(forward, ForwardSDE):
        raise SDEKitError(f"forward must be a ForwardSDE or a kernel t -> (alpha, sigma) (the adaptive solver chooses "
                          f"its own grid); got {type(forward).__name__}")
    sched, t_hi, t_lo = schedule_of(forward, t_span)
    assert sched.kernel is not None
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    x = check_state(x_T, "x_T")
    pair_s, pair_end = kernel_pair(sched.kernel, t_hi), kernel_pair(sched.kernel, t_lo)
    lam_s, lam_end = half_log_snr(*pair_s), half_log_snr(*pair_end)
    h = min(h, lam_end - lam_s)
    model = _MemoModel(run)
    plus = algorithm == "dpmsolver++"
    x_prev = x
    trials = accepted = 0
    run.start(x, *pair_s)
    while lam_s < lam_end:
        if trials >= max_trials:
            raise SDEKitError(f"the adaptive solver needed more than max_trials = {max_trials} trial steps "
                              f"(reached lambda = {lam_s:.6g} of {lam_end:.6g}); raise rtol / atol or max_trials")
        lam_t = lam_s + h
        pair_t = pair_end if lam_t >= lam_end - 1e-12 * max(1.0, abs(lam_end)) else sched.at_lambda(lam_t)
        inner = _rule_points(sched, pair_s, pair_t, 3 if order == 3 else 2)
        model.memo.clear()
        model.last_x0 = None
        x_low = _singlestep(model, x, pair_s, pair_t, inner[:order - 2] if order == 3 else [], plus, trials)
        x_high = _singlestep(model, x, pair_s, pair_t, inner, plus, trials)
        err = _error_ratio(x_low, x_high, x_prev, atol, rtol)
        if not math.isfinite(err):
            raise SDEKitError(f"the error estimate is not finite at lambda = {lam_s:.6g} (h = {h:.3g})")
        trials += 1
        if err <= 1.0:
            x, x_prev, pair_s = x_high, x_low, pair_t
            lam_s = lam_end if pair_t is pair_end else half_log_snr(*pair_t)
            run.step_done(accepted, x, *pair_t, model.last_x0)
            accepted += 1
        h = min(THETA * h * err ** (-1.0 / order), lam_end - lam_s) if err > 0 else lam_end - lam_s
    return run.finish(x, AdaptiveResult, accepted=accepted, rejected=trials - accepted)
