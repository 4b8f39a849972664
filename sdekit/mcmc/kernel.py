"""The compiled MCMC driver: many independent chains in parallel, one chain per Numba thread.

Every Metropolis-type sampler is a pure, compiled step with one signature,

    step(energy, p, x, grad, u, work, h, kp, mats, rng, k_tab, w_tab, f_tab) -> (u', a, div, nonfinite)

which moves the state (x, grad U(x), U(x)) of one chain in place (x and grad are overwritten, U is
returned), reports the Metropolis acceptance probability a (1 for unadjusted moves), whether the step
diverged and whether it evaluated a non-finite energy or gradient (a proposal it then rejected).
``work`` is a (WORK_ROWS, d) scratch array, ``kp`` the sampler's numeric parameters, ``mats`` a
(2, d, d) array of matrices (mass matrix factors, proposal factor), ``rng`` the chain's xoshiro256++
state (`sdekit.noise.streams`): each chain's numbers depend only on (seed, chain), so results never
change with the thread count. Row c of the arrays is chain ``chain_offset + c`` of the run (its stream), so
chains [a, b) run alone (offset a, their start points and step sizes) equal rows a..b-1 of one run of all.

`run_chains_kernel` loops warm-up (with per-chain dual-averaging step-size adaptation when asked) and
sampling, keeps every ``thin``-th state, counts each chain's non-finite proposals (and the 1-based step
of the first; the chain stops there when ``stop_on_nonfinite``), and records in ``status`` the step at
which a chain's own state turned non-finite (possible only for unadjusted samplers). This module sits
below `sdekit.mcmc.chains` (the Python driver) and `sdekit.mcmc.disk_cache` (which copies this
kernel's source), so neither imports the other's internals.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sdekit.mcmc.adaptation import dual_averaging_init, dual_averaging_update
from sdekit.noise.streams import seed_stream

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


def _run_chains(step, energy, p, x0, h0, kp, mats, n_warmup, n_draws, thin, adapt, target_accept, seed,
                chain_offset, stop_on_nonfinite, k_tab, w_tab, f_tab, draws, acc, pot, div, h_final, status, nonfinite,
                first_nonfinite):
    n_chains, d = x0.shape
    total = n_warmup + n_draws * thin
    for c in nb.prange(n_chains):
        rng = np.empty((1, 4), dtype=np.uint64)
        seed_stream(rng[0], seed, chain_offset + c, STREAM_MCMC)
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
        n_bad = 0
        for m in range(total):
            if m == n_warmup:  # warm-up over: sample with the averaged step
                if adapt and n_warmup > 0:
                    h = math.exp(da[3])
                h_final[c] = h
            u, a, dv, nf = step(energy, p, x, grad, u, work, h, kp, mats, rng, k_tab, w_tab, f_tab)
            if nf:
                n_bad += 1
                if n_bad == 1:
                    first_nonfinite[c] = m + 1
                    if stop_on_nonfinite:
                        break
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
        nonfinite[c] = n_bad


run_chains_kernel = nb.njit(parallel=True)(_run_chains)
