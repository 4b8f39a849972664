"""Exact Gaussian-mixture marginals in torch: the score, log-density and Laplacian of log-density of
p_t = sum_k pi_k N(alpha mu_k, alpha^2 C_k + sigma^2 I), the torch port of `sdekit.diffusion.mixture_marginals`.

This module imports torch at its top; torch is an optional dependency, so nothing in ``sdekit`` or
``sdekit.diffusion`` imports this module: import it yourself (``from sdekit.diffusion.torch_mixture import
TorchMixtureScore``) when torch is installed.

With C_k = Q_k diag(lam_k) Q_k^T, S_k = alpha^2 C_k + sigma^2 I = Q_k diag(e_k) Q_k^T, e_k = alpha^2 lam_k + sigma^2,
r_k = x - alpha mu_k, u_k = S_k^{-1} r_k, l_k = log pi_k - 1/2 r_k^T u_k - 1/2 log det(2 pi S_k) and the
responsibilities gamma_k = softmax_k(l_k) (log-sum-exp; Song et al. 2021 for the forward kernel):

    log p_t(x) = logsumexp_k l_k,     s(x) = -sum_k gamma_k u_k,
    Delta log p_t(x) = sum_k gamma_k ||u_k - ubar||^2 - sum_k gamma_k tr S_k^{-1},   ubar = sum_k gamma_k u_k = -s.

Everything is batched over points and components (einsum), runs in x's dtype and on x's device, and is
differentiable in x (and in tensor alpha, sigma) by autograd.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.mixture_marginals import MixtureMarginals, check_alpha_sigma
from sdekit.diffusion.samplers.checks import check_real
from sdekit.diffusion.torch_schedule import torch_kernel
from sdekit.errors import SDEKitError
from sdekit.targets.gaussian import LOG_2PI
from sdekit.targets.mixture import GaussianMixture

__all__ = ["TorchMixtureScore", "mixture_parts", "mixture_score_from_parts"]


def mixture_parts(x: torch.Tensor, a: Any, s: Any, log_w: torch.Tensor, mu: torch.Tensor, q: torch.Tensor,
                  lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits l (n, K), u = S^{-1} r (n, K, d), e (K, d) or (n, K, d)) for points x (n, d): r_k = x - a mu_k,
    S_k = Q_k diag(e_k) Q_k^T with e_k = a^2 lam_k + s^2, l_k = log pi_k - 1/2 r_k^T u_k - 1/2 log det(2 pi S_k).
    a, s: numbers or tensors broadcastable to (n, 1, 1). Unchecked (the building block of the twins and the class)."""
    r = x[:, None, :] - a * mu  # (n, K, d)
    y = torch.einsum("kij,nki->nkj", q, r)  # Q_k^T r_k
    e = a * a * lam + s * s  # (K, d) or (n, K, d)
    z = y / e
    quad = (y * z).sum(-1)
    logits = log_w - 0.5 * (x.shape[1] * LOG_2PI + torch.log(e).sum(-1)) - 0.5 * quad
    u = torch.einsum("kij,nkj->nki", q, z)
    return logits, u, e


