"""The parts every underdamped-Langevin chain shares, whatever its splitting (BAOAB / OBABO in
`sdekit.mcmc.underdamped`, UBU / ShOULD in `sdekit.mcmc.underdamped_high_order`): a normal from the chain's
stream, the finiteness check of a state, the start momentum and which steps are kept as draws."""

from __future__ import annotations

import math

import numba as nb

from sdekit.noise.streams import next_normal_row


@nb.njit(cache=True)
def _normal(rng, k_tab, w_tab, f_tab):
    """One standard normal from the chain's stream (a call, not inlined: keeps the parallel kernel small)."""
    return next_normal_row(rng, 0, k_tab, w_tab, f_tab)


@nb.njit(cache=True)
def _finite_vec(v):
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@nb.njit(cache=True)
def _state_ok(u, x, v, grad):
    return math.isfinite(u) and _finite_vec(x) and _finite_vec(v) and _finite_vec(grad)


@nb.njit
def start_momentum(v, inv_mass, p0, c, mass, beta, draw_momentum, rng, k_tab, w_tab, f_tab):
    """inv_mass = 1 / mass; v = chain c's start momentum: N(0, M / beta) from the chain's stream, or p0[c]."""
    d = v.shape[0]
    for i in range(d):
        inv_mass[i] = 1.0 / mass[i]
    if draw_momentum:
        for i in range(d):
            v[i] = math.sqrt(mass[i] / beta) * _normal(rng, k_tab, w_tab, f_tab)
    else:
        for i in range(d):
            v[i] = p0[c, i]


@nb.njit
def kept_draw(m, n_warmup, thin):
    """The draw index that step m (0-based) writes after n_warmup warm-up steps and thinning, or -1."""
    j = m - n_warmup + 1
    return j // thin - 1 if j > 0 and j % thin == 0 else -1
