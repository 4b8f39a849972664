"""Predictor-corrector (PC) samplers of Song et al. 2021, "Score-based generative modeling through stochastic
differential equations" (Algorithms 2 and 3 for VE and VP), for any `ForwardSDE`, plus a Metropolis-adjusted
Langevin (MALA) corrector that leaves p_t exactly invariant.

Model interface: ``score(x, alpha, sigma) -> (n, d)`` (grad log p_t at x_t = alpha x_0 + sigma eps) and, for MALA,
``log_prob(x, alpha, sigma) -> (n,)`` (log p_t up to a constant). ``MixtureMarginals(data).score / .log_prob`` are
the exact ones for Gaussian-mixture data.

Grid: t_0 = T > t_1 > ... > t_N = forward.eps, uniform, h = (T - eps) / N. Write (alpha_i, sigma_i) = kernel(t_i),
s_i = score(x, alpha_i, sigma_i), and for the step t_i -> t_{i+1} the exact forward transition
x_{t_i} = a x_{t_{i+1}} + G z with a = alpha_i / alpha_{i+1}, G^2 = sigma_i^2 - a^2 sigma_{i+1}^2.
Following the paper's Algorithms 2/3, step i applies the predictor t_i -> t_{i+1} and then n_corrector corrector
steps at t_{i+1}, so the last corrector acts at t_N (score_sde's code applies the corrector first; same chain
up to where it starts and stops).

Predictors:
  "reverse_diffusion":  x <- x - (a - 1) x + G^2 s_i + G z. The reverse of the discrete forward chain
      x_{i} = x_{i+1} + (a - 1) x_{i+1} + G z; for VE (a = 1, G^2 = sigma_i^2 - sigma_{i+1}^2) and VP (in score_sde's
      notation a = sqrt(1 - beta_i), G^2 = beta_i) it is score_sde's ReverseDiffusionPredictor; to first order in h
      it is x - f x h + g^2 s h + g sqrt(h) z.
  "euler_maruyama":     x <- x - (f(t_i) x - g(t_i)^2 s_i) h + g(t_i) sqrt(h) z (the reverse SDE's EM step).
  "ancestral":          x <- (x + G^2 s_i) / a + std z: the Gaussian posterior q(x_{t_{i+1}} | x_{t_i}, x_0) with
      x_0 replaced by Tweedie's E[x_0 | x_{t_i}]; its mean is exactly (x + G^2 s_i) / a. std: VE uses the posterior
      std sqrt(sigma_{i+1}^2 G^2 / sigma_i^2) (score_sde, NCSN ancestral); every other schedule uses std = G
      (score_sde's VP: x <- (x + beta_i s) / sqrt(1 - beta_i) + sqrt(beta_i) z, DDPM's sigma^2 = beta choice).
  "none":               x unchanged (a corrector-only sampler).
Correctors, at level (alpha, sigma) = kernel(t_{i+1}), full-drift form with step size eps:
  "langevin": x <- x + eps s + sqrt(2 eps) z with score_sde's signal-to-noise rule eps = 2 r_i (snr ||z|| / ||s||)^2,
      r_i = a^2 (= 1 - beta_i for VP-type, 1 for VE). snr_norms="batch" (default; score_sde): ||z||, ||s|| are the
      batch means of the per-sample L2 norms, one eps for all paths (the output then depends on the batch);
      "per_sample": each path uses its own norms (batch-independent, but eps then depends on x and z).
  "mala": the same proposal y = x + eps s(x) + sqrt(2 eps) z, accepted with probability
      min(1, p_t(y) q(x | y) / (p_t(x) q(y | x))), q(y | x) = N(y; x + eps s(x), 2 eps I): exactly p_t-invariant
      for every eps (needs log_prob). Same step-size rule.
  "none".

Noise mapping: with B = 1 + 2 n_corrector, step i's predictor takes noise draw i B (`run.SamplerRun`); corrector
sweep j draws its proposal normals from step index i B + 1 + 2 j and (MALA) its acceptance uniform as
Phi(z), z the first normal of step index i B + 2 + 2 j. Each path's output depends only on (seed, path index)
whenever the step size does not depend on the batch (snr_norms="per_sample", or corrector "none" / fixed steps).

Backends: the state may be a float64 NumPy array or a torch tensor (float32 / float64, any device). A tensor run
stays in torch on that device and dtype: score and log_prob are called on tensors, the normals are the same streams
drawn on that device (`run.sampler_normals`), MALA's log-uniforms log Phi(z) are computed there (log_ndtr), accept /
reject is a row-wise torch.where, and the result is a tensor. Inside the loop the only host synchronisations are the
documented per-step checks of log_prob (NaN) and of the snr step size (finite; it reads the pending score checks
first); the score's finiteness is read every `score_calls.CHECK_EVERY` calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import log_ndtr

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.samplers.arrays import (
    State,
    all_finite,
    any_nan,
    as_like,
    count_true,
    flat,
    is_torch,
    per_row,
    row_norms,
    row_sums,
    select_rows,
    sqrt,
)
from sdekit.diffusion.samplers.checks import (
    check_callable,
    check_count,
    check_positive,
    check_real,
    check_seed,
    check_state,
)
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun, StreamNoise
from sdekit.diffusion.samplers.score_calls import ScoreCalls
from sdekit.errors import SDEKitError

__all__ = [
    "CORRECTORS",
    "PREDICTORS",
    "PCResult",
    "langevin_corrector",
    "mala_corrector",
    "pc_sample",
    "snr_step_size",
]

PREDICTORS = ("reverse_diffusion", "euler_maruyama", "ancestral", "none")
CORRECTORS = ("langevin", "mala", "none")
SNR_NORMS = ("batch", "per_sample")

ScoreFn = Callable[[State, float, float], State]
LogProbFn = Callable[[State, float, float], State]


@dataclass(frozen=True)
class PCResult(SampleResult):
    """Output of `pc_sample`: a `SampleResult` (x (n, *shape), nfe the number of score evaluations (batch calls), the
    levels, the optional trajectory) with n_log_prob, the number of log_prob calls, and accept_rate, MALA's mean
    acceptance rate over all corrector steps (None otherwise). x is a torch tensor when the sampler ran on one."""

    n_log_prob: int = 0
    accept_rate: float | None = None


# --------------------------------------------------------------------------------------------
# step-size rule and correctors
# --------------------------------------------------------------------------------------------


def snr_step_size(s: State, z: State, snr: float, ratio: float = 1.0, norms: str = "batch") -> State:
    """score_sde's corrector step eps = 2 r (snr ||z|| / ||s||)^2 (Song et al. 2021, Alg. 4/5), shape (n, 1, ...)
    (one value per row, broadcastable against s).

    norms="batch": ||.|| is the batch mean of per-sample L2 norms (one eps for all rows);
    "per_sample": each row's own norms. r is alpha_i of the paper (1 for VE, 1 - beta_i for VP).
    s, z: NumPy arrays or torch tensors (the result is of their kind).
    """
    snr, ratio = check_positive(snr, "snr"), check_positive(ratio, "ratio")
    if norms not in SNR_NORMS:
        raise SDEKitError(f"snr_norms must be one of {SNR_NORMS}; got {norms!r}")
    if tuple(z.shape) != tuple(s.shape) or len(s.shape) < 2:
        raise SDEKitError(f"z must have the shape of s, (n, *shape); got s {tuple(s.shape)}, z {tuple(z.shape)}")
    zn = row_norms(z)
    sn = row_norms(s)
    if norms == "batch":
        if is_torch(zn):
            zn, sn = zn.mean().expand_as(zn), sn.mean().expand_as(sn)
        else:
            zn, sn = np.full_like(zn, zn.mean()), np.full_like(sn, sn.mean())
    with np.errstate(divide="ignore"):
        eps = 2.0 * ratio * (snr * zn / sn) ** 2
    if not all_finite(eps):
        raise SDEKitError("the snr step size is infinite: the score is zero (give step_size instead)")
    return per_row(eps, s)


def _corrector_args(alpha: Any, sigma: Any, ratio: Any, step0: Any) -> tuple[float, float, float, int]:
    """A corrector's (alpha, sigma, ratio, step0): alpha, ratio > 0, sigma >= 0, all finite; step0 an int >= 0."""
    return (check_positive(alpha, "alpha"), check_real(sigma, "sigma", lo=0.0), check_positive(ratio, "ratio"),
            check_count(step0, "step0", 0))


