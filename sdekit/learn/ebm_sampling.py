"""Langevin chains for an energy-based model in torch: the negative phase of contrastive divergence.

The model is an ``nn.Module`` returning f_theta(x) of shape (n,) for x of shape (n, *shape): the unnormalised log
density, p_theta(x) = exp(f_theta(x)) / Z(theta); the energy is U_theta = -f_theta. With step size h and
z ~ N(0, I) drawn from one seeded ``torch.Generator``, a step of

- ULA (unadjusted Langevin; Roberts & Tweedie 1996; Welling & Teh 2011, as in Nijkamp et al. 2019 and Du & Mordatch
  2019):  x' = x + h grad_x f(x) + sqrt(2 h) z   (biased: on N(0, s^2) its stationary variance is
  s^2 / (1 - h / (2 s^2)));
- MALA (Metropolis-adjusted; Roberts & Tweedie 1996): the ULA point y is a proposal, accepted with probability
  min(1, exp(f(y) - f(x) + log k(x | y) - log k(y | x))), k(y | x) = N(y; x + h grad f(x), 2 h I), so p_theta is
  exactly invariant. A non-finite proposal is rejected.

Gradients in x come from autograd (``torch.autograd.grad`` with respect to x only: the parameters' ``.grad`` are not
touched), and the returned samples are detached: in contrastive divergence the model samples are constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from sdekit.errors import SDEKitError

__all__ = ["SAMPLERS", "LangevinSamples", "check_step_size", "langevin_chains", "log_density_and_grad"]

SAMPLERS = ("ula", "mala")


@dataclass
class LangevinSamples:
    """samples: the chains' last states (n, *shape), detached; acceptance: each chain's fraction of accepted
    proposals over the k steps (n,) (all ones for ULA)."""

    samples: torch.Tensor
    acceptance: torch.Tensor


def check_step_size(h: Any, name: str = "step_size") -> float:
    """h as a positive finite float; an SDEKitError naming it otherwise."""
    if isinstance(h, bool) or not isinstance(h, int | float) or not (math.isfinite(h) and h > 0):
        raise SDEKitError(f"{name} must be a positive finite number; got {h!r}")
    return float(h)


def log_density_and_grad(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f_theta(x) (n,), grad_x f_theta(x) (n, *shape)), both detached; an SDEKitError if the model's output is not
    one value per example."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        f = model(xg)
        if not torch.is_tensor(f) or f.shape != x.shape[:1]:
            raise SDEKitError(f"model must return f_theta(x) of shape (n,) = {tuple(x.shape[:1])} for x of shape "
                              f"{tuple(x.shape)}; got {tuple(getattr(f, 'shape', ()))}")
        (g,) = torch.autograd.grad(f.sum(), xg)
    return f.detach(), g.detach()


def _sq_norm(v: torch.Tensor) -> torch.Tensor:
    return (v * v).reshape(v.shape[0], -1).sum(dim=1)


def langevin_chains(model: torch.nn.Module, x0: torch.Tensor, *, steps: int, step_size: float,
                    sampler: str = "ula", generator: torch.Generator) -> LangevinSamples:
    """Run one Langevin chain from each row of x0 for ``steps`` steps of ULA or MALA on p_theta ∝ exp(f_theta)
    (module docstring for the updates); returns the final states and the acceptance fractions.

    x0: (n, *shape) starting points (cast to the model's parameter dtype); steps: k >= 1; step_size: h > 0;
    sampler: "ula" or "mala"; generator: the torch.Generator all noise (and MALA's uniforms) are drawn from, so the
    same generator state gives the same chains. A chain turning non-finite (ULA with too large a step) raises
    FloatingPointError.
    """
    if sampler not in SAMPLERS:
        raise SDEKitError(f"sampler must be one of {SAMPLERS}; got {sampler!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SDEKitError(f"steps (k) must be an integer >= 1; got {steps!r}")
    h = check_step_size(step_size)
    if not isinstance(generator, torch.Generator):
        raise SDEKitError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    if not torch.is_tensor(x0) or x0.ndim < 2 or x0.shape[0] < 1:
        raise SDEKitError(f"x0 must be a tensor (n, *shape) with n >= 1; got {tuple(getattr(x0, 'shape', ()))}")
    like = next(iter(model.parameters()), None)
    x = x0.detach().to(dtype=like.dtype if like is not None else x0.dtype)
    noise_scale = math.sqrt(2.0 * h)
    f, g = log_density_and_grad(model, x)
    accepted = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for _ in range(steps):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        y = x + h * g + noise_scale * z
        if sampler == "ula":
            x = y
            f, g = log_density_and_grad(model, x)
            accepted += 1.0
            continue
        fy, gy = log_density_and_grad(model, y)
        # log k(x | y) - log k(y | x) with k(b | a) = N(b; a + h grad f(a), 2h I); y - x - h g = sqrt(2h) z
        log_ratio = fy - f - _sq_norm(x - y - h * gy) / (4.0 * h) + 0.5 * _sq_norm(z)
        log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf, posinf=-math.inf)
        u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype, device=x.device)
        accept = torch.log(u) < log_ratio
        view = accept.reshape((-1,) + (1,) * (x.ndim - 1))
        x = torch.where(view, y, x)
        f = torch.where(accept, fy, f)
        g = torch.where(view, gy, g)
        accepted += accept.to(x.dtype)
    if not bool(torch.isfinite(x).all()):
        raise FloatingPointError(f"the {sampler.upper()} chains became non-finite; lower step_size (h = {h:g})")
    return LangevinSamples(samples=x, acceptance=accepted / steps)
