"""Noise-contrastive estimation of an energy-based model (Gutmann & Hyvärinen 2010, 2012).

The model returns f_theta(x) (n,), the unnormalised log density: p_theta(x) = exp(f_theta(x)) / Z(theta). NCE learns
theta and c = -log Z together by logistic regression between the data x and nu noise samples y per data point from a
normalised reference q, with the log-odds

    G(x) = f_theta(x) + c - log q(x) - log nu,

minimising  J(theta, c) = -(1/B) [ sum_data log sigma(G(x)) + sum_noise log(1 - sigma(G(y))) ]
           = mean_data softplus(-G(x)) + nu mean_noise softplus(G(y))

over a batch of B data and nu B noise points (Gutmann & Hyvärinen 2012, eq. 8 with T_n = nu T_d). The population
optimum has f_theta + c = log p_data wherever q > 0, so c -> -log Z(theta); for a fixed data set and nu -> infinity
the estimate tends to the maximum-likelihood estimate (section 2.3 of the 2012 paper).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from sdekit.errors import SDEKitError
from sdekit.learn.adam_loop import positive_int
from sdekit.learn.ebm_loop import EBMTrainingResult, check_loop_settings, data_source, run_ebm_loop
from sdekit.learn.ebm_reference import GaussianReference, Reference, check_reference

__all__ = ["nce_loss", "train_ebm_nce"]


def nce_loss(f_data: torch.Tensor, f_noise: torch.Tensor, log_q_data: torch.Tensor, log_q_noise: torch.Tensor,
             c: torch.Tensor, noise_ratio: int) -> torch.Tensor:
    """The NCE logistic loss mean_data softplus(-G(x)) + nu mean_noise softplus(G(y)) with
    G = f_theta + c - log q - log nu (Gutmann & Hyvärinen 2012), from f_theta and log q at the data and at the noise
    (nu = noise_ratio noise points per data point)."""
    log_nu = math.log(noise_ratio)
    g_data = f_data + c - log_q_data - log_nu
    g_noise = f_noise + c - log_q_noise - log_nu
    return F.softplus(-g_data).mean() + noise_ratio * F.softplus(g_noise).mean()


def train_ebm_nce(model: torch.nn.Module, data: Any, *, reference: Reference | None = None, noise_ratio: int = 10,
                  steps: int = 1000, batch_size: int | None = 128, lr: float = 1e-3, lr_decay: str = "constant",
                  optimizer: str = "adam", betas: tuple[float, float] = (0.9, 0.999),
                  grad_clip: float | None = None, average_last: int = 0, seed: int = 0,
                  progress: bool = False, log_every: int = 0) -> EBMTrainingResult:
    """Fit f_theta (the model, returning log p_theta up to a constant, shape (n,)) and c = -log Z to data by
    noise-contrastive estimation (module docstring: G, the loss `nce_loss`).

    data: a table (N, d) (batches of batch_size rows with replacement, or the whole table each step when batch_size
    is None) or a callable (n, generator) -> (n, d). reference: the normalised noise density q, an object with
    sample(n, generator) and log_prob(x) (`GaussianReference`, `UniformBoxReference`); None means the Gaussian with
    the data table's mean and covariance (`GaussianReference.fit`), the choice Gutmann & Hyvärinen recommend (noise
    close to the data). noise_ratio: nu >= 1 noise points per data point, fresh each step. optimizer, lr, lr_decay,
    grad_clip, steps, average_last (Polyak-Ruppert mean of the last M iterates, c included), seed: as in
    `train_ebm_cd`. The model is left in eval mode.
    Returns an EBMTrainingResult whose log_normaliser is the learned log Z = -c.
    """
    if not isinstance(model, torch.nn.Module):
        raise SDEKitError(f"model must be a torch.nn.Module returning f_theta(x) of shape (n,); got "
                          f"{type(model).__name__}")
    nu = positive_int(noise_ratio, "noise_ratio")
    steps, batch_size, lr, seed, average_last = check_loop_settings(steps, batch_size, lr, lr_decay, grad_clip,
                                                                    seed, optimizer, average_last, betas)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SDEKitError("model has no trainable parameters")
    like = params[0]
    draw_positive, n_pos = data_source(data, like, batch_size)
    if reference is None:
        if callable(data) and not torch.is_tensor(data):
            raise SDEKitError("reference must be given when data is a callable (the default Gaussian is fitted to "
                              "a data table)")
        reference = GaussianReference.fit(data)
    q = check_reference(reference, "reference")

    def log_q(x: torch.Tensor) -> torch.Tensor:
        out = q.log_prob(x)
        if not torch.is_tensor(out) or out.shape != x.shape[:1]:
            raise SDEKitError(f"reference.log_prob(x) must return shape {tuple(x.shape[:1])}; got "
                              f"{tuple(getattr(out, 'shape', ()))}")
        return out.to(dtype=like.dtype)

    gen = torch.Generator(device=like.device).manual_seed(seed)
    with torch.no_grad():  # c starts where G = -log nu on average over a first batch: c0 = mean(log q - f_theta)
        gap = log_q(x0 := draw_positive(gen)) - model(x0)
        c0 = float(gap.mean()) if bool(torch.isfinite(gap).all()) else 0.0
    c = torch.nn.Parameter(torch.tensor(c0, dtype=like.dtype, device=like.device))

    def step_loss(step: int) -> torch.Tensor:
        x = draw_positive(gen)
        y = q.sample(nu * n_pos, gen)
        if not torch.is_tensor(y) or tuple(y.shape) != (nu * n_pos, *x.shape[1:]):
            raise SDEKitError(f"reference.sample(n, generator) must return a tensor of shape "
                              f"{(nu * n_pos, *x.shape[1:])}; got {tuple(getattr(y, 'shape', ()))}")
        y = y.to(dtype=like.dtype, device=like.device)
        return nce_loss(model(x), model(y), log_q(x), log_q(y), c, nu)

    model.train()
    try:
        losses, seconds = run_ebm_loop([*params, c], step_loss, steps=steps, lr=lr, lr_decay=lr_decay,
                                       optimizer=optimizer, grad_clip=grad_clip, average_last=average_last, betas=betas,
                                       label="NCE", progress=progress, log_every=log_every)
    finally:
        model.eval()
    return EBMTrainingResult(losses=losses, seconds=seconds, steps=steps, log_normaliser=-float(c.detach()))
