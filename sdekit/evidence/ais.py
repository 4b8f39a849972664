"""Annealed importance sampling (Neal 2001, "Annealed importance sampling", Statistics and Computing 11(2)).

Path: gamma_beta(x) = exp(-beta U(x)) q(x)^(1 - beta), q = N(m, C) normalised, so Z_0 = int gamma_0 = 1 and
Z_1 = Z = int exp(-U). With 0 = beta_0 < beta_1 < ... < beta_K = 1, each particle

    x_0 ~ q,   log w = 0;
    for k = 1..K:   log w += log gamma_beta_k(x_{k-1}) - log gamma_beta_{k-1}(x_{k-1})
                           = -(beta_k - beta_{k-1}) (U(x_{k-1}) + log q(x_{k-1})),
                    x_k ~ T_k(x_{k-1}, .)        (n_moves MALA or HMC steps leaving pi_beta_k invariant),

is an importance sample on the extended space, and E[w] = Z_1 / Z_0 = Z exactly (Neal 2001, sec. 2). The weight
uses x_{k-1}, the state *before* the move at beta_k. The estimate is log Z_hat = log mean_i w_i, with the
delta-method standard error sd(w) / (sqrt(n) mean(w)) (`sdekit.evidence.weights.log_mean_exp`); it is biased low
by about se^2 / 2.

Particles never interact and every step size is fixed by the schedule (`sdekit.evidence.schedule.step_at`), so
particle i's trajectory and weight depend only on (seed, particle_offset + i): the same for any n_particles
and any thread count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.diffusion.samplers.checks import check_count, check_seed
from sdekit.errors import SDEKitError
from sdekit.evidence.energies import BatchEnergy, GaussianReference, as_batch_energy, as_reference
from sdekit.evidence.moves import Particles, evaluate, sweep
from sdekit.evidence.result import EvidenceResult
from sdekit.evidence.schedule import check_betas, check_move, default_step, step_at
from sdekit.evidence.weights import ess_fraction, incremental_log_weight, log_mean_exp

__all__ = ["AIS_DEFECTS", "ais"]

STREAM_AIS_START = 0x41495330  # "AIS0": the particles' draws from q
STREAM_AIS_MOVES = 0x41495331  # "AIS1": the moves' normals

Mover = Callable[[Particles, float], np.ndarray]


def reweight_then_move(parts: Particles, log_w: np.ndarray, beta_from: float, beta_to: float,
                       move: Mover) -> tuple[np.ndarray, np.ndarray]:
    """One AIS step: log w += -(beta_k - beta_{k-1}) V(x_{k-1}), then the pi_beta_k-invariant moves."""
    log_w = log_w + incremental_log_weight(beta_from, beta_to, parts.u, parts.uq)
    return log_w, move(parts, beta_to)


@dataclass(frozen=True)
class AISStep:
    """How one temperature step is done (``step``); the planted bugs in AIS_DEFECTS replace it."""

    description: str
    step: Callable[[Particles, np.ndarray, float, float, Mover], tuple[np.ndarray, np.ndarray]]


def _move_then_reweight(parts: Particles, log_w: np.ndarray, beta_from: float, beta_to: float,
                        move: Mover) -> tuple[np.ndarray, np.ndarray]:
    acc = move(parts, beta_to)
    return log_w + incremental_log_weight(beta_from, beta_to, parts.u, parts.uq), acc


def _reweight_without_reference(parts: Particles, log_w: np.ndarray, beta_from: float, beta_to: float,
                                move: Mover) -> tuple[np.ndarray, np.ndarray]:
    log_w = log_w + incremental_log_weight(beta_from, beta_to, parts.u, np.zeros_like(parts.uq))
    return log_w, move(parts, beta_to)


STANDARD = AISStep("reweight at x_{k-1}, then move at beta_k", reweight_then_move)
AIS_DEFECTS = {
    "weight_after_move": AISStep(
        "the incremental weight evaluated after the move at beta_k (at x_k instead of x_{k-1})", _move_then_reweight),
    "no_reference_term": AISStep(
        "the incremental weight without the reference: -(beta_k - beta_{k-1}) U(x) instead of "
        "-(beta_k - beta_{k-1}) (U(x) + log q(x))", _reweight_without_reference),
}


def ais(target: Any, *, n_particles: int = 1000, betas: Any = 100, schedule: str = "sigmoid", reference: Any = None,
        move: str = "mala", n_moves: int = 1, step_size: float | None = None, n_leapfrog: int = 5,
        dim: int | None = None, seed: int = 0, particle_offset: int = 0) -> EvidenceResult:
    """Annealed importance sampling estimate of log Z, Z = int exp(-U(x)) dx (Neal 2001; module docstring).

    target: an sdekit energy target (njit ``energy_fn``) or a callable ``energy_and_grad(x (n, d)) -> (U (n,),
      grad U (n, d))`` with ``dim`` given. betas: an int K + 1 >= 2 (``schedule`` "sigmoid", "geometric" or
      "linear", `sdekit.evidence.schedule.annealing_betas`) or an increasing array from 0 to 1.
      reference: q, None (N(0, I)), (mean, sd) or an sdekit.targets.Gaussian. move: "mala" or "hmc" (identity
      mass, ``n_leapfrog`` steps), ``n_moves`` per temperature; step_size: the step at beta = 1 (MALA h, default
      0.1; HMC eps, default 0.2), scaled along the path by `sdekit.evidence.schedule.step_at`.
      particle_offset: the global index of the first particle (its random stream), so that runs over disjoint
      ranges of particles combine into one.

    Returns an `EvidenceResult` with log_z = log mean w, log_z_se (delta method), log_weights (n,), ess, the
    final particles (n, d), betas, the mean acceptance per temperature and n_evaluations per particle
    (energy-and-gradient evaluations: K n_moves for MALA, K n_moves n_leapfrog for HMC, plus 1).
    """
    return ais_with(STANDARD, target, n_particles=n_particles, betas=betas, schedule=schedule, reference=reference,
                    move=move, n_moves=n_moves, step_size=step_size, n_leapfrog=n_leapfrog, dim=dim, seed=seed,
                    particle_offset=particle_offset)


def ais_with(rule: AISStep, target: Any, *, n_particles: int, betas: Any, schedule: str, reference: Any, move: str,
             n_moves: int, step_size: float | None, n_leapfrog: int, dim: int | None, seed: int,
             particle_offset: int) -> EvidenceResult:
    """AIS's driver with ``rule`` as its temperature step: STANDARD or a planted bug from AIS_DEFECTS."""
    energy = as_batch_energy(target, dim)
    ref = as_reference(reference, energy.dim)
    n = check_count(n_particles, "n_particles")
    b = check_betas(betas, schedule)
    move = check_move(move)
    n_moves = check_count(n_moves, "n_moves")
    n_leapfrog = check_count(n_leapfrog, "n_leapfrog")
    step1 = default_step(move, step_size)
    seed = check_seed(seed)
    if isinstance(particle_offset, bool) or not isinstance(particle_offset, int | np.integer) \
            or not 0 <= int(particle_offset) < 2**63:
        raise SDEKitError(f"particle_offset must be a non-negative integer below 2**63; got {particle_offset!r}")
    offset = int(particle_offset)
    start = time.perf_counter()
    rows = np.arange(offset, offset + n)
    parts = evaluate(energy, ref, ref.sample(seed, n, STREAM_AIS_START, offset))
    log_w = np.zeros(n)
    acc = np.empty(b.shape[0] - 1)
    counter = [0]

    def do_moves(p: Particles, beta: float) -> np.ndarray:
        h = np.full(n, float(step_at(move, beta, step1, ref.scale)))
        a, counter[0] = sweep(move, energy, ref, p, np.full(n, beta), h, n_moves, n_leapfrog, seed, STREAM_AIS_MOVES,
                              rows, counter[0])
        return a

    for k in range(1, b.shape[0]):
        log_w, a = rule.step(parts, log_w, float(b[k - 1]), float(b[k]), do_moves)
        acc[k - 1] = float(np.mean(a))
    log_z, se = log_mean_exp(log_w)
    return _result(energy, ref, n, log_w, log_z, se, parts, b, acc, move, time.perf_counter() - start)


def _result(energy: BatchEnergy, ref: GaussianReference, n: int, log_w: np.ndarray, log_z: Any, se: Any,
            parts: Particles, b: np.ndarray, acc: np.ndarray, move: str, seconds: float) -> EvidenceResult:
    return EvidenceResult(log_z=float(log_z), log_z_se=float(se), log_weights=log_w,
                          ess=float(ess_fraction(log_w) * n), particles=parts.x, betas=b, acceptance=acc,
                          n_evaluations=energy.n_evaluations / n, seconds=seconds, method=f"ais[{move}]",
                          extras={"reference_mean": ref.mean, "reference_cov": ref.cov})
