"""PNDM and PLMS: pseudo numerical methods on a discrete schedule (Liu, Ren, Lin & Zhao 2022, "Pseudo numerical
methods for diffusion models on manifolds", ICLR; eq. 9-13), as diffusers' ``PNDMScheduler``.

Model interface: ``score(x, alpha, sigma)``; the pseudo methods work on the noise prediction
eps = -sigma s(x, alpha, sigma) at a level k of a `DiscreteSchedule` ((alpha_k, sigma_k) = schedule.level(k)).

**Transfer part** (Liu et al., eq. 9; the DDIM step between levels, in its cancellation-free form): from level k
(alphabar = a) to level k' (alphabar' = a') with an eps-estimate e,

    phi(x, e, k, k') = sqrt(a' / a) x - (a' - a) e / (a sqrt(1 - a') + sqrt(a (1 - a) a')),

which equals sqrt(a') x0hat + sqrt(1 - a') e with x0hat = (x - sqrt(1 - a) e) / sqrt(a) (the DDIM eta = 0 step);
a' = 1 (the data level 0) gives x0hat.

**Gradient part** on the levels tau_S > ... > tau_1 > tau_0 = 0 (the data): a step from k = tau_i to
k' = tau_{i-1} replaces e by a higher-order estimate built from eps values.

* Pseudo Runge-Kutta (PRK, eq. 12; the first 3 steps of ``method="pndm"``), with the half level
  m = k - floor((k - k') / 2) (diffusers' t - K // S // 2 on its evenly spaced timesteps):
  e1 = eps(x, k), x1 = phi(x, e1, k, m), e2 = eps(x1, m), x2 = phi(x, e2, k, m), e3 = eps(x2, m),
  x3 = phi(x, e3, k, k'), e4 = eps(x3, k'), e' = (e1 + 2 e2 + 2 e3 + e4) / 6, x_new = phi(x, e', k, k')
  (4 model calls; e1 joins the history).
* Pseudo linear multistep (PLMS, eq. 13): e_i = eps(x, k) joins the history and, with the last four,
  e' = (55 e_i - 59 e_{i+1} + 37 e_{i+2} - 9 e_{i+3}) / 24 (Adams-Bashforth 4 in the step index),
  x_new = phi(x, e', k, k') (1 model call).
* ``method="plms"`` (diffusers ``skip_prk_steps=True``; the PLMS sampler of Rombach et al.'s latent diffusion code):
  no PRK; the first step is the pseudo improved Euler step e0 = eps(x, k), x' = phi(x, e0, k, k'),
  e' = (e0 + eps(x', k')) / 2 (2 calls; e0 joins the history), and the next steps are PLMS with the
  Adams-Bashforth weights of the history available: (3 e_i - e_{i+1}) / 2, then (23, -16, 5) / 12, then the
  fourth-order weights above.

NFE: S + 9 for "pndm" (S >= 4: 12 calls for the 3 PRK steps, then one per step), S + 1 for "plms" (S >= 2).

Order: the Adams-Bashforth weights assume eps uniform in the step index, while the transfer integrates eps against
d(sigma / alpha) (DDIM's variable): where sigma / alpha is linear in the level the method is of order 4 (fitted 3.9
PLMS / 4.1 PNDM on Gaussian data), otherwise of order 2 (fitted 2.2 / 2.4 where sigma / alpha = 2 u + 2 u^2,
u = k / K); tests/test_samplers_lms_pndm_restart.py. The PRK half level is an integer level, so an odd level gap
puts it off the midpoint (a low-order error in the first three steps only).

Accuracy with the exact score (same tests; linear schedule of Ho et al., K = 1000, from level K, S evenly spaced
levels, N = 20000, ``compare_with_law`` at 1e-6 against the data law, 1-, 2-, 4-D mixtures): S = 15 passes (PNDM
24 NFE, PLMS 16 NFE; min p 4-D 2.0e-4 / 1.8e-4); S = 10 fails in 4-D (PNDM 19 NFE p 2.9e-10, PLMS 11 NFE p 1.2e-11).

diffusers (0.35.1; tests/test_conformance_lms_pndm.py): PNDMScheduler with skip_prk_steps False / True equals
method "pndm" / "plms" on the levels timesteps + 1 when its timesteps are evenly spaced by K // S ('leading')
and ``set_alpha_to_one=True``. Like DDIMScheduler it steps from t to t - K // S, not to the next entry of its list
(the same only for even spacing), and with ``set_alpha_to_one=False`` (its default) its last step goes from
timestep 0 to alphabar_1 = alphas_cumprod[0], i.e. it is the identity (one model call is spent): its output is
this sampler's state at level 1 (the trajectory's last-but-one state), not at the data.

Backends: x_K may be a float64 NumPy array or a torch tensor (float32 / float64, any device); a tensor run stays in
torch on that device and dtype (all coefficients are Python floats) and returns a tensor (equal to the NumPy run to
rounding in float64). Deterministic: the seed and noise are accepted and unused.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from numpy.typing import ArrayLike

from sdekit.diffusion.samplers.arrays import State
from sdekit.diffusion.samplers.checks import ScoreFn, check_score, check_state
from sdekit.diffusion.samplers.ddim import ddim_levels
from sdekit.diffusion.samplers.discrete import DiscreteSchedule
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError

__all__ = ["METHODS", "pndm_sample", "pndm_transfer"]

METHODS = ("pndm", "plms")
# Adams-Bashforth weights on (e_i, e_{i+1}, ...) by history length, and the pseudo Runge-Kutta weights of
# (e1, e2, e3, e4); module constants so the tests can plant a wrong coefficient.
_PLMS_WEIGHTS = ((1.0,), (1.5, -0.5), (23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0),
                 (55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0))
_PRK_WEIGHTS = (1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0)
_MIN_STEPS = {"pndm": 4, "plms": 2}
_PRK_STEPS = 3


def pndm_transfer(x: State, eps: State, alpha_bar: float, alpha_bar_next: float) -> State:
    """The transfer part phi of Liu et al. 2022 (eq. 9): the DDIM step from alphabar = a to alphabar' = a' with the
    eps-estimate e, sqrt(a' / a) x - (a' - a) e / (a sqrt(1 - a') + sqrt(a (1 - a) a')). 0 < a < 1, 0 < a' <= 1."""
    a, b = float(alpha_bar), float(alpha_bar_next)
    if not (0 < a < 1 and 0 < b <= 1):
        raise SDEKitError(f"alpha_bar must lie in (0, 1) and alpha_bar_next in (0, 1]; got {a!r}, {b!r}")
    denom = a * math.sqrt(1.0 - b) + math.sqrt(a * (1.0 - a) * b)
    return math.sqrt(b / a) * x - ((b - a) / denom) * eps


