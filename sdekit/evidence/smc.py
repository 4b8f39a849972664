"""An SMC sampler with adaptive tempering (Del Moral, Doucet & Jasra 2006, "Sequential Monte Carlo samplers",
JRSSB 68(3); Jasra, Stephens, Doucet & Tsagaris 2011; Zhou, Johansen & Aston 2016, JCGS 25).

Path gamma_beta = exp(-beta U) q^(1 - beta) from the normalised reference q (Z_0 = 1) to the target (Z_1 = Z). Each
of ``n_runs`` independent runs holds n particles with normalised weights W (log_W = -log n at the start, x ~ q) and
repeats, until beta = 1:

1. beta' = the largest value in (beta, 1] with conditional ESS (sum_i W_i w_i)^2 / (sum_i W_i w_i^2) >= target_cess,
   w_i = exp(-(beta' - beta) V(x_i)), V = U + log q (bisection, `sdekit.evidence.weights.next_beta`);
2. log Z_hat += log sum_i W_i w_i   (the incremental normaliser Z_beta' / Z_beta);  W_i ∝ W_i w_i;
3. if ESS / n = 1 / (n sum W_i^2) < resample_threshold: systematic resampling, W_i = 1 / n;
4. n_moves MALA or HMC moves of every particle at beta'. Each run's step size is first rescaled from beta to beta'
   by `sdekit.evidence.schedule.step_at`, then adapted after every move to the run's mean acceptance a:
   log h += 2 (a - target_accept) (MALA; HMC: log eps += a - target_accept), by at most 2.

Each run's Z_hat is unbiased for Z for a fixed schedule (Del Moral 2004); the adaptive choices make the bias
O(1/n) (Beskos, Jasra, Kantas & Thiery 2016). The reported estimate combines the runs, log Z_hat = log mean_r
Z_hat_r, and its standard error is the delta-method one across the independent runs,
sd_r(Z_hat_r) / (sqrt(n_runs) mean_r Z_hat_r) (`sdekit.evidence.weights.log_mean_exp`): it is an honest SE (the
runs are i.i.d.) whose own estimate has n_runs - 1 degrees of freedom, so z-scores are Student-t(n_runs - 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp, ndtr

from sdekit.diffusion.samplers.checks import check_count, check_seed
from sdekit.errors import SDEKitError
from sdekit.evidence.energies import as_batch_energy, as_reference
from sdekit.evidence.moves import evaluate, sweep
from sdekit.evidence.result import EvidenceResult
from sdekit.evidence.schedule import MOVE_DEFAULTS, check_fraction, check_move, default_step, step_at
from sdekit.evidence.weights import (
    ess_fraction,
    incremental_log_weight,
    log_mean_exp,
    next_beta,
    normalise_log_weights,
    systematic_resample,
)
from sdekit.noise.counter import counter_normals

__all__ = ["SMC_DEFECTS", "smc"]

STREAM_SMC_START = 0x534D4330  # "SMC0"
STREAM_SMC_MOVES = 0x534D4331  # "SMC1"
STREAM_SMC_RESAMPLE = 0x534D4332  # "SMC2"
MAX_ADAPT = 2.0  # the step size changes by at most e^2 per move


def log_increment(log_W: np.ndarray, log_inc: np.ndarray) -> np.ndarray:
    """log (Z_beta' / Z_beta)_hat = log sum_i W_i w_i per run (rows)."""
    return logsumexp(log_W + log_inc, axis=-1)


def uniform_weights(log_W: np.ndarray, ancestors: np.ndarray) -> np.ndarray:
    """The log weights after resampling: -log n for every particle."""
    return np.full(log_W.shape, -np.log(log_W.shape[-1]))


@dataclass(frozen=True)
class SMCRules:
    """The weight bookkeeping of one SMC step (``increment``, ``after_resampling``); SMC_DEFECTS replace them."""

    description: str
    increment: Callable[[np.ndarray, np.ndarray], np.ndarray]
    after_resampling: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _unweighted_increment(log_W: np.ndarray, log_inc: np.ndarray) -> np.ndarray:
    return logsumexp(log_inc, axis=-1) - np.log(log_inc.shape[-1])


def _weights_kept(log_W: np.ndarray, ancestors: np.ndarray) -> np.ndarray:
    return normalise_log_weights(np.take_along_axis(log_W, ancestors, axis=1))


STANDARD = SMCRules("log Z += log sum W_i w_i; W = 1/n after resampling", log_increment, uniform_weights)
SMC_DEFECTS = {
    "unweighted_increment": SMCRules(
        "the incremental normaliser as the plain mean of w_i, ignoring the current weights W_i",
        _unweighted_increment, uniform_weights),
    "weights_kept_after_resampling": SMCRules(
        "the weights kept (not reset to 1/n) after resampling: the selection is counted twice",
        log_increment, _weights_kept),
}


def smc(target: Any, *, n_particles: int = 1000, n_runs: int = 16, reference: Any = None, move: str = "mala",
        n_moves: int = 5, step_size: float | None = None, n_leapfrog: int = 5, target_cess: float = 0.5,
        resample_threshold: float = 0.5, target_accept: float | None = None, max_steps: int = 1000,
        dim: int | None = None, seed: int = 0) -> EvidenceResult:
    """log Z, Z = int exp(-U(x)) dx, by ``n_runs`` independent adaptive-tempering SMC samplers of ``n_particles``
    particles each (the algorithm and the standard error are in the module docstring; Del Moral, Doucet & Jasra
    2006; Zhou, Johansen & Aston 2016 for the conditional ESS).

    target: an sdekit energy target or a callable ``energy_and_grad(x (n, d)) -> (U (n,), grad U (n, d))`` with
      ``dim``. reference: q, None (N(0, I)), (mean, sd) or an sdekit.targets.Gaussian. move: "mala" or "hmc"
      (identity mass, ``n_leapfrog`` steps); step_size: the initial step at beta = 1 (default MALA 0.1, HMC 0.2;
      scaled to beta by `sdekit.evidence.schedule.step_at`, then adapted to ``target_accept``, default 0.574 MALA,
      0.65 HMC). target_cess, resample_threshold in (0, 1). max_steps: SDEKitError when a run needs more
      temperatures.

    Returns an `EvidenceResult`: log_z, log_z_se (across runs), log_weights (n_runs, n) normalised, ess (n_runs,),
    particles (n_runs, n, d), betas and acceptance (one array per run), n_evaluations per particle (mean over
    runs), extras "log_z_runs" (n_runs,), "n_resampled" (n_runs,), "step_sizes" (n_runs,) final.
    """
    return smc_with(STANDARD, target, n_particles=n_particles, n_runs=n_runs, reference=reference, move=move,
                    n_moves=n_moves, step_size=step_size, n_leapfrog=n_leapfrog, target_cess=target_cess,
                    resample_threshold=resample_threshold, target_accept=target_accept, max_steps=max_steps, dim=dim,
                    seed=seed)


def smc_with(rules: SMCRules, target: Any, *, n_particles: int, n_runs: int, reference: Any, move: str, n_moves: int,
             step_size: float | None, n_leapfrog: int, target_cess: float, resample_threshold: float,
             target_accept: float | None, max_steps: int, dim: int | None, seed: int) -> EvidenceResult:
    """SMC's driver with ``rules`` as its weight bookkeeping: STANDARD or a planted bug from SMC_DEFECTS."""
    energy = as_batch_energy(target, dim)
    d = energy.dim
    ref = as_reference(reference, d)
    n = check_count(n_particles, "n_particles", minimum=2)
    m = check_count(n_runs, "n_runs", minimum=2)
    move = check_move(move)
    n_moves = check_count(n_moves, "n_moves")
    n_leapfrog = check_count(n_leapfrog, "n_leapfrog")
    step1 = default_step(move, step_size)
    target_cess = check_fraction(target_cess, "target_cess")
    resample_threshold = check_fraction(resample_threshold, "resample_threshold")
    target_accept = check_fraction(MOVE_DEFAULTS[move][1] if target_accept is None else target_accept,
                                   "target_accept")
    max_steps = check_count(max_steps, "max_steps")
    seed = check_seed(seed)
    start = time.perf_counter()
    parts = evaluate(energy, ref, ref.sample(seed, m * n, STREAM_SMC_START))
    log_W = np.full((m, n), -np.log(n))
    log_z = np.zeros(m)
    beta = np.zeros(m)
    step = np.full(m, float(step_at(move, 0.0, step1, ref.scale)))
    betas: list[list[float]] = [[0.0] for _ in range(m)]
    accs: list[list[float]] = [[] for _ in range(m)]
    n_resampled = np.zeros(m, dtype=np.int64)
    rate = 2.0 if move == "mala" else 1.0
    counter = 0
    for k in range(max_steps + 1):
        active = np.flatnonzero(beta < 1.0)
        if active.size == 0:
            break
        if k == max_steps:
            raise SDEKitError(f"max_steps = {max_steps} temperatures were not enough to reach beta = 1 in "
                              f"{active.size} run(s) (at beta = {beta[active].min():.3g}); raise max_steps or "
                              f"lower target_cess")
        u = parts.u.reshape(m, n)[active]
        uq = parts.uq.reshape(m, n)[active]
        b_new = next_beta(beta[active], log_W[active], u, uq, target_cess)
        log_inc = incremental_log_weight(beta[active, None], b_new[:, None], u, uq)
        log_z[active] += rules.increment(log_W[active], log_inc)
        log_W[active] = normalise_log_weights(log_W[active] + log_inc)
        b_old = beta[active]
        beta[active] = b_new
        low = active[ess_fraction(log_W[active]) < resample_threshold]
        if low.size:
            z = counter_normals(seed, 1, m, stream=STREAM_SMC_RESAMPLE, draw_offset=k * m)[0, low]
            anc = systematic_resample(log_W[low], ndtr(z))
            rows = (low[:, None] * n + anc).reshape(-1)
            picked = parts.take(rows)
            dst = (low[:, None] * n + np.arange(n)[None, :]).reshape(-1)
            parts.x[dst], parts.u[dst], parts.g[dst] = picked.x, picked.u, picked.g
            parts.uq[dst], parts.gq[dst] = picked.uq, picked.gq
            log_W[low] = rules.after_resampling(log_W[low], anc)
            n_resampled[low] += 1
        rows = (active[:, None] * n + np.arange(n)[None, :]).reshape(-1)
        sub = parts.take(rows)
        step[active] *= step_at(move, beta[active], step1, ref.scale) / step_at(move, b_old, step1, ref.scale)
        a_run = np.zeros(active.size)
        for _ in range(n_moves):
            a_rows, counter = sweep(move, energy, ref, sub, np.repeat(beta[active], n), np.repeat(step[active], n),
                                    1, n_leapfrog, seed, STREAM_SMC_MOVES, rows, counter)
            a_move = a_rows.reshape(active.size, n).mean(axis=1)
            step[active] *= np.exp(np.clip(rate * (a_move - target_accept), -MAX_ADAPT, MAX_ADAPT))
            a_run += a_move / n_moves
        parts.x[rows], parts.u[rows], parts.g[rows], parts.uq[rows], parts.gq[rows] = sub.x, sub.u, sub.g, sub.uq, \
            sub.gq
        for j, r in enumerate(active):
            betas[r].append(float(beta[r]))
            accs[r].append(float(a_run[j]))
    total, se = log_mean_exp(log_z)
    return EvidenceResult(
        log_z=float(total), log_z_se=float(se), log_weights=log_W, ess=ess_fraction(log_W) * n,
        particles=parts.x.reshape(m, n, d), betas=[np.array(b) for b in betas], acceptance=[np.array(a) for a in accs],
        n_evaluations=energy.n_evaluations / (m * n), seconds=time.perf_counter() - start, method=f"smc[{move}]",
        extras={"log_z_runs": log_z, "n_resampled": n_resampled, "step_sizes": step})
