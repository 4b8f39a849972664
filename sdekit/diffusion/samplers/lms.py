"""Linear multistep (LMS) sampling in sigma: the Adams-Bashforth method on the EDM probability-flow ODE with
variable steps (Crowson, k-diffusion ``sample_lms``; diffusers ``LMSDiscreteScheduler``).

EDM convention (as `sdekit.diffusion.samplers.edm`): x = x_0 + sigma n (alpha = 1), the model is a score called as
s(x, 1, sigma), the denoiser is Tweedie's D(x; sigma) = x + sigma^2 s and the probability-flow ODE in sigma reads

    dx / dsigma = d(x, sigma) = (x - D(x; sigma)) / sigma = -sigma s(x, 1, sigma).

Step i (sigma_i -> sigma_{i+1}, N = len(sigmas) - 1 steps, one model call each, NFE = N) with the current order
q = min(i + 1, order) uses the derivatives d_i, d_{i-1}, ..., d_{i-q+1} of the last q steps:

    x_{i+1} = x_i + sum_{j=0}^{q-1} c_{ij} d_{i-j},
    c_{ij}  = int_{sigma_i}^{sigma_{i+1}} l_j(tau) dtau,   l_j(tau) = prod_{k != j, k < q} (tau - sigma_{i-k})
                                                                        / (sigma_{i-j} - sigma_{i-k}),

the integral of the Lagrange interpolant of the derivative through the last q nodes (variable-step Adams-Bashforth
of order q; q = 1 is Euler). The integrand is a polynomial of degree q - 1, so `lms_coefficients` integrates it
exactly (its antiderivative, in tau - sigma_i to avoid cancellation), not by quadrature; k-diffusion and diffusers
call scipy's ``quad`` (21-point Gauss-Kronrod, exact for these degrees up to rounding). A last sigma of 0 is reached
by the same step (the interpolant is integrated down to 0; the model is only called at sigma > 0).

Order: global error O(h^order) for smooth d on a smoothly varying grid (the first order - 1 steps are of lower
order, the start of every Adams method; tests/test_samplers_lms_pndm_restart.py fits the order on Gaussian data).

diffusers (0.35.1; tests/test_conformance_lms_pndm.py): LMSDiscreteScheduler.step(order=q) is this sampler on its
``sigmas`` (sigma_edm of the discrete schedule at its timesteps, then 0) with the network called at
x / sqrt(sigma^2 + 1) (`sdekit.diffusion.networks.from_diffusers` answers score(x, 1, sigma) the same way).

Accuracy with the exact score (tests/test_samplers_lms_pndm_restart.py): order 4 on
``karras_sigmas(n, 0.002, 80)``, N = 20000, ``compare_with_law`` at 1e-6 against the data law (1-, 2-, 4-D
anisotropic mixtures): n = 28 (28 NFE) passes in all three (min p 0.11 / 0.019 / 0.032); n = 20 fails in 2-D
(p 2e-12) and 4-D (2e-17), 1-D passing (1.6e-5); n = 14 fails everywhere. On Gaussian data the error against the
exact flow map falls with fitted order 0.97 / 1.87 / 2.71 / 3.51 for order 1 / 2 / 3 / 4 (NFE 20 .. 160).

Backends: x_init may be a float64 NumPy array or a torch tensor (float32 / float64, any device); a tensor run stays
in torch on that device and dtype (the coefficients are Python floats) and returns a tensor (equal to the NumPy run
to rounding in float64).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.samplers.arrays import State
from sdekit.diffusion.samplers.checks import check_count, check_state
from sdekit.diffusion.samplers.edm import check_sigma_grid
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError

__all__ = ["MAX_LMS_ORDER", "lms_coefficients", "lms_sample"]

MAX_LMS_ORDER = 4
ScoreFn = Callable[[State, float, float], State]


def _lagrange_integral(nodes: np.ndarray, j: int, a: float, b: float) -> float:
    """int_a^b prod_{k != j} (tau - nodes_k) / (nodes_j - nodes_k) dtau, exactly (the antiderivative of the
    polynomial, in the shifted variable u = tau - a). A module function so the tests can plant a wrong one."""
    others = np.delete(nodes, j) - a
    poly = np.atleast_1d(np.poly(others)) / np.prod(nodes[j] - np.delete(nodes, j))  # prod (u - (nodes_k - a))
    return float(np.polyval(np.polyint(poly), b - a))


def lms_coefficients(sigmas: ArrayLike, i: int, order: int) -> list[float]:
    """The weights c_{i0}, ..., c_{i,q-1} (q = min(i + 1, order)) of the derivatives d_i, d_{i-1}, ... in step i
    sigma_i -> sigma_{i+1} of the linear multistep method: c_{ij} = int_{sigma_i}^{sigma_{i+1}} l_j(tau) dtau with
    l_j the Lagrange basis polynomial of the nodes sigma_i, ..., sigma_{i-q+1} (module docstring), integrated
    exactly. sigmas: a checked noise-level grid (`edm.check_sigma_grid`), 0 <= i < len(sigmas) - 1, order 1..4."""
    s = check_sigma_grid(sigmas)
    i = check_count(i, "i", 0)
    if i >= s.size - 1:
        raise SDEKitError(f"i must be a step index below len(sigmas) - 1 = {s.size - 1}; got {i}")
    return _coefficients(s, i, _check_order(order))


def _coefficients(s: np.ndarray, i: int, order: int) -> list[float]:
    q = min(i + 1, order)
    nodes = s[i - np.arange(q)]
    return [_lagrange_integral(nodes, j, float(s[i]), float(s[i + 1])) for j in range(q)]


def _check_order(order: object) -> int:
    if isinstance(order, bool) or not isinstance(order, int | np.integer) or not 1 <= order <= MAX_LMS_ORDER:
        raise SDEKitError(f"order must be an integer in 1..{MAX_LMS_ORDER}; got {order!r}")
    return int(order)


def lms_sample(score: ScoreFn, sigmas: ArrayLike | Sequence[float], x_init: ArrayLike, *, order: int = 4,
               seed: int = 0, path_offset: int = 0, noise: NoiseFn | None = None, callback: Callable | None = None,
               return_trajectory: bool = False) -> SampleResult:
    """Linear multistep sampling in sigma (k-diffusion ``sample_lms``, diffusers ``LMSDiscreteScheduler``) from
    x_init ~ p(x; sigmas[0]).

    score(x (n, *shape), 1.0, sigma) -> (n, *shape) ~ grad log p(x; sigma); sigmas: strictly decreasing, > 0 except
    possibly the last (e.g. `karras_sigmas`; a last 0 is the data). Step i: d_i = -sigma_i s(x_i, 1, sigma_i)
    (= (x_i - D(x_i; sigma_i)) / sigma_i), x_{i+1} = x_i + sum_j c_{ij} d_{i-j} with the variable-step
    Adams-Bashforth weights c_{ij} = int_{sigma_i}^{sigma_{i+1}} l_j (`lms_coefficients`, exact integrals) of order
    q = min(i + 1, order), order in 1..4 (global order ``order``). NFE = len(sigmas) - 1. Deterministic: the seed
    and noise are accepted and unused (`sdekit.diffusion.samplers.run`). Returns a `SampleResult` (alphas all 1;
    a torch x_init gives a tensor).
    """
    s = check_sigma_grid(sigmas)
    x = check_state(x_init, "x_init")
    order = _check_order(order)
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    derivs: list[State] = []
    run.start(x, 1.0, float(s[0]))
    for i in range(s.size - 1):
        sig = float(s[i])
        sc = run.score(x, 1.0, sig, i)
        derivs.insert(0, -sig * sc)
        del derivs[order:]
        denoised = x + (sig * sig) * sc if run.wants_denoised else None
        coeffs = _coefficients(s, i, order)
        for c, d in zip(coeffs, derivs):
            x = x + c * d
        run.step_done(i, x, 1.0, float(s[i + 1]), denoised)
    return run.finish(x)
