"""Training InDI restoration models (Delbracio & Milanfar 2023, "Inversion by direct iteration: an alternative to
denoising diffusion for image restoration", TMLR, eq. 7 and section 3.3).

With paired clean / degraded examples (x, y), t ~ U[0, 1] and eta ~ N(0, I) per example, the interpolant
(`sdekit.restoration.interpolant`) x_t = (1 - t) x + t y + t eps_t eta and the loss

    L(F) = E_{x, y, t, eta} || F(x_t, t) - x ||^2

(summed over each example's entries, averaged over the batch), minimised by the posterior mean F*(x_t, t) = E[x | x_t],
the denoiser `sdekit.restoration.indi_sample` iterates. Its value at F* is the Bayes risk
E_t[mmse(t)]: for Gaussian data N(m, diag(v)) and denoising y = x + sigma_y n (eps = 0) it is
sum_i v_i (1 - (sqrt(v_i) / sigma_y) arctan(sigma_y / sqrt(v_i))) (the integral over t of the per-level MMSE
v_i t^2 sigma_y^2 / (v_i + t^2 sigma_y^2)).

`InDIDenoiser` wraps a network net(x, c) (e.g. `ConvScoreNet`, `ScoreMLP`) as F(x, t) = x - t net(x, t): the network
predicts E[y - x | x_t] (the interpolant's velocity d x_t / dt for eps = 0), so F(x, 0) = x exactly and an untrained
zero-output network is the identity. `train_indi` fits any F with Adam on freshly degraded batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sdekit.errors import SDEKitError
from sdekit.learn.losses import batch_column, per_example_sum
from sdekit.learn.train import LR_DECAYS, TrainingResult, _batches, _decay, _positive_int
from sdekit.restoration.interpolant import check_noise_schedule, noise_at

__all__ = ["InDIDenoiser", "indi_interpolant", "indi_loss", "train_indi"]

REDUCTIONS = ("mean", "none")


def _check_pair(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    for name, v in (("x", x), ("y", y)):
        if not torch.is_tensor(v) or not v.is_floating_point() or v.ndim < 2 or v.shape[0] < 1:
            raise SDEKitError(f"{name} must be a floating torch tensor of shape (n, *shape) with n >= 1; got "
                              f"{type(v).__name__} {tuple(getattr(v, 'shape', ()))}")
    if tuple(x.shape) != tuple(y.shape):
        raise SDEKitError(f"y must have x's shape {tuple(x.shape)} (paired clean / degraded examples); got "
                          f"{tuple(y.shape)}")
    return x, y


def _times(t: Any, n: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(n,) times in like's dtype / device: U[0, 1] from generator, or the given number / 0-d / (n,) tensor."""
    if t is None:
        return torch.rand(n, generator=generator, dtype=like.dtype, device=like.device)
    if isinstance(t, bool):
        raise SDEKitError(f"t must be None, a number in [0, 1] or a tensor of shape ({n},); got {t!r}")
    if not torch.is_tensor(t):
        arr = np.asarray(t, dtype=np.float64) if np.isrealobj(t) else None
        if arr is None or not np.all(np.isfinite(arr)) or not np.all((arr >= 0) & (arr <= 1)):
            raise SDEKitError(f"t must be in [0, 1] (the InDI time); got {t!r}")
        t = torch.as_tensor(arr)
    tt = t.to(dtype=like.dtype, device=like.device)
    if tt.ndim > 1 or tt.numel() not in (1, n):
        raise SDEKitError(f"t must be None, a number or a tensor of shape ({n},); got shape {tuple(tt.shape)}")
    return tt.reshape(-1).expand(n)


def indi_interpolant(x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, noise_schedule: Any = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """x_t = (1 - t) x + t y + t eps_t eta, eta ~ N(0, I) from generator (drawn only when eps_t is not 0); x, y
    (n, *shape), t (n,). A callable noise schedule is called on the (n,) tensor t."""
    schedule = check_noise_schedule(noise_schedule)
    tc = batch_column(t, x)
    xt = (1.0 - tc) * x + tc * y
    if schedule is None or (not callable(schedule) and schedule == 0.0):
        return xt
    eps = noise_at(schedule, t)
    eps = torch.as_tensor(eps, dtype=x.dtype, device=x.device).reshape(-1)
    eta = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return xt + (tc * batch_column(eps.expand(x.shape[0]), x)) * eta


def indi_loss(denoiser: Callable, x: torch.Tensor, y: torch.Tensor, *, t: Any = None, noise_schedule: Any = None,
              generator: torch.Generator | None = None, reduction: str = "mean") -> torch.Tensor:
    """The InDI loss E || F(x_t, t) - x ||^2 (Delbracio & Milanfar 2023, eq. 7; with eps_t, section 3.3), x_t =
    (1 - t) x + t y + t eps_t eta, t ~ U[0, 1] (or the given t) and eta ~ N(0, I) per example from ``generator``.

    denoiser: F(x_t (n, *shape), t (n,)) -> (n, *shape) (an `InDIDenoiser`, or the exact
    `sdekit.restoration.MixtureDenoiser`). x, y: paired clean and degraded batches of the same shape. reduction:
    "mean" (a 0-d tensor) or "none" (the (n,) per-example squared errors, for standard errors). Minimised by
    F = E[x | x_t], where it equals the Bayes risk (module docstring).
    """
    if not callable(denoiser):
        raise SDEKitError(f"denoiser must be callable as denoiser(x_t, t) -> (n, *shape); got "
                          f"{type(denoiser).__name__}")
    if reduction not in REDUCTIONS:
        raise SDEKitError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")
    x, y = _check_pair(x, y)
    tt = _times(t, x.shape[0], x, generator)
    xt = indi_interpolant(x, y, tt, noise_schedule, generator)
    out = denoiser(xt, tt)
    if not torch.is_tensor(out) or tuple(out.shape) != tuple(x.shape):
        raise SDEKitError(f"denoiser(x_t, t) must return a tensor of x's shape {tuple(x.shape)}; got "
                          f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))}")
    err = per_example_sum((out - x) ** 2)
    return err.mean() if reduction == "mean" else err


