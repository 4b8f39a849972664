"""Maximum-likelihood learning of an energy-based model by contrastive divergence with Langevin chains.

The model is an ``nn.Module`` returning f_theta(x) (n,): p_theta(x) = exp(f_theta(x)) / Z(theta), energy
U_theta = -f_theta. The gradient of the negative log-likelihood of data x+ is

    grad_theta NLL = -( E_data[grad_theta f_theta(x+)] - E_{p_theta}[grad_theta f_theta(x-)] )

(Hinton 2002), the second expectation estimated with samples x- of k Langevin steps (ULA or MALA,
`sdekit.learn.ebm_sampling`) detached from the graph, so that autograd of the surrogate

    L(theta) = -mean f_theta(x+) + mean f_theta(x-) + alpha (mean f_theta(x+)^2 + mean f_theta(x-)^2)

gives it, plus the energy-magnitude penalty alpha (Du & Mordatch 2019). The chains start

- "data": at the positive batch (CD-k, Hinton 2002); biased for small k (CD-1 from data on a Gaussian has a closed
  form fixed point that is not the MLE; see the tests);
- "noise": at fresh draws from a reference each step (short-run MCMC, Nijkamp, Hill, Zhu & Wu 2019);
- "persistent": at states of a replay buffer, each reset to a fresh noise draw with probability ``reinit`` (persistent
  CD, Tieleman 2008; the replay buffer with 5% reinitialisation of Du & Mordatch 2019); the chains' end states are
  written back.

Everything random (batches, buffer picks, reinitialisation, noise, Langevin noise and MALA's uniforms) comes from one
``torch.Generator`` seeded by ``seed``: the same seed and initial network give bit-identical parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sdekit.errors import SDEKitError
from sdekit.learn.adam_loop import positive_int
from sdekit.learn.ebm_loop import EBMTrainingResult, check_loop_settings, data_source, run_ebm_loop
from sdekit.learn.ebm_sampling import SAMPLERS, check_step_size, langevin_chains

__all__ = ["INITS", "cd_loss", "train_ebm_cd"]

INITS = ("data", "noise", "persistent")


def cd_loss(f_positive: torch.Tensor, f_negative: torch.Tensor, energy_penalty: float = 0.0) -> torch.Tensor:
    """The contrastive-divergence surrogate -mean f(x+) + mean f(x-) + alpha (mean f(x+)^2 + mean f(x-)^2)
    (Hinton 2002; the penalty of Du & Mordatch 2019), from f_theta at the data (f_positive) and at detached model
    samples (f_negative); its gradient in theta is the NLL gradient -(E_data grad f - E_model grad f) plus the
    penalty's."""
    loss = f_negative.mean() - f_positive.mean()
    if energy_penalty:
        loss = loss + energy_penalty * ((f_positive * f_positive).mean() + (f_negative * f_negative).mean())
    return loss