def mixture_score_from_parts(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """s(x) = -sum_k gamma_k u_k with gamma = softmax(logits)."""
    return -torch.einsum("nk,nki->ni", torch.softmax(logits, dim=1), u)


class TorchMixtureScore(torch.nn.Module):
    """Exact score, log-density and Laplacian of log-density of Gaussian-mixture data under a forward kernel, in torch.

    data: a `GaussianMixture` (the data law p_0) or a `MixtureMarginals`; forward: a `ForwardSDE` (needed only by the
    ``*_t`` methods, which take times t instead of (alpha, sigma)). The mixture parameters are registered buffers
    ``log_w`` (K,), ``means`` (K, d), ``Q`` (K, d, d), ``lam`` (K, d) (C_k = Q_k diag(lam_k) Q_k^T) in ``dtype`` on
    ``device``, so ``.to(...)`` moves them; each call casts them to x's dtype and device.

    x: a tensor (n, d) (anything else is made a tensor in the buffers' dtype). alpha, sigma: Python numbers
    (checked: alpha > 0, sigma >= 0), 0-d tensors or (n,) tensors, one value per row (tensor values are not checked,
    which would need a host synchronisation). Calling the module is ``score``, so an instance is a sampler score
    ``score(x, alpha, sigma)``.
    """

    def __init__(self, data: GaussianMixture | MixtureMarginals, forward: ForwardSDE | None = None, *,
                 dtype: torch.dtype = torch.float64, device: Any = None) -> None:
        super().__init__()
        if isinstance(data, MixtureMarginals):
            mm = data
        elif isinstance(data, GaussianMixture):
            mm = MixtureMarginals(data)
        else:
            raise SDEKitError(f"data must be a GaussianMixture or a MixtureMarginals; got {type(data).__name__}")
        if forward is not None and not isinstance(forward, ForwardSDE):
            raise SDEKitError(f"forward must be a ForwardSDE or None; got {type(forward).__name__}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise SDEKitError(f"dtype must be a floating torch dtype; got {dtype!r}")
        for name, value in zip(("log_w", "means", "Q", "lam"), mm.params):
            self.register_buffer(name, torch.as_tensor(np.array(value), dtype=dtype, device=device))
        self.marginals: MixtureMarginals = mm
        self.dim: int = mm.dim
        self.n_components: int = mm.n_components
        self.forward_sde: ForwardSDE | None = forward

    def extra_repr(self) -> str:
        return f"dim={self.dim}, n_components={self.n_components}, forward={getattr(self.forward_sde, 'name', None)}"

    # ---------------------------------------------------------------- internals

    def _points(self, x: Any) -> torch.Tensor:
        if not torch.is_tensor(x):
            x = torch.as_tensor(real_array(x, "x"), dtype=self.log_w.dtype, device=self.log_w.device)
        if x.is_complex():
            raise SDEKitError(f"x must be a real tensor; got dtype {x.dtype}")
        if not x.is_floating_point():
            x = x.to(self.log_w.dtype)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise SDEKitError(f"x must have shape (n, {self.dim}); got shape {tuple(x.shape)}")
        return x

    @staticmethod
    def _level(v: Any, name: str, x: torch.Tensor) -> torch.Tensor | float:
        """alpha or sigma as a float, or as an (n, 1, 1) tensor in x's dtype / device (broadcast over K and d)."""
        if not torch.is_tensor(v):
            a, s = check_alpha_sigma(v, 0.0) if name == "alpha" else check_alpha_sigma(1.0, v)
            return a if name == "alpha" else s
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] not in (1, x.shape[0])):
            raise SDEKitError(f"{name} must be a number, a 0-d tensor or a tensor of shape ({x.shape[0]},); "
                              f"got shape {tuple(v.shape)}")
        return v.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1)

    def _parts(self, x: Any, alpha: Any, sigma: Any) -> tuple[torch.Tensor, ...]:
        """(logits l (n, K), u = S^{-1} r (n, K, d), e (K, d) or (n, K, d)) for the points x."""
        x = self._points(x)
        a = self._level(alpha, "alpha", x)
        s = self._level(sigma, "sigma", x)
        return mixture_parts(x, a, s, *(b.to(x) for b in (self.log_w, self.means, self.Q, self.lam)))

    # ---------------------------------------------------------------- in (alpha, sigma)

    def log_prob(self, x: Any, alpha: Any, sigma: Any) -> torch.Tensor:
        """log p_t(x) = logsumexp_k [log pi_k - 1/2 r_k^T S_k^{-1} r_k - 1/2 log det(2 pi S_k)], r_k = x - alpha mu_k;
        shape (n,)."""
        logits, _, _ = self._parts(x, alpha, sigma)
        return torch.logsumexp(logits, dim=1)

    def score(self, x: Any, alpha: Any, sigma: Any) -> torch.Tensor:
        """s(x) = grad log p_t(x) = -sum_k gamma_k(x) S_k^{-1} (x - alpha mu_k), gamma = softmax(l); shape (n, d)."""
        logits, u, _ = self._parts(x, alpha, sigma)
        return mixture_score_from_parts(logits, u)

    def laplacian(self, x: Any, alpha: Any, sigma: Any) -> torch.Tensor:
        """Delta log p_t(x) = sum_k gamma_k ||u_k - ubar||^2 - sum_k gamma_k tr S_k^{-1}, u_k = S_k^{-1} r_k,
        ubar = sum_k gamma_k u_k (the cancellation-free form of sum_k gamma_k (||u_k||^2 - tr S_k^{-1}) - ||s||^2);
        shape (n,)."""
        logits, u, e = self._parts(x, alpha, sigma)
        gamma = torch.softmax(logits, dim=1)
        dev = u - torch.einsum("nk,nki->ni", gamma, u)[:, None, :]
        tr = (1.0 / e).sum(-1)  # (K,) or (n, K)
        return torch.einsum("nk,nki,nki->n", gamma, dev, dev) - (gamma * tr).sum(-1)

    def forward(self, x: Any, alpha: Any, sigma: Any) -> torch.Tensor:
        """The score s(x) = grad log p_t(x) at (alpha, sigma) (see `score`): calling the module is the score."""
        return self.score(x, alpha, sigma)

    # ---------------------------------------------------------------- in t

    def _kernel(self, x: Any, t: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.forward_sde is None:
            raise SDEKitError("forward must be given (a ForwardSDE) to evaluate at times t")
        x = self._points(x)
        if not torch.is_tensor(t):
            check_real(t, "t")
        alpha, sigma = torch_kernel(self.forward_sde, t, like=x)
        return x, alpha, sigma

    def score_t(self, x: Any, t: Any) -> torch.Tensor:
        """s(x, t) = grad log p_t(x) with (alpha_t, sigma_t) = forward's kernel at t (`torch_kernel`); t a number,
        a 0-d tensor or (n,) tensor; shape (n, d)."""
        return self.score(*self._kernel(x, t))

    def log_prob_t(self, x: Any, t: Any) -> torch.Tensor:
        """log p_t(x) with (alpha_t, sigma_t) = forward's kernel at t; shape (n,)."""
        return self.log_prob(*self._kernel(x, t))

    def laplacian_t(self, x: Any, t: Any) -> torch.Tensor:
        """Delta log p_t(x) with (alpha_t, sigma_t) = forward's kernel at t; shape (n,)."""
        return self.laplacian(*self._kernel(x, t))
