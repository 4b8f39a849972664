"""`train_score_model`: fit a `ScoreModel` to data by one of the losses of `sdekit.learn.losses`, with Adam.

Each step draws a batch x_0 (rows of a data tensor with replacement, or from a sampler callable), times
t ~ U[eps, T] and noise z ~ N(0, I), all from one ``torch.Generator`` seeded by ``seed``, and takes an Adam step
(Kingma & Ba 2015) on the batch loss, with the learning rate lr * decay(k / steps): "cosine" (1 + cos(pi u)) / 2
(Loshchilov & Hutter 2017), "linear" 1 - u, or "constant" (the loop: `sdekit.learn.adam_loop`). The same seed and
initial network give the same losses.
"""

from __future__ import annotations

from typing import Any

import torch

from sdekit.diffusion.forward import ForwardSDE
from sdekit.errors import SDEKitError
from sdekit.learn.adam_loop import LR_DECAYS, TrainingResult, check_adam_settings, run_adam
from sdekit.learn.losses import WEIGHTINGS, dsm_loss, eps_loss, noise_conditional_ssm_loss, v_loss, x0_loss

__all__ = ["LOSSES", "LR_DECAYS", "TrainingResult", "train_score_model"]

LOSSES = ("dsm", "eps", "x0", "v", "ssm")


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
    check_adam_settings(steps, batch_size, lr, lr_decay, grad_clip, seed)
    if not isinstance(forward, ForwardSDE):
        raise SDEKitError(f"forward must be a ForwardSDE (ForwardSDE.vp(), .ve(), ...); got {type(forward).__name__}")
    objective = {
        "dsm": lambda x0, gen: dsm_loss(model, x0, forward, weighting=weighting, generator=gen),
        "eps": lambda x0, gen: eps_loss(model, x0, forward, generator=gen),
        "x0": lambda x0, gen: x0_loss(model, x0, forward, generator=gen),
        "v": lambda x0, gen: v_loss(model, x0, forward, generator=gen),
        "ssm": lambda x0, gen: noise_conditional_ssm_loss(model, x0, forward, generator=gen),
    }[loss]
    return run_adam(model, data, objective, steps=steps, batch_size=batch_size, lr=lr, lr_decay=lr_decay,
                    grad_clip=grad_clip, seed=seed, label=loss, progress=progress, log_every=log_every)
