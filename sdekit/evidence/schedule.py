"""Inverse-temperature schedules from the reference (beta = 0) to the target (beta = 1), and the step sizes of the
moves along them.

Step sizes: a move's proposal scale at beta interpolates the precisions of the target and the reference,

    sigma_beta = (beta / sigma_1^2 + (1 - beta) / s^2)^(-1/2),

with sigma_1 the scale at beta = 1 (MALA: sqrt(2 h_1), HMC: eps_1) and s the reference's scale
(sqrt(trace C / d)): for a Gaussian target and reference with isotropic covariances it is the scale of pi_beta
(the rule of `sdekit.mcmc.tempering.replica_exchange`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sdekit.diffusion.samplers.checks import check_count, check_positive, check_real
from sdekit.errors import SDEKitError
from sdekit.targets.gaussian import float_array

__all__ = ["SCHEDULES", "annealing_betas", "check_betas", "check_move", "default_step", "step_at"]

SCHEDULES = ("sigmoid", "geometric", "linear")
SIGMOID_DELTA = 4.0
GEOMETRIC_BETA_MIN = 1e-4
# move -> (default step size at beta = 1, default target acceptance of SMC's adaptation)
MOVE_DEFAULTS = {"mala": (0.1, 0.574), "hmc": (0.2, 0.65)}


def annealing_betas(n: int, kind: str = "sigmoid") -> np.ndarray:
    """n >= 2 inverse temperatures, 0 = beta_0 < ... < beta_{n-1} = 1:

    sigmoid:   beta_k = (s(t_k) - s(-delta)) / (s(delta) - s(-delta)), s the logistic function,
               t_k = delta (2k/(n-1) - 1), delta = 4 (Grosse, Maddison & Salakhutdinov 2013, "Annealing
               between distributions by averaging moments", NeurIPS): small steps at both ends;
    geometric: beta_0 = 0, beta_k = beta_min^((n - 1 - k) / (n - 2)) for k >= 1, beta_min = 1e-4 (Neal 2001);
    linear:    beta_k = k / (n - 1).
    """
    n = check_count(n, "betas", minimum=2)
    if kind not in SCHEDULES:
        raise SDEKitError(f"schedule must be one of {SCHEDULES}; got {kind!r}")
    k = np.arange(n, dtype=np.float64)
    if kind == "linear":
        b = k / (n - 1)
    elif kind == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-SIGMOID_DELTA * (2.0 * k / (n - 1) - 1.0)))
        b = (s - s[0]) / (s[-1] - s[0])
    else:
        if n < 3:
            raise SDEKitError(f"betas must be >= 3 for the geometric schedule; got {n}")
        b = np.zeros(n)
        b[1:] = GEOMETRIC_BETA_MIN ** ((n - 1 - k[1:]) / (n - 2))
    b[0], b[-1] = 0.0, 1.0
    return b


def check_betas(betas: Any, schedule: str) -> np.ndarray:
    """betas as a schedule: an int count (then `annealing_betas(betas, schedule)`) or a strictly increasing array
    from exactly 0 to exactly 1."""
    if isinstance(betas, int | np.integer) and not isinstance(betas, bool):
        return annealing_betas(int(betas), schedule)
    if isinstance(betas, bool | str) or np.iscomplexobj(betas):
        raise SDEKitError(f"betas must be an integer count >= 2 or an increasing array from 0 to 1; got {betas!r}")
    b = float_array(betas, "betas")
    if b.ndim != 1 or b.shape[0] < 2:
        raise SDEKitError(f"betas must be an integer count >= 2 or a 1-D array of >= 2 values; got shape {b.shape}")
    if b[0] != 0.0 or b[-1] != 1.0:
        raise SDEKitError(f"betas must start at 0 (the reference) and end at 1 (the target); got {b[0]} ... {b[-1]}")
    if not np.all(np.diff(b) > 0):
        raise SDEKitError("betas must be strictly increasing")
    return np.ascontiguousarray(b)


def check_move(move: Any) -> str:
    """move as "mala" or "hmc"."""
    if move not in MOVE_DEFAULTS:
        raise SDEKitError(f"move must be one of {tuple(MOVE_DEFAULTS)}; got {move!r}")
    return str(move)


def default_step(move: str, step_size: Any) -> float:
    """The step size at beta = 1: ``step_size`` checked (> 0), or the move's default (MALA 0.1, HMC 0.2)."""
    if step_size is None:
        return MOVE_DEFAULTS[move][0]
    if isinstance(step_size, bool | str):
        raise SDEKitError(f"step_size must be a positive number; got {step_size!r}")
    return check_positive(step_size, "step_size")


def step_at(move: str, beta: np.ndarray | float, step1: float, ref_scale: float) -> np.ndarray:
    """The step size at beta: sigma_beta from the module docstring, as MALA's h = sigma^2 / 2 or HMC's eps = sigma."""
    sig1 = math.sqrt(2.0 * step1) if move == "mala" else step1
    b = np.asarray(beta, dtype=np.float64)
    sig = 1.0 / np.sqrt(b / sig1 ** 2 + (1.0 - b) / ref_scale ** 2)
    return 0.5 * sig ** 2 if move == "mala" else sig


def check_fraction(v: Any, name: str) -> float:
    """v as a float in (0, 1)."""
    f = check_real(v, name, lo=0.0, strict=True)
    if f >= 1.0:
        raise SDEKitError(f"{name} must be in (0, 1); got {f}")
    return f