def _standard_normal(shape: tuple[int, ...], like: torch.Tensor) -> Callable[[int, torch.Generator], torch.Tensor]:
    def draw(n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randn((n, *shape), generator=gen, dtype=like.dtype, device=like.device)
    return draw


def _check_fraction(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 1.0:
        raise SDEKitError(f"{name} must be a number in [0, 1]; got {v!r}")
    return float(v)


def train_ebm_cd(model: torch.nn.Module, data: Any, *, init: str = "persistent", k: int = 20,
                 step_size: float = 0.01, sampler: str = "ula", noise: Any = None, n_chains: int | None = None,
                 buffer_size: int | None = 10_000, reinit: float = 0.05, energy_penalty: float = 0.0,
                 steps: int = 1000, batch_size: int | None = 128, lr: float = 1e-3, lr_decay: str = "constant",
                 optimizer: str = "adam", betas: tuple[float, float] = (0.9, 0.999),
                 grad_clip: float | None = None, average_last: int = 0, seed: int = 0,
                 progress: bool = False, log_every: int = 0) -> EBMTrainingResult:
    """Fit f_theta (the model, returning log p_theta up to a constant, shape (n,)) to data by contrastive divergence
    with k-step Langevin chains (module docstring: the gradient, the surrogate `cd_loss`, the three chain starts).

    data: a table (N, *shape) (batches of batch_size rows drawn with replacement, or the whole table each step when
    batch_size is None) or a callable (n, generator) -> (n, *shape).
    init: "data" (CD-k), "noise" (short-run) or "persistent" (PCD / replay buffer).
    k, step_size, sampler: the chains: k >= 1 steps of "ula" or "mala" with step size h > 0 (`langevin_chains`).
    noise: the reference the "noise" and "persistent" chains start from, an object with sample(n, generator)
    (`GaussianReference`, `UniformBoxReference`); None means N(0, I) in the data's shape.
    n_chains: negative samples per step ("noise", "persistent"); None means the batch size (N for a whole table).
    "data" runs one chain from each positive example. buffer_size: the replay buffer's size ("persistent"; None
    means n_chains: every chain moves every step, Tieleman's PCD); each step n_chains states are picked without
    replacement and each is reset to noise with probability reinit.
    energy_penalty: alpha >= 0 of alpha (E f(x+)^2 + E f(x-)^2). optimizer: "adam" or "sgd"; lr, lr_decay ("constant",
    "cosine", "linear"), betas (Adam's (beta1, beta2)), grad_clip (max gradient norm or None), steps: as in
    `train_score_model`.
    average_last: M >= 0; M > 0 leaves the mean of the last M iterates in the model (Polyak-Ruppert averaging).
    seed: the one torch.Generator's seed (the initial network is not touched). The model is left in eval mode.
    Returns an EBMTrainingResult (losses, mean acceptance per step, the final negatives / buffer).
    """
    if not isinstance(model, torch.nn.Module):
        raise SDEKitError(f"model must be a torch.nn.Module returning f_theta(x) of shape (n,); got "
                          f"{type(model).__name__}")
    if init not in INITS:
        raise SDEKitError(f"init must be one of {INITS}; got {init!r}")
    if sampler not in SAMPLERS:
        raise SDEKitError(f"sampler must be one of {SAMPLERS}; got {sampler!r}")
    k = positive_int(k, "k")
    h = check_step_size(step_size)
    steps, batch_size, lr, seed, average_last = check_loop_settings(steps, batch_size, lr, lr_decay, grad_clip,
                                                                    seed, optimizer, average_last, betas)
    if isinstance(energy_penalty, bool) or not isinstance(energy_penalty, int | float) or not (
            math.isfinite(energy_penalty) and energy_penalty >= 0):
        raise SDEKitError(f"energy_penalty must be a finite number >= 0; got {energy_penalty!r}")
    reinit = _check_fraction(reinit, "reinit")
    if noise is not None and not callable(getattr(noise, "sample", None)):
        raise SDEKitError(f"noise must be None (N(0, I)) or have sample(n, generator) (e.g. GaussianReference); got "
                          f"{type(noise).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SDEKitError("model has no trainable parameters")
    like = params[0]
    draw_positive, n_pos = data_source(data, like, batch_size)
    if init == "data":
        if n_chains is not None and n_chains != n_pos:
            raise SDEKitError(f"n_chains must be None with init='data' (one chain from each of the {n_pos} "
                              f"positive examples); got {n_chains!r}")
        n_neg = n_pos
    else:
        n_neg = n_pos if n_chains is None else positive_int(n_chains, "n_chains")
    if init == "persistent":
        size = n_neg if buffer_size is None else positive_int(buffer_size, "buffer_size")
        if size < n_neg:
            raise SDEKitError(f"buffer_size must be at least n_chains = {n_neg}; got {size}")
    gen = torch.Generator(device=like.device).manual_seed(seed)
    state: dict[str, Any] = {"buffer": None, "last": None}
    acceptance = np.empty(steps)

    def draw_noise(n: int, shape: tuple[int, ...]) -> torch.Tensor:
        if noise is None:
            return _standard_normal(shape, like)(n, gen)
        out = noise.sample(n, gen)
        if not torch.is_tensor(out) or tuple(out.shape) != (n, *shape):
            raise SDEKitError(f"noise.sample(n, generator) must return a tensor of shape {(n, *shape)} (the data's "
                              f"example shape); got {tuple(getattr(out, 'shape', ()))}")
        return out.to(dtype=like.dtype, device=like.device)

    def starts(positive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        shape = tuple(positive.shape[1:])
        if init == "data":
            return positive, None
        if init == "noise":
            return draw_noise(n_neg, shape), None
        if state["buffer"] is None:
            state["buffer"] = draw_noise(size, shape)
        buf = state["buffer"]
        idx = (torch.arange(size, device=like.device) if size == n_neg
               else torch.randperm(size, generator=gen, device=like.device)[:n_neg])
        fresh = draw_noise(n_neg, shape)
        reset = torch.rand(n_neg, generator=gen, dtype=like.dtype, device=like.device) < reinit
        return torch.where(reset.reshape((-1,) + (1,) * len(shape)), fresh, buf[idx]), idx

    def step_loss(step: int) -> torch.Tensor:
        positive = draw_positive(gen)
        x0, idx = starts(positive)
        chains = langevin_chains(model, x0, steps=k, step_size=h, sampler=sampler, generator=gen)
        negative = chains.samples.detach()
        if idx is not None:
            state["buffer"][idx] = negative
        state["last"] = negative
        acceptance[step] = float(chains.acceptance.mean())
        return cd_loss(model(positive), model(negative), float(energy_penalty))

    model.train()
    try:
        losses, seconds = run_ebm_loop(params, step_loss, steps=steps, lr=lr, lr_decay=lr_decay, optimizer=optimizer,
                                       grad_clip=grad_clip, average_last=average_last, betas=betas,
                                       label=f"CD ({init})", progress=progress, log_every=log_every)
    finally:
        model.eval()
    samples = state["buffer"] if init == "persistent" else state["last"]
    return EBMTrainingResult(losses=losses, seconds=seconds, steps=steps, acceptance=acceptance, samples=samples)
