"""Conditional flow matching in torch: the loss, a velocity-model wrapper and a training loop.

With x_0 from the data, eps ~ N(0, I) and t ~ U[t_min, t_max] per example, and an interpolant
x_t = alpha_t x_0 + sigma_t eps (`sdekit.flow.interpolants`; linear by default), the conditional flow-matching loss
(Lipman, Chen, Ben-Hamu, Nickel & Le 2023, eq. 9 and 14; Liu, Gong & Liu 2022, rectified flow, eq. 1) is

    L(theta) = E_t E_{x_0, eps} || v_theta(x_t, t) - (alpha'_t x_0 + sigma'_t eps) ||^2,

whose gradient equals that of the marginal loss E || v_theta - u ||^2, with the marginal velocity
u(x, t) = E[alpha'_t x_0 + sigma'_t eps | x_t = x]. Its minimum, at v_theta = u, is the conditional variance

    L* = E_t E || alpha'_t x_0 + sigma'_t eps - u(x_t, t) ||^2,

which for Gaussian data N(m, diag(v)) and the linear interpolant is sum_i v_i / ((1 - t)^2 v_i + t^2) at each t
(tests/test_flow_matching_loss.py). The squared error is summed over every non-batch axis and averaged over the
batch ("mean") or returned per example ("none", shape (n,)).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sdekit.diffusion.inputs import real_array
from sdekit.errors import SDEKitError
from sdekit.flow.interpolants import Interpolant, get_interpolant
from sdekit.learn.losses import batch_column, per_example_sum
from sdekit.learn.train import LR_DECAYS, TrainingResult, _batches, _decay, _positive_int

__all__ = ["VelocityModel", "flow_matching_loss", "flow_matching_pairs", "train_flow_model"]

REDUCTIONS = ("mean", "none")


def _times(n: int, like: torch.Tensor, t: Any, t_range: tuple[float, float],
           generator: torch.Generator | None) -> torch.Tensor:
    if t is None:
        lo, hi = t_range
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=like.dtype, device=like.device)
    if torch.is_tensor(t):
        tt = t.to(dtype=like.dtype, device=like.device)
    else:
        arr = real_array(t, "t")
        if not (np.all(np.isfinite(arr)) and np.all(arr >= 0) and np.all(arr <= 1)):
            raise SDEKitError(f"t must lie in [0, 1]; got {t!r}")
        tt = torch.as_tensor(arr, dtype=like.dtype, device=like.device)
    if tt.ndim > 1 or tt.numel() not in (1, n):
        raise SDEKitError(f"t must be None, a number or a tensor of shape ({n},); got shape {tuple(tt.shape)}")
    return tt.reshape(-1).expand(n)


def _check_range(t_range: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in t_range)
    except (TypeError, ValueError):
        raise SDEKitError(f"t_range must be a pair (t_min, t_max); got {t_range!r}") from None
    if not (0.0 <= lo < hi <= 1.0):
        raise SDEKitError(f"t_range must satisfy 0 <= t_min < t_max <= 1; got {t_range!r}")
    return lo, hi


def flow_matching_pairs(x0: torch.Tensor, t: torch.Tensor, interpolant: Interpolant | str = "linear",
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, target) = (alpha_t x_0 + sigma_t eps, alpha'_t x_0 + sigma'_t eps), eps ~ N(0, I) from ``generator``;
    t of shape (n,) (broadcast over the rest of x_0's shape)."""
    ip = get_interpolant(interpolant)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    a, s, da, ds = (batch_column(torch.as_tensor(f(t), dtype=x0.dtype, device=x0.device).expand(t.shape), x0)
                    for f in (ip.alpha, ip.sigma, ip.dalpha, ip.dsigma))
    return a * x0 + s * eps, da * x0 + ds * eps


def flow_matching_loss(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: Any, *,
                       interpolant: Interpolant | str = "linear", t: Any = None,
                       t_range: tuple[float, float] = (0.0, 1.0), generator: torch.Generator | None = None,
                       reduction: str = "mean") -> torch.Tensor:
    """E || v_theta(x_t, t) - (alpha'_t x_0 + sigma'_t eps) ||^2 (module docstring; Lipman et al. 2023).

    model(x_t (n, *shape), t (n,)) -> (n, *shape): a velocity model (e.g. `VelocityModel`, or the exact
    `sdekit.flow.MixtureVelocity`). x0: the data batch (n, *shape). t: None (t ~ U[t_range] from ``generator``), a
    number or an (n,) tensor. reduction "mean" (0-d) or "none" ((n,), for standard errors)."""
    if not callable(model):
        raise SDEKitError(f"model must be callable as model(x, t); got {type(model).__name__}")
    if reduction not in REDUCTIONS:
        raise SDEKitError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")
    if not torch.is_tensor(x0):
        x0 = torch.as_tensor(real_array(x0, "x0"))
    if x0.ndim < 2 or x0.shape[0] < 1 or not x0.is_floating_point():
        raise SDEKitError(f"x0 must be a floating tensor of shape (n, *shape); got {x0.dtype} {tuple(x0.shape)}")
    lo_hi = _check_range(t_range)
    tt = _times(x0.shape[0], x0, t, lo_hi, generator)
    xt, target = flow_matching_pairs(x0, tt, interpolant, generator)
    pred = model(xt, tt)
    if not torch.is_tensor(pred) or tuple(pred.shape) != tuple(x0.shape):
        raise SDEKitError(f"model(x, t) must return a tensor of x's shape {tuple(x0.shape)}; got "
                          f"{type(pred).__name__} {tuple(getattr(pred, 'shape', ()))}")
    values = per_example_sum((pred - target) ** 2)
    return values.mean() if reduction == "mean" else values


