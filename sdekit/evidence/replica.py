"""log Z from a replica-exchange run: stepping-stone sampling or thermodynamic integration over its ladder.

`sdekit.mcmc.replica_exchange` with a Gaussian reference N(m, s^2 I) targets, at rung k,
pi_k ∝ gamma_k = exp(-beta_k V - U_ref), V = U - U_ref, U_ref = |x - m|^2 / (2 s^2), so that with beta_0 = 0 the
bottom rung's normaliser is known, Z_0 = (2 pi s^2)^(d/2), and Z_K = Z = int exp(-U). Between adjacent rungs

    Z_{k+1} / Z_k = E_{pi_k}[exp(-(beta_{k+1} - beta_k) V(x))]                                     (stepping stone)
    log Z_1 - log Z_0 = -int_0^1 E_{pi_beta}[V] d beta  ≈ -sum_k (beta_{k+1} - beta_k)(V_k + V_{k+1}) / 2   (TI)

(Xie, Lewis, Fan, Kuo & Chen 2011, "Improving marginal likelihood estimation for Bayesian phylogenetic model
selection", Systematic Biology 60(2); Gelman & Meng 1998 for thermodynamic integration). The expectations are
averages over the run's kept replica states (``keep_all=True``). Standard error by batch means: every run's draws are
cut into ``n_batches`` consecutive batches; the batch means of the K - 1 ratios (or of the K mean energies) over all
runs' batches give, by the delta method, Var log Z_hat ≈ g^T Cov(batch means) g / n_b with g_k = 1 / ratio_k
(stepping stone) or the trapezoid weights (TI), n_b = n_runs n_batches. The SE covers Monte Carlo error only:
stepping stone is consistent for any ladder, TI carries a discretisation error of the trapezoid rule in beta that
the SE does not include.

Only runs with a reference and beta_0 = 0 are supported: with power tempering (no reference) the bottom rung's
normaliser int exp(-beta_0 U) is unknown, and an SDEKitError says so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sdekit.diffusion.samplers.checks import check_count
from sdekit.errors import SDEKitError
from sdekit.evidence.energies import as_batch_energy
from sdekit.evidence.result import EvidenceResult
from sdekit.mcmc.result import MCMCResult
from sdekit.targets.gaussian import LOG_2PI

__all__ = ["REPLICA_DEFECTS", "REPLICA_METHODS", "replica_exchange_log_z", "stepping_stone_exponents"]

REPLICA_METHODS = ("stepping_stone", "thermodynamic_integration")


def _check_run(result: Any, target: Any) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    if not isinstance(result, MCMCResult) or "betas" not in result.extras or "round_trips" not in result.extras:
        raise SDEKitError(f"result must be the MCMCResult of sdekit.mcmc.replica_exchange; got "
                          f"{type(result).__name__}")
    ref = result.extras.get("reference")
    betas = np.asarray(result.extras["betas"])
    if ref is None:
        raise SDEKitError("result must come from replica_exchange with a reference (mean, sd): with power tempering "
                          "(no reference) the normaliser of the beta_0 rung is unknown, so log Z is not identified")
    if betas[0] != 0.0:
        raise SDEKitError(f"result's ladder must start at beta = 0 (the reference, whose normaliser is known); "
                          f"got betas[0] = {betas[0]}")
    samples = result.extras.get("replica_samples")
    if samples is None:
        raise SDEKitError("result must keep every replica's states: run replica_exchange with keep_all=True")
    if getattr(target, "dim", None) != samples.shape[-1]:
        raise SDEKitError(f"target must be the run's target (dim {samples.shape[-1]}); got dim "
                          f"{getattr(target, 'dim', None)!r}")
    mean, sd = ref
    return betas, np.asarray(mean, dtype=np.float64), float(sd), samples


def stepping_stone_exponents(v: np.ndarray, dbeta: np.ndarray) -> np.ndarray:
    """-(beta_{k+1} - beta_k) V(x) for x the states of rung k (the lower rung of each pair): v (runs, K, ...) ->
    (runs, K - 1, ...)."""
    return -dbeta.reshape((1, -1) + (1,) * (v.ndim - 2)) * v[:, :-1]


def _upper_rung_exponents(v: np.ndarray, dbeta: np.ndarray) -> np.ndarray:
    return -dbeta.reshape((1, -1) + (1,) * (v.ndim - 2)) * v[:, 1:]


# planted bugs of the estimator (tests): name -> (description, exponents rule)
REPLICA_DEFECTS = {
    "upper_rung_samples": ("stepping stone averaging exp(-(beta_{k+1} - beta_k) V) over rung k + 1's states instead of "
                           "rung k's", _upper_rung_exponents),
}


def replica_exchange_log_z(result: MCMCResult, target: Any, *, method: str = "stepping_stone",
                           n_batches: int = 8) -> EvidenceResult:
    """log Z of ``target`` (the run's own energy target) from a `sdekit.mcmc.replica_exchange` result run with a
    reference (mean, sd), a ladder starting at beta = 0 and ``keep_all=True`` (module docstring: Xie et al. 2011
    stepping stone, or thermodynamic integration by the trapezoid rule).

    method: "stepping_stone" (default; consistent for any ladder) or "thermodynamic_integration".
    n_batches: consecutive batches per run for the batch-means standard error (each run's draws must number at
    least 2 per batch).

    Returns an `EvidenceResult` with log_z, log_z_se (batch means over n_runs n_batches batches: a Student-t
    z-score with n_runs n_batches - 1 degrees of freedom), betas, acceptance = the ladder's swap acceptance,
    n_evaluations = the run's gradient evaluations per run, and extras "log_ratios" (K - 1,) (stepping stone:
    log Z_{k+1} / Z_k; TI: -(beta_{k+1} - beta_k)(V_k + V_{k+1}) / 2), "mean_energy_difference" (K,) E_k[V],
    "n_batches_total".
    """
    return replica_exchange_log_z_with(stepping_stone_exponents, result, target, method=method, n_batches=n_batches)


def replica_exchange_log_z_with(exponents: Any, result: MCMCResult, target: Any, *, method: str,
                                n_batches: int) -> EvidenceResult:
    """`replica_exchange_log_z` with ``exponents`` as the stepping-stone rule: `stepping_stone_exponents` or a planted
    bug from REPLICA_DEFECTS."""
    if method not in REPLICA_METHODS:
        raise SDEKitError(f"method must be one of {REPLICA_METHODS}; got {method!r}")
    betas, m, s, samples = _check_run(result, target)
    n_batches = check_count(n_batches, "n_batches")
    n_runs, n_rep, n_draws, d = samples.shape
    size = n_draws // n_batches
    if size < 2:
        raise SDEKitError(f"n_batches must leave at least 2 draws per batch; got {n_batches} batches of "
                          f"{n_draws} draws")
    x = np.ascontiguousarray(samples[:, :, :size * n_batches].reshape(-1, d))
    u, _ = as_batch_energy(target)(x)
    u_ref = 0.5 * np.sum((x - m) ** 2, axis=1) / s ** 2
    v = (u - u_ref).reshape(n_runs, n_rep, n_batches, size)
    if not np.all(np.isfinite(v)):
        raise SDEKitError("target's energy is not finite at some kept replica state; log Z cannot be estimated")
    log_z0 = 0.5 * d * (LOG_2PI + 2.0 * math.log(s))
    n_b = n_runs * n_batches
    dbeta = np.diff(betas)
    if method == "stepping_stone":
        a = exponents(v, dbeta)  # (runs, K - 1, batches, size)
        top = a.max(axis=(0, 2, 3))
        y = np.exp(a - top[None, :, None, None]).mean(axis=3)  # batch means (runs, K - 1, batches)
        y = y.transpose(0, 2, 1).reshape(n_b, n_rep - 1)
        ybar = y.mean(axis=0)
        log_ratios = top + np.log(ybar)
        grad = 1.0 / ybar
    else:
        y = v.mean(axis=3).transpose(0, 2, 1).reshape(n_b, n_rep)  # batch means of V per rung
        ybar = y.mean(axis=0)
        log_ratios = -0.5 * dbeta * (ybar[:-1] + ybar[1:])
        grad = np.zeros(n_rep)
        grad[:-1] -= 0.5 * dbeta
        grad[1:] -= 0.5 * dbeta
    cov = np.atleast_2d(np.cov(y, rowvar=False))
    se = math.sqrt(max(float(grad @ cov @ grad), 0.0) / n_b)
    return EvidenceResult(
        log_z=float(log_z0 + np.sum(log_ratios)), log_z_se=se, log_weights=None, ess=None, particles=None,
        betas=betas, acceptance=result.extras["swap_acceptance"], n_evaluations=float(result.extras["n_gradients"]),
        seconds=result.seconds if hasattr(result, "seconds") else 0.0, method=method,
        extras={"log_ratios": log_ratios, "mean_energy_difference": v.mean(axis=(0, 2, 3)), "n_batches_total": n_b})