def _combine(weights: tuple[float, ...], values: list[State]) -> State:
    out = weights[0] * values[0]
    for w, v in zip(weights[1:], values[1:]):
        out = out + w * v
    return out


class _Eps:
    """eps = -sigma s(x, alpha, sigma) at a level of the schedule (checked, counted calls of the run)."""

    def __init__(self, run: SamplerRun, schedule: DiscreteSchedule) -> None:
        self.run, self.schedule = run, schedule

    def __call__(self, x: State, k: int, step: int) -> State:
        alpha, sigma = self.schedule.level(k)
        return -sigma * self.run.score(x, alpha, sigma, step)

    def x0(self, x: State, eps: State, k: int) -> State:
        alpha, sigma = self.schedule.level(k)
        return (x - sigma * eps) / alpha


def pndm_sample(score: ScoreFn, schedule: DiscreteSchedule, x_K: ArrayLike, *, method: str = "pndm",  # noqa: N803
                steps: int | None = None, indices: ArrayLike | None = None, seed: int = 0, path_offset: int = 0,
                noise: NoiseFn | None = None, callback: Callable | None = None,
                return_trajectory: bool = False) -> SampleResult:
    """PNDM / PLMS (Liu et al. 2022; module docstring for every update) from level tau_S down to the data level 0.

    score(x (n, *shape), alpha, sigma) -> grad log p at x = alpha x_0 + sigma eps; schedule: a `DiscreteSchedule`;
    the levels tau_1 < ... < tau_S are ``indices`` or ``steps`` evenly spaced levels (as `ddim_sample`,
    `ddim.ddim_levels`; default 50). x_K: (n, *shape) draws at level tau_S. method "pndm" (3 pseudo Runge-Kutta
    steps, then pseudo linear multistep of order 4; S >= 4, NFE = S + 9) or "plms" (pseudo improved Euler first
    step, then pseudo linear multistep of orders 2, 3, 4; S >= 2, NFE = S + 1; diffusers' skip_prk_steps). The
    transfer is `pndm_transfer` (the DDIM step). Deterministic: seed and noise are accepted and unused. Returns a
    `SampleResult` (the levels tau_S, ..., tau_1, 0); a torch x_K gives a tensor.
    """
    score = check_score(score)
    if method not in METHODS:
        raise SDEKitError(f"method must be one of {METHODS}; got {method!r}")
    levels = ddim_levels(schedule, steps=steps, indices=indices)
    n_steps = int(levels.shape[0])
    if n_steps < _MIN_STEPS[method]:
        raise SDEKitError(f"method {method!r} needs at least {_MIN_STEPS[method]} levels (steps or indices); got "
                          f"{n_steps}")
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    x = check_state(x_K, "x_K")
    eps_of = _Eps(run, schedule)
    path = [int(v) for v in levels[::-1]] + [0]  # tau_S, ..., tau_1, 0
    history: list[State] = []  # eps values, newest first
    run.start(x, *schedule.level(path[0]))
    for j in range(n_steps):
        k, k_next = path[j], path[j + 1]
        a, a_next = schedule.alpha_bar(k), schedule.alpha_bar(k_next)
        e_cur = eps_of(x, k, j)
        if method == "pndm" and j < _PRK_STEPS:
            m = k - (k - k_next) // 2
            a_mid = schedule.alpha_bar(m)
            e2 = eps_of(pndm_transfer(x, e_cur, a, a_mid), m, j)
            e3 = eps_of(pndm_transfer(x, e2, a, a_mid), m, j)
            e4 = eps_of(pndm_transfer(x, e3, a, a_next), k_next, j)
            e_used = _combine(_PRK_WEIGHTS, [e_cur, e2, e3, e4])
        elif method == "plms" and j == 0:
            e_end = eps_of(pndm_transfer(x, e_cur, a, a_next), k_next, j)
            e_used = 0.5 * (e_cur + e_end)
        else:
            e_used = None
        history.insert(0, e_cur)
        del history[len(_PLMS_WEIGHTS):]
        if e_used is None:
            e_used = _combine(_PLMS_WEIGHTS[len(history) - 1], history)
        denoised = eps_of.x0(x, e_cur, k) if run.wants_denoised else None
        x = pndm_transfer(x, e_used, a, a_next)
        run.step_done(j, x, *schedule.level(k_next), denoised)
    return run.finish(x)
