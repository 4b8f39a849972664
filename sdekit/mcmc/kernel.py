"""The compiled MCMC driver: many independent chains in parallel, one chain per Numba thread.

Every Metropolis-type sampler is a pure, compiled step with one signature,

    step(energy, p, x, grad, u, work, h, kp, mats, rng, k_tab, w_tab, f_tab) -> (u', a, div, nonfinite)

which moves the state (x, grad U(x), U(x)) of one chain in place (x and grad are overwritten, U is
returned), reports the Metropolis acceptance probability a (1 for unadjusted moves), whether the step
diverged and whether it evaluated a non-finite energy or gradient (a proposal it then rejected).
``work`` is a (work_rows, max(d, n_stats)) scratch array (steps take d from x and slice rows to [:d]),
``kp`` the sampler's numeric parameters, ``mats`` the chain's (2, d, d) array of matrices (mass matrix
factors L and M^{-1}, proposal factor), ``rng`` the chain's xoshiro256++
state (`sdekit.noise.streams`): each chain's numbers depend only on (seed, chain), so results never
change with the thread count. Row c of the arrays is chain ``chain_offset + c`` of the run (its stream), so
chains [a, b) run alone (offset a, their start points and step sizes) equal rows a..b-1 of one run of all.

`run_chains_kernel` loops warm-up (with per-chain dual-averaging step-size adaptation when asked) and
sampling, keeps every ``thin``-th state, counts each chain's non-finite proposals (and the 1-based step
of the first; the chain stops there when ``stop_on_nonfinite``), and records in ``status`` the step at
which a chain's own state turned non-finite (possible only for unadjusted samplers). A step with per-
transition statistics (NUTS: tree depth, leapfrog steps) leaves them in ``work[work_rows - 1, :n_stats]``;
the driver sums them over the ``thin`` steps behind each draw into ``stats`` (chains, draws, n_stats), and over
all warm-up transitions (the step-size searches after each mass-matrix window included) into ``warmup_stats``
(chains, n_stats).
Mass-matrix adaptation (``mass_mode`` 1 diagonal, 2 dense; mats then holds one (2, d, d) per chain) follows
Stan's windowed warm-up: the positions of warm-up steps inside each window of ``windows`` (rows [start,
end)) are accumulated by Welford's recursions, and at the window's end the chain's M^{-1} becomes their
regularised covariance (`sdekit.mcmc.adaptation.set_mass_matrix`) and its step size is re-found
(doubling or halving it over whole transitions until the acceptance crosses the target) and its dual
averaging restarts. This module sits below `sdekit.mcmc.chains` (the Python driver) and
`sdekit.mcmc.disk_cache` (which copies this kernel's source), so neither imports the other's internals.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sdekit.mcmc.adaptation import dual_averaging_init, dual_averaging_update, set_mass_matrix, welford_update
from sdekit.noise.streams import seed_stream

STREAM_MCMC = 0x4D434D43  # "MCMC": the chains' stream id, distinct from the SDE kernels' 0 and 1
WORK_ROWS = 6
NO_FAILURE = -1
RETUNE_TRIALS = 20  # at most 2^20 times larger or smaller steps after a new mass matrix


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
                first_nonfinite, work_rows, stats, warmup_stats, mass_mode, windows):
    n_chains, d = x0.shape
    total = n_warmup + n_draws * thin
    n_stats = stats.shape[2]
    own_mats = mats.shape[0] > 1
    for c in nb.prange(n_chains):
        rng = np.empty((1, 4), dtype=np.uint64)
        seed_stream(rng[0], seed, chain_offset + c, STREAM_MCMC)
        x = x0[c].copy()
        grad = np.empty(d)
        work = np.zeros((work_rows, max(d, n_stats)))
        st_sum = np.zeros(max(n_stats, 1))
        mats_c = mats[c] if own_mats else mats[0]
        w_mean = np.zeros(d)
        w_delta = np.zeros(d)
        w_m2 = np.zeros((d, d) if mass_mode == 2 else (1, d))
        w_n = 0
        w_k = 0
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
            u, a, dv, nf = step(energy, p, x, grad, u, work, h, kp, mats_c, rng, k_tab, w_tab, f_tab)
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
                for s in range(n_stats):
                    warmup_stats[c, s] += work[work_rows - 1, s]
                if adapt:
                    h = dual_averaging_update(da, a, target_accept)
                if mass_mode > 0 and w_k < windows.shape[0] and m >= windows[w_k, 0]:
                    w_n += 1
                    welford_update(w_mean, w_m2, w_n, x, w_delta)
                    if m == windows[w_k, 1] - 1:
                        set_mass_matrix(mats_c, w_m2, w_n)
                        w_n = 0
                        w_k += 1
                        w_mean[:] = 0.0
                        w_m2[:] = 0.0
                        if adapt:
                            # a step size for the new metric (Hoffman & Gelman 2014, Algorithm 4, with whole
                            # transitions, each a valid move): double h while the acceptance exceeds the target,
                            # or halve it while it falls short, until it crosses; then restart dual averaging
                            u, a, dv, nf = step(energy, p, x, grad, u, work, h, kp, mats_c, rng, k_tab, w_tab, f_tab)
                            n_bad += nf
                            for s in range(n_stats):
                                warmup_stats[c, s] += work[work_rows - 1, s]
                            grow = a > target_accept
                            for _ in range(RETUNE_TRIALS):
                                h_next = 2.0 * h if grow else 0.5 * h
                                u, a, dv, nf = step(energy, p, x, grad, u, work, h_next, kp, mats_c, rng, k_tab,
                                                    w_tab, f_tab)
                                n_bad += nf
                                for s in range(n_stats):
                                    warmup_stats[c, s] += work[work_rows - 1, s]
                                if (a > target_accept) != grow:
                                    break
                                h = h_next
                            dual_averaging_init(da, h)
                continue
            a_sum += a
            d_sum += dv
            for s in range(n_stats):
                st_sum[s] += work[work_rows - 1, s]
            j = m - n_warmup + 1
            if j % thin == 0:
                k = j // thin - 1
                for i in range(d):
                    draws[c, k, i] = x[i]
                acc[c, k] = a_sum / thin
                pot[c, k] = u
                div[c, k] = d_sum
                for s in range(n_stats):
                    stats[c, k, s] = st_sum[s]
                    st_sum[s] = 0.0
                a_sum = 0.0
                d_sum = 0
        nonfinite[c] = n_bad


run_chains_kernel = nb.njit(parallel=True)(_run_chains)
# the same driver compiled without threads (a cheaper compile, the same numbers: every chain's draws depend only
# on (seed, chain)): runs on one thread, and the planted-bug variants of `sdekit.mcmc.defects`
run_chains_serial = nb.njit(_run_chains)
