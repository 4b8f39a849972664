"""The optimisation loop shared by contrastive divergence and noise-contrastive estimation (`train_ebm_cd`,
`train_ebm_nce`): Adam (Kingma & Ba 2015) or plain SGD on a per-step loss with the learning rate lr * decay(k / steps)
(`sdekit.learn.adam_loop.lr_decay_factor`), optional gradient-norm clipping, and optional Polyak-Ruppert averaging
(Polyak & Juditsky 1992; Ruppert 1988): with ``average_last = M`` the parameters left in the model are the mean of
the last M iterates, theta_bar = (1/M) sum_{k > steps - M} theta_k, whose fluctuation is that of a gradient averaged
over M steps (about 1/M of the last iterate's variance times the noise's integrated autocorrelation).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sdekit.diffusion.inputs import real_array
from sdekit.errors import SDEKitError
from sdekit.learn.adam_loop import TrainingProgress, check_adam_settings, lr_decay_factor, positive_int

__all__ = ["OPTIMIZERS", "EBMTrainingResult", "data_source", "run_ebm_loop"]

OPTIMIZERS = ("adam", "sgd")


@dataclass
class EBMTrainingResult:
    """losses: the per-step loss (steps,) (CD: the surrogate -(mean f(x+) - mean f(x-)) + penalty; NCE: the logistic
    loss); seconds: wall time; steps: steps taken; acceptance: CD's mean acceptance of the Langevin proposals per step
    (steps,) (ones for ULA; empty for NCE); samples: CD's last negative samples (the whole replay buffer for
    init="persistent"), None for NCE; log_normaliser: NCE's learned log Z = -c (None for CD)."""

    losses: np.ndarray
    seconds: float
    steps: int
    acceptance: np.ndarray = field(default_factory=lambda: np.empty(0))
    samples: torch.Tensor | None = None
    log_normaliser: float | None = None


def data_source(data: Any, like: torch.Tensor, batch_size: int | None) -> tuple[Callable[[torch.Generator],
                                                                                    torch.Tensor], int]:
    """(draw(generator) -> batch (B, *shape), B): rows of a table (N, *shape) with replacement, the whole table each
    step when batch_size is None (a deterministic positive phase), or a callable (n, generator) -> (n, *shape).
    The table is checked once (N >= 1, at least 2 axes, finite) and cast to like's dtype and device."""
    if callable(data) and not torch.is_tensor(data):
        if batch_size is None:
            raise SDEKitError("batch_size must be an integer >= 1 when data is a callable (n, generator); None "
                              "(the whole table each step) needs a table")

        def call(gen: torch.Generator) -> torch.Tensor:
            out = data(batch_size, gen)
            out = out if torch.is_tensor(out) else torch.as_tensor(real_array(out, "data(n, generator)"))
            if out.ndim < 2 or out.shape[0] != batch_size or not bool(torch.isfinite(out).all()):
                raise SDEKitError(f"data(n, generator) must return finite values of shape (n, *shape) with "
                                  f"n = {batch_size}; got shape {tuple(out.shape)}")
            return out.to(dtype=like.dtype, device=like.device)
        return call, batch_size
    table = data if torch.is_tensor(data) else torch.as_tensor(real_array(data, "data"))
    if table.is_complex():
        raise SDEKitError(f"data must be real; got dtype {table.dtype}")
    if table.ndim < 2 or table.shape[0] < 1:
        raise SDEKitError(f"data must have shape (N, *shape) with N >= 1 (vectors as (N, d)); got shape "
                          f"{tuple(table.shape)}")
    if not bool(torch.isfinite(table).all()):
        raise SDEKitError(f"data must be finite; row {int(torch.nonzero(~torch.isfinite(table))[0, 0])} is not")
    table = table.detach().to(dtype=like.dtype, device=like.device)
    if batch_size is None:
        return (lambda gen: table), table.shape[0]

    def pick(gen: torch.Generator) -> torch.Tensor:
        return table[torch.randint(table.shape[0], (batch_size,), generator=gen, device=gen.device)]
    return pick, batch_size


def check_loop_settings(steps: Any, batch_size: Any, lr: Any, lr_decay: Any, grad_clip: Any, seed: Any,
                        optimizer: Any, average_last: Any, betas: Any) -> tuple[int, int | None, float, int, int]:
    """(steps, batch_size, lr, seed, average_last) checked (`check_adam_settings`; batch_size may be None,
    optimizer in OPTIMIZERS, 0 <= average_last <= steps, betas two numbers in [0, 1)); an SDEKitError naming the
    argument otherwise."""
    if optimizer not in OPTIMIZERS:
        raise SDEKitError(f"optimizer must be one of {OPTIMIZERS}; got {optimizer!r}")
    if (not isinstance(betas, tuple) or len(betas) != 2
            or not all(isinstance(b, int | float) and not isinstance(b, bool) and 0.0 <= b < 1.0 for b in betas)):
        raise SDEKitError(f"betas must be a pair (beta1, beta2) of numbers in [0, 1); got {betas!r}")
    steps, bs, lr, seed = check_adam_settings(steps, 1 if batch_size is None else batch_size, lr, lr_decay,
                                              grad_clip, seed)
    average_last = positive_int(average_last, "average_last", 0)
    if average_last > steps:
        raise SDEKitError(f"average_last must be at most steps = {steps}; got {average_last}")
    return steps, None if batch_size is None else bs, lr, seed, average_last


def run_ebm_loop(params: Sequence[torch.nn.Parameter], step_loss: Callable[[int], torch.Tensor], *, steps: int,
                 lr: float, lr_decay: str, optimizer: str, grad_clip: float | None, average_last: int, label: str,
                 betas: tuple[float, float] = (0.9, 0.999), progress: bool = False,
                 log_every: int = 0) -> tuple[np.ndarray, float]:
    """Minimise step_loss(k) over params for k = 0..steps-1 (settings checked by the caller,
    `check_loop_settings`; betas: Adam's (beta1, beta2)); with average_last = M > 0 the params end as the mean of the
    last M iterates. Returns (losses (steps,), seconds). A non-finite loss raises FloatingPointError naming label and
    the step."""
    log_every = positive_int(log_every, "log_every", 0)
    opt = torch.optim.Adam(params, lr=lr, betas=betas) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_decay_factor(lr_decay, steps))
    sums = [torch.zeros_like(p) for p in params] if average_last else []
    losses = np.empty(steps)
    bar = TrainingProgress(progress, steps, label, log_every, loss_name=f"{label} ")
    start = time.perf_counter()
    try:
        for k in range(steps):
            value = step_loss(k)
            losses[k] = float(value.detach())
            if not math.isfinite(losses[k]):
                raise FloatingPointError(f"the {label} loss became non-finite at step {k}; lower lr or step_size, or "
                                         "set grad_clip or energy_penalty")
            opt.zero_grad(set_to_none=True)
            value.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, float(grad_clip))
            opt.step()
            sched.step()
            if average_last and k >= steps - average_last:
                with torch.no_grad():
                    for s, p in zip(sums, params, strict=True):
                        s += p
            bar.step(k, losses)
    finally:
        bar.close()
    if average_last:
        with torch.no_grad():
            for s, p in zip(sums, params, strict=True):
                p.copy_(s / average_last)
    return losses, time.perf_counter() - start
