"""Underdamped (kinetic) Langevin dynamics by the BAOAB and OBABO splittings (and UBU, ShOULD: see
`sdekit.mcmc.underdamped_high_order`), many chains in parallel.

The SDE (VALIDATION.md §1d), with friction gamma > 0, inverse temperature beta and a diagonal mass M:

    dX = M^{-1} P dt,    dP = -grad U(X) dt - gamma P dt + sqrt(2 gamma / beta) M^{1/2} dW,

whose stationary law is proportional to exp(-beta [U(x) + 1/2 p^T M^{-1} p]): X ~ exp(-beta U) and,
independently, P ~ N(0, M / beta). A step of size h composes three exactly solvable pieces,

    B(s): p <- p - s grad U(x)                                  (kick)
    A(s): x <- x + s M^{-1} p                                   (drift)
    O(s): p <- c p + sqrt((1 - c^2) / beta) M^{1/2} xi,  c = exp(-gamma s),  xi ~ N(0, I)   (exact OU)

in one of two orders:

- BAOAB = B(h/2) A(h/2) O(h) A(h/2) B(h/2) (Leimkuhler & Matthews 2013, "Rational construction of
  stochastic numerical methods for molecular sampling", Appl. Math. Res. eXpress 2013(1)). On a
  harmonic U = omega^2 x^2 / 2 (M = beta = 1) its invariant law has EXACTLY Var x = 1/omega^2 for every
  gamma and h < 2/omega, and Var p = 1 - h^2 omega^2 / 4 at the step end; for a Gaussian target the
  position marginal of the invariant law is the target itself.
- OBABO = O(h/2) B(h/2) A(h) B(h/2) O(h/2) (Bussi & Parrinello 2007, "Accurate sampling using Langevin
  dynamics", Phys. Rev. E 75, 056707): velocity Verlet between two half-step thermostats. Its
  harmonic invariant law has Var x = 1 / (omega^2 (1 - h^2 omega^2 / 4)), biased at O(h^2).

Both use one energy (and gradient) evaluation per step: the gradient at the step end is the next
step's first kick. Neither is Metropolis-adjusted, so ``accept_prob`` is 1.

Exact laws for linear targets: `splitting_step_matrix` gives the (x, p) one-step map and noise
covariance on a harmonic U, `splitting_stationary_law` its invariant covariance (discrete Lyapunov),
`splitting_gaussian_law` the exact law of the position after K steps (or stationary) on a Gaussian
target, by diagonalising the precision: with M = I each eigen-direction is an independent 2x2 linear
recursion.

Random numbers: chain c draws from its own xoshiro256++ stream keyed by (seed, c, STREAM_UNDERDAMPED),
a stream id that no Metropolis sampler uses, so results never depend on the thread count or on how
many other chains run. Per chain: d normals for the initial momentum (unless ``p0`` is given), then per
step d normals (BAOAB) or 2 d normals (OBABO, the first O's then the second O's), in component order.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numba as nb
import numpy as np
import scipy.linalg

from sdekit.diffusion.samplers.checks import check_count, check_positive, check_real, check_seed
from sdekit.errors import ChainNonFiniteError, SDEKitError
from sdekit.mcmc.chains import check_chain_offset, draw_arrays, initial_positions, per_chain_array, step_sizes
from sdekit.mcmc.diagnostics import finish
from sdekit.mcmc.kernel import NO_FAILURE, STREAM_MCMC
from sdekit.mcmc.result import MCMCResult
from sdekit.mcmc.underdamped_chain import _normal, _state_ok, kept_draw, start_momentum
from sdekit.mcmc.underdamped_high_order import (
    HIGH_ORDER_SCHEMES,
    is_high_order_kernel,
    run_high_order_kernel,
    run_high_order_serial,
)
from sdekit.mcmc.underdamped_high_order_laws import high_order_factors
from sdekit.mcmc.variants import Defect, with_helpers
from sdekit.noise.streams import seed_stream
from sdekit.noise.ziggurat import ZIG_F, ZIG_K, ZIG_W
from sdekit.targets import Gaussian
from sdekit.targets.energy import check_energy_target, energy_function, probe_energy

__all__ = ["ALL_SCHEMES", "DEFECTS", "SCHEMES", "STREAM_UNDERDAMPED", "splitting_gaussian_law",
           "splitting_stationary_law", "splitting_step_matrix", "underdamped_langevin"]

STREAM_UNDERDAMPED = STREAM_MCMC + 1  # never shares numbers with the Metropolis samplers' stream
SCHEMES = ("baoab", "obabo")  # the splittings of the O step (DEFECTS apply to these)
ALL_SCHEMES = SCHEMES + HIGH_ORDER_SCHEMES  # + UBU and ShOULD (`sdekit.mcmc.underdamped_high_order`)
_SCHEME_CODE = {"baoab": 0, "obabo": 1, "ubu": 2, "should": 3}


# --------------------------------------------------------------------------------------------
# compiled kernels
# --------------------------------------------------------------------------------------------

@nb.njit
def o_step_coefficients(gh, mass, beta, noise):
    """The O step over a time whose friction exponent is gh = gamma s: returns c = exp(-gh) and writes
    noise[i] = sqrt((1 - c^2) m_i / beta) (1 - c^2 by expm1, without cancellation)."""
    one_minus_c2 = -math.expm1(-2.0 * gh)
    for i in range(noise.shape[0]):
        noise[i] = math.sqrt(one_minus_c2 * mass[i] / beta)
    return math.exp(-gh)


@nb.njit
def baoab_step(energy, p, x, v, grad, h, c1, noise, inv_mass, rng, k_tab, w_tab, f_tab):
    """One BAOAB step of (x, p = v, grad U(x)) in place; returns U at the new x.

    B(h/2) A(h/2) O(h) A(h/2) B(h/2) with c1 = exp(-gamma h) and noise[i] = sqrt((1 - c1^2) m_i / beta).
    One energy call.
    """
    half = 0.5 * h
    for i in range(x.shape[0]):
        vi = v[i] - half * grad[i]
        x[i] += half * inv_mass[i] * vi
        vi = c1 * vi + noise[i] * _normal(rng, k_tab, w_tab, f_tab)
        x[i] += half * inv_mass[i] * vi
        v[i] = vi
    u = energy(x, p, grad)
    for i in range(x.shape[0]):
        v[i] -= half * grad[i]
    return u


@nb.njit
def obabo_step(energy, p, x, v, grad, h, c1, noise, inv_mass, rng, k_tab, w_tab, f_tab):
    """One OBABO step of (x, p = v, grad U(x)) in place; returns U at the new x.

    O(h/2) B(h/2) A(h) B(h/2) O(h/2) with c1 = exp(-gamma h / 2) and noise[i] = sqrt((1 - c1^2) m_i / beta).
    One energy call.
    """
    half = 0.5 * h
    for i in range(x.shape[0]):
        vi = c1 * v[i] + noise[i] * _normal(rng, k_tab, w_tab, f_tab)
        vi -= half * grad[i]
        x[i] += h * inv_mass[i] * vi
        v[i] = vi
    u = energy(x, p, grad)
    for i in range(x.shape[0]):
        vi = c1 * (v[i] - half * grad[i]) + noise[i] * _normal(rng, k_tab, w_tab, f_tab)
        v[i] = vi
    return u


@nb.njit
def run_chain(energy, p, c, x0, p0, draw_momentum, h, gamma, beta, mass, scheme, n_warmup, n_draws, thin, seed,
              chain_offset, stream, k_tab, w_tab, f_tab, draws, pot, mom):
    """Run row c (chain chain_offset + c of the run: its own RNG stream), writing draws[c], pot[c], mom[c];
    returns NO_FAILURE or the 1-based step at which the state turned non-finite (0: the initial state)."""
    d = x0.shape[1]
    rng = np.empty((1, 4), dtype=np.uint64)
    seed_stream(rng[0], seed, chain_offset + c, stream)
    x = x0[c].copy()
    v = np.empty(d)
    grad = np.empty(d)
    inv_mass = np.empty(d)
    noise = np.empty(d)
    start_momentum(v, inv_mass, p0, c, mass, beta, draw_momentum, rng, k_tab, w_tab, f_tab)
    u = energy(x, p, grad)
    if not _state_ok(u, x, v, grad):
        return 0
    c1 = o_step_coefficients(gamma * h if scheme == 0 else 0.5 * gamma * h, mass, beta, noise)
    status = NO_FAILURE
    for m in range(n_warmup + n_draws * thin):
        if scheme == 0:
            u = baoab_step(energy, p, x, v, grad, h, c1, noise, inv_mass, rng, k_tab, w_tab, f_tab)
        else:
            u = obabo_step(energy, p, x, v, grad, h, c1, noise, inv_mass, rng, k_tab, w_tab, f_tab)
        if not _state_ok(u, x, v, grad):
            status = m + 1
            break
        k = kept_draw(m, n_warmup, thin)
        if k >= 0:
            draws[c, k] = x
            pot[c, k] = u
    for i in range(d):
        mom[c, i] = v[i]
    return status


def _run_underdamped(energy, p, x0, p0, draw_momentum, h0, gamma, beta, mass, scheme, n_warmup, n_draws, thin,
                     seed, chain_offset, stream, k_tab, w_tab, f_tab, draws, pot, mom, status):
    for c in nb.prange(x0.shape[0]):
        status[c] = run_chain(energy, p, c, x0, p0, draw_momentum, h0[c], gamma, beta, mass, scheme, n_warmup,
                              n_draws, thin, seed, chain_offset, stream, k_tab, w_tab, f_tab, draws, pot, mom)


run_underdamped_kernel = nb.njit(parallel=True)(_run_underdamped)
run_underdamped_serial = nb.njit(_run_underdamped)  # one thread: the same numbers, a cheaper compile


# --------------------------------------------------------------------------------------------
# planted bugs (power studies and tests; run through sdekit.mcmc.defects.planted)
# --------------------------------------------------------------------------------------------

@nb.njit
def doubled_noise_coefficients(gh, mass, beta, noise):
    """O-step noise off by sqrt(2): noise[i] = sqrt(2 (1 - c^2) m_i / beta)."""
    one_minus_c2 = -math.expm1(-2.0 * gh) * 2.0
    for i in range(noise.shape[0]):
        noise[i] = math.sqrt(one_minus_c2 * mass[i] / beta)
    return math.exp(-gh)


@nb.njit
def frozen_momentum_coefficients(gh, mass, beta, noise):
    """No O step at all: c = 1 and no noise (deterministic velocity Verlet)."""
    for i in range(noise.shape[0]):
        noise[i] = 0.0
    return 1.0


def _coefficient_variant(rule: Any) -> Any:
    return with_helpers(run_underdamped_kernel, run_chain=with_helpers(run_chain, o_step_coefficients=rule))


DEFECTS = {
    "noise_off_by_sqrt2": Defect("O-step noise off by sqrt(2): p <- c p + sqrt(2 (1 - c^2) / beta) M^{1/2} xi",
                                 _coefficient_variant(doubled_noise_coefficients)),
    "no_momentum_refresh": Defect(
        "momentum not refreshed: the O step skipped (c = 1, no noise), i.e. deterministic velocity Verlet",
        _coefficient_variant(frozen_momentum_coefficients)),
}


# --------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------

def _check_scheme(scheme: Any) -> str:
    if not isinstance(scheme, str) or scheme.lower() not in ALL_SCHEMES:
        raise SDEKitError(f"scheme must be one of {ALL_SCHEMES}; got {scheme!r}")
    return scheme.lower()


def _check_mass(mass: Any, d: int) -> np.ndarray:
    if mass is None:
        return np.ones(d)
    if isinstance(mass, bool):
        raise SDEKitError(f"mass must be None, a positive number or a positive array of shape ({d},); got {mass!r}")
    try:
        arr = np.array(mass, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"mass must be None, a positive number or a positive array of shape ({d},) "
                          f"(the diagonal of M); got {mass!r}") from exc
    if arr.ndim == 0:
        arr = np.full(d, float(arr))
    if arr.shape != (d,):
        raise SDEKitError(f"mass must be the diagonal of M, of shape ({d},) (dense mass matrices are not "
                          f"supported); got shape {arr.shape}")
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise SDEKitError(f"mass must be positive and finite; got {arr.tolist()}")
    return np.ascontiguousarray(arr)


def _check_momenta(p0: Any, n_chains: int, d: int) -> np.ndarray:
    if isinstance(p0, str | bool):
        raise SDEKitError(f"p0 must be None or a numeric array of shape ({d},) or (n_chains, d); got {p0!r}")
    return per_chain_array(p0, n_chains, d, "p0")


def underdamped_langevin(target: Any, *, step_size: Any, friction: float = 1.0, scheme: str = "baoab",
                         mass: Any = None, beta: float = 1.0, n_chains: int = 4, n_draws: int = 1000,
                         n_warmup: int = 0, thin: int = 1, seed: int = 0, x0: Any = None,
                         p0: Any = None, chain_offset: int = 0) -> MCMCResult:
    """Run ``n_chains`` chains of underdamped Langevin dynamics on an energy target by BAOAB, OBABO, UBU or ShOULD.

    Discretises dX = M^{-1} P dt, dP = -grad U(X) dt - gamma P dt + sqrt(2 gamma / beta) M^{1/2} dW
    (stationary law proportional to exp(-beta [U(x) + 1/2 p^T M^{-1} p])) with the splitting ``scheme``:

      "baoab": B(h/2) A(h/2) O(h) A(h/2) B(h/2)  (Leimkuhler & Matthews 2013),
      "obabo": O(h/2) B(h/2) A(h) B(h/2) O(h/2)  (Bussi & Parrinello 2007),
      "ubu":   U(h/2) B(h) U(h/2), U the exact solve of the linear part (Sanz-Serna & Zygalakis 2021),
      "should": the shifted-ODE step with the Levy areas H, K (Foster, Lyons & Oberhauser 2021),

    where B(s): p <- p - s grad U(x); A(s): x <- x + s M^{-1} p; O(s): p <- c p + sqrt((1 - c^2) / beta)
    M^{1/2} xi with c = exp(-gamma s). One energy evaluation per step (ShOULD: two; UBU: one, plus one
    per kept draw for its potential energy); UBU and ShOULD in `sdekit.mcmc.underdamped_high_order`.
    Unadjusted: biased at O(h^2) in general (BAOAB is exact in position for Gaussian targets; ShOULD's
    Gaussian bias is O(h^4); see `splitting_gaussian_law`).

    target: an energy target (dim, energy_fn, params). step_size: h, a positive number or one per chain
    (fixed; no adaptation). friction: gamma > 0. mass: None (M = I), a positive number or the positive
    diagonal of M, shape (d,). beta: inverse temperature (positions then sample exp(-beta U)).
    n_warmup steps are discarded, then n_draws draws are kept, each ``thin`` steps apart.
    x0: None (N(0, I) draws), "target" (exact draws from ``target.sample``, for stationarity checks), an
    array (d,) or (n_chains, d). p0: None (p ~ N(0, M / beta), drawn from each chain's stream) or an
    array (d,) or (n_chains, d).

    Returns an `MCMCResult`: samples = positions (chains, draws, d); accept_prob all ones;
    potential_energy U at the draws; step_size (chains,); extras "momentum" (chains, d) the final
    momenta, "scheme", "friction", "mass", "beta". A non-finite state raises `ChainNonFiniteError`
    naming the chain and the step (1-based, warm-up included; 0 = the initial state). The end-of-run checks
    (`sdekit.mcmc.diagnostics`: R-hat and ESS) are in ``result.diagnostics``. chain_offset: the global index of
    the first chain (its random stream and the index errors name): chains [a, b) of a larger run, run with
    chain_offset=a and that run's start points, equal its rows a..b-1 (`sdekit.distributed.sample_chains`).
    """
    serial = nb.get_num_threads() == 1  # the chains would run one after another anyway: the serial twin
    if _check_scheme(scheme) in HIGH_ORDER_SCHEMES:
        kernel = run_high_order_serial if serial else run_high_order_kernel
    else:
        kernel = run_underdamped_serial if serial else run_underdamped_kernel
    return underdamped_langevin_with(kernel, target, step_size=step_size, friction=friction,
                                     scheme=scheme, mass=mass, beta=beta, n_chains=n_chains, n_draws=n_draws,
                                     n_warmup=n_warmup, thin=thin, seed=seed, x0=x0, p0=p0, chain_offset=chain_offset)


def underdamped_langevin_with(kernel: Any, target: Any, *, step_size: Any, friction: float, scheme: str, mass: Any,
                              beta: float, n_chains: int, n_draws: int, n_warmup: int, thin: int, seed: int, x0: Any,
                              p0: Any, chain_offset: int = 0) -> MCMCResult:
    """The underdamped driver with ``kernel`` as its compiled chains: `run_underdamped_kernel` or a planted
    variant from DEFECTS (schemes baoab, obabo), or `run_high_order_kernel` or a variant from
    `sdekit.mcmc.underdamped_high_order.HIGH_ORDER_DEFECTS` (ubu, should)."""
    check_energy_target(target)
    scheme = _check_scheme(scheme)
    if (scheme in HIGH_ORDER_SCHEMES) != is_high_order_kernel(kernel):
        raise SDEKitError(f"scheme {scheme!r} does not match the kernel given (run_high_order_kernel and its planted "
                          f"variants run {HIGH_ORDER_SCHEMES}, run_underdamped_kernel and DEFECTS run {SCHEMES})")
    friction = check_positive(friction, "friction")
    beta = check_positive(beta, "beta")
    n_chains = check_count(n_chains, "n_chains")
    n_draws = check_count(n_draws, "n_draws")
    n_warmup = check_count(n_warmup, "n_warmup", minimum=0)
    thin = check_count(thin, "thin")
    seed = check_seed(seed)
    chain_offset = check_chain_offset(chain_offset)
    d = target.dim
    h0 = step_sizes(step_size, n_chains)
    m_diag = _check_mass(mass, d)
    xs = initial_positions(target, x0, n_chains, seed)
    draw_momentum = p0 is None
    ps = np.zeros((n_chains, d)) if draw_momentum else _check_momenta(p0, n_chains, d)
    probe_energy(energy_function(target), target.params, xs[0])
    draws, _, pot, _ = draw_arrays(n_chains, n_draws, d)
    mom = np.empty((n_chains, d))
    status = np.full(n_chains, NO_FAILURE, dtype=np.int64)
    start = time.perf_counter()
    kernel(energy_function(target), target.params, xs, ps, draw_momentum, h0, friction, beta, m_diag,
           _SCHEME_CODE[scheme], n_warmup, n_draws, thin, np.uint64(seed), chain_offset, np.uint64(STREAM_UNDERDAMPED),
           ZIG_K, ZIG_W, ZIG_F, draws, pot, mom, status)
    seconds = time.perf_counter() - start
    bad = np.flatnonzero(status != NO_FAILURE)
    if bad.size:
        c = int(bad[np.argmin(status[bad])])
        raise ChainNonFiniteError(chain_offset + c, int(status[c]), float(h0[c]),
                                  "energy or gradient at the initial state" if status[c] == 0 else "state")
    extras = {"momentum": mom, "scheme": scheme, "friction": friction, "mass": m_diag, "beta": beta}
    res = MCMCResult(draws, np.ones((n_chains, n_draws)), pot, np.zeros((n_chains, n_draws), dtype=np.int64), h0,
                     f"underdamped_{scheme}", n_warmup, thin, seconds, extras)
    return finish(res)


# --------------------------------------------------------------------------------------------
# exact laws on linear targets
# --------------------------------------------------------------------------------------------

def _law_args(scheme: Any, omega2: Any, gamma: Any, h: Any) -> tuple[str, float, float, float]:
    scheme = _check_scheme(scheme)
    omega2 = check_real(omega2, "omega2", lo=0.0, strict=True)
    gamma = check_real(gamma, "gamma", lo=0.0)
    h = check_positive(h, "h")
    return scheme, omega2, gamma, h


def splitting_factors(scheme: str, omega2: float, gamma: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, G): one step of ``scheme`` on U = omega2 x^2 / 2 (M = beta = 1) is z' = A z + G xi for the
    state z = (x, p), with xi ~ N(0, I_k) the step's normals in the kernel's draw order (k = 1 for BAOAB,
    2 for OBABO, 4 for UBU, 3 for ShOULD: `sdekit.mcmc.underdamped_high_order_laws`). gamma = 0 is allowed:
    for BAOAB / OBABO velocity Verlet (the law of DEFECTS["no_momentum_refresh"]), G = 0."""
    scheme, omega2, gamma, h = _law_args(scheme, omega2, gamma, h)
    if scheme in HIGH_ORDER_SCHEMES:
        return high_order_factors(scheme, omega2, gamma, h)

    def kick(s: float) -> np.ndarray:
        return np.array([[1.0, 0.0], [-s * omega2, 1.0]])

    def drift(s: float) -> np.ndarray:
        return np.array([[1.0, s], [0.0, 1.0]])

    def ou(gs: float) -> tuple[np.ndarray, np.ndarray]:
        c = math.exp(-gs)
        return np.diag([1.0, c]), np.array([0.0, math.sqrt(-math.expm1(-2.0 * gs))])

    if scheme == "baoab":
        o, g = ou(gamma * h)
        after = kick(h / 2) @ drift(h / 2)
        a = after @ o @ drift(h / 2) @ kick(h / 2)
        return a, (after @ g).reshape(2, 1)
    o, g = ou(gamma * h / 2)
    verlet = kick(h / 2) @ drift(h) @ kick(h / 2)
    a = o @ verlet @ o
    return a, np.column_stack([o @ verlet @ g, g])


def splitting_step_matrix(scheme: str, omega2: float, gamma: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, Q): the exact one-step law of ``scheme`` on the harmonic U = omega2 x^2 / 2 with M = beta = 1.

    The state z = (x, p) maps as z' = A z + eta, eta ~ N(0, Q), with A the product of the pieces'
    matrices B(s) = [[1, 0], [-s omega2, 1]], A(s) = [[1, s], [0, 1]], O(s) = diag(1, exp(-gamma s)), and
    Q = sum over the O steps of T e_p e_p^T T^T (1 - exp(-2 gamma s)), T the map applied after that O step.
    BAOAB: A = B(h/2) A(h/2) O(h) A(h/2) B(h/2); OBABO: A = O(h/2) B(h/2) A(h) B(h/2) O(h/2)
    (Leimkuhler & Matthews 2013; Bussi & Parrinello 2007). gamma = 0 gives velocity Verlet (Q = 0).
    """
    a, g = splitting_factors(scheme, omega2, gamma, h)
    return a, g @ g.T


def splitting_stationary_law(scheme: str, omega2: float, gamma: float, h: float) -> np.ndarray:
    """The 2x2 stationary covariance S of (x, p) at the step end: S = A S A^T + Q (A, Q from
    `splitting_step_matrix`), solved by ``scipy.linalg.solve_discrete_lyapunov``.

    For BAOAB, S = diag(1/omega2, 1 - h^2 omega2 / 4) exactly for every gamma > 0 and h < 2/sqrt(omega2)
    (Leimkuhler & Matthews 2013); for OBABO, S[0, 0] = 1 / (omega2 (1 - h^2 omega2 / 4)). Raises
    SDEKitError when the recursion is not contracting (spectral radius of A >= 1, e.g. h >= 2/sqrt(omega2)
    or gamma = 0).
    """
    a, q = splitting_step_matrix(scheme, omega2, gamma, h)
    rho = float(np.max(np.abs(np.linalg.eigvals(a))))
    if not rho < 1.0:
        raise SDEKitError(f"{scheme} with omega2 = {omega2:g}, gamma = {gamma:g}, h = {h:g} has no stationary law: "
                          f"spectral radius of the step matrix {rho:.6g} >= 1 (needs gamma > 0 and, for BAOAB / "
                          f"OBABO, h < 2/sqrt(omega2) = {2.0 / math.sqrt(omega2):.6g})")
    s = scipy.linalg.solve_discrete_lyapunov(a, q)
    return 0.5 * (s + s.T)


def splitting_gaussian_law(target: Gaussian, scheme: str, gamma: float, h: float, steps: int | None = None, *,
                           mass: Any = None, beta: float = 1.0) -> Gaussian:
    """The exact law of the position after ``steps`` steps of ``scheme`` (as run by `underdamped_langevin`)
    on a Gaussian target N(mu, S), started from x ~ N(mu, S) (``x0="target"``), p ~ N(0, M / beta)
    independently; steps=None gives the stationary law. Default M = beta = 1.

    With M = I and beta = 1 and P = S^{-1} = V diag(lambda) V^T, the coordinates y = V^T (x - mu),
    q = V^T p decouple (isotropic noise): each is the harmonic recursion of `splitting_step_matrix` with
    omega2 = lambda_i, started from diag(1/lambda_i, 1), so x ~ N(mu, V diag(s_i) V^T) with s_i the (x, x)
    entry after K steps (S_{k+1} = A S_k A^T + Q, as in `sdekit.validate.linear_scheme_law`) or of
    `splitting_stationary_law`. For BAOAB the stationary law is the target itself for every
    h < 2/sqrt(lambda_max(P)) (Leimkuhler & Matthews 2013); OBABO's is not.

    A diagonal mass M and beta reduce to that case: x^ = sqrt(beta) M^{1/2} (x - mu), p^ = sqrt(beta)
    M^{-1/2} p follow the M = beta = 1 scheme for the precision P^ = M^{-1/2} P M^{-1/2}, started from
    x^ ~ N(0, beta P^{-1}); so the stationary position law of BAOAB is exactly N(mu, S / beta) for
    h < 2/sqrt(lambda_max(P^)).
    """
    if not isinstance(target, Gaussian):
        raise SDEKitError(f"target must be a Gaussian (the splitting's law is closed-form only there); "
                          f"got {type(target).__name__}")
    scheme = _check_scheme(scheme)
    gamma = check_real(gamma, "gamma", lo=0.0)
    h = check_positive(h, "h")
    beta = check_positive(beta, "beta")
    if steps is not None:
        steps = check_count(steps, "steps", minimum=0)
    root_m = np.sqrt(_check_mass(mass, target.dim))
    prec = target.params[1] / np.outer(root_m, root_m)
    lam, vecs = np.linalg.eigh(0.5 * (prec + prec.T))
    var = np.empty(target.dim)
    for i, om2 in enumerate(lam):
        if steps is None:
            var[i] = splitting_stationary_law(scheme, om2, gamma, h)[0, 0]
        else:
            a, q = splitting_step_matrix(scheme, om2, gamma, h)
            s = np.diag([beta / om2, 1.0])
            for _ in range(steps):
                s = a @ s @ a.T + q
            var[i] = s[0, 0]
    cov = (vecs * var) @ vecs.T / np.outer(root_m, root_m) / beta
    return Gaussian(target.mean, 0.5 * (cov + cov.T))
