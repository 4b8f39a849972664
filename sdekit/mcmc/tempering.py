"""Tempering: replica exchange (parallel tempering) and simulated annealing on energy targets.

Tempered energies. Replica k targets pi_k(x) ∝ exp(-E_k(x)) with

    E_k(x) = beta_k U(x) + (1 - beta_k) U_ref(x) = beta_k V(x) + U_ref(x),   V = U - U_ref,

where U_ref is either absent (U_ref = 0: power tempering, pi_k ∝ pi^beta_k, which needs beta_k > 0) or
the energy of a Gaussian reference N(m, s^2 I), U_ref(x) = |x - m|^2 / (2 s^2), so that beta = 0 is the
reference itself and pi_beta ∝ pi^beta q^(1 - beta) (Surjanovic et al. 2022, "Parallel tempering with a
variational reference", NeurIPS). Simulated annealing uses E = U / T (beta = 1 / T, no reference).

The local moves are sdekit's own compiled steps (`mala_step`, `rwm_step`), unchanged: they are given the
njit adapter ``tempered_energy(x, tp, grad)`` as their energy, with tp = (target params, ctl, m, gU)
(ctl = [beta, has_ref, 1/s^2, U(x), U_ref(x)] a mutable array, gU a scratch gradient). The adapter calls
the target's ``energy_fn`` with its own params, mixes in beta and the reference, and leaves U and U_ref
of the point in ctl so the driver can keep V of every replica for the swaps without extra gradient
evaluations. It is a closure over the target's energy dispatcher, made once per energy function and
process (`tempered_energy_for`).

Replica exchange (Swendsen & Wang 1986; Geyer 1991; Hukushima & Nemoto 1996): the joint law
prod_k pi_k(x_k) is left invariant by the local moves and by swaps of adjacent replicas i, j = i + 1
accepted with probability min(1, r),

    log r = E_i(x_i) + E_j(x_j) - E_i(x_j) - E_j(x_i) = (beta_i - beta_j) (V(x_i) - V(x_j)),

since the U_ref terms cancel (with no reference V = U). Swaps follow the deterministic even/odd scheme
(DEO: pairs (0,1), (2,3), ... on even rounds, (1,2), (3,4), ... on odd rounds; Okabe et al. 2001,
Chem. Phys. Lett. 335; Syed, Bouchard-Côté, Deligiannidis & Doucet 2022, "Non-reversible parallel
tempering: a scalable highly parallel MCMC scheme", JRSSB 84(2)), which makes the replicas' index
process non-reversible and its round trips fast.

All runs (PT runs or annealing chains) are independent, one per ``nb.prange`` iteration, each with its
own xoshiro256++ stream `seed_stream(seed, run, stream)`: the numbers never depend on the thread count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np

from sdekit.diffusion.samplers.checks import check_count, check_positive, check_real, check_seed
from sdekit.errors import ChainNonFiniteError, NonFiniteProposalError, SDEKitError
from sdekit.mcmc.adaptation import dual_averaging_init, dual_averaging_update
from sdekit.mcmc.chains import check_on_nonfinite, draw_arrays, initial_positions
from sdekit.mcmc.diagnostics import finish
from sdekit.mcmc.kernel import STREAM_MCMC, WORK_ROWS, finite_state
from sdekit.mcmc.mala import mala_step
from sdekit.mcmc.result import MCMCResult
from sdekit.mcmc.rwm import rwm_step
from sdekit.mcmc.variants import Defect, with_helpers
from sdekit.noise.streams import next_double_row, seed_stream
from sdekit.noise.ziggurat import ZIG_F, ZIG_K, ZIG_W
from sdekit.targets import Gaussian
from sdekit.targets.energy import check_energy_target, energy_function, probe_energy
from sdekit.targets.gaussian import float_array

__all__ = ["DEFECTS", "SCHEDULES", "annealing_schedule", "geometric_ladder", "replica_exchange",
           "simulated_annealing", "tempered_energy_for", "tempered_gaussian_law"]

STREAM_PT = STREAM_MCMC + 2  # replica exchange runs; annealing chains use STREAM_MCMC (the streams of `mala`)
SCHEDULES = ("geometric", "linear", "logarithmic")
# local kernel: (step, default step size at beta = 1, default target acceptance)
LOCAL = {
    "mala": (mala_step, 0.1, 0.574),
    "rwm": (rwm_step, 0.5, 0.234),
}
NO_FAILURE = -1


# --------------------------------------------------------------------------------------------
# the tempered energy
# --------------------------------------------------------------------------------------------

@nb.njit
def _mix(beta, u, ur, gu, x, m, has_ref, inv_s2, grad):
    """E = beta U + (1 - beta) U_ref and grad E = beta gU + (1 - beta) (x - m) / s^2 (no reference: beta U)."""
    d = x.shape[0]
    if not has_ref:
        for i in range(d):
            grad[i] = beta * gu[i]
        return beta * u
    if beta == 1.0:
        for i in range(d):
            grad[i] = gu[i]
        return u
    if beta == 0.0:  # the reference itself (U may be infinite there: 0 * inf must not enter)
        for i in range(d):
            grad[i] = (x[i] - m[i]) * inv_s2
        return ur
    for i in range(d):
        grad[i] = beta * gu[i] + (1.0 - beta) * (x[i] - m[i]) * inv_s2
    return beta * u + (1.0 - beta) * ur


_ADAPTERS: dict[Any, Callable] = {}


def tempered_energy_for(energy_fn: Callable) -> Callable:
    """The njit adapter ``tempered_energy(x, tp, grad) -> E_beta(x)`` for a target's ``energy_fn``.

    tp = (params, ctl, m, gU): ``params`` the target's, ctl = [beta, has_ref (0/1), 1/s^2, U, U_ref] (the
    adapter writes U(x) and U_ref(x) of the evaluated point into ctl[3], ctl[4] and grad U into gU),
    m the reference mean (d,). Returns E = beta U + (1 - beta) U_ref, U_ref = |x - m|^2 / (2 s^2)
    (E = beta U without reference) and writes grad E. One adapter per energy function and process.
    """
    adapter = _ADAPTERS.get(energy_fn)
    if adapter is None:
        fn = energy_fn

        @nb.njit
        def tempered_energy(x, tp, grad):
            p = tp[0]
            ctl = tp[1]
            m = tp[2]
            gu = tp[3]
            u = fn(x, p, gu)
            has_ref = ctl[1] != 0.0
            ur = 0.0
            if has_ref:
                for i in range(x.shape[0]):
                    r = x[i] - m[i]
                    ur += r * r
                ur *= 0.5 * ctl[2]
            ctl[3] = u
            ctl[4] = ur
            return _mix(ctl[0], u, ur, gu, x, m, has_ref, ctl[2], grad)

        adapter = _ADAPTERS[energy_fn] = tempered_energy
    return adapter


# --------------------------------------------------------------------------------------------
# the kernel: n_runs independent runs of K replicas (annealing: K = 1 and a beta per round)
# --------------------------------------------------------------------------------------------

@nb.njit
def swap_log_ratio(beta_lo, beta_hi, u_lo, u_hi, ur_lo, ur_hi):
    """log r of swapping adjacent replicas: (beta_lo - beta_hi) (V(x_lo) - V(x_hi)), V = U - U_ref."""
    return (beta_lo - beta_hi) * ((u_lo - ur_lo) - (u_hi - ur_hi))


@nb.njit
def _one_run(r, step, energy, p, ref_mean, has_ref, inv_s2, beta_tab, hscale_tab, h0, kp, mats, x0,
             n_local, n_warmup, n_rounds, thin, adapt, target_accept, seed, stream, stop_on_nonfinite,
             k_tab, w_tab, f_tab, keep_all, draws, all_draws, acc, pot, div, swap_acc, swap_cnt, trips,
             best_u, best_x, h_final, status, nonfinite, first_nonfinite):
    """Run r: K replicas through n_warmup + n_rounds rounds (local moves, then one DEO swap sweep).
    Non-finite proposals of the local moves are counted in nonfinite[r]; first_nonfinite[r] = (1-based round,
    replica) of the first; with stop_on_nonfinite the run stops there."""
    _, n_rep, d = x0.shape
    n_tab = beta_tab.shape[0]
    top = n_rep - 1
    rng = np.empty((1, 4), dtype=np.uint64)
    seed_stream(rng[0], seed, r, stream)
    ctl = np.zeros(5)
    ctl[1] = 1.0 if has_ref else 0.0
    ctl[2] = inv_s2
    gu = np.empty(d)
    tp = (p, ctl, ref_mean, gu)
    xs = x0[r].copy()
    gs = np.empty((n_rep, d))  # grad E_k at x_k
    gus = np.empty((n_rep, d))  # grad U at x_k
    es = np.empty(n_rep)  # E_k(x_k)
    us = np.empty(n_rep)  # U(x_k)
    urs = np.empty(n_rep)  # U_ref(x_k)
    cur_beta = np.empty(n_rep)
    h = h0.copy()
    da = np.empty((n_rep, 5))
    work = np.zeros((WORK_ROWS, d))
    prev = np.empty(d)
    label = np.arange(n_rep)  # label[level] = the walker (replica index) at that level
    phase = np.zeros(n_rep, dtype=np.int64)  # per walker: 1 = left the bottom, 2 = then reached the top
    ok = True
    for k in range(n_rep):
        ctl[0] = beta_tab[0, k]
        cur_beta[k] = ctl[0]
        es[k] = energy(xs[k], tp, gs[k])
        us[k] = ctl[3]
        urs[k] = ctl[4]
        for i in range(d):
            gus[k, i] = gu[i]
        if not finite_state(es[k], gs[k]):
            status[r] = k
            ok = False
            break
        if adapt:
            dual_averaging_init(da[k], h[k])
    if not ok:
        return
    best = us[top]
    for i in range(d):
        best_x[r, i] = xs[top, i]
    a_top = 0.0
    d_top = 0
    n_total = n_warmup + n_rounds
    for t in range(n_total):
        sampling = t >= n_warmup
        if t == n_warmup:
            if adapt and n_warmup > 0:
                for k in range(n_rep):
                    h[k] = math.exp(da[k, 3])
            for k in range(n_rep):
                h_final[r, k] = h[k]
            for lv in range(n_rep):
                phase[label[lv]] = 1 if lv == 0 else 0
        row = t - n_warmup if sampling else 0
        if row >= n_tab:
            row = n_tab - 1
        # local moves
        for k in range(n_rep):
            beta = beta_tab[row, k]
            if beta != cur_beta[k]:
                es[k] = _mix(beta, us[k], urs[k], gus[k], xs[k], ref_mean, has_ref, inv_s2, gs[k])
                cur_beta[k] = beta
            ctl[0] = beta
            hk = h[k] * hscale_tab[row, k]
            for _m in range(n_local):
                x = xs[k]
                for i in range(d):
                    prev[i] = x[i]
                e_new, a, dv, nf = step(energy, tp, x, gs[k], es[k], work, hk, kp, mats, rng, k_tab, w_tab, f_tab)
                if nf:
                    nonfinite[r] += 1
                    if first_nonfinite[r, 0] == 0:
                        first_nonfinite[r, 0] = t + 1
                        first_nonfinite[r, 1] = k
                        if stop_on_nonfinite:
                            return
                es[k] = e_new
                moved = False
                for i in range(d):
                    if x[i] != prev[i]:
                        moved = True
                if moved:
                    us[k] = ctl[3]
                    urs[k] = ctl[4]
                    for i in range(d):
                        gus[k, i] = gu[i]
                if not sampling and adapt:
                    hk = dual_averaging_update(da[k], a, target_accept)
                    h[k] = hk
                if k == top:
                    if sampling:
                        a_top += a
                        d_top += dv
                    if us[top] < best:
                        best = us[top]
                        for i in range(d):
                            best_x[r, i] = xs[top, i]
        # swaps of adjacent pairs, deterministic even/odd
        for lo in range(t % 2, n_rep - 1, 2):
            hi = lo + 1
            log_r = swap_log_ratio(cur_beta[lo], cur_beta[hi], us[lo], us[hi], urs[lo], urs[hi])
            if log_r != log_r:
                log_r = -math.inf
            a = 1.0 if log_r >= 0.0 else math.exp(log_r)
            log_u = math.log(next_double_row(rng, 0) + 1e-300)
            if sampling:
                swap_acc[r, lo] += a
                swap_cnt[r, lo] += 1
            if log_u < log_r:
                for i in range(d):
                    tmp = xs[lo, i]
                    xs[lo, i] = xs[hi, i]
                    xs[hi, i] = tmp
                    tmp = gus[lo, i]
                    gus[lo, i] = gus[hi, i]
                    gus[hi, i] = tmp
                tmp = us[lo]
                us[lo] = us[hi]
                us[hi] = tmp
                tmp = urs[lo]
                urs[lo] = urs[hi]
                urs[hi] = tmp
                w = label[lo]
                label[lo] = label[hi]
                label[hi] = w
                es[lo] = _mix(cur_beta[lo], us[lo], urs[lo], gus[lo], xs[lo], ref_mean, has_ref, inv_s2, gs[lo])
                es[hi] = _mix(cur_beta[hi], us[hi], urs[hi], gus[hi], xs[hi], ref_mean, has_ref, inv_s2, gs[hi])
        if not sampling:
            continue
        # round trips of the walkers: bottom -> top -> bottom
        w = label[0]
        if phase[w] == 2:
            trips[r] += 1
        phase[w] = 1
        w = label[top]
        if phase[w] == 1:
            phase[w] = 2
        if us[top] < best:
            best = us[top]
            for i in range(d):
                best_x[r, i] = xs[top, i]
        s = t - n_warmup
        if (s + 1) % thin == 0:
            j = s // thin
            if j < draws.shape[1]:
                for i in range(d):
                    draws[r, j, i] = xs[top, i]
                acc[r, j] = a_top / (thin * n_local)
                pot[r, j] = us[top]
                div[r, j] = d_top
                if keep_all:
                    for k in range(n_rep):
                        for i in range(d):
                            all_draws[r, k, j, i] = xs[k, i]
            a_top = 0.0
            d_top = 0
    best_u[r] = best


def _tempered_runs(step, energy, p, ref_mean, has_ref, inv_s2, beta_tab, hscale_tab, h0, kp, mats, x0,
                   n_local, n_warmup, n_rounds, thin, adapt, target_accept, seed, stream, stop_on_nonfinite,
                   k_tab, w_tab, f_tab, keep_all, draws, all_draws, acc, pot, div, swap_acc, swap_cnt, trips,
                   best_u, best_x, h_final, status, nonfinite, first_nonfinite):
    for r in nb.prange(x0.shape[0]):
        _one_run(np.int64(r), step, energy, p, ref_mean, has_ref, inv_s2, beta_tab, hscale_tab, h0, kp, mats, x0,
                 n_local, n_warmup, n_rounds, thin, adapt, target_accept, seed, stream, stop_on_nonfinite,
                 k_tab, w_tab, f_tab, keep_all, draws, all_draws, acc, pot, div, swap_acc, swap_cnt, trips,
                 best_u, best_x, h_final, status, nonfinite, first_nonfinite)


tempered_runs_kernel = nb.njit(parallel=True)(_tempered_runs)
tempered_runs_serial = nb.njit(_tempered_runs)  # one thread: the same numbers, a cheaper compile


def _runs_kernel() -> Any:
    """The compiled runs for the current Numba thread count (the serial twin on one thread)."""
    return tempered_runs_serial if nb.get_num_threads() == 1 else tempered_runs_kernel


# --------------------------------------------------------------------------------------------
# planted bugs (power studies and tests; run through sdekit.mcmc.defects.planted)

@nb.njit
def reversed_swap_log_ratio(beta_lo, beta_hi, u_lo, u_hi, ur_lo, ur_hi):
    """The swap exponent with its sign reversed: -(beta_lo - beta_hi) (V(x_lo) - V(x_hi))."""
    return -((beta_lo - beta_hi) * ((u_lo - ur_lo) - (u_hi - ur_hi)))


@nb.njit
def swap_log_ratio_without_reference(beta_lo, beta_hi, u_lo, u_hi, ur_lo, ur_hi):
    """The swap with U in place of V = U - U_ref: (beta_lo - beta_hi) (U(x_lo) - U(x_hi))."""
    return (beta_lo - beta_hi) * (u_lo - u_hi)


def _swap_variant(rule: Any) -> Any:
    return with_helpers(tempered_runs_kernel, _one_run=with_helpers(_one_run, swap_log_ratio=rule))


DEFECTS = {
    "reversed_swap_exponent": Defect(
        "swap acceptance with the sign of the exponent reversed: log r = -(beta_i - beta_j)(V(x_i) - V(x_j))",
        _swap_variant(reversed_swap_log_ratio)),
    "swap_without_reference": Defect(
        "swap without the reference term: log r = (beta_i - beta_j)(U(x_i) - U(x_j)) (U instead of U - U_ref)",
        _swap_variant(swap_log_ratio_without_reference)),
}


def _run(kernel: Any, target: Any, local: str, ref: tuple[np.ndarray, float] | None, beta_tab: np.ndarray,
         hscale_tab: np.ndarray, h0: np.ndarray, x0: np.ndarray, *, n_local: int, n_warmup: int, n_rounds: int,
         thin: int, adapt: bool, target_accept: float, seed: int, stream: int, on_nonfinite: str, keep_all: bool,
         sampler: str) -> tuple[MCMCResult, dict[str, np.ndarray]]:
    """Call ``kernel`` (`tempered_runs_kernel` or a planted variant) and pack the beta = 1 (last) replica's
    draws into an MCMCResult (not yet diagnosed: the callers add their extras, then `finish` it)."""
    step = LOCAL[local][0]
    probe_energy(energy_function(target), target.params, x0[0, -1])
    d = target.dim
    n_runs, n_rep, _ = x0.shape
    n_draws = n_rounds // thin
    mats = np.broadcast_to(np.eye(d), (2, d, d)).copy()
    kp = np.zeros(1)  # mala: unused; rwm: 0.0 = gaussian proposal, mats[0] = I its Cholesky factor
    ref_mean = np.zeros(d) if ref is None else ref[0]
    inv_s2 = 0.0 if ref is None else 1.0 / ref[1] ** 2
    draws, acc, pot, div = draw_arrays(n_runs, n_draws, d, "n_rounds")
    all_draws = draw_arrays(n_runs * n_rep, n_draws, d, "n_rounds")[0].reshape(n_runs, n_rep, n_draws, d) \
        if keep_all else np.empty((1, 1, 1, d))
    swap_acc = np.zeros((n_runs, max(n_rep - 1, 1)))
    swap_cnt = np.zeros((n_runs, max(n_rep - 1, 1)), dtype=np.int64)
    trips = np.zeros(n_runs, dtype=np.int64)
    best_u = np.full(n_runs, np.inf)
    best_x = np.zeros((n_runs, d))
    h_final = np.broadcast_to(h0, (n_runs, n_rep)).copy()
    status = np.full(n_runs, NO_FAILURE, dtype=np.int64)
    nonfinite = np.zeros(n_runs, dtype=np.int64)
    first_nonfinite = np.zeros((n_runs, 2), dtype=np.int64)
    start = time.perf_counter()
    kernel(step, tempered_energy_for(energy_function(target)), target.params, ref_mean, ref is not None,
           inv_s2, beta_tab, hscale_tab, h0, kp, mats, x0, n_local, n_warmup, n_rounds, thin,
           bool(adapt), float(target_accept), np.uint64(seed), np.uint64(stream), on_nonfinite == "raise",
           ZIG_K, ZIG_W, ZIG_F, bool(keep_all), draws, all_draws, acc, pot, div, swap_acc, swap_cnt,
           trips, best_u, best_x, h_final, status, nonfinite, first_nonfinite)
    seconds = time.perf_counter() - start
    bad = np.flatnonzero(status != NO_FAILURE)
    if bad.size:
        r = int(bad[0])
        k = int(status[r])
        raise ChainNonFiniteError(r, 0, float(h0[k]), f"energy or gradient at the initial position of replica {k}")
    if on_nonfinite == "raise" and np.any(first_nonfinite[:, 0]):
        hit = np.flatnonzero(first_nonfinite[:, 0])
        r = int(hit[np.argmin(first_nonfinite[hit, 0])])
        k = int(first_nonfinite[r, 1])
        raise NonFiniteProposalError(r, int(first_nonfinite[r, 0]), float(h_final[r, k]),
                                     f" (replica {k}; a step is a round of local moves and swaps)")
    res = MCMCResult(draws, acc, pot, div, h_final[:, -1].copy(), sampler, n_warmup, thin, seconds,
                     n_nonfinite=nonfinite)
    raw = {"swap_acc": swap_acc, "swap_cnt": swap_cnt, "trips": trips, "best_u": best_u, "best_x": best_x,
           "h_final": h_final, "all_draws": all_draws if keep_all else None}
    return res, raw


# --------------------------------------------------------------------------------------------
# argument helpers
# --------------------------------------------------------------------------------------------

def _check_local(local: Any) -> str:
    if local not in LOCAL:
        raise SDEKitError(f"local must be one of {tuple(LOCAL)}; got {local!r}")
    return str(local)


def _check_reference(reference: Any, dim: int) -> tuple[np.ndarray, float] | None:
    """None, or (mean (d,), sd) from reference = (mean, sd) with sd > 0."""
    if reference is None:
        return None
    if not isinstance(reference, tuple | list) or len(reference) != 2:
        raise SDEKitError(f"reference must be None or a pair (mean, sd); got {reference!r}")
    m = float_array(reference[0], "reference mean")
    if m.ndim == 0:
        m = np.full(dim, float(m))
    if m.shape != (dim,):
        raise SDEKitError(f"reference mean must be a scalar or have shape ({dim},); got shape {m.shape}")
    s = check_positive(reference[1], "reference sd")
    return np.ascontiguousarray(m), s


def _sigma(local: str, h: float) -> float:
    """Proposal standard deviation of a step h: MALA sqrt(2 h), RWM h (identity proposal shape)."""
    return math.sqrt(2.0 * h) if local == "mala" else h


def _step_from_sigma(local: str, sigma: np.ndarray) -> np.ndarray:
    return 0.5 * sigma ** 2 if local == "mala" else sigma


def geometric_ladder(n_replicas: int, beta_min: float) -> np.ndarray:
    """Geometric inverse temperatures beta_k = beta_min^((K - 1 - k) / (K - 1)), k = 0..K-1: increasing from
    beta_min to exactly 1 (equal ratios beta_{k+1} / beta_k; the classic ladder, e.g. Earl & Deem 2005,
    "Parallel tempering: theory, applications, and new perspectives", PCCP 7)."""
    n_replicas = check_count(n_replicas, "n_replicas", minimum=2)
    beta_min = check_positive(beta_min, "beta_min")
    if beta_min >= 1.0:
        raise SDEKitError(f"beta_min must be in (0, 1); got {beta_min}")
    k = np.arange(n_replicas)
    betas = beta_min ** ((n_replicas - 1 - k) / (n_replicas - 1))
    betas[-1] = 1.0
    return betas


def _check_betas(betas: Any, has_ref: bool) -> np.ndarray:
    b = float_array(betas, "betas")
    if b.ndim != 1 or b.shape[0] < 2:
        raise SDEKitError(f"betas must be a 1-D array of at least 2 inverse temperatures; got shape {b.shape}")
    if not np.all(np.diff(b) > 0):
        raise SDEKitError(f"betas must be strictly increasing; got {b.tolist()}")
    if b[-1] != 1.0:
        raise SDEKitError(f"betas must end at 1 (the target); got betas[-1] = {b[-1]}")
    if b[0] < 0.0 or (b[0] == 0.0 and not has_ref):
        raise SDEKitError(f"betas must be > 0 without a reference (>= 0 with one); got betas[0] = {b[0]}")
    return np.ascontiguousarray(b)


def tempered_gaussian_law(target: Gaussian, beta: float, reference: Any = None) -> Gaussian:
    """The exact law pi_beta ∝ exp(-beta U - (1 - beta) U_ref) for a Gaussian target N(mu, S).

    With a reference N(m, s^2 I) it is the product of Gaussians N(mu_b, P_b^{-1}),
    P_b = beta S^{-1} + (1 - beta) I / s^2, mu_b = P_b^{-1} (beta S^{-1} mu + (1 - beta) m / s^2);
    without one (power tempering, beta > 0) it is N(mu, S / beta). Used for exact starts and
    stationarity checks of `replica_exchange` (and, with beta = 1 / T, of `simulated_annealing`).
    """
    if not isinstance(target, Gaussian):
        raise SDEKitError(f"target must be a sdekit.targets.Gaussian; got {type(target).__name__}")
    beta = check_real(beta, "beta", lo=0.0)
    ref = _check_reference(reference, target.dim)
    if ref is None:
        if beta <= 0.0:
            raise SDEKitError(f"beta must be > 0 without a reference; got {beta}")
        return Gaussian(target.mean, target.cov / beta)
    m, s = ref
    prec_t = target.params[1]
    prec = beta * prec_t + (1.0 - beta) * np.eye(target.dim) / s ** 2
    cov = np.linalg.inv(prec)
    cov = 0.5 * (cov + cov.T)
    mean = cov @ (beta * prec_t @ target.mean + (1.0 - beta) * m / s ** 2)
    return Gaussian(mean, cov)


def _replica_starts(x0: Any, n_runs: int, n_rep: int, d: int, seed: int) -> np.ndarray:
    if x0 is None:
        return np.random.default_rng([seed, 0x1A17, 2]).standard_normal((n_runs, n_rep, d))
    try:
        arr = np.array(x0, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"x0 must be numeric of shape ({d},), (n_runs, {d}) or (n_runs, K, {d})") from exc
    if arr.ndim == 0 and d == 1:
        arr = arr.reshape(1)
    if arr.shape == (d,):
        arr = np.broadcast_to(arr, (n_runs, n_rep, d))
    elif arr.shape == (n_runs, d):
        arr = np.broadcast_to(arr[:, None, :], (n_runs, n_rep, d))
    if arr.shape != (n_runs, n_rep, d):
        raise SDEKitError(f"x0 must have shape ({d},), (n_runs, d) = ({n_runs}, {d}) or (n_runs, K, d) = "
                          f"({n_runs}, {n_rep}, {d}); got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise SDEKitError("x0 must be finite")
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------------------------
# replica exchange
# --------------------------------------------------------------------------------------------

def replica_exchange(target: Any, *, betas: Any = None, n_replicas: int = 8, beta_min: float = 0.01,
                     reference: Any = None, local: str = "mala", step_size: Any = None, n_local: int = 1,
                     n_rounds: int = 1000, n_warmup: int = 500, n_runs: int = 4, thin: int = 1, adapt: bool = True,
                     target_accept: float | None = None, keep_all: bool = False, seed: int = 0, x0: Any = None,
                     on_nonfinite: str = "warn") -> MCMCResult:
    """Replica exchange (parallel tempering) with DEO swaps: ``n_runs`` independent runs of K replicas.

    Replica k targets pi_k ∝ exp(-beta_k U - (1 - beta_k) U_ref) (module docstring); each round does
    ``n_local`` local steps (``local`` = "mala" or "rwm") per replica, then one deterministic even/odd
    sweep of adjacent swaps, accepted with probability min(1, exp((beta_i - beta_j)(V(x_i) - V(x_j)))),
    V = U - U_ref (Syed et al. 2022, JRSSB 84(2); Okabe et al. 2001).

    betas: increasing inverse temperatures ending at 1 (first >= 0 with a reference, > 0 without); None:
      ``geometric_ladder(n_replicas, beta_min)``. reference: None (power tempering) or (mean, sd) for
      N(mean, sd^2 I). step_size: None (0.1 for MALA, 0.5 for RWM), a scalar (the step at beta = 1; replica
      k starts from the step with proposal sd sigma_k = (beta_k / sigma_1^2 + (1 - beta_k) / s^2)^(-1/2),
      i.e. sigma_1 / sqrt(beta_k) without reference) or an array (K,) used as is. With adapt=True each
      replica's step is tuned during the ``n_warmup`` rounds by dual averaging to ``target_accept``
      (default 0.574 MALA, 0.234 RWM). x0: None (N(0, I) draws), (d,), (n_runs, d) or (n_runs, K, d).
      on_nonfinite: local proposals with a non-finite (tempered) energy or gradient are rejected and counted
      per run (``n_nonfinite``); "warn" (default), "reject" or "raise", as for `sdekit.mcmc.mala`.

    Returns an `MCMCResult` whose ``samples`` (n_runs, n_rounds // thin, d) are the beta = 1 replica's states
    after every ``thin``-th round (runs play the role of chains), with extras: "betas" (K,),
    "swap_acceptance" (K - 1,) mean swap acceptance probability per adjacent pair, "swap_acceptance_runs"
    (n_runs, K - 1), "round_trips" (n_runs,) walkers' trips from the beta_min end to beta = 1 and back,
    "step_sizes" (n_runs, K), "n_gradients" per run, and "replica_samples" (n_runs, K, draws, d) when
    ``keep_all``. The gradient budget per run is K n_local (n_warmup + n_rounds). The end-of-run checks
    (`sdekit.mcmc.diagnostics`, on the beta = 1 replica; the step-size rule on every replica) are in
    ``result.diagnostics``.
    """
    return replica_exchange_with(_runs_kernel(), target, betas=betas, n_replicas=n_replicas, beta_min=beta_min,
                                 reference=reference, local=local, step_size=step_size, n_local=n_local,
                                 n_rounds=n_rounds, n_warmup=n_warmup, n_runs=n_runs, thin=thin, adapt=adapt,
                                 target_accept=target_accept, keep_all=keep_all, seed=seed, x0=x0,
                                 on_nonfinite=on_nonfinite)


def replica_exchange_with(kernel: Any, target: Any, *, betas: Any, n_replicas: int, beta_min: float, reference: Any,
                          local: str, step_size: Any, n_local: int, n_rounds: int, n_warmup: int, n_runs: int,
                          thin: int, adapt: bool, target_accept: float | None, keep_all: bool, seed: int, x0: Any,
                          on_nonfinite: str) -> MCMCResult:
    """Replica exchange's driver with ``kernel`` as its compiled runs: `tempered_runs_kernel` or a planted
    variant from DEFECTS."""
    check_energy_target(target)
    d = target.dim
    ref = _check_reference(reference, d)
    local = _check_local(local)
    if betas is None:
        if ref is None or beta_min != 0:
            b = geometric_ladder(n_replicas, beta_min)
        else:
            raise SDEKitError("beta_min must be > 0 for the geometric ladder; pass betas to start at 0")
    else:
        b = _check_betas(betas, ref is not None)
    n_rep = b.shape[0]
    n_local = check_count(n_local, "n_local")
    n_rounds = check_count(n_rounds, "n_rounds")
    n_warmup = check_count(n_warmup, "n_warmup", minimum=0)
    n_runs = check_count(n_runs, "n_runs")
    thin = check_count(thin, "thin")
    if thin > n_rounds:
        raise SDEKitError(f"thin must be <= n_rounds = {n_rounds}; got {thin}")
    seed = check_seed(seed)
    on_nonfinite = check_on_nonfinite(on_nonfinite)
    if not isinstance(adapt, bool | np.bool_):
        raise SDEKitError(f"adapt must be True or False; got {adapt!r}")
    if target_accept is None:
        target_accept = LOCAL[local][2]
    target_accept = check_real(target_accept, "target_accept", lo=0.0, strict=True)
    if target_accept >= 1.0:
        raise SDEKitError(f"target_accept must be in (0, 1); got {target_accept}")
    if step_size is None:
        step_size = LOCAL[local][1]
    if isinstance(step_size, bool | str) or np.iscomplexobj(step_size):
        raise SDEKitError(f"step_size must be a positive number or an array of shape (K,) = ({n_rep},); "
                          f"got {step_size!r}")
    h = float_array(step_size, "step_size")
    if h.ndim == 0:
        h1 = check_positive(h, "step_size")
        sig1 = _sigma(local, h1)
        if ref is None:
            sig = sig1 / np.sqrt(b)
        else:
            sig = 1.0 / np.sqrt(b / sig1 ** 2 + (1.0 - b) / ref[1] ** 2)
        h0 = _step_from_sigma(local, sig)
        h0[b == 1.0] = h1
    elif h.shape == (n_rep,):
        if not np.all(h > 0):
            raise SDEKitError(f"step_size must be positive; got {h.tolist()}")
        h0 = h.copy()
    else:
        raise SDEKitError(f"step_size must be a positive number or an array of shape (K,) = ({n_rep},); "
                          f"got shape {h.shape}")
    xs = _replica_starts(x0, n_runs, n_rep, d, seed)
    res, raw = _run(kernel, target, local, ref, b[None, :].copy(), np.ones((1, n_rep)), np.ascontiguousarray(h0), xs,
                    n_local=n_local, n_warmup=n_warmup, n_rounds=n_rounds, thin=thin, adapt=adapt,
                    target_accept=target_accept, seed=seed, stream=STREAM_PT, on_nonfinite=on_nonfinite,
                    keep_all=keep_all, sampler=f"replica_exchange[{local}, K={n_rep}]")
    per_run = raw["swap_acc"] / np.maximum(raw["swap_cnt"], 1)
    res.extras.update({
        "betas": b,
        "reference": None if ref is None else (ref[0].copy(), ref[1]),
        "swap_acceptance": raw["swap_acc"].sum(axis=0) / np.maximum(raw["swap_cnt"].sum(axis=0), 1),
        "swap_acceptance_runs": per_run,
        "round_trips": raw["trips"],
        "step_sizes": raw["h_final"],
        "n_gradients": n_rep * n_local * (n_warmup + n_rounds),
    })
    if keep_all:
        res.extras["replica_samples"] = raw["all_draws"]
    return finish(res, initial_step=h0 if adapt else None, final_step=raw["h_final"], target_accept=target_accept,
                  proposals_per_chain=n_rep * n_local * (n_warmup + n_rounds), on_nonfinite=on_nonfinite)


# --------------------------------------------------------------------------------------------
# simulated annealing
# --------------------------------------------------------------------------------------------

def annealing_schedule(kind: str, t_start: float, t_end: float, n_steps: int) -> np.ndarray:
    """Temperatures T_0..T_{n-1} of a cooling schedule (n = n_steps >= 2), T_0 = t_start:

    geometric:   T_k = t_start (t_end / t_start)^(k / (n - 1))        (Kirkpatrick et al. 1983)
    linear:      T_k = t_start + (t_end - t_start) k / (n - 1)
    logarithmic: T_k = max(t_end, t_start / log(e + k))               (Geman & Geman 1984; Hajek 1988)

    Geometric and linear end at t_end exactly; the logarithmic schedule (the one with a convergence
    guarantee for large enough t_start) cools so slowly that it is clipped at t_end.
    """
    if kind not in SCHEDULES:
        raise SDEKitError(f"schedule must be one of {SCHEDULES} or an array of temperatures; got {kind!r}")
    t_start = check_positive(t_start, "t_start")
    t_end = check_positive(t_end, "t_end")
    n_steps = check_count(n_steps, "n_steps", minimum=2)
    k = np.arange(n_steps, dtype=np.float64)
    if kind == "geometric":
        temps = t_start * (t_end / t_start) ** (k / (n_steps - 1))
        temps[-1] = t_end
    elif kind == "linear":
        temps = t_start + (t_end - t_start) * k / (n_steps - 1)
        temps[-1] = t_end
    else:
        temps = np.maximum(t_end, t_start / np.log(math.e + k))
        temps[0] = t_start
    return temps


def simulated_annealing(target: Any, *, schedule: Any = "geometric", t_start: float = 10.0, t_end: float = 1.0,
                        n_steps: int = 1000, local: str = "mala", step_size: float | None = None,
                        scale_step: bool = True, n_chains: int = 4, thin: int = 1, seed: int = 0,
                        x0: Any = None, on_nonfinite: str = "warn") -> MCMCResult:
    """Simulated annealing (Kirkpatrick, Gelatt & Vecchi 1983, "Optimization by simulated annealing",
    Science 220): step k of every chain is one local move (``local`` = "mala" or "rwm") that leaves
    pi^(1/T_k) ∝ exp(-U / T_k) invariant, along the cooling schedule T_0..T_{n-1}.

    schedule: "geometric", "linear", "logarithmic" (`annealing_schedule(schedule, t_start, t_end, n_steps)`)
      or an explicit array of positive temperatures (then n_steps = its length). step_size: the step at
      T = 1 (default 0.1 MALA, 0.5 RWM); with scale_step the step at T has proposal sd sigma_1 sqrt(T)
      (MALA h T, RWM h sqrt(T)), else it is constant. x0: None (N(0, I) draws), "target" or an array,
      as for `sdekit.mcmc.mala`. Chain c uses the random stream of `mala`'s chain c, so at constant T = 1
      (schedule = ones) the draws equal ``mala(..., n_warmup=0, adapt=False)``'s bit for bit.

    Returns an `MCMCResult` with ``samples`` (n_chains, n_steps // thin, d) the states after every
    ``thin``-th step, ``potential_energy`` the untempered U, and extras "temperatures" (n_steps,),
    "best_energy" (n_chains,) the lowest U visited and "best_position" (n_chains, d) where. on_nonfinite:
    as for `sdekit.mcmc.mala`. The end-of-run checks skip R-hat, ESS and acceptance (annealing chains are
    not stationary); divergences, non-finite proposals are checked.
    """
    check_energy_target(target)
    local = _check_local(local)
    if isinstance(schedule, str):
        temps = annealing_schedule(schedule, t_start, t_end, n_steps)
    else:
        temps = float_array(schedule, "schedule")
        if temps.ndim != 1 or temps.shape[0] < 1:
            raise SDEKitError(f"schedule must be a name or a 1-D array of temperatures; got shape {temps.shape}")
        if not np.all(temps > 0):
            raise SDEKitError("schedule temperatures must be positive")
    n_steps = temps.shape[0]
    n_chains = check_count(n_chains, "n_chains")
    thin = check_count(thin, "thin")
    if thin > n_steps:
        raise SDEKitError(f"thin must be <= the number of steps {n_steps}; got {thin}")
    seed = check_seed(seed)
    on_nonfinite = check_on_nonfinite(on_nonfinite)
    h1 = check_positive(LOCAL[local][1] if step_size is None else step_size, "step_size")
    if scale_step:
        hscale = temps if local == "mala" else np.sqrt(temps)
    else:
        hscale = np.ones(n_steps)
    xs = initial_positions(target, x0, n_chains, seed)[:, None, :].copy()
    res, raw = _run(_runs_kernel(), target, local, None, (1.0 / temps)[:, None].copy(),
                    np.ascontiguousarray(hscale[:, None]), np.array([h1]), xs, n_local=1, n_warmup=0,
                    n_rounds=n_steps, thin=thin, adapt=False, target_accept=0.5, seed=seed, stream=STREAM_MCMC,
                    on_nonfinite=on_nonfinite, keep_all=False, sampler=f"simulated_annealing[{local}]")
    res.extras.update({"temperatures": temps, "best_energy": raw["best_u"], "best_position": raw["best_x"]})
    return finish(res, proposals_per_chain=n_steps, stationary=False, on_nonfinite=on_nonfinite)