def _step_rule(step_size: float | None, snr: float | None) -> tuple[float | None, float | None]:
    if (step_size is None) == (snr is None):
        raise SDEKitError("give exactly one of step_size (a fixed eps) and snr (score_sde's rule)")
    return (None if step_size is None else check_positive(step_size, "step_size"),
            None if snr is None else check_positive(snr, "snr"))


def langevin_corrector(score: ScoreFn, x: ArrayLike, alpha: float, sigma: float, *, step_size: float | None = None,
                       snr: float | None = None, ratio: float = 1.0, snr_norms: str = "batch", n_steps: int = 1,
                       seed: int = 0, step0: int = 0) -> State:
    """n_steps unadjusted Langevin steps on p_t: x <- x + eps s(x, alpha, sigma) + sqrt(2 eps) z (Song et al. 2021).

    eps: the fixed step_size, or score_sde's rule 2 ratio (snr ||z|| / ||s||)^2 (`snr_step_size`). Biased at finite
    eps: for a Gaussian p_t = N(m, v) its fixed point is N(m, v / (1 - eps / (2 v))). Sweep j draws z from
    the stream draw step0 + 2 j (`run.sampler_normals`). x: a NumPy array or a torch tensor (the result is of its kind).
    """
    check_callable(score, "score")
    x = check_state(x, "x")
    step_size, snr = _step_rule(step_size, snr)
    n_steps, seed = check_count(n_steps, "n_steps"), check_seed(seed)
    alpha, sigma, ratio, step0 = _corrector_args(alpha, sigma, ratio, step0)
    noise = StreamNoise(seed)
    calls = ScoreCalls(score)
    return calls.finish(_langevin(calls, noise, x, alpha, sigma, step_size, snr, ratio, snr_norms, n_steps, step0, 0))


