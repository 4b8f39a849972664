"""The inference-timestep grids of diffusers' schedulers ('linspace', 'leading', 'trailing', ``steps_offset``),
reproduced exactly and handed over as sdekit level grids or EDM sigma grids.

diffusers (0.35) numbers training timesteps t = 0..K-1 (sdekit level k = t + 1) and lists inference timesteps in
decreasing order. The three spacings are the annotations of Lin, Liu, Li & Yang 2024 ("Common diffusion noise
schedules and sampling steps are flawed", Table 2); with P points, ratio = K // P and r = K / steps:

    linspace   t_i = round(i (K - 1) / (P - 1)),  i = 0..P-1          (numpy linspace(0, K - 1, P).round())
    leading    t_i = i ratio + steps_offset,      i = 0..P-1          (the DDIM code's skip K // steps)
    trailing   t   = round(arange(K, 0, -r)) - 1                      (steps points from K - 1 down, r apart)

The DDIM code (Song, Meng & Ermon, skip_type "uniform") uses range(0, K, K // steps), which equals 'leading' with
steps_offset 0 when steps divides K and has more than steps points otherwise.
"round" is NumPy's round half to even (np.round), kept here because it is diffusers' (linspace(0, 49, 3) has 24.5
-> 24 and linspace(0, 999, 7) has 166.5 -> 166, where half up gives 25 and 167); sdekit's own
`DiscreteSchedule.spaced_levels` rounds half up. steps_offset is added under 'leading' only, as diffusers does (it
ignores it for 'linspace' and 'trailing').

The conventions differ per scheduler family and are kept as data (`CONVENTIONS`):

- "ddim": DDIMScheduler and DDPMScheduler: P = steps points, rounded.
- "dpmsolver": DPMSolverMultistepScheduler: 'linspace' and 'leading' place P = steps + 1 points and drop the
  smallest (t = 0), so the last model call is at t_1 > 0 and the final step goes to sigma = 0 (or to level 1 with
  final_sigmas_type="sigma_min"); 'trailing' as above. (lambda_min_clipped is not modelled: its default -inf.)
  DPMSolverSinglestepScheduler has no timestep_spacing / steps_offset and always uses the "dpmsolver" 'linspace'.
- "euler": EulerDiscreteScheduler and HeunDiscreteScheduler: 'linspace' is NOT rounded (fractional timesteps
  i (K - 1) / (steps - 1), which diffusers computes in float32; here in float64), and the sigmas are
  np.interp(t, arange(K), sigmas_edm), linear in sigma (`euler_sigmas`). Heun repeats every timestep after the
  first for its second stage; its distinct timesteps are Euler's.

Where diffusers' rule yields repeated timesteps, timesteps outside 0..K-1 (its tables would then be indexed out of
range or clamped silently) or a number of timesteps other than steps (the float ``arange`` of 'trailing'), sdekit
refuses with an SDEKitError instead; e.g. DPMSolverMultistep 'linspace' with steps = K repeats a timestep, 'leading'
with steps_offset = 1 and steps = K reaches t = K, and 'trailing' with steps > K reaches t = -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.diffusion.samplers.checks import check_count
from sdekit.diffusion.samplers.discrete import DiscreteSchedule
from sdekit.errors import SDEKitError

__all__ = ["CONVENTIONS", "SPACINGS", "Convention", "diffusers_timesteps", "euler_sigmas",
           "timestep_levels"]

SPACINGS = ("linspace", "leading", "trailing")


@dataclass(frozen=True)
class Convention:
    """How one family of diffusers schedulers turns (K, steps, spacing) into timesteps.

    schedulers: the diffusers classes that follow it. drops_first_point: 'linspace' / 'leading' place steps + 1
    points and drop t = 0 (DPM-Solver). rounds_linspace: 'linspace' points are rounded to integers (np.round).
    """

    schedulers: tuple[str, ...]
    drops_first_point: bool
    rounds_linspace: bool


CONVENTIONS: dict[str, Convention] = {
    "ddim": Convention(("DDIMScheduler", "DDPMScheduler"), drops_first_point=False, rounds_linspace=True),
    "dpmsolver": Convention(("DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler ('linspace' only)"),
                            drops_first_point=True, rounds_linspace=True),
    "euler": Convention(("EulerDiscreteScheduler", "HeunDiscreteScheduler"), drops_first_point=False,
                        rounds_linspace=False),
}


def _convention(convention: Any) -> Convention:
    if not isinstance(convention, str) or convention not in CONVENTIONS:
        raise SDEKitError(f"convention must be one of {tuple(CONVENTIONS)}; got {convention!r}")
    return CONVENTIONS[convention]


def _schedule(schedule: Any) -> DiscreteSchedule:
    if not isinstance(schedule, DiscreteSchedule):
        raise SDEKitError(f"schedule must be a DiscreteSchedule; got {type(schedule).__name__}")
    return schedule


def diffusers_timesteps(n_train: int, steps: int, spacing: str = "linspace", steps_offset: int = 0,
                        convention: str = "ddim") -> np.ndarray:
    """The inference timesteps diffusers' schedulers of ``convention`` set for ``num_train_timesteps = n_train``,
    ``num_inference_steps = steps``, ``timestep_spacing = spacing`` and ``steps_offset`` (module docstring): 0-based,
    in diffusers' (decreasing) order, as float64, unchecked (they may repeat or leave 0..K-1 exactly where
    diffusers' do). Integer-valued except for the "euler" 'linspace' rule.
    """
    k = check_count(n_train, "n_train")
    n = check_count(steps, "steps")
    off = check_count(steps_offset, "steps_offset", 0)
    conv = _convention(convention)
    if spacing not in SPACINGS:
        raise SDEKitError(f"spacing must be one of {SPACINGS}; got {spacing!r}")
    points = n + 1 if conv.drops_first_point else n
    if spacing == "linspace":
        t = np.linspace(0.0, k - 1, points)
        t = np.round(t) if conv.rounds_linspace else t
    elif spacing == "leading":
        t = (np.arange(points) * (k // points)).astype(np.float64)
    else:
        return np.round(np.arange(k, 0, -k / n)) - 1.0
    t = t[::-1]
    if conv.drops_first_point:
        t = t[:-1]
    return t + off if spacing == "leading" else t.copy()


def _checked_timesteps(k: int, steps: int, spacing: str, steps_offset: int, convention: str) -> np.ndarray:
    t = diffusers_timesteps(k, steps, spacing, steps_offset, convention)
    what = f"spacing={spacing!r}, steps_offset={steps_offset}, convention={convention!r}, K={k}"
    problem = None
    if t.shape[0] != steps:
        problem = f"{t.shape[0]} timesteps instead of {steps}"
    elif t.min() < 0 or t.max() > k - 1:
        problem = f"timesteps outside 0..{k - 1} (min {t.min():g}, max {t.max():g})"
    elif np.any(np.diff(t) >= 0):
        problem = "repeated timesteps"
    if problem is not None:
        raise SDEKitError(f"steps = {steps} with {what}: diffusers' rule gives {problem}: "
                          f"{t[:8].tolist()}{' ...' if t.shape[0] > 8 else ''}; sdekit refuses such a grid "
                          "(choose fewer steps, another spacing or steps_offset)")
    return t


def timestep_levels(schedule: DiscreteSchedule, steps: int, spacing: str = "linspace", steps_offset: int = 0,
                    convention: str = "ddim") -> np.ndarray:
    """diffusers' inference timesteps (`diffusers_timesteps`) as sdekit levels k = t + 1, strictly increasing int64
    in 1..K, ready for ``ddim``/``ddpm`` ``indices`` and `sigma_grids.pairs_from_schedule`.

    Equal, as integers, to ``scheduler.timesteps[::-1] + 1`` of DDIMScheduler / DDPMScheduler ("ddim"),
    DPMSolverMultistepScheduler ("dpmsolver"; DPMSolverSinglestepScheduler is "dpmsolver" 'linspace' with
    steps_offset 0) and EulerDiscreteScheduler / HeunDiscreteScheduler ("euler", distinct timesteps) with the same
    num_train_timesteps = K, num_inference_steps = steps, timestep_spacing and steps_offset
    (tests/test_schedules_ecosystem.py, K in {50, 1000}). An SDEKitError when diffusers' rule gives repeated or
    out-of-range timesteps, or fractional ones (the "euler" 'linspace' rule unless (K - 1) / (steps - 1) is an
    integer: use `euler_sigmas` there).
    """
    sched = _schedule(schedule)
    k = sched.n_steps
    t = _checked_timesteps(k, check_count(steps, "steps"), spacing, steps_offset, convention)
    if np.any(t != np.floor(t)):
        raise SDEKitError(f"steps = {steps} with spacing={spacing!r}, convention={convention!r}, K={k}: diffusers' "
                          "timesteps are fractional, not levels; use euler_sigmas(schedule, steps, spacing) for "
                          "that sigma grid")
    return t[::-1].astype(np.int64) + 1


def euler_sigmas(schedule: DiscreteSchedule, steps: int, spacing: str = "linspace",
                 steps_offset: int = 0) -> np.ndarray:
    """The EDM sigma grid of diffusers' EulerDiscreteScheduler / HeunDiscreteScheduler (interpolation_type
    "linear", final_sigmas_type "zero", no Karras / exponential sigmas): s_i = np.interp(t_i, arange(K), sigmas_edm)
    at its timesteps t_0 > ... > t_{steps-1} ("euler" convention, fractional under 'linspace'), then a final 0: the
    last step ends at the data (a final denoise). Shape (steps + 1,), strictly decreasing; usable by ``edm_sample``
    on x / alpha and, through `sigma_grids.vp_pairs`, by DPM-Solver. The timestep each sigma conditions the network
    on is ``schedule.timestep_of_sigma(s, interpolation="linear")``, the inverse of this interpolation.
    """
    sched = _schedule(schedule)
    k = sched.n_steps
    t = _checked_timesteps(k, check_count(steps, "steps"), spacing, steps_offset, "euler")
    return np.append(np.interp(t, np.arange(k, dtype=np.float64), sched.sigmas_edm), 0.0)
