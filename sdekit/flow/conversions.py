"""Velocity <-> x0 / eps / score, so that every diffusion sampler runs a flow model and every flow sampler a
diffusion model.

At x = alpha_t x_0 + sigma_t eps the flow-matching velocity and the posterior means are related by the linear system

    x = alpha x0hat + sigma epshat,        u = alpha' x0hat + sigma' epshat,        det = alpha sigma' - sigma alpha',

(det > 0 for every interpolant whose sigma / alpha increases), whose solution and inverse are

    x0hat  = (sigma' x - sigma u) / det,          epshat = (alpha u - alpha' x) / det,
    score  = -epshat / sigma                      (Tweedie: grad log p_t(x) = -E[eps | x] / sigma, Efron 2011),
    u      = alpha' x0hat + sigma' epshat         (from x0hat and epshat),
    u      = (alpha' / alpha) x + sigma (alpha' sigma / alpha - sigma') s     (from the score: x0hat = (x + sigma^2 s)
                                                                               / alpha, epshat = -sigma s).

For the linear interpolant (alpha = 1 - t, sigma = t, det = 1): x0hat = x - t u, epshat = x + (1 - t) u
(`DiffusionNetwork(prediction="velocity", kernel="flow")` reads a linear-interpolant network the same way).

A sampler asks for the model at its own level (alpha, sigma) of some kernel; a flow model lives on its interpolant.
The level of the same signal-to-noise ratio is t* with sigma_t* / alpha_t* = sigma / alpha
(`Interpolant.time_of_level`), and there (alpha_t*, sigma_t*) = m (alpha, sigma), m = alpha_t* / alpha: the point
m x has the law of x_t* and the same x0hat and epshat (Kingma et al. 2021, section 3). `VelocityAsScore` answers
score(x, alpha, sigma) = -epshat(m x, t*) / sigma that way, for DDIM, DPM-Solver(++), EDM and every other sampler;
`ScoreAsVelocity` turns a diffusion score s(x, alpha, sigma) into a velocity u(x, t) for the flow samplers (t < 1
when the interpolant has alpha_1 = 0, where x0hat = (x + sigma^2 s) / alpha is undefined).

All formulas use +, -, *, / on the states with float coefficients: NumPy arrays and torch tensors alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sdekit.diffusion.samplers.checks import check_real
from sdekit.errors import SDEKitError
from sdekit.flow.interpolants import Interpolant, get_interpolant

__all__ = ["ScoreAsVelocity", "VelocityAsScore", "velocity_from_score", "velocity_from_x0_eps", "velocity_to_score",
           "velocity_to_x0_eps", "x0_eps_from_score"]


def _coefficients(interpolant: Any, t: Any) -> tuple[float, float, float, float, float]:
    ip = get_interpolant(interpolant)
    t = check_real(t, "t", lo=0.0)
    if t > 1.0:
        raise SDEKitError(f"t must lie in [0, 1]; got {t}")
    a, s, da, ds = ip.coefficients(t)
    det = a * ds - s * da
    if not det > 0:
        raise SDEKitError(f"the interpolant's alpha sigma' - sigma alpha' must be > 0; at t = {t} it is {det}")
    return a, s, da, ds, det


def _eps_from_velocity(u: Any, x: Any, a: float, s: float, da: float, ds: float) -> Any:
    """epshat = (alpha u - alpha' x) / det (a module function so the tests can plant a wrong sign)."""
    det = a * ds - s * da
    return (a / det) * u - (da / det) * x


def velocity_to_x0_eps(u: Any, x: Any, t: float, interpolant: Interpolant | str = "linear") -> tuple[Any, Any]:
    """(x0hat, epshat) = ((sigma' x - sigma u) / det, (alpha u - alpha' x) / det), det = alpha sigma' - sigma alpha',
    at the interpolant's time t (module docstring)."""
    a, s, da, ds, det = _coefficients(interpolant, t)
    return (ds / det) * x - (s / det) * u, _eps_from_velocity(u, x, a, s, da, ds)


def velocity_from_x0_eps(x0: Any, eps: Any, t: float, interpolant: Interpolant | str = "linear") -> Any:
    """u = alpha'_t x0hat + sigma'_t epshat (the conditional velocity d x_t / dt averaged over the posterior)."""
    _, _, da, ds, _ = _coefficients(interpolant, t)
    return da * x0 + ds * eps


def velocity_to_score(u: Any, x: Any, t: float, interpolant: Interpolant | str = "linear") -> Any:
    """s = -epshat / sigma_t = (alpha'_t x - alpha_t u) / (sigma_t det) (t > 0: sigma_t > 0)."""
    a, s, da, ds, det = _coefficients(interpolant, t)
    if not s > 0:
        raise SDEKitError(f"the score needs sigma_t > 0; at t = {t} sigma_t = {s}")
    return (da / (s * det)) * x - (a / (s * det)) * u


def x0_eps_from_score(score: Any, x: Any, alpha: float, sigma: float) -> tuple[Any, Any]:
    """(x0hat, epshat) = ((x + sigma^2 s) / alpha, -sigma s) at x = alpha x_0 + sigma eps (Tweedie; alpha > 0)."""
    return (x + (sigma * sigma) * score) / alpha, -sigma * score


def velocity_from_score(s: Any, x: Any, t: float, interpolant: Interpolant | str = "linear") -> Any:
    """u = (alpha'_t / alpha_t) x + sigma_t (alpha'_t sigma_t / alpha_t - sigma'_t) s (alpha_t > 0)."""
    a, sg, da, ds, _ = _coefficients(interpolant, t)
    if not a > 0:
        raise SDEKitError(f"the velocity from a score needs alpha_t > 0; at t = {t} alpha_t = {a} (start the flow "
                          "below t = 1)")
    return (da / a) * x + (sg * (da * sg / a - ds)) * s


class VelocityAsScore:
    """A velocity model velocity(x, t) on ``interpolant`` as a diffusion score model score(x, alpha, sigma), for
    every diffusion sampler (picklable, no closure): t* = the interpolant's time of the same SNR, m = alpha_t* /
    alpha, epshat = (alpha_t* u - alpha'_t* m x) / det
    with u = velocity(m x, t*), and the score -epshat / sigma (module docstring). The sampler's level must have
    alpha > 0 and sigma > 0."""

    def __init__(self, velocity: Callable[[Any, float], Any], interpolant: Interpolant | str = "linear") -> None:
        if not callable(velocity):
            raise SDEKitError(f"velocity must be callable as velocity(x, t); got {type(velocity).__name__}")
        self.velocity, self.interpolant = velocity, get_interpolant(interpolant)

    def __call__(self, x: Any, alpha: float, sigma: float) -> Any:
        alpha, sigma = float(alpha), float(sigma)
        if not (alpha > 0 and sigma > 0):
            raise SDEKitError(f"VelocityAsScore needs a level with alpha > 0 and sigma > 0; got ({alpha}, {sigma})")
        t = self.interpolant.time_of_level(alpha, sigma)
        a, s, da, ds = self.interpolant.coefficients(t)
        m = a / alpha if a > 0 else s / sigma
        xm = m * x
        return (-1.0 / sigma) * _eps_from_velocity(self.velocity(xm, t), xm, a, s, da, ds)


class ScoreAsVelocity:
    """A diffusion score model score(x, alpha, sigma) as a velocity model velocity(x, t) on ``interpolant``: the
    score at the level (alpha_t, sigma_t) turned into u by `velocity_from_score` (alpha_t > 0: t < 1 for the
    built-in interpolants)."""

    def __init__(self, score: Callable[[Any, float, float], Any], interpolant: Interpolant | str = "linear") -> None:
        if not callable(score):
            raise SDEKitError(f"score must be callable as score(x, alpha, sigma); got {type(score).__name__}")
        self.score, self.interpolant = score, get_interpolant(interpolant)

    def __call__(self, x: Any, t: float) -> Any:
        a, s = self.interpolant.level(t)
        return velocity_from_score(self.score(x, a, s), x, t, self.interpolant)