def _snr_eps(calls: ScoreCalls, s: State, z: State, snr: float, ratio: float, norms: str) -> State:
    """`snr_step_size` after the pending score checks (a non-finite score is reported as such, not as a zero one)."""
    calls.flush()
    return snr_step_size(s, z, snr, ratio, norms)


def _langevin(calls: ScoreCalls, noise: NoiseFn, x: State, alpha: float, sigma: float, step_size: float | None,
              snr: float | None, ratio: float, snr_norms: str, n_steps: int, step0: int, step: int,
              t: float | None = None) -> State:
    """The Langevin sweeps of `langevin_corrector` on a checked state (no state re-check: a non-finite state shows
    up in the score check); ``step`` / ``t`` label the score calls; ``noise(k, like)`` gives the normals of draw k."""
    for j in range(n_steps):
        s = calls(x, alpha, sigma, step, t)
        z = noise(step0 + 2 * j, x)
        eps = step_size if snr is None else _snr_eps(calls, s, z, snr, ratio, snr_norms)
        x = _langevin_move(x, s, z, eps)
    return x


def mala_corrector(score: ScoreFn, log_prob: LogProbFn, x: ArrayLike, alpha: float, sigma: float, *,
                   step_size: float | None = None, snr: float | None = None, ratio: float = 1.0,
                   snr_norms: str = "batch", n_steps: int = 1, seed: int = 0,
                   step0: int = 0) -> tuple[State, float]:
    """n_steps Metropolis-adjusted Langevin steps on p_t; returns (x, mean acceptance rate).

    Proposal y = x + eps s(x) + sqrt(2 eps) z; accept with probability min(1, exp(log p(y) - log p(x)
    + log q(x | y) - log q(y | x))), log q(y | x) = -||y - x - eps s(x)||^2 / (4 eps) + const (Roberts & Tweedie 1996;
    Besag 1994). Exactly p_t-invariant for any fixed eps. With the snr rule eps depends on the current batch
    (batch norms) or on (x, z) (per-sample norms), which breaks exact invariance: use step_size for the exact chain.
    Sweep j draws z from step index step0 + 2 j and its uniform as Phi of the first normal of step0 + 2 j + 1.
    x: a NumPy array or a torch tensor (the returned state is of its kind; the rate is a float).
    """
    check_callable(score, "score")
    check_callable(log_prob, "log_prob")
    x = check_state(x, "x")
    step_size, snr = _step_rule(step_size, snr)
    n_steps, seed = check_count(n_steps, "n_steps"), check_seed(seed)
    alpha, sigma, ratio, step0 = _corrector_args(alpha, sigma, ratio, step0)
    calls = ScoreCalls(score)
    x, accepted = _mala(calls, StreamNoise(seed), log_prob, x, alpha, sigma, step_size, snr, ratio, snr_norms, n_steps,
                        step0, 0)
    return calls.finish((x, float(accepted) / (x.shape[0] * n_steps)))


