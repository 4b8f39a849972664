"""The forward schedules of `sdekit.diffusion.forward` on torch tensors: (f(t), g(t)) and (alpha_t, sigma_t) for
a batch of times, on the device and in the dtype of t, differentiable in t.

The formulas are those of `schedule_coefficients` / `schedule_kernel` (Song et al. 2021, App. B; Nichol &
Dhariwal 2021 for the cosine schedule), written with torch operations so that a training loop can draw one time
per example on the GPU without leaving the device:

- VE:     f = 0, g = sigma(t) sqrt(2 ln(smax / smin)), sigma(t) = smin (smax / smin)^t;
          alpha = 1, sigma_t = sqrt(sigma(t)^2 - smin^2) ("exact") or sigma(t) ("score_sde").
- VP:     beta = a + t (b - a), f = -beta / 2, g = sqrt(beta), B = a t + (b - a) t^2 / 2,
          alpha = exp(-B / 2), sigma = sqrt(1 - exp(-B)).
- sub-VP: f = -beta / 2, g = sqrt(beta (1 - exp(-2 B))), alpha = exp(-B / 2), sigma = 1 - exp(-B).
- cosine: u = (t + s) / (1 + s) pi / 2, alpha = cos u / cos u_0, sigma = sqrt(1 - alpha^2),
          f = -pi / (2 (1 + s)) tan u, g = sqrt(-2 f).

A custom schedule (`ForwardSDE.custom`) has no closed form; its kernel is evaluated on the CPU through its dense
ODE solution and moved to t's device (not differentiable in t).
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from sdekit.diffusion.forward import COSINE, SUBVP, VE, VP, ForwardSDE
from sdekit.errors import SDEKitError

__all__ = ["coefficients_from_sp", "kernel_from_sp", "torch_coefficients", "torch_kernel"]


def _time(t: Any, like: Any = None) -> Any:
    import torch

    if torch.is_tensor(t):
        return t
    if like is not None and torch.is_tensor(like):
        return torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return torch.as_tensor(t, dtype=torch.float64)


def _pairs_on_cpu(fn: Any, t: Any) -> tuple[Any, Any]:
    """(a(t), b(t)) for a scalar function fn(float) -> (a, b) evaluated on the CPU at every entry of the tensor t,
    returned in t's shape, dtype and device (a custom schedule has no closed form to write in torch)."""
    import torch

    flat = t.detach().to("cpu", torch.float64).reshape(-1).numpy()
    pairs = np.array([fn(float(v)) for v in flat], dtype=float).reshape(-1, 2)
    return tuple(torch.as_tensor(pairs[:, i], dtype=t.dtype, device=t.device).reshape(t.shape) for i in (0, 1))


def _check_forward(forward: Any) -> ForwardSDE:
    if not isinstance(forward, ForwardSDE):
        raise SDEKitError(f"forward must be a ForwardSDE (ForwardSDE.vp(), .ve(), ...); got {type(forward).__name__}")
    return forward


def torch_kernel(forward: ForwardSDE, t: Any, like: Any = None) -> tuple[Any, Any]:
    """(alpha_t, sigma_t) of x_t | x_0 ~ N(alpha_t x_0, sigma_t^2 I) for a tensor of times t (any shape).

    t: a tensor, or a number made a tensor in the dtype and on the device of ``like``. Returns two tensors of t's
    shape, dtype and device.
    """

    forward = _check_forward(forward)
    t = _time(t, like)
    if forward.custom_kernel is not None:
        return _pairs_on_cpu(forward.kernel, t)
    return kernel_from_sp(t, forward.sp)


_SP_FLOATS: dict[int, tuple[Any, int, tuple[int, float, float, float]]] = {}


def _sp(sp: Any) -> tuple[int, float, float, float]:
    """The schedule's (kind, a, b, c) as Python numbers. A tensor sp (the torch backend's parameters, possibly on a
    GPU) is read once and remembered while it lives (keyed by the tensor's identity, checked through a weak
    reference, and its in-place version counter), so the drift and diffusion twins do not synchronise with the
    device at every step."""
    if type(sp).__module__.startswith("torch"):
        hit = _SP_FLOATS.get(id(sp))
        if hit is not None and hit[0]() is sp and hit[1] == sp._version:
            return hit[2]
        vals = _sp(sp.detach().cpu().numpy())
        key = id(sp)
        _SP_FLOATS[key] = (weakref.ref(sp, lambda _ref, key=key: _SP_FLOATS.pop(key, None)), sp._version, vals)
        return vals
    vals = sp.tolist() if hasattr(sp, "tolist") else list(sp)
    return int(vals[0]), float(vals[1]), float(vals[2]), float(vals[3]) if len(vals) > 3 else 0.0


def kernel_from_sp(t: Any, sp: Any) -> tuple[Any, Any]:
    """(alpha_t, sigma_t) for the built-in schedule sp = [kind, a, b, c] (array, tensor or list) at tensor times t."""
    import torch

    kind, a, b, c = _sp(sp)
    t = _time(t)
    if kind == VE:
        sig = a * torch.exp(t * math.log(b / a))
        if c != 0.0:
            return torch.ones_like(t), sig
        return torch.ones_like(t), torch.sqrt(torch.clamp(sig * sig - a * a, min=0.0))
    if kind in (VP, SUBVP):
        big_b = a * t + 0.5 * (b - a) * t * t
        alpha = torch.exp(-0.5 * big_b)
        one_minus = -torch.expm1(-big_b)
        return alpha, (torch.sqrt(one_minus) if kind == VP else one_minus)
    if kind == COSINE:
        u0 = a / (1.0 + a) * 0.5 * math.pi
        u = (t + a) / (1.0 + a) * 0.5 * math.pi
        alpha = torch.cos(u) / math.cos(u0)
        return alpha, torch.sqrt(torch.clamp(1.0 - alpha * alpha, min=0.0))
    raise SDEKitError(f"unknown schedule kind {kind} in forward.sp")


def torch_coefficients(forward: ForwardSDE, t: Any, like: Any = None) -> tuple[Any, Any]:
    """(f(t), g(t)) of dx = f(t) x dt + g(t) dW for a tensor of times t (any shape); see `torch_kernel` for t."""

    forward = _check_forward(forward)
    t = _time(t, like)
    if forward.custom_kernel is not None:
        return _pairs_on_cpu(lambda v: forward.coefficients_fn(v, forward.sp), t)
    return coefficients_from_sp(t, forward.sp)


def coefficients_from_sp(t: Any, sp: Any) -> tuple[Any, Any]:
    """(f(t), g(t)) for the built-in schedule sp = [kind, a, b, c] at tensor times t."""
    import torch

    kind, a, b, _ = _sp(sp)
    t = _time(t)
    if kind == VE:
        log_ratio = math.log(b / a)
        return torch.zeros_like(t), a * torch.exp(t * log_ratio) * math.sqrt(2.0 * log_ratio)
    if kind in (VP, SUBVP):
        beta = a + t * (b - a)
        if kind == VP:
            return -0.5 * beta, torch.sqrt(beta)
        big_b = a * t + 0.5 * (b - a) * t * t
        return -0.5 * beta, torch.sqrt(beta * -torch.expm1(-2.0 * big_b))
    if kind == COSINE:
        u = (t + a) / (1.0 + a) * 0.5 * math.pi
        f = -0.5 * math.pi / (1.0 + a) * torch.tan(u)
        return f, torch.sqrt(-2.0 * f)
    raise SDEKitError(f"unknown schedule kind {kind} in forward.sp")
