"""`train_score_model`: fit a `ScoreModel` to data by one of the losses of `sdekit.learn.losses`, with Adam.

Each step draws a batch x_0 (rows of a data tensor with replacement, or from a sampler callable), times
t ~ U[eps, T] and noise z ~ N(0, I), all from one ``torch.Generator`` seeded by ``seed``, and takes an Adam step
(Kingma & Ba 2015) on the batch loss, with the learning rate lr * decay(k / steps): "cosine" (1 + cos(pi u)) / 2
(Loshchilov & Hutter 2017), "linear" 1 - u, or "constant". The same seed and initial network give the same losses.
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

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.inputs import real_array
from sdekit.errors import SDEKitError
from sdekit.learn.losses import WEIGHTINGS, dsm_loss, eps_loss, noise_conditional_ssm_loss, v_loss, x0_loss

__all__ = ["LOSSES", "LR_DECAYS", "TrainingResult", "train_score_model"]

LOSSES = ("dsm", "eps", "x0", "v", "ssm")
LR_DECAYS = ("cosine", "linear", "constant")
_LOG = logging.getLogger("sdekit.learn")


@dataclass
class TrainingResult:
    """losses: the per-step batch loss (steps,); seconds: wall time of the loop; steps: the number of steps taken."""

    losses: np.ndarray
    seconds: float
    steps: int


def _positive_int(v: Any, name: str, lo: int = 1) -> int:
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


def _batches(data: Any, like: torch.Tensor, dim: int | None) -> Callable[[int, torch.Generator], torch.Tensor]:
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


def _decay(kind: str, steps: int) -> Callable[[int], float]:
    if kind == "cosine":
        return lambda k: 0.5 * (1.0 + math.cos(math.pi * k / steps))
    if kind == "linear":
        return lambda k: 1.0 - k / steps
    return lambda k: 1.0


def train_score_model(model: torch.nn.Module, data: Any, forward: ForwardSDE, *, loss: str = "dsm",
                      steps: int = 2000, batch_size: int = 256, lr: float = 2e-3, weighting: Any = "sigma2",
                      lr_decay: str = "cosine", grad_clip: float | None = None, seed: int = 0,
                      progress: bool = False, log_every: int = 0) -> TrainingResult:
    """Minimise E_{x_0, t, z}[loss] over model's parameters with Adam (Kingma & Ba 2015); returns a TrainingResult.

    loss: "dsm" (denoising score matching, `dsm_loss` with ``weighting``; Song et al. 2021 eq. 7), "eps" (Ho et al.
    2020), "x0", "v" (Salimans & Ho 2022) or "ssm" (noise-conditional sliced score matching, Song et al. 2019).
    data: an (N, *shape) tensor or array (vectors (N, d), images (N, C, H, W)), batches drawn with replacement, or a
    callable (n, generator) -> (n, *shape) (e.g. one that dequantises images with fresh uniform noise per draw).
    lr_decay: "cosine", "linear" or "constant"; grad_clip: max gradient norm or None. seed seeds the one
    torch.Generator for batches, times and noise (the network's initial weights are not touched). progress: a tqdm
    bar; log_every > 0 logs the mean loss of the last log_every steps to the "sdekit.learn" logger (and the bar).
    The model is left in eval mode.
    """
    if not isinstance(model, torch.nn.Module):
        raise SDEKitError(f"model must be a torch.nn.Module (a ScoreModel); got {type(model).__name__}")
    if loss not in LOSSES:
        raise SDEKitError(f"loss must be one of {LOSSES}; got {loss!r}")
    if not (callable(weighting) or weighting in WEIGHTINGS):
        raise SDEKitError(f"weighting must be one of {WEIGHTINGS} or a callable lambda(t); got {weighting!r}")
    if lr_decay not in LR_DECAYS:
        raise SDEKitError(f"lr_decay must be one of {LR_DECAYS}; got {lr_decay!r}")
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    log_every = _positive_int(log_every, "log_every", 0)
    seed = _positive_int(seed, "seed", 0)
    if seed >= 2**63:
        raise SDEKitError(f"seed must be below 2**63 (torch.Generator's range); got {seed}")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not (math.isfinite(lr) and lr > 0):
        raise SDEKitError(f"lr must be a positive number; got {lr!r}")
    if grad_clip is not None and (isinstance(grad_clip, bool) or not isinstance(grad_clip, int | float)
                                  or not grad_clip > 0):
        raise SDEKitError(f"grad_clip must be None or a positive number; got {grad_clip!r}")
    if not isinstance(forward, ForwardSDE):
        raise SDEKitError(f"forward must be a ForwardSDE (ForwardSDE.vp(), .ve(), ...); got {type(forward).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SDEKitError("model has no trainable parameters")
    like = params[0]
    draw = _batches(data, like, getattr(model, "dim", None))
    gen = torch.Generator(device=like.device).manual_seed(seed)
    objective = {
        "dsm": lambda x0: dsm_loss(model, x0, forward, weighting=weighting, generator=gen),
        "eps": lambda x0: eps_loss(model, x0, forward, generator=gen),
        "x0": lambda x0: x0_loss(model, x0, forward, generator=gen),
        "v": lambda x0: v_loss(model, x0, forward, generator=gen),
        "ssm": lambda x0: noise_conditional_ssm_loss(model, x0, forward, generator=gen),
    }[loss]
    opt = torch.optim.Adam(params, lr=float(lr))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _decay(lr_decay, steps))
    losses = np.empty(steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"train ({loss})")
    model.train()
    start = time.perf_counter()
    try:
        for k in range(steps):
            batch = draw(batch_size, gen)
            value = objective(batch)
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
                raise FloatingPointError(f"the training loss became non-finite at step {k}; lower lr or set "
                                         "grad_clip")
            if log_every and (k + 1) % log_every == 0:
                recent = float(np.mean(losses[k + 1 - log_every:k + 1]))
                _LOG.info("step %d/%d: loss %.6g", k + 1, steps, recent)
                if bar is not None:
                    bar.set_postfix(loss=f"{recent:.4g}")
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    return TrainingResult(losses=losses, seconds=time.perf_counter() - start, steps=steps)
