"""The generic MCMC driver: many independent chains in parallel, one chain per Numba thread.

Every sampler is a pure, compiled step with one signature,

    step(energy, p, x, grad, u, work, h, kp, mats, rng, k_tab, w_tab, f_tab, defect) -> (u', a, div)

which moves the state (x, grad U(x), U(x)) of one chain in place (x and grad are overwritten, U is
returned), reports the Metropolis acceptance probability a (1 for unadjusted moves) and whether the
step diverged. ``work`` is a (WORK_ROWS, d) scratch array, ``kp`` the sampler's numeric parameters,
``mats`` a (2, d, d) array of matrices (mass matrix factors, proposal factor), ``rng`` the chain's
xoshiro256++ state (`sdekit.noise.streams`): each chain's numbers depend only on (seed, chain), so
results never change with the thread count. ``defect`` is 0 in normal use; the power studies plant
documented bugs through it (see each sampler's DEFECTS).

`run_chains` loops warm-up (with per-chain dual-averaging step-size adaptation when asked) and
sampling, and keeps every ``thin``-th state. A chain whose state turns non-finite (possible only
for unadjusted samplers; adjusted ones reject such proposals) stops the run with
`ChainNonFiniteError` naming the chain and the step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np

from sdekit.diffusion.samplers.checks import check_count, check_real, check_seed
from sdekit.errors import ChainNonFiniteError, SDEKitError
from sdekit.mcmc.adaptation import dual_averaging_init, dual_averaging_update
from sdekit.mcmc.result import MCMCResult
from sdekit.noise.streams import seed_stream
from sdekit.noise.ziggurat import ZIG_F, ZIG_K, ZIG_W
from sdekit.targets.energy import check_energy_target

STREAM_MCMC = 0x4D434D43  # "MCMC": the chains' stream id, distinct from the SDE kernels' 0 and 1
WORK_ROWS = 6
NO_FAILURE = -1


def _finite_state(u, grad):
    if not math.isfinite(u):
        return False
    for i in range(grad.shape[0]):
        if not math.isfinite(grad[i]):
            return False
    return True


finite_state = nb.njit(cache=True)(_finite_state)


@nb.njit(cache=True)
def metropolis_accept(log_u, log_r, x, grad, u, y, gy, uy):
    """Accept the proposal (y, grad U(y), U(y)) when log u < log r, copying it into (x, grad); returns
    (the chain's U, the acceptance probability min(1, e^{log r}))."""
    accept_prob = 1.0 if log_r >= 0.0 else math.exp(log_r)
    if log_u < log_r:
        for i in range(x.shape[0]):
            x[i] = y[i]
            grad[i] = gy[i]
        return uy, accept_prob
    return u, accept_prob


def _run_chains(step, energy, p, x0, h0, kp, mats, n_warmup, n_draws, thin, adapt, target_accept, seed, defect,
                k_tab, w_tab, f_tab, draws, acc, pot, div, h_final, status):
    n_chains, d = x0.shape
    total = n_warmup + n_draws * thin
    for c in nb.prange(n_chains):
        rng = np.empty((1, 4), dtype=np.uint64)
        seed_stream(rng[0], seed, c, STREAM_MCMC)
        x = x0[c].copy()
        grad = np.empty(d)
        work = np.zeros((WORK_ROWS, d))
        da = np.empty(5)
        u = energy(x, p, grad)
        if not finite_state(u, grad):
            status[c] = 0
            continue
        h = h0[c]
        if adapt:
            dual_averaging_init(da, h)
        a_sum = 0.0
        d_sum = 0
        for m in range(total):
            if m == n_warmup:  # warm-up over: sample with the averaged step
                if adapt and n_warmup > 0:
                    h = math.exp(da[3])
                h_final[c] = h
            u, a, dv = step(energy, p, x, grad, u, work, h, kp, mats, rng, k_tab, w_tab, f_tab, defect)
            if not math.isfinite(u):
                status[c] = m + 1
                break
            if m < n_warmup:
                if adapt:
                    h = dual_averaging_update(da, a, target_accept)
                continue
            a_sum += a
            d_sum += dv
            j = m - n_warmup + 1
            if j % thin == 0:
                k = j // thin - 1
                for i in range(d):
                    draws[c, k, i] = x[i]
                acc[c, k] = a_sum / thin
                pot[c, k] = u
                div[c, k] = d_sum
                a_sum = 0.0
                d_sum = 0


run_chains_kernel = nb.njit(parallel=True)(_run_chains)


def initial_positions(target: Any, x0: Any, n_chains: int, seed: int) -> np.ndarray:
    """Starting points, (n_chains, d): x0=None draws N(0, I) (seeded by ``seed``); x0="target" draws exactly
    from the target (``target.sample``: for stationarity checks); an array of shape (d,) is repeated,
    one of shape (n_chains, d) is used as is."""
    d = target.dim
    if x0 is None:
        return np.random.default_rng([seed, 0x1A17]).standard_normal((n_chains, d))
    if isinstance(x0, str):
        if x0 != "target":
            raise SDEKitError(f"x0 must be None, 'target' or an array; got {x0!r}")
        if not hasattr(target, "sample"):
            raise SDEKitError(f"x0='target' needs exact sampling, and {type(target).__name__} has no sample()")
        return np.ascontiguousarray(target.sample(n_chains, seed=np.random.SeedSequence([seed, 0x1A17])),
                                    dtype=np.float64)
    return per_chain_array(x0, n_chains, d, "x0")


def per_chain_array(value: Any, n_chains: int, d: int, name: str) -> np.ndarray:
    """``value`` as a finite C-contiguous (n_chains, d) float64 array: shape (d,) is repeated for every chain
    (a scalar too when d = 1), shape (n_chains, d) is used as is; else SDEKitError naming ``name``."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"{name} must be numeric of shape ({d},) or (n_chains, {d}) = ({n_chains}, {d})") from exc
    if arr.ndim == 0 and d == 1:
        arr = arr.reshape(1)
    if arr.shape == (d,):
        arr = np.tile(arr, (n_chains, 1))
    if arr.shape != (n_chains, d):
        raise SDEKitError(f"{name} must have shape ({d},) or (n_chains, d) = ({n_chains}, {d}); got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise SDEKitError(f"{name} must be finite")
    return np.ascontiguousarray(arr)


def step_sizes(step_size: Any, n_chains: int, name: str = "step_size") -> np.ndarray:
    """A positive step size per chain, (n_chains,), from a scalar or an (n_chains,) array."""
    arr = np.array(step_size, dtype=np.float64) if not isinstance(step_size, bool) else None
    if arr is None or not (arr.ndim == 0 or arr.shape == (n_chains,)):
        raise SDEKitError(f"{name} must be a positive number or an array of shape (n_chains,) = ({n_chains},); "
                          f"got {step_size!r}")
    arr = np.broadcast_to(arr, (n_chains,)).copy()
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise SDEKitError(f"{name} must be positive and finite; got {step_size!r}")
    return arr


def run_chains(step: Callable, target: Any, *, sampler: str, step_size: Any, kernel_params: np.ndarray,
               mats: np.ndarray | None = None, n_chains: int = 4, n_draws: int = 1000, n_warmup: int = 1000,
               thin: int = 1, adapt: bool = False, target_accept: float = 0.8, seed: int = 0, x0: Any = None,
               defect: int = 0) -> MCMCResult:
    """Run ``n_chains`` chains of ``step`` on ``target`` (an energy target: dim, energy_fn, params).

    Warm-up: ``n_warmup`` steps, adapting each chain's step size by dual averaging to ``target_accept``
    when ``adapt``; sampling: ``n_draws`` draws, each ``thin`` steps apart. Returns an `MCMCResult`.
    """
    check_energy_target(target)
    n_chains = check_count(n_chains, "n_chains")
    n_draws = check_count(n_draws, "n_draws")
    n_warmup = check_count(n_warmup, "n_warmup", minimum=0)
    thin = check_count(thin, "thin")
    seed = check_seed(seed)
    target_accept = check_real(target_accept, "target_accept", lo=0.0, strict=True)
    if target_accept >= 1.0:
        raise SDEKitError(f"target_accept must be in (0, 1); got {target_accept}")
    h0 = step_sizes(step_size, n_chains)
    d = target.dim
    xs = initial_positions(target, x0, n_chains, seed)
    if mats is None:
        mats = np.broadcast_to(np.eye(d), (2, d, d)).copy()
    kp = np.ascontiguousarray(kernel_params, dtype=np.float64)
    draws = np.empty((n_chains, n_draws, d))
    acc = np.empty((n_chains, n_draws))
    pot = np.empty((n_chains, n_draws))
    div = np.zeros((n_chains, n_draws), dtype=np.int64)
    h_final = h0.copy()
    status = np.full(n_chains, NO_FAILURE, dtype=np.int64)
    args = (target.params, xs, h0, kp, mats, n_warmup, n_draws, thin, bool(adapt), target_accept, np.uint64(seed),
            int(defect), ZIG_K, ZIG_W, ZIG_F, draws, acc, pot, div, h_final, status)
    from sdekit.mcmc.disk_cache import cached_kernel  # here: disk_cache imports this module

    kernel = cached_kernel(step, target.energy_fn)
    start = time.perf_counter()
    if kernel is not None:
        kernel(*args)
    else:
        run_chains_kernel(step, target.energy_fn, *args)
    seconds = time.perf_counter() - start
    bad = np.flatnonzero(status != NO_FAILURE)
    if bad.size:
        c = int(bad[np.argmin(status[bad])])
        raise ChainNonFiniteError(c, int(status[c]), float(h_final[c]),
                                  "energy or gradient at the initial position" if status[c] == 0 else "state")
    return MCMCResult(draws, acc, pot, div, h_final, sampler, n_warmup, thin, seconds)
