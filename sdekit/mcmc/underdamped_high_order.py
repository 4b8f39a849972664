"""Underdamped Langevin by UBU and ShOULD: the compiled steps and their coefficients (one chain, in place).

The SDE is that of `sdekit.mcmc.underdamped` (diagonal mass M, friction gamma, inverse temperature beta):

    dX = M^{-1} P dt,    dP = -grad U(X) dt - gamma P dt + sqrt(2 gamma / beta) M^{1/2} dW.

UBU (Sanz-Serna & Zygalakis 2021, "Wasserstein distance estimates for the distributions of numerical
approximations to ergodic stochastic differential equations", JMLR 22(242); Alamo & Sanz-Serna 2019;
Chada, Leimkuhler, Paulin & Whalley 2023) is the splitting U(h/2) B(h) U(h/2) where B(h): p <- p - h grad U(x)
and U(s) solves the linear part dX = M^{-1} P dt, dP = -gamma P dt + noise EXACTLY over a time s: per coordinate,
with c = exp(-gamma s),

    x <- x + (1 - c) / (gamma m) p + Z_x,    p <- c p + Z_p,

(Z_x, Z_p) jointly Gaussian with Var Z_p = (m / beta)(1 - c^2), Cov(Z_x, Z_p) = (1 - c)^2 / (beta gamma),
Var Z_x = 2 g(gamma s) / (beta m gamma^2), g(a) = a - 2 (1 - e^{-a}) + (1 - e^{-2a}) / 2. Drawn as
Z_p = s_p xi_1, Z_x = k_1 xi_1 + k_2 xi_2 (xi_1, xi_2 the chain's next two normals). One gradient per step;
strong order 2 for the exactly coupled path, weak / stationary bias O(h^2).

ShOULD (Foster, Lyons & Oberhauser 2021, "The shifted ODE method for underdamped Langevin MCMC",
arXiv:2101.03446, Definition 7.1): with the Brownian increment W ~ N(0, h), the space-time Levy area
H = (1/h) int_0^h (W_t - t W / h) dt ~ N(0, h/12) and the space-time-time Levy area
K = (1/h^2) int_0^h (W_t - t W / h)(h/2 - t) dt ~ N(0, h/720) (independent), per coordinate, with
v = p / m, rho = sqrt(2 gamma / (beta m)), f = grad U / m, a = gamma h:

    v_1 = v_0 + rho (H + 6K)
    x_1 = x_0 + a_{1/2} v_1 + b_{1/2} (-h f(x_0) + rho (W - 12 K))
    x'  = x_0 + a_1 v_0 - h b_1 (f(x_0) / 3 + 2 f(x_1) / 3) + rho (b_1 W + c_H H + c_K K)
    v'  = e^{-a} v_0 - h (e^{-a} f(x_0) / 6 + 2 e^{-a/2} f(x_1) / 3 + f(x') / 6)
          + rho (a_1 W / h - gamma (c_H H + c_K K))

with a_s = (1 - e^{-gamma s h}) / gamma, b_1 = (e^{-a} + a - 1) / (a gamma), b_{1/2} = (e^{-a/2} + a/2 - 1) / (a gamma),
c_H = 6 (e^{-a}(a + 2) + a - 2) / (a^2 gamma), c_K = 60 (e^{-a}(a^2 + 6a + 12) - a^2 + 6a - 12) / (a^3 gamma).
Two gradients per step (the one at x' is the next step's f(x_0)); third order in 2-Wasserstein for smooth
strongly log-concave targets (the paper's claim), strong order 3 measured on the coupled path (README).
The coefficients are evaluated by power series where the closed forms cancel (|a| < 0.5), so they are
accurate to rounding for every gamma h > 0.

Random numbers per step and coordinate, in component order: UBU 4 normals (xi_1, xi_2 of the first U, then
those of the second U, each pass over all coordinates), ShOULD 3 (the normalised W, H, K of coordinate i).
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from sdekit.mcmc.kernel import NO_FAILURE
from sdekit.mcmc.underdamped_chain import _normal, _state_ok, kept_draw, start_momentum
from sdekit.mcmc.variants import Defect, with_helpers
from sdekit.noise.streams import seed_stream

__all__ = ["HIGH_ORDER_DEFECTS", "HIGH_ORDER_SCHEMES", "N_COEF", "high_order_coefficients", "is_high_order_kernel",
           "run_high_order_kernel", "should_coefficients", "should_step", "ubu_coefficients", "ubu_step"]

HIGH_ORDER_SCHEMES = ("ubu", "should")
N_COEF = 13  # rows of the per-coordinate coefficient array
_SERIES_BELOW = 0.5
_SERIES_TERMS = 40


@nb.njit(cache=True)
def exp_poly_ratio(z, p0, p1, p2, q0, q1, q2, n0):
    """(e^z (p0 + p1 z + p2 z^2) + q0 + q1 z + q2 z^2) / z^n0, whose Taylor coefficients below z^n0 vanish:
    by the power series sum_{n >= n0} (p0 / n! + p1 / (n-1)! + p2 / (n-2)!) z^(n - n0) for |z| < 0.5 (no
    cancellation), else directly."""
    if abs(z) >= _SERIES_BELOW:
        return (math.exp(z) * (p0 + p1 * z + p2 * z * z) + q0 + q1 * z + q2 * z * z) / z ** n0
    total = 0.0
    zk = 1.0
    for n in range(n0, n0 + _SERIES_TERMS):
        term = p0 / math.gamma(n + 1.0) + p1 / math.gamma(n) + (p2 / math.gamma(n - 1.0) if n >= 2 else 0.0)
        total += term * zk
        zk *= z
    return total


@nb.njit(cache=True)
def ou_position_variance_ratio(a):
    """g(a) / a^3 with g(a) = a - 2 (1 - e^{-a}) + (1 - e^{-2a}) / 2 = int_0^a (1 - e^{-u})^2 du
    = sum_{n >= 3} (-1)^(n+1) (2^(n-1) - 2) a^n / n! (series for a < 0.5)."""
    if a >= _SERIES_BELOW:
        q = -math.expm1(-a)
        return (a - 2.0 * q + 0.5 * q * (2.0 - q)) / a ** 3
    total = 0.0
    ak = 1.0
    for n in range(3, 3 + _SERIES_TERMS):
        sign = 1.0 if n % 2 == 1 else -1.0
        total += sign * (2.0 ** (n - 1) - 2.0) / math.gamma(n + 1.0) * ak
        ak *= a
    return total


@nb.njit(cache=True)
def ubu_coefficients(gamma, h, mass, beta, coef):
    """coef[0..4, i] for the exact U(h/2) of coordinate i: c, (1 - c)/(gamma m), s_p, k_1, k_2 (module doc)."""
    s = 0.5 * h
    a = gamma * s
    phi1 = exp_poly_ratio(-a, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 1)          # (1 - e^{-a}) / a
    phi1_2 = exp_poly_ratio(-2.0 * a, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 1)  # (1 - e^{-2a}) / (2a)
    for i in range(mass.shape[0]):
        m = mass[i]
        var_p = m / beta * 2.0 * a * phi1_2
        cov = gamma * s * s * phi1 * phi1 / beta
        var_x = 2.0 * gamma * s ** 3 * ou_position_variance_ratio(a) / (beta * m)
        sp = math.sqrt(var_p)
        k1 = cov / sp
        coef[0, i] = math.exp(-a)
        coef[1, i] = s * phi1 / m
        coef[2, i] = sp
        coef[3, i] = k1
        coef[4, i] = math.sqrt(max(var_x - k1 * k1, 0.0))


@nb.njit(cache=True)
def should_coefficients(gamma, h, mass, beta, coef):
    """coef[0..12, i] for ShOULD on coordinate i: e^{-a}, e^{-a/2}, a_{1/2}, b_{1/2}, a_1, b_1, a_1 / h, c_H,
    c_K (module doc, a = gamma h), then the noise scales rho sqrt(h), rho sqrt(h/12), rho sqrt(h/720)
    (W, H, K from the normals), then gamma."""
    z = -gamma * h
    phi1 = exp_poly_ratio(z, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 1)
    phi2 = exp_poly_ratio(z, 1.0, 0.0, 0.0, -1.0, -1.0, 0.0, 2)
    phi1_half = exp_poly_ratio(0.5 * z, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 1)
    phi2_half = exp_poly_ratio(0.5 * z, 1.0, 0.0, 0.0, -1.0, -1.0, 0.0, 2)
    s3 = exp_poly_ratio(z, 2.0, -1.0, 0.0, -2.0, -1.0, 0.0, 3)
    s5 = exp_poly_ratio(z, 12.0, -6.0, 1.0, -12.0, -6.0, -1.0, 5)
    for i in range(mass.shape[0]):
        rho = math.sqrt(2.0 * gamma / (beta * mass[i]))
        coef[0, i] = math.exp(z)
        coef[1, i] = math.exp(0.5 * z)
        coef[2, i] = 0.5 * h * phi1_half
        coef[3, i] = 0.25 * h * phi2_half
        coef[4, i] = h * phi1
        coef[5, i] = h * phi2
        coef[6, i] = phi1
        coef[7, i] = -6.0 * h * s3
        coef[8, i] = -60.0 * gamma * h * h * s5
        coef[9, i] = rho * math.sqrt(h)
        coef[10, i] = rho * math.sqrt(h / 12.0)
        coef[11, i] = rho * math.sqrt(h / 720.0)
        coef[12, i] = gamma


@nb.njit(cache=True)
def high_order_coefficients(scheme, h, gamma, beta, mass, coef):
    """Fill coef (N_COEF, d) for scheme code 2 (UBU) or 3 (ShOULD); other codes leave it untouched."""
    if scheme == 2:
        ubu_coefficients(gamma, h, mass, beta, coef)
    elif scheme == 3:
        should_coefficients(gamma, h, mass, beta, coef)


@nb.njit
def ubu_position_noise(k1, k2, xi1, xi2):
    """Z_x = k_1 xi_1 + k_2 xi_2: the position part of U's noise, correlated with Z_p = s_p xi_1."""
    return k1 * xi1 + k2 * xi2


