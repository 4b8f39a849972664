"""Torch twins of the built-in functions written as explicit Numba loops (same equations, torch operations).

Registered on import of the torch backend; `twins.torch_function` finds them. Each twin states the equation of
the function it stands for; tests compare every twin with its Numba original.
"""

from __future__ import annotations

import torch

from sdekit.backends.torch.twins import torch_twin
from sdekit.diffusion.forward import forward_diffusion, forward_drift, schedule_coefficients, schedule_kernel
from sdekit.diffusion.model import exact_mixture_score
from sdekit.diffusion.torch_schedule import coefficients_from_sp, kernel_from_sp
from sdekit.processes.ou import ou_drift
from sdekit.targets.gaussian import gaussian_log_prob, gaussian_score
from sdekit.targets.mixture import mixture_log_prob, mixture_score


@torch_twin(ou_drift)
def ou_drift_torch(x, t, p):
    """f(x) = -A x per row, p = (A, B)."""
    return -(x @ p[0].T)


@torch_twin(gaussian_score)
def gaussian_score_torch(x, t, p):
    """s(x) = -P (x - mu) per row, p = (mu, P, log_norm, chol)."""
    return -((x - p[0]) @ p[1].T)


@torch_twin(gaussian_log_prob)
def gaussian_log_prob_torch(x, t, p):
    """log N(x; mu, S) = -1/2 (x - mu)^T P (x - mu) + log_norm per row."""
    r = x - p[0]
    return -0.5 * ((r @ p[1].T) * r).sum(dim=1) + p[2][0]


def _mixture_terms(x, p):
    """(l (n, K), u (n, K, d)): l_k = log pi_k - 1/2 r_k^T P_k r_k + log_norm_k, u_k = P_k r_k, r_k = x - mu_k."""
    r = x[:, None, :] - p[1][None, :, :]
    u = torch.einsum("kij,nkj->nki", p[2], r)
    return p[0][None, :] + p[3][None, :] - 0.5 * (r * u).sum(dim=2), u


@torch_twin(mixture_score)
def mixture_score_torch(x, t, p):
    """s(x) = -sum_k gamma_k P_k (x - mu_k), gamma = softmax_k(l_k); p = (log_w, mu, P, log_norm, chol)."""
    l, u = _mixture_terms(x, p)
    return -(torch.softmax(l, dim=1)[:, :, None] * u).sum(dim=1)


@torch_twin(mixture_log_prob)
def mixture_log_prob_torch(x, t, p):
    """log pi(x) = logsumexp_k l_k."""
    l, _ = _mixture_terms(x, p)
    return torch.logsumexp(l, dim=1)


@torch_twin(schedule_coefficients)
def schedule_coefficients_torch(t, sp):
    """(f(t), g(t)) of the built-in schedule sp = [kind, a, b, c] (`sdekit.diffusion.forward`), in torch."""
    return coefficients_from_sp(t, sp)


@torch_twin(schedule_kernel)
def schedule_kernel_torch(t, sp):
    """(alpha_t, sigma_t) of the built-in schedule sp, in torch."""
    return kernel_from_sp(t, sp)


@torch_twin(forward_drift)
def forward_drift_torch(x, t, p):
    """f(t) x for the schedule p = sp."""
    return coefficients_from_sp(t, p)[0] * x


@torch_twin(forward_diffusion)
def forward_diffusion_torch(x, t, p):
    """g(t)."""
    return coefficients_from_sp(t, p)[1]


@torch_twin(exact_mixture_score)
def exact_mixture_score_torch(x, t, p):
    """grad log p_t(x) for mixture data, p = (sp, log_w, means, Q, lam): (alpha_t, sigma_t) from the schedule sp,
    then the mixture marginal score (`sdekit.diffusion.torch_mixture`)."""
    from sdekit.diffusion.torch_mixture import mixture_parts, mixture_score_from_parts

    alpha, sigma = kernel_from_sp(t, p[0])
    alpha, sigma = alpha.to(x), sigma.to(x)
    return mixture_score_from_parts(*mixture_parts(x, alpha, sigma, p[1], p[2], p[3], p[4])[:2])
