"""The No-U-Turn Sampler (Hoffman & Gelman 2014, "The No-U-Turn Sampler", JMLR 15) in the multinomial form
of Stan and blackjax (Betancourt 2017, "A conceptual introduction to Hamiltonian Monte Carlo", arXiv:1701.02434,
appendix A), as a pure compiled step of the generic MCMC driver (`sdekit.mcmc.kernel`).

H(x, p) = U(x) + 1/2 p^T M^{-1} p, p ~ N(0, M) drawn afresh each transition (M = L L^T, as in `sdekit.mcmc.hmc`).
One transition builds a trajectory of leapfrog states by doubling: at level j = 0, 1, ... a direction
v = +-1 is drawn uniformly and a new subtree of 2^j leapfrog steps of size v h is built from the trajectory's
end in that direction. Each state z_i carries the weight w_i = exp(H0 - H(z_i)).

* Inside a subtree the proposal is sampled progressively: leaf i replaces it with probability
  w_i / (sum of the subtree's weights so far), so the subtree's proposal is multinomial in its weights.
* Between subtrees (biased progressive sampling, Stan): the new subtree's proposal replaces the transition's
  sample with probability min(1, W_new / W_old), W the sums of the weights; all in log-weights (log-sum-exp).
* Generalised no-U-turn criterion (Betancourt 2013, arXiv:1304.1920): a tree with momentum sum rho and sharp
  momenta p#- = M^{-1} p-, p#+ = M^{-1} p+ at its two ends keeps going while rho . p#- > 0 and rho . p#+ > 0.
  It is checked on every merge of two sibling subtrees A, B (inside the subtree being built and at the top
  level): on A u B, and, as Stan does since 2.21, across the junction on A plus B's first state and on B
  plus A's last state. A subtree that fails inside is discarded and the building stops; a failed top-level
  check stops the building with the merged tree kept.
* A leaf with H - H0 > ``divergence_threshold`` (1000, as Stan and blackjax) or a non-finite energy, gradient or
  H is divergent: its subtree is discarded and the building stops. The tree is never deeper than
  ``max_tree_depth`` (2^depth - 1 leapfrog steps at most).

Every check acts on the aligned subtrees of the final tree and is symmetric in the two siblings, so every
state of the final tree would have built it with the same probability: the transition is exactly
pi-invariant (Hoffman & Gelman 2014, sec. 3.1.2). The acceptance statistic given to dual averaging is Stan's:
the mean over the trajectory's new states (those of discarded subtrees included) of min(1, exp(H0 - H)).

Per-draw statistics (`MCMCResult.stats`): ``tree_depth`` (the number of doublings kept), ``n_leapfrog`` (leapfrog
steps = gradient evaluations) and ``max_depth_hit`` (1 when the depth reached ``max_tree_depth``).
Mass matrix: None (identity), a (d,) diagonal or a (d, d) SPD matrix, or adapted in warm-up (``adapt_mass``).
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from sdekit.diffusion.samplers.checks import check_real
from sdekit.errors import SDEKitError
from sdekit.mcmc.chains import ADAPT_MASS, check_adapt_mass, run_chains
from sdekit.mcmc.hmc import mass_factors, refresh_momentum
from sdekit.mcmc.result import MCMCResult
from sdekit.mcmc.variants import Defect, with_helpers
from sdekit.noise.streams import next_double_row
from sdekit.targets.energy import check_energy_target

NUTS_STATS = ("tree_depth", "n_leapfrog", "max_depth_hit")
MAX_TREE_DEPTH = 30  # 2^30 leapfrog steps per transition: far beyond any useful trajectory
# work rows: the trajectory's two ends (x, p, grad U, p#), the current leaf (x, p, grad U, p#), the subtree's
# proposal (x, grad U), the trajectory's momentum sum, then 5 rows per level of the stack of completed
# subtrees (p and p# at both ends, momentum sum), and the statistics row last
_LEFT, _RIGHT, _LEAF, _PROPOSAL, _RHO, _STACK = 0, 4, 8, 12, 14, 15
_RECORD = 5


def work_rows(max_tree_depth: int) -> int:
    """Rows of the (rows, d) work array one NUTS chain needs at tree depth ``max_tree_depth``."""
    return _STACK + _RECORD * max_tree_depth + 1


@nb.njit
def sharp_momentum(pm, out, minv, dense):
    """out <- M^{-1} p (the velocity dx/dt = p#); returns the kinetic energy 1/2 p . M^{-1} p."""
    d = pm.shape[0]
    k = 0.0
    for i in range(d):
        if dense:
            s = 0.0
            for j in range(d):
                s += minv[i, j] * pm[j]
        else:
            s = minv[i, i] * pm[i]
        out[i] = s
        k += pm[i] * s
    return 0.5 * k


@nb.njit
def log_add(a, b):
    """log(e^a + e^b), exact for a or b = -inf."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


@nb.njit
def leaf_log_weight(h0, h):
    """log w = H0 - H(z): the multinomial weight of a trajectory state."""
    return h0 - h


@nb.njit
def top_level_log_ratio(log_w_old, log_w_new):
    """log of the biased progressive acceptance ratio W_new / W_old between the old trajectory and the new subtree."""
    return log_w_new - log_w_old


@nb.njit
def no_u_turn(sharp_a, sharp_b, rho, extra):
    """The generalised criterion on a tree with momentum sum rho + extra and end sharp momenta p#_a, p#_b:
    (rho + extra) . p#_a > 0 and (rho + extra) . p#_b > 0."""
    da = 0.0
    db = 0.0
    for i in range(rho.shape[0]):
        r = rho[i] + extra[i]
        da += r * sharp_a[i]
        db += r * sharp_b[i]
    return da > 0.0 and db > 0.0


@nb.njit
def siblings_persist(far_sharp_a, near_a, near_sharp_a, rho_a, near_b, near_sharp_b, far_sharp_b, rho_b):
    """Stan's three checks on the merge of sibling subtrees A and B (A's near end touches B's near end): the
    criterion on A u B, on A plus B's first state and on B plus A's last state. Symmetric in A and B."""
    return (no_u_turn(far_sharp_a, far_sharp_b, rho_a, rho_b)
            and no_u_turn(far_sharp_a, near_sharp_b, rho_a, near_b)
            and no_u_turn(near_sharp_a, far_sharp_b, rho_b, near_a))


@nb.njit
def _copy(dst, src):
    for i in range(src.shape[0]):
        dst[i] = src[i]


@nb.njit
def nuts_step(energy, p, x, grad, u, work, h, kp, mats, rng, k_tab, w_tab, f_tab):
    """One NUTS transition in place (kp = (max_tree_depth, divergence_threshold, dense)); returns (U, Stan's
    acceptance statistic, divergent, non-finite energy or gradient met) and leaves (tree depth, leapfrog steps,
    max depth hit) in the last work row. See the module docstring for the algorithm."""
    d = x.shape[0]
    max_depth = int(kp[0])
    threshold = kp[1]
    dense = kp[2] == 1.0
    chol = mats[0]
    minv = mats[1]
    xl, pl, gl, sl = work[_LEFT, :d], work[_LEFT + 1, :d], work[_LEFT + 2, :d], work[_LEFT + 3, :d]
    xr, pr, gr, sr = work[_RIGHT, :d], work[_RIGHT + 1, :d], work[_RIGHT + 2, :d], work[_RIGHT + 3, :d]
    xc, pc, gc, sc = work[_LEAF, :d], work[_LEAF + 1, :d], work[_LEAF + 2, :d], work[_LEAF + 3, :d]
    xq, gq = work[_PROPOSAL, :d], work[_PROPOSAL + 1, :d]
    rho = work[_RHO, :d]
    refresh_momentum(pl, xc, chol, dense, rng, k_tab, w_tab, f_tab)  # xc: scratch for the normals
    h0 = u + sharp_momentum(pl, sl, minv, dense)
    _copy(xl, x)
    _copy(gl, grad)
    _copy(xr, x)
    _copy(gr, grad)
    _copy(pr, pl)
    _copy(sr, sl)
    _copy(rho, pl)
    ul = u
    ur = u
    u_sample = u  # the sample lives in (x, grad)
    log_w = 0.0  # log of the trajectory's total weight (the initial state weighs exp(H0 - H0) = 1)
    depth = 0
    n_leapfrog = 0
    sum_accept = 0.0
    divergent = False
    nonfinite = False
    while depth < max_depth:
        forward = next_double_row(rng, 0) < 0.5
        step = h if forward else -h
        if forward:
            _copy(xc, xr)
            _copy(pc, pr)
            _copy(gc, gr)
            uc = ur
        else:
            _copy(xc, xl)
            _copy(pc, pl)
            _copy(gc, gl)
            uc = ul
        # build a subtree of 2^depth leaves; the stack holds its completed subtrees (a binary counter)
        log_w_sub = -math.inf
        u_prop = uc
        valid = True
        top = 0
        for n in range(1 << depth):
            for i in range(d):
                pc[i] -= 0.5 * step * gc[i]
            for i in range(d):
                if dense:
                    s = 0.0
                    for j in range(d):
                        s += minv[i, j] * pc[j]
                    xc[i] += step * s
                else:
                    xc[i] += step * minv[i, i] * pc[i]
            uc = energy(xc, p, gc)
            n_leapfrog += 1
            finite = math.isfinite(uc)
            for i in range(d):
                finite = finite and math.isfinite(gc[i])
            if not finite:
                nonfinite = True
                divergent = True
                valid = False
                break
            for i in range(d):
                pc[i] -= 0.5 * step * gc[i]
            hn = uc + sharp_momentum(pc, sc, minv, dense)
            delta = hn - h0
            if not delta <= threshold:  # also NaN and +inf
                divergent = True
                valid = False
                break
            sum_accept += 1.0 if delta <= 0.0 else math.exp(-delta)
            lw = leaf_log_weight(h0, hn)
            log_w_sub = log_add(log_w_sub, lw)
            if n == 0 or next_double_row(rng, 0) < math.exp(lw - log_w_sub):
                _copy(xq, xc)
                _copy(gq, gc)
                u_prop = uc
            rec = _STACK + _RECORD * top
            for i in range(d):
                work[rec, i] = pc[i]  # p at the subtree's first state
                work[rec + 1, i] = sc[i]  # p# there
                work[rec + 2, i] = pc[i]  # p at its last state
                work[rec + 3, i] = sc[i]  # p# there
                work[rec + 4, i] = pc[i]  # momentum sum
            top += 1
            m = n
            while m & 1:  # leaf n completes one subtree per trailing 1 bit of n: merge the top two records
                a = _STACK + _RECORD * (top - 2)
                b = a + _RECORD
                valid = siblings_persist(work[a + 1, :d], work[a + 2, :d], work[a + 3, :d], work[a + 4, :d],
                                         work[b, :d], work[b + 1, :d], work[b + 3, :d], work[b + 4, :d])
                for i in range(d):
                    work[a + 2, i] = work[b + 2, i]
                    work[a + 3, i] = work[b + 3, i]
                    work[a + 4, i] += work[b + 4, i]
                top -= 1
                if not valid:
                    break
                m >>= 1
            if not valid:
                break
        if not valid:
            break
        depth += 1
        log_r = top_level_log_ratio(log_w, log_w_sub)
        if log_r >= 0.0 or next_double_row(rng, 0) < math.exp(log_r):
            _copy(x, xq)
            _copy(grad, gq)
            u_sample = u_prop
        log_w = log_add(log_w, log_w_sub)
        b = _STACK  # the new subtree, merged with the old trajectory
        if forward:
            persist = siblings_persist(sl, pr, sr, rho, work[b, :d], work[b + 1, :d], work[b + 3, :d],
                                       work[b + 4, :d])
            _copy(xr, xc)
            _copy(pr, pc)
            _copy(gr, gc)
            _copy(sr, sc)
            ur = uc
        else:
            persist = siblings_persist(sr, pl, sl, rho, work[b, :d], work[b + 1, :d], work[b + 3, :d],
                                       work[b + 4, :d])
            _copy(xl, xc)
            _copy(pl, pc)
            _copy(gl, gc)
            _copy(sl, sc)
            ul = uc
        for i in range(d):
            rho[i] += work[b + 4, i]
        if not persist:
            break
    stats = work[work.shape[0] - 1]
    stats[0] = depth
    stats[1] = n_leapfrog
    stats[2] = 1.0 if depth >= max_depth else 0.0
    return u_sample, sum_accept / n_leapfrog, 1 if divergent else 0, 1 if nonfinite else 0


# ---------------------------------------------------------------------------------------------
# planted bugs (power studies and tests; run through sdekit.mcmc.defects.planted)

@nb.njit
def uniform_log_weight(h0, h):
    """Every trajectory state weighs the same: the proposal is uniform over the trajectory, ignoring exp(H0 - H)."""
    return 0.0


@nb.njit
def inverted_top_level_log_ratio(log_w_old, log_w_new):
    """The biased progressive step with its ratio upside down: min(1, W_old / W_new)."""
    return log_w_old - log_w_new


@nb.njit
def leading_end_persists(far_sharp_a, near_a, near_sharp_a, rho_a, near_b, near_sharp_b, far_sharp_b, rho_b):
    """The no-U-turn check at one end only, the end the tree grows towards: (rho_A + rho_B) . p#_far(B) > 0. It
    depends on which sibling was built last, so the tree built depends on where in it the chain started."""
    return no_u_turn(far_sharp_b, far_sharp_b, rho_a, rho_b)


DEFECTS = {
    "multinomial_weights_ignored": Defect(
        "proposal drawn uniformly over the trajectory: every state weighs 1 instead of exp(H0 - H)",
        with_helpers(nuts_step, leaf_log_weight=uniform_log_weight)),
    "top_level_ratio_inverted": Defect(
        "biased progressive sampling between subtrees with the ratio inverted: min(1, W_old / W_new)",
        with_helpers(nuts_step, top_level_log_ratio=inverted_top_level_log_ratio)),
    "u_turn_checked_at_one_end": Defect(
        "no-U-turn criterion checked only at the end the tree grows towards (rho . p#+ > 0), not at both ends",
        with_helpers(nuts_step, siblings_persist=leading_end_persists)),
}


def check_max_tree_depth(max_tree_depth: Any) -> int:
    """``max_tree_depth`` as an int in [1, MAX_TREE_DEPTH], else SDEKitError."""
    if isinstance(max_tree_depth, bool) or not isinstance(max_tree_depth, int | np.integer) or \
            not 1 <= int(max_tree_depth) <= MAX_TREE_DEPTH:
        raise SDEKitError(f"max_tree_depth must be an integer in [1, {MAX_TREE_DEPTH}] (at most 2^max_tree_depth - 1 "
                          f"leapfrog steps per transition); got {max_tree_depth!r}")
    return int(max_tree_depth)


def nuts(target: Any, *, step_size: Any = 0.1, max_tree_depth: int = 10, mass: Any = None, adapt_mass: Any = None,
         divergence_threshold: float = 1000.0, n_chains: int = 4, n_draws: int = 1000, n_warmup: int = 1000,
         thin: int = 1, adapt: bool = True, target_accept: float = 0.8, seed: int = 0, x0: Any = None,
         on_nonfinite: str = "warn", chain_offset: int = 0) -> MCMCResult:
    """Run No-U-Turn Sampler chains (Hoffman & Gelman 2014; multinomial sampling and the generalised criterion with
    Stan's junction checks, Betancourt 2017 appendix A; see the module docstring).

    Each transition doubles a leapfrog trajectory of step ``step_size`` in random directions until it makes a
    U-turn, diverges (H - H0 > ``divergence_threshold``, or a non-finite energy) or reaches ``max_tree_depth``
    doublings (2^max_tree_depth - 1 gradient evaluations), and draws the next state from it in proportion to
    exp(-H). ``mass``: None (identity), a (d,) diagonal or a (d, d) SPD mass matrix M (p ~ N(0, M)); ``adapt_mass``
    None, "diag" or "dense": estimated in warm-up (`run_chains`). Step size: dual averaging of Stan's acceptance
    statistic to ``target_accept`` during warm-up when ``adapt``. Per-draw statistics in ``result.stats``:
    "tree_depth", "n_leapfrog", "max_depth_hit" (summed over the ``thin`` transitions behind each draw).
    on_nonfinite, chain_offset: as for `sdekit.mcmc.hmc`.
    """
    return nuts_with(nuts_step, target, step_size=step_size, max_tree_depth=max_tree_depth, mass=mass,
                     adapt_mass=adapt_mass, divergence_threshold=divergence_threshold, n_chains=n_chains,
                     n_draws=n_draws, n_warmup=n_warmup, thin=thin, adapt=adapt, target_accept=target_accept,
                     seed=seed, x0=x0, on_nonfinite=on_nonfinite, chain_offset=chain_offset)


def nuts_with(step: Any, target: Any, *, max_tree_depth: int, mass: Any, divergence_threshold: float,
              adapt_mass: str | None = None, **options: Any) -> MCMCResult:
    """NUTS's driver with ``step`` as its transition: `nuts_step` or a planted variant from DEFECTS."""
    depth = check_max_tree_depth(max_tree_depth)
    threshold = check_real(divergence_threshold, "divergence_threshold", lo=0.0, strict=True)
    check_energy_target(target)
    mats, dense = mass_factors(mass, target.dim)
    dense = dense or check_adapt_mass(adapt_mass) == ADAPT_MASS["dense"]
    kp = np.array([float(depth), threshold, 1.0 if dense else 0.0])
    return run_chains(step, target, sampler="nuts", kernel_params=kp, mats=mats, work_rows=work_rows(depth),
                      stats=NUTS_STATS, adapt_mass=adapt_mass, **options)