@nb.njit
def _exact_ou_half(x, v, coef, rng, k_tab, w_tab, f_tab):
    for i in range(x.shape[0]):
        xi1 = _normal(rng, k_tab, w_tab, f_tab)
        xi2 = _normal(rng, k_tab, w_tab, f_tab)
        x[i] += coef[1, i] * v[i] + ubu_position_noise(coef[3, i], coef[4, i], xi1, xi2)
        v[i] = coef[0, i] * v[i] + coef[2, i] * xi1


@nb.njit
def ubu_step(energy, p, x, v, grad, h, coef, rng, k_tab, w_tab, f_tab):
    """One UBU step U(h/2) B(h) U(h/2) of (x, p = v) in place (coef from `ubu_coefficients`); grad holds
    grad U at the midpoint position afterwards. Returns U there (one energy call)."""
    _exact_ou_half(x, v, coef, rng, k_tab, w_tab, f_tab)
    u = energy(x, p, grad)
    for i in range(x.shape[0]):
        v[i] -= h * grad[i]
    _exact_ou_half(x, v, coef, rng, k_tab, w_tab, f_tab)
    return u


@nb.njit
def should_step(energy, p, x, v, grad, h, coef, inv_mass, work, rng, k_tab, w_tab, f_tab):
    """One ShOULD step of (x, p = v, grad U(x)) in place (coef from `should_coefficients`, work (5, d)
    scratch); returns U at the new x. Two energy calls (the second's gradient is the next step's first)."""
    d = x.shape[0]
    x1 = work[0]
    g1 = work[1]
    ww = work[2]
    hh = work[3]
    kk = work[4]
    for i in range(d):
        ww[i] = coef[9, i] * _normal(rng, k_tab, w_tab, f_tab)
        hh[i] = coef[10, i] * _normal(rng, k_tab, w_tab, f_tab)
        kk[i] = coef[11, i] * _normal(rng, k_tab, w_tab, f_tab)
        v1 = v[i] * inv_mass[i] + hh[i] + 6.0 * kk[i]
        x1[i] = x[i] + coef[2, i] * v1 + coef[3, i] * (-h * grad[i] * inv_mass[i] + ww[i] - 12.0 * kk[i])
    energy(x1, p, g1)
    for i in range(d):
        shift = coef[7, i] * hh[i] + coef[8, i] * kk[i]
        x[i] += (coef[4, i] * v[i] - h * coef[5, i] * (grad[i] + 2.0 * g1[i]) / 3.0) * inv_mass[i] \
            + coef[5, i] * ww[i] + shift
        hh[i] = grad[i]  # f(x_0), kept for the momentum update
        kk[i] = coef[6, i] * ww[i] - coef[12, i] * shift  # the momentum's noise, per unit mass
    u = energy(x, p, grad)
    for i in range(d):
        v[i] = coef[0, i] * v[i] - h * (coef[0, i] * hh[i] / 6.0 + 2.0 * coef[1, i] * g1[i] / 3.0 + grad[i] / 6.0) \
            + kk[i] / inv_mass[i]
    return u


