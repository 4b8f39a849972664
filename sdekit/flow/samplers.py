"""Flow-matching samplers: the flow ODE dx/dt = u(x, t) integrated from t = 1 (noise) to t = 0 (data) by Euler, Heun
or the explicit midpoint rule on a decreasing time grid t_0 > t_1 > ... > t_N (Lipman et al. 2023, "Flow matching for
generative modeling"; Liu et al. 2022, rectified flow; Esser et al. 2024, "Scaling rectified flow transformers", for
the shifted grid). With h_i = t_{i+1} - t_i < 0:

    Euler     x_{i+1} = x_i + h_i u(x_i, t_i)                                                   order 1, NFE = N
    Heun      x'      = x_i + h_i u(x_i, t_i),
              x_{i+1} = x_i + h_i (u(x_i, t_i) + u(x', t_{i+1})) / 2                            order 2, NFE = 2N
    midpoint  x_mid   = x_i + (h_i / 2) u(x_i, t_i),  x_{i+1} = x_i + h_i u(x_mid, t_i + h_i / 2)  order 2, NFE = 2N

(Heun's trapezoidal rule is Karras et al. 2022's Algorithm 1 in t; unlike EDM's grids, t_N = 0 is a regular level
of a flow model, so Heun also corrects the last step.) ``flow_times(steps, shift=s)`` gives the uniform grid
t_i = 1 - i / N mapped by Esser et al.'s shift t -> s t / (1 + (s - 1) t) (diffusers' FlowMatchEulerDiscreteScheduler
``shift``); s > 1 spends more steps at high noise.

Conventions (`sdekit.diffusion.samplers.run`): velocity(x (n, *shape), t: float) -> (n, *shape), each output checked
for kind, shape and finiteness and counted (``nfe``); x1 a float64 NumPy array or a torch tensor (any dtype / device:
the run stays in torch and returns a tensor; coefficients are Python floats); the samplers are deterministic (seed
and path_offset are accepted and ignored); ``callback(info)`` after every step with the level (alpha_t, sigma_t)
reached and the denoised estimate x0hat = (sigma' x - sigma u) / det of the step's first evaluation
(`sdekit.flow.conversions`); ``return_trajectory`` stacks the states. The `FlowSampleResult` records the times
visited and the interpolant's (alpha_t, sigma_t) at them.

Accuracy with the exact velocity (tests/test_flow_matching.py; the 1-, 2- and 4-D anisotropic mixtures of the
diffusion fixtures, linear interpolant, start x_1 ~ N(0, I) exactly, uniform grid, N = 20000, ``compare_with_law``
at 1e-6 against the data law). Smallest passing NFE (min p), and the NFE below it that fails:

    Euler     1-D 60 (5.4e-7) / 50 fails (1.4e-9);  2-D 80 (1.3e-7) / 70 (1.3e-9);   4-D 90 (4.3e-7) / 80 (1.2e-9)
    Heun      1-D 10 (1.9e-4) / 8 fails (8.2e-10); 2-D 10 (3.6e-4) / 8 (2.3e-10);  4-D 12 (2.4e-5) / 10 (2.6e-12)
    midpoint  1-D 8 (1.2e-5) / 6 fails (1.2e-12);  2-D 8 (8.4e-5) / 6 (3.9e-27);   4-D 8 (7.2e-3) / 6 (3.7e-9)

On Gaussian data N(0, diag(0.05, 0.3, 2)) the RMS error against the exact flow map x_0 = x_1 sqrt(v) falls with
fitted order (NFE 10 .. 80) 0.97 (Euler, both interpolants), 1.96 / 1.90 (Heun, linear / trigonometric) and 2.21
(midpoint, trigonometric); on the linear interpolant midpoint is superconvergent on this linear flow (2.94, order 3
up to NFE 1280).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.samplers.arrays import State
from sdekit.diffusion.samplers.checks import check_real, check_state
from sdekit.diffusion.samplers.lambda_schedule import check_steps
from sdekit.diffusion.samplers.run import SampleResult, SamplerRun
from sdekit.errors import SDEKitError
from sdekit.flow.interpolants import Interpolant, get_interpolant

__all__ = ["FLOW_METHODS", "FlowSampleResult", "flow_sample", "flow_times"]

FLOW_METHODS = ("euler", "heun", "midpoint")
VelocityFn = Callable[[State, float], State]

# module hooks (the tests plant wrong rules through them)
_HEUN_WEIGHTS = (0.5, 0.5)  # trapezoidal weights of (u(x_i, t_i), u(x', t_{i+1}))
_MIDPOINT = 0.5  # the midpoint rule's fraction of the step


@dataclass(frozen=True)
class FlowSampleResult(SampleResult):
    """A `SampleResult` with the flow times visited (t_0 .. t_N; alphas / sigmas are the interpolant's levels)."""

    times: np.ndarray | None = None


def flow_times(steps: int, *, shift: float = 1.0, t_max: float = 1.0, t_min: float = 0.0) -> np.ndarray:
    """The decreasing grid t_i = s u_i / (1 + (s - 1) u_i), u_i = t_max + i (t_min - t_max) / steps, i = 0..steps
    (uniform for shift s = 1; Esser et al. 2024's shift otherwise); 0 <= t_min < t_max <= 1, s > 0."""
    steps = check_steps(steps)
    shift = check_real(shift, "shift", lo=0.0, strict=True)
    hi, lo = check_real(t_max, "t_max"), check_real(t_min, "t_min")
    if not 0.0 <= lo < hi <= 1.0:
        raise SDEKitError(f"t_min and t_max must satisfy 0 <= t_min < t_max <= 1; got t_min = {lo}, t_max = {hi}")
    u = np.linspace(hi, lo, steps + 1)
    out = shift * u / (1.0 + (shift - 1.0) * u)
    out[0], out[-1] = shift * hi / (1.0 + (shift - 1.0) * hi), shift * lo / (1.0 + (shift - 1.0) * lo)
    return out


def check_times(times: Any) -> np.ndarray:
    """A flow time grid as float64: 1-D, at least 2 times in [0, 1], strictly decreasing; SDEKitError naming times."""
    try:
        t = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError):
        raise SDEKitError("times must be a 1-D array of numbers in [0, 1]") from None
    if t.ndim != 1 or t.size < 2:
        raise SDEKitError(f"times must be a 1-D array of at least 2 times; got shape {t.shape}")
    if not (np.all(np.isfinite(t)) and np.all(t >= 0) and np.all(t <= 1)):
        raise SDEKitError("times must be finite and lie in [0, 1]")
    if not np.all(np.diff(t) < 0):
        raise SDEKitError("times must be strictly decreasing (from noise, t near 1, to data, t near 0)")
    return t