class VelocityModel(torch.nn.Module):
    """A network net(x, c) read as a velocity model v(x, t) = net(x, time_scale t) (e.g. `ScoreMLP`,
    `ConvScoreNet`; time_scale 1000 for networks conditioned on diffusers-style timesteps).

    Called with a torch x it returns a tensor (with the autograd graph); with a NumPy x (a flow sampler's NumPy
    state) it runs under no_grad in the network's dtype and device and returns float64 NumPy. t: a number or one
    value per row."""

    def __init__(self, net: torch.nn.Module, *, time_scale: float = 1.0) -> None:
        super().__init__()
        if not isinstance(net, torch.nn.Module):
            raise SDEKitError(f"net must be a torch.nn.Module; got {type(net).__name__}")
        if isinstance(time_scale, bool) or not isinstance(time_scale, int | float) or not time_scale > 0:
            raise SDEKitError(f"time_scale must be a positive number; got {time_scale!r}")
        self.net, self.time_scale = net, float(time_scale)
        self.dim = getattr(net, "dim", None)

    def forward(self, x: Any, t: Any) -> Any:
        if not torch.is_tensor(x):
            p = next(self.net.parameters())
            with torch.no_grad():
                out = self.forward(torch.as_tensor(real_array(x, "x"), dtype=p.dtype, device=p.device), t)
            return out.double().cpu().numpy()
        tt = t.to(dtype=x.dtype, device=x.device) if torch.is_tensor(t) else torch.as_tensor(
            np.asarray(t, dtype=np.float64), dtype=x.dtype, device=x.device)
        tt = tt.reshape(-1).expand(x.shape[0]) if tt.numel() == 1 else tt.reshape(-1)
        return self.net(x, self.time_scale * tt)


def train_flow_model(model: torch.nn.Module, data: Any, *, interpolant: Interpolant | str = "linear",
                     steps: int = 2000, batch_size: int = 256, lr: float = 2e-3, lr_decay: str = "cosine",
                     t_range: tuple[float, float] = (0.0, 1.0), grad_clip: float | None = None,
                     seed: int = 0) -> TrainingResult:
    """Minimise `flow_matching_loss` over model's parameters with Adam (Kingma & Ba 2015) and the learning rate
    lr * decay(k / steps) ("cosine", "linear", "constant"), as `sdekit.learn.train_score_model` does: data an
    (N, *shape) table (batches with replacement) or a callable (n, generator) -> batch; one torch.Generator seeded
    ``seed`` draws batches, times and noise. The model is left in eval mode."""
    if not isinstance(model, torch.nn.Module):
        raise SDEKitError(f"model must be a torch.nn.Module (a VelocityModel); got {type(model).__name__}")
    if lr_decay not in LR_DECAYS:
        raise SDEKitError(f"lr_decay must be one of {LR_DECAYS}; got {lr_decay!r}")
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    seed = _positive_int(seed, "seed", 0)
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not (math.isfinite(lr) and lr > 0):
        raise SDEKitError(f"lr must be a positive number; got {lr!r}")
    if grad_clip is not None and (isinstance(grad_clip, bool) or not isinstance(grad_clip, int | float)
                                  or not grad_clip > 0):
        raise SDEKitError(f"grad_clip must be None or a positive number; got {grad_clip!r}")
    ip = get_interpolant(interpolant)
    lo_hi = _check_range(t_range)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SDEKitError("model has no trainable parameters")
    like = params[0]
    draw = _batches(data, like, getattr(model, "dim", None))
    gen = torch.Generator(device=like.device).manual_seed(seed)
    opt = torch.optim.Adam(params, lr=float(lr))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _decay(lr_decay, steps))
    losses = np.empty(steps)
    model.train()
    start = time.perf_counter()
    try:
        for k in range(steps):
            value = flow_matching_loss(model, draw(batch_size, gen), interpolant=ip, t_range=lo_hi, generator=gen)
            opt.zero_grad(set_to_none=True)
            value.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, float(grad_clip))
            opt.step()
            sched.step()
            losses[k] = float(value.detach())
            if not math.isfinite(losses[k]):
                raise FloatingPointError(f"the flow-matching loss became non-finite at step {k}; lower lr or set "
                                         "grad_clip")
    finally:
        model.eval()
    return TrainingResult(losses=losses, seconds=time.perf_counter() - start, steps=steps)