def _mala(calls: ScoreCalls, noise: NoiseFn, log_prob: LogProbFn, x: State, alpha: float, sigma: float,
          step_size: float | None, snr: float | None, ratio: float, snr_norms: str, n_steps: int, step0: int,
          step: int, t: float | None = None) -> tuple[State, Any]:
    """The MALA sweeps of `mala_corrector` on a checked state; returns (x, number of accepted moves), the count an
    int for NumPy and a 0-d tensor for torch (so that the sampler loop need not synchronise to read it)."""
    s_x = calls(x, alpha, sigma, step, t)
    lp_x = _eval_log_prob(log_prob, x, alpha, sigma, calls)
    accepted: Any = 0
    for j in range(n_steps):
        z = noise(step0 + 2 * j, x)
        eps = step_size if snr is None else _snr_eps(calls, s_x, z, snr, ratio, snr_norms)
        y = _langevin_move(x, s_x, z, eps)
        s_y = calls(y, alpha, sigma, step, t)
        lp_y = _eval_log_prob(log_prob, y, alpha, sigma, calls)
        log_ratio = _mala_log_ratio(x, y, s_x, s_y, lp_x, lp_y, eps)
        log_u = _log_uniform(noise(step0 + 2 * j + 1, x))
        acc = log_u < log_ratio
        x, s_x, lp_x = select_rows(acc, y, x), select_rows(acc, s_y, s_x), select_rows(acc, lp_y, lp_x)
        accepted = accepted + count_true(acc)
    return x, accepted


def _log_uniform(z: State) -> State:
    """log U per row, U = Phi(z_row[0]) of the first normal of each row (uniform on (0, 1)); log Phi by log_ndtr."""
    first = z.reshape(z.shape[0], -1)[:, 0]
    if is_torch(z):
        import torch

        return torch.special.log_ndtr(first)
    return log_ndtr(first)


def _langevin_move(x: State, s: State, z: State, eps: Any) -> State:
    """The full-drift Langevin move x + eps s + sqrt(2 eps) z (eps a scalar or an (n, 1) array / tensor)."""
    return x + eps * s + sqrt(2.0 * eps) * z


def _mala_log_ratio(x: State, y: State, s_x: State, s_y: State, lp_x: State, lp_y: State, eps: Any) -> State:
    """log [p(y) q(x | y) / (p(x) q(y | x))] with log q(b | a) = -||b - a - eps s(a)||^2 / (4 eps) + const."""
    e = flat(eps)
    fwd = y - x - eps * s_x  # eps: a number or one value per row, shaped (n, 1, ...) by snr_step_size
    back = x - y - eps * s_y
    return lp_y - lp_x + (row_sums(fwd * fwd) - row_sums(back * back)) / (4.0 * e)


def _eval_log_prob(log_prob: LogProbFn, x: State, alpha: float, sigma: float, calls: ScoreCalls) -> State:
    """log_prob(x, alpha, sigma) as an (n,) array of x's kind, checked for shape and NaN (one sync for a tensor);
    a NaN that a non-finite score caused earlier is reported as the score's (the pending score checks first)."""
    lp = as_like(log_prob(x, alpha, sigma), x, "log_prob").reshape(-1)
    if tuple(lp.shape) != (x.shape[0],):
        raise SDEKitError(f"log_prob must return an array of shape ({x.shape[0]},); got shape {tuple(lp.shape)}")
    if any_nan(lp):
        calls.flush()
        raise SDEKitError(f"log_prob returned NaN at alpha = {alpha:.6g}, sigma = {sigma:.6g}")
    return lp.clone() if is_torch(lp) else lp.copy()


# --------------------------------------------------------------------------------------------
# the PC sampler
# --------------------------------------------------------------------------------------------


def _predict(kind: str, x: State, s: State, z: State, a: float, g2: float, sg: float, sg1: float,
             f: float, g: float, h: float, ve: bool) -> State:
    """One predictor step t_i -> t_{i+1} (module docstring); s = score at t_i, z ~ N(0, I)."""
    if kind == "reverse_diffusion":
        return x - (a - 1.0) * x + g2 * s + math.sqrt(g2) * z
    if kind == "euler_maruyama":
        return x - (f * x - g * g * s) * h + g * math.sqrt(h) * z
    std = math.sqrt(sg1 * sg1 * g2) / sg if ve else math.sqrt(g2)
    return (x + g2 * s) / a + std * z