@nb.njit
def run_chain_high_order(energy, p, c, x0, p0, draw_momentum, h, gamma, beta, mass, scheme, n_warmup, n_draws, thin,
                         seed, chain_offset, stream, k_tab, w_tab, f_tab, draws, pot, mom):
    """Chain c of UBU (scheme code 2) or ShOULD (3), same contract as `sdekit.mcmc.underdamped.run_chain`:
    writes draws[c], pot[c], mom[c]; returns NO_FAILURE or the 1-based step at which the state turned non-finite
    (0: the initial state). UBU's energy call is at the step's midpoint, so U at a kept draw costs one more."""
    d = x0.shape[1]
    rng = np.empty((1, 4), dtype=np.uint64)
    seed_stream(rng[0], seed, chain_offset + c, stream)
    x = x0[c].copy()
    v = np.empty(d)
    grad = np.empty(d)
    spare = np.empty(d)
    inv_mass = np.empty(d)
    work = np.empty((5, d))
    coef = np.zeros((N_COEF, d))
    high_order_coefficients(scheme, h, gamma, beta, mass, coef)
    start_momentum(v, inv_mass, p0, c, mass, beta, draw_momentum, rng, k_tab, w_tab, f_tab)
    u = energy(x, p, grad)
    if not _state_ok(u, x, v, grad):
        return 0
    status = NO_FAILURE
    for m in range(n_warmup + n_draws * thin):
        if scheme == 2:
            u = ubu_step(energy, p, x, v, grad, h, coef, rng, k_tab, w_tab, f_tab)
        else:
            u = should_step(energy, p, x, v, grad, h, coef, inv_mass, work, rng, k_tab, w_tab, f_tab)
        if not _state_ok(u, x, v, grad):
            status = m + 1
            break
        k = kept_draw(m, n_warmup, thin)
        if k >= 0:
            draws[c, k] = x
            pot[c, k] = u if scheme == 3 else energy(x, p, spare)
    for i in range(d):
        mom[c, i] = v[i]
    return status


