"""The one training loop of `sdekit.learn`: Adam (Kingma & Ba 2015) on a per-batch loss with the learning rate
lr * decay(k / steps) ("cosine" (1 + cos(pi u)) / 2, Loshchilov & Hutter 2017; "linear" 1 - u; "constant"), the
batches drawn from a data table (rows with replacement) or a sampler callable, everything random drawn from one
``torch.Generator`` seeded by ``seed`` (the same seed and initial network give the same losses). Used by
`train_score_model`, `train_flow_model` and `train_indi`, which differ only in the loss of a batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sdekit.diffusion.inputs import real_array
from sdekit.errors import SDEKitError

__all__ = ["LR_DECAYS", "TrainingResult", "batch_drawer", "check_adam_settings", "lr_decay_factor", "positive_int",
           "run_adam"]

LR_DECAYS = ("cosine", "linear", "constant")
_LOG = logging.getLogger("sdekit.learn")


@dataclass
class TrainingResult:
    """losses: the per-step batch loss (steps,); seconds: wall time of the loop; steps: the number of steps taken."""

    losses: np.ndarray
    seconds: float
    steps: int


def positive_int(v: Any, name: str, lo: int = 1) -> int:
    """v as an int >= lo; an SDEKitError naming it otherwise."""
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
        raise SDEKitError(f"{name} must be an integer >= {lo}; got {v!r}")
    return int(v)


def _real_tensor(v: Any, name: str) -> torch.Tensor:
    """v (a tensor or anything NumPy converts) as a real tensor, or an SDEKitError naming it."""
    if torch.is_tensor(v):
        if v.is_complex():
            raise SDEKitError(f"{name} must be real; got dtype {v.dtype}")
        return v
    return torch.as_tensor(real_array(v, name))


def batch_drawer(data: Any, like: torch.Tensor, dim: int | None) -> Callable[[int, torch.Generator], torch.Tensor]:
    """A function (n, generator) -> (n, *shape) batch in like's dtype and device; a table is checked once here
    (shape (N, *shape), (N, dim) for a model that states its dim; finite)."""
    if callable(data) and not torch.is_tensor(data):
        def draw(n: int, gen: torch.Generator) -> torch.Tensor:
            return _real_tensor(data(n, gen), "data(n, generator)").to(dtype=like.dtype, device=like.device)
        return draw
    table = _real_tensor(data, "data")
    if table.ndim < 2 or table.shape[0] < 1 or (dim is not None and (table.ndim != 2 or table.shape[1] != dim)):
        want = "(N, *shape)" if dim is None else f"(N, {dim}) (the model's dim)"
        raise SDEKitError(f"data must have shape {want} with N >= 1; got shape {tuple(table.shape)}")
    if not bool(torch.isfinite(table).all()):
        raise SDEKitError(f"data must be finite; row {int(torch.nonzero(~torch.isfinite(table))[0, 0])} is not")
    table = table.to(dtype=like.dtype, device=like.device)

    def pick(n: int, gen: torch.Generator) -> torch.Tensor:
        return table[torch.randint(table.shape[0], (n,), generator=gen, device=gen.device)]
    return pick


def lr_decay_factor(kind: str, steps: int) -> Callable[[int], float]:
    """The factor decay(k / steps) of the learning rate at step k."""
    if kind == "cosine":
        return lambda k: 0.5 * (1.0 + math.cos(math.pi * k / steps))
    if kind == "linear":
        return lambda k: 1.0 - k / steps
    return lambda k: 1.0


def check_adam_settings(steps: Any, batch_size: Any, lr: Any, lr_decay: Any, grad_clip: Any,
                        seed: Any) -> tuple[int, int, float, int]:
    """(steps, batch_size, lr, seed) checked: integers >= 1, lr > 0 finite, lr_decay in LR_DECAYS, grad_clip None or
    > 0, 0 <= seed < 2**63 (torch.Generator's range); an SDEKitError naming the argument otherwise."""
    if lr_decay not in LR_DECAYS:
        raise SDEKitError(f"lr_decay must be one of {LR_DECAYS}; got {lr_decay!r}")
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    seed = positive_int(seed, "seed", 0)
    if seed >= 2**63:
        raise SDEKitError(f"seed must be below 2**63 (torch.Generator's range); got {seed}")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not (math.isfinite(lr) and lr > 0):
        raise SDEKitError(f"lr must be a positive number; got {lr!r}")
    if grad_clip is not None and (isinstance(grad_clip, bool) or not isinstance(grad_clip, int | float)
                                  or not grad_clip > 0):
        raise SDEKitError(f"grad_clip must be None or a positive number; got {grad_clip!r}")
    return steps, batch_size, float(lr), seed


class TrainingProgress:
    """A training loop's progress: a tqdm bar when ``progress`` (its description names ``label``) and, every
    ``log_every`` steps, an INFO line on the "sdekit.learn" logger with the mean loss of those steps
    ("step k/steps: <loss_name>loss value") also shown on the bar."""

    def __init__(self, progress: bool, steps: int, label: str, log_every: int, loss_name: str = "") -> None:
        self.steps, self.log_every, self.loss_name = steps, log_every, loss_name
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=steps, desc=f"train ({label})")

    def step(self, k: int, losses: np.ndarray) -> None:
        """Step k (0-based) is done and losses[:k + 1] are known."""
        if self.log_every and (k + 1) % self.log_every == 0:
            recent = float(np.mean(losses[k + 1 - self.log_every:k + 1]))
            _LOG.info("step %d/%d: %sloss %.6g", k + 1, self.steps, self.loss_name, recent)
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{recent:.4g}")
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        """Close the bar (if any)."""
        if self.bar is not None:
            self.bar.close()


def run_adam(model: torch.nn.Module, data: Any, batch_loss: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
             *, steps: int, batch_size: int, lr: float, lr_decay: str, grad_clip: float | None, seed: int,
             label: str, progress: bool = False, log_every: int = 0) -> TrainingResult:
    """Minimise batch_loss(batch, generator) over model's trainable parameters (module docstring); the settings are
    checked here (`check_adam_settings`). label names the loss in the progress bar and in the error raised when the
    loss turns non-finite (a non-finite batch from a data callable is reported as such). progress: a tqdm bar;
    log_every > 0 logs the mean loss of the last log_every steps to the "sdekit.learn" logger. The model is left in
    eval mode."""
    steps, batch_size, lr, seed = check_adam_settings(steps, batch_size, lr, lr_decay, grad_clip, seed)
    log_every = positive_int(log_every, "log_every", 0)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SDEKitError("model has no trainable parameters")
    like = params[0]
    draw = batch_drawer(data, like, getattr(model, "dim", None))
    gen = torch.Generator(device=like.device).manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_decay_factor(lr_decay, steps))
    losses = np.empty(steps)
    bar = TrainingProgress(progress, steps, label, log_every)
    model.train()
    start = time.perf_counter()
    try:
        for k in range(steps):
            batch = draw(batch_size, gen)
            value = batch_loss(batch, gen)
            opt.zero_grad(set_to_none=True)
            value.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, float(grad_clip))
            opt.step()
            sched.step()
            losses[k] = float(value.detach())
            if not math.isfinite(losses[k]):
                if not bool(torch.isfinite(batch).all()):
                    raise SDEKitError(f"data(n, generator) returned non-finite values at step {k}")
                raise FloatingPointError(f"the {label} loss became non-finite at step {k}; lower lr or set "
                                         "grad_clip")
            bar.step(k, losses)
    finally:
        bar.close()
        model.eval()
    return TrainingResult(losses=losses, seconds=time.perf_counter() - start, steps=steps)