class _AtTime:
    """velocity(x, t) as the run's model call (x, alpha, sigma): the sampler sets ``t`` before each call."""

    def __init__(self, velocity: VelocityFn) -> None:
        self.velocity, self.t = velocity, 0.0

    def __call__(self, x: State, alpha: float, sigma: float) -> State:
        return self.velocity(x, self.t)


def _denoised(x: State, u: State, t: float, ip: Interpolant) -> State | None:
    a, s, da, ds = ip.coefficients(t)
    det = a * ds - s * da
    return (ds / det) * x - (s / det) * u if det > 0 else None


def flow_sample(velocity: VelocityFn, x1: ArrayLike, *, method: str = "euler", steps: int | None = None,
                times: ArrayLike | None = None, shift: float = 1.0, interpolant: Interpolant | str = "linear",
                seed: int = 0, path_offset: int = 0, callback: Callable | None = None,
                return_trajectory: bool = False) -> FlowSampleResult:
    """Integrate dx/dt = velocity(x, t) from x1 at times[0] down to times[-1] by ``method`` "euler" (order 1),
    "heun" or "midpoint" (order 2) (module docstring for the update equations).

    velocity(x (n, *shape), t: float) -> (n, *shape): a flow-matching model (e.g. `MixtureVelocity`, or a network
    through `sdekit.flow.ScoreAsVelocity` / its own wrapper). Grid: ``times`` (strictly decreasing in [0, 1]), or
    ``flow_times(steps, shift=shift)`` (steps default 50; from t = 1, pure noise for the built-in interpolants, to
    t = 0). interpolant ("linear" default, "trigonometric" or an `Interpolant`) gives the levels recorded and the
    callback's x0hat. seed / path_offset: accepted, ignored (deterministic). Returns a `FlowSampleResult`
    (x, nfe, alphas, sigmas, trajectory, times); a torch x1 runs in torch on its device and dtype.
    """
    if not callable(velocity):
        raise SDEKitError(f"velocity must be callable as velocity(x, t); got {type(velocity).__name__}")
    if method not in FLOW_METHODS:
        raise SDEKitError(f"method must be one of {FLOW_METHODS}; got {method!r}")
    ip = get_interpolant(interpolant)
    if times is not None:
        t_grid = check_times(times)
        if steps is not None and check_steps(steps) != t_grid.size - 1:
            raise SDEKitError(f"steps must be None or {t_grid.size - 1} (the intervals of times); got {steps!r}")
        if check_real(shift, "shift", lo=0.0, strict=True) != 1.0:
            raise SDEKitError("shift must be 1 when times is given (shift the grid yourself with flow_times)")
    else:
        t_grid = flow_times(50 if steps is None else steps, shift=shift)
    x = check_state(x1, "x1")
    model = _AtTime(velocity)
    run = SamplerRun(model, seed=seed, path_offset=path_offset, callback=callback,
                     return_trajectory=return_trajectory, name="velocity")
    w1, w2 = _HEUN_WEIGHTS

    def call(z: State, t: float, step: int) -> State:
        model.t = t
        a, s = ip.level(t)
        return run.score(z, a, s, step, t)

    run.start(x, *ip.level(float(t_grid[0])))
    for i in range(t_grid.size - 1):
        t, t_next = float(t_grid[i]), float(t_grid[i + 1])
        h = t_next - t
        u = call(x, t, i)
        denoised = _denoised(x, u, t, ip) if run.wants_denoised else None
        if method == "euler":
            x = x + h * u
        elif method == "heun":
            x_pred = x + h * u
            x = x + h * (w1 * u + w2 * call(x_pred, t_next, i))
        else:
            t_mid = t + _MIDPOINT * h
            x = x + h * call(x + (_MIDPOINT * h) * u, t_mid, i)
        run.step_done(i, x, *ip.level(t_next), denoised)
    return run.finish(x, FlowSampleResult, times=t_grid.copy())