class InDIDenoiser(torch.nn.Module):
    """F(x, t) = x - t net(x, t): a network net(x (n, *shape), c (n,)) -> (n, *shape) (`ConvScoreNet`, `ScoreMLP`,
    conditioned on c = t) read as the InDI velocity E[y - x | x_t], so that F(x, 0) = x and a zero-output net is the
    identity. Called with t a number, a 0-d or an (n,) tensor (the sampler passes a Python float)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        if not isinstance(net, torch.nn.Module):
            raise SDEKitError(f"net must be a torch.nn.Module net(x, c); got {type(net).__name__}")
        self.net = net
        self.dim = getattr(net, "dim", None)

    def forward(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        """x - t net(x, t) with t broadcast to one value per example."""
        if not torch.is_tensor(x):
            raise SDEKitError(f"x must be a torch tensor (n, *shape); got {type(x).__name__}")
        tt = _times(t, x.shape[0], x, None)
        return x - batch_column(tt, x) * self.net(x, tt)


def _degrader(degrade: Any) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """degrade as a function (x, generator) -> y: a number sigma_y > 0 is Gaussian denoising y = x + sigma_y n."""
    if callable(degrade):
        return degrade
    if isinstance(degrade, bool) or not isinstance(degrade, int | float) or not (math.isfinite(degrade)
                                                                                  and degrade > 0):
        raise SDEKitError(f"degrade must be a number sigma_y > 0 (denoising y = x + sigma_y n) or a callable "
                          f"(x, generator) -> y; got {degrade!r}")
    sigma_y = float(degrade)

    def noisy(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return x + sigma_y * torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)

    return noisy


def train_indi(denoiser: torch.nn.Module, data: Any, degrade: Any, *, steps: int = 2000, batch_size: int = 256,
               lr: float = 2e-3, noise_schedule: Any = None, lr_decay: str = "cosine",
               grad_clip: float | None = None, seed: int = 0) -> TrainingResult:
    """Minimise `indi_loss` over the denoiser's parameters with Adam (Kingma & Ba 2015); returns a TrainingResult.

    data: clean examples, an (N, *shape) tensor / array drawn with replacement or a callable (n, generator) ->
    (n, *shape) (as `train_score_model` takes them); degrade: sigma_y > 0 (denoising: y = x + sigma_y n, fresh n
    per batch) or a callable (x, generator) -> y. One torch.Generator seeded by ``seed`` draws batches,
    degradations, times and noise; lr decays by lr_decay ("cosine", "linear", "constant"); grad_clip: None or the
    maximum gradient norm. The model is left in eval mode.
    """
    if not isinstance(denoiser, torch.nn.Module):
        raise SDEKitError(f"denoiser must be a torch.nn.Module (an InDIDenoiser); got {type(denoiser).__name__}")
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    seed = _positive_int(seed, "seed", 0)
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not (math.isfinite(lr) and lr > 0):
        raise SDEKitError(f"lr must be a positive number; got {lr!r}")
    if lr_decay not in LR_DECAYS:
        raise SDEKitError(f"lr_decay must be one of {LR_DECAYS}; got {lr_decay!r}")
    if grad_clip is not None and (isinstance(grad_clip, bool) or not isinstance(grad_clip, int | float)
                                  or not grad_clip > 0):
        raise SDEKitError(f"grad_clip must be None or a positive number; got {grad_clip!r}")
    schedule = check_noise_schedule(noise_schedule)
    corrupt = _degrader(degrade)
    params = [p for p in denoiser.parameters() if p.requires_grad]
    if not params:
        raise SDEKitError("denoiser has no trainable parameters")
    like = params[0]
    draw = _batches(data, like, getattr(denoiser, "dim", None))
    gen = torch.Generator(device=like.device).manual_seed(seed)
    opt = torch.optim.Adam(params, lr=float(lr))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _decay(lr_decay, steps))
    losses = np.empty(steps)
    denoiser.train()
    start = time.perf_counter()
    try:
        for k in range(steps):
            x = draw(batch_size, gen)
            value = indi_loss(denoiser, x, corrupt(x, gen), noise_schedule=schedule, generator=gen)
            opt.zero_grad(set_to_none=True)
            value.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, float(grad_clip))
            opt.step()
            sched.step()
            losses[k] = float(value.detach())
            if not math.isfinite(losses[k]):
                raise FloatingPointError(f"the InDI loss became non-finite at step {k}; lower lr or set grad_clip")
    finally:
        denoiser.eval()
    return TrainingResult(losses=losses, seconds=time.perf_counter() - start, steps=steps)
