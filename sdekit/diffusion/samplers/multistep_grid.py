"""What the multistep solvers on (alpha, sigma) grids share (UniPC, DEIS; DPM-Solver's multistep method follows the
same rules): the grid from a ``forward`` argument with the optional data level appended (``to_zero``), and the order
of every step with the warm-up and lower-order-final rules of diffusers' schedulers.

Orders: step i (from grid level i to i + 1) has i earlier model outputs, so its order is min(order, i + 1) (orders
1, 2, 3, 3, ...). The lower-order-final rules:

* ``"dpm"`` (DPMSolverMultistepScheduler, DEISMultistepScheduler): lower_order_final None (diffusers' default) lowers
  the last step to order 1 when the grid ends at sigma = 0 or there are fewer than 15 steps, and with fewer than 15
  steps the one before it to at most 2; True lowers both at any number of steps; False neither.
* ``"unipc"`` (UniPCMultistepScheduler): lower_order_final None or True gives step i the order
  min(order, steps - i) (the last step 1, the one before at most 2, ...) at any number of steps; False none.

A step onto sigma = 0 must have order 1 (it is the final denoise x = alpha_0 x0hat(x_s), the limit of every
first-order update as sigma -> 0; the higher-order differences divide by r = h_prev / h -> 0), so lower_order_final
False is an error there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.samplers.lambda_schedule import KernelFn, resolve_grid
from sdekit.errors import SDEKitError

__all__ = ["LOWER_ORDER_RULES", "check_flag", "check_order", "multistep_orders", "multistep_pairs"]

LOWER_ORDER_RULES = ("dpm", "unipc")


def check_order(order: Any, allowed: tuple[int, ...]) -> int:
    """order as an int in allowed; an SDEKitError naming order otherwise."""
    if isinstance(order, bool) or not isinstance(order, int | np.integer) or int(order) not in allowed:
        raise SDEKitError(f"order must be one of {allowed}; got {order!r}")
    return int(order)


def check_flag(v: Any, name: str, allow_none: bool = False) -> bool | None:
    """v as a bool (or None where allowed); an SDEKitError naming it otherwise."""
    if v is None and allow_none:
        return None
    if not isinstance(v, bool | np.bool_):
        raise SDEKitError(f"{name} must be {'None or ' if allow_none else ''}a bool; got {v!r}")
    return bool(v)


def multistep_pairs(forward: ForwardSDE | KernelFn | ArrayLike, steps: Any, skip: str,
                    t_span: tuple[float, float] | None, to_zero: Any) -> list[tuple[float, float]]:
    """The grid of (alpha, sigma) pairs, noisiest first (`lambda_schedule.resolve_grid`; steps default 20), with the
    data level (1, 0) appended when to_zero (then the grid must not already end at sigma = 0)."""
    to_zero = check_flag(to_zero, "to_zero")
    alphas, sigmas, _, _ = resolve_grid(forward, steps, skip, t_span, 20)
    if to_zero:
        if sigmas[-1] == 0:
            raise SDEKitError("to_zero must be False when the grid already ends at sigma = 0")
        alphas, sigmas = np.append(alphas, 1.0), np.append(sigmas, 0.0)
    return list(zip(alphas.tolist(), sigmas.tolist()))


def multistep_orders(n_steps: int, order: int, lower_order_final: bool | None, ends_at_zero: bool,
                     rule: str) -> list[int]:
    """The order of every step (module docstring) for the rule "dpm" or "unipc"."""
    if rule not in LOWER_ORDER_RULES:
        raise SDEKitError(f"rule must be one of {LOWER_ORDER_RULES}; got {rule!r}")
    if ends_at_zero and lower_order_final is False:
        raise SDEKitError("lower_order_final must be True (or None) when the grid ends at sigma = 0: the step onto "
                          "sigma = 0 is the first-order final denoise")
    orders = [min(order, i + 1) for i in range(n_steps)]
    if rule == "unipc":
        if lower_order_final is not False:
            orders = [min(k, n_steps - i) for i, k in enumerate(orders)]
        return orders
    if lower_order_final is None:
        lower_last, lower_second = ends_at_zero or n_steps < 15, n_steps < 15
    else:
        lower_last = lower_second = lower_order_final
    if lower_second and n_steps >= 2:
        orders[-2] = min(orders[-2], 2)
    if lower_last:
        orders[-1] = 1
    return orders