def _run_high_order(energy, p, x0, p0, draw_momentum, h0, gamma, beta, mass, scheme, n_warmup, n_draws, thin,
                    seed, chain_offset, stream, k_tab, w_tab, f_tab, draws, pot, mom, status):
    for c in nb.prange(x0.shape[0]):
        status[c] = run_chain_high_order(energy, p, c, x0, p0, draw_momentum, h0[c], gamma, beta, mass, scheme,
                                         n_warmup, n_draws, thin, seed, chain_offset, stream, k_tab, w_tab, f_tab,
                                         draws, pot, mom)


run_high_order_kernel = nb.njit(parallel=True)(_run_high_order)
run_high_order_serial = nb.njit(_run_high_order)  # one thread: the same numbers, a cheaper compile


# --------------------------------------------------------------------------------------------
# planted bugs (run with `sdekit.mcmc.underdamped.underdamped_langevin_with(variant, ...)`)
# --------------------------------------------------------------------------------------------

@nb.njit
def uncorrelated_position_noise(k1, k2, xi1, xi2):
    """U's position noise with the right variance but independent of the momentum noise (correlation 0)."""
    return math.sqrt(k1 * k1 + k2 * k2) * xi2


@nb.njit
def _no_levy_should_coefficients(gamma, h, mass, beta, coef):
    """ShOULD with the Levy areas H and K dropped (their noise scales set to 0)."""
    should_coefficients(gamma, h, mass, beta, coef)
    for i in range(mass.shape[0]):
        coef[10, i] = 0.0
        coef[11, i] = 0.0


def _kernel_variant(**chain_helpers: Any) -> Any:
    return with_helpers(run_high_order_kernel,
                        run_chain_high_order=with_helpers(run_chain_high_order, **chain_helpers))


HIGH_ORDER_DEFECTS = {
    "ubu_uncorrelated_half_step": Defect(
        "UBU's half step draws the position and momentum noise independently (correlation 0, variances right)",
        _kernel_variant(ubu_step=with_helpers(ubu_step, _exact_ou_half=with_helpers(
            _exact_ou_half, ubu_position_noise=uncorrelated_position_noise)))),
    "should_no_levy_area": Defect(
        "ShOULD with the space-time and space-time-time Levy areas H, K set to 0 (only W drives it)",
        _kernel_variant(high_order_coefficients=with_helpers(
            high_order_coefficients, should_coefficients=_no_levy_should_coefficients))),
}
_KERNELS = [run_high_order_kernel, run_high_order_serial] + [d.variant for d in HIGH_ORDER_DEFECTS.values()]


def is_high_order_kernel(kernel: Any) -> bool:
    """Whether ``kernel`` runs UBU / ShOULD (`run_high_order_kernel` or one of HIGH_ORDER_DEFECTS)."""
    return any(kernel is k for k in _KERNELS)