def pc_sample(score: ScoreFn, forward: ForwardSDE, x_T: ArrayLike, *, steps: int = 1000,
              predictor: str = "reverse_diffusion", corrector: str = "langevin", snr: float = 0.16,
              n_corrector: int = 1, seed: int = 0, log_prob: LogProbFn | None = None,
              snr_norms: str = "batch", corrector_step: float | None = None,
              final_denoise: bool = False, path_offset: int = 0, noise: NoiseFn | None = None,
              callback: Callable | None = None, return_trajectory: bool = False) -> PCResult:
    """Predictor-corrector sampling from t = forward.T (x_T, e.g. exact draws of p_T) down to t = forward.eps.

    For i = 0..N-1 (N = steps): predictor t_i -> t_{i+1} (module docstring: "reverse_diffusion", "euler_maruyama",
    "ancestral", "none"), then n_corrector corrector steps at t_{i+1} ("langevin" x <- x + eps s + sqrt(2 eps) z,
    "mala" the same proposal Metropolis-adjusted with log_prob, or "none"); eps = 2 r_i (snr ||z|| / ||s||)^2
    (score_sde's rule, r_i = (alpha_i / alpha_{i+1})^2) unless corrector_step gives a fixed eps.
    final_denoise: return Tweedie's E[x_0 | x_{t_N}] = (x + sigma_N^2 s) / alpha_N (score_sde's denoise=True
    analogue; not a draw). Song et al. 2021, Algorithms 2 (VE) and 3 (VP). Noise, seed, callback and trajectory:
    `sdekit.diffusion.samplers.run`. A torch x_T runs in torch on its device and dtype and gives a tensor x.
    """
    check_callable(score, "score")
    if not isinstance(forward, ForwardSDE):
        raise SDEKitError(f"forward must be a ForwardSDE; got {type(forward).__name__}")
    x = check_state(x_T, "x_T")
    steps, n_corrector = check_count(steps, "steps"), check_count(n_corrector, "n_corrector", 0)
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    if predictor not in PREDICTORS:
        raise SDEKitError(f"predictor must be one of {PREDICTORS}; got {predictor!r}")
    if corrector not in CORRECTORS:
        raise SDEKitError(f"corrector must be one of {CORRECTORS}; got {corrector!r}")
    if snr_norms not in SNR_NORMS:
        raise SDEKitError(f"snr_norms must be one of {SNR_NORMS}; got {snr_norms!r}")
    if corrector_step is None:
        snr = check_positive(snr, "snr")
    else:
        corrector_step = check_positive(corrector_step, "corrector_step")
    if corrector == "mala":
        if log_prob is None:
            raise SDEKitError("log_prob is required for corrector='mala' (log p_t(x) as log_prob(x, alpha, sigma))")
        check_callable(log_prob, "log_prob")
    if not isinstance(final_denoise, bool | np.bool_):
        raise SDEKitError(f"final_denoise must be a bool; got {final_denoise!r}")
    if predictor == "none" and (corrector == "none" or n_corrector == 0):
        raise SDEKitError("predictor='none' needs a corrector with n_corrector >= 1")
    big_t, small_t = float(forward.T), float(forward.eps)
    if not big_t > small_t:
        raise SDEKitError(f"forward.T must exceed forward.eps; got T = {big_t}, eps = {small_t}")
    ts = np.linspace(big_t, small_t, steps + 1)
    h = (big_t - small_t) / steps
    kern = [forward.kernel(float(t)) for t in ts]
    n = x.shape[0]
    block = 1 + 2 * n_corrector
    calls = run.calls
    n_lp = tried = 0
    run.start(x, *kern[0])
    accepted: Any = 0
    for i in range(steps):
        (al, sg), (al1, sg1) = kern[i], kern[i + 1]
        a = al / al1
        g2 = max(sg * sg - a * a * sg1 * sg1, 0.0)
        if predictor != "none":
            s = calls(x, al, sg, i, float(ts[i]))
            z = run.noise(i * block, x)
            f, g = float(forward.f(ts[i])), float(forward.g(ts[i]))
            x = _predict(predictor, x, s, z, a, g2, sg, sg1, f, g, h, forward.name == "ve")
        if corrector == "none" or n_corrector == 0:
            run.step_done(i, x, al1, sg1, None)
            continue
        step0 = i * block + 1
        rule = (None, snr) if corrector_step is None else (corrector_step, None)
        if corrector == "langevin":
            x = _langevin(calls, run.noise, x, al1, sg1, *rule, a * a, snr_norms, n_corrector, step0, i,
                          float(ts[i + 1]))
        else:
            x, n_acc = _mala(calls, run.noise, log_prob, x, al1, sg1, *rule, a * a, snr_norms, n_corrector, step0,
                             i, float(ts[i + 1]))
            n_lp += n_corrector + 1
            accepted = accepted + n_acc
            tried += n * n_corrector
        run.step_done(i, x, al1, sg1, None)
    if final_denoise:
        al, sg = kern[-1]
        x = (x + sg * sg * calls(x, al, sg, steps, float(ts[-1]))) / al
        run.step_done(steps, x, 1.0, 0.0, x)
    return run.finish(x, PCResult, n_log_prob=n_lp, accept_rate=float(accepted) / tried if tried else None)
