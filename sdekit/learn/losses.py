"""Training losses for score models: denoising score matching, the noise / data / velocity regressions, and sliced
score matching.

With x_0 from the data, t ~ U[forward.eps, forward.T] and z ~ N(0, I) drawn per example (from ``generator``), and
x_t = alpha_t x_0 + sigma_t z (the forward kernel; Song et al. 2021, "Score-based generative modeling through
stochastic differential equations"):

- DSM (Vincent 2011; Song & Ermon 2019; Song et al. 2021 eq. 7):  lambda(t) || s_theta(x_t, t) + z / sigma_t ||^2,
  since grad log N(x_t; alpha_t x_0, sigma_t^2 I) = -z / sigma_t. lambda = sigma_t^2 ("sigma2", Song & Ermon 2019),
  g(t)^2 ("likelihood", Song, Durkan, Murray & Ermon 2021), 1 ("uniform") or a callable lambda(t).
- eps (Ho et al. 2020, L_simple): || epshat_theta(x_t, t) - z ||^2; x0: || x0hat_theta - x_0 ||^2;
  v (Salimans & Ho 2022): || vhat_theta - (alpha_t z - sigma_t x_0) ||^2.
- sliced score matching (Song, Garg, Shi & Ermon 2019): for projections v with E[v v^T] = I,
  J(s) = E_x E_v [ v^T grad_x (v^T s(x)) + 1/2 (v^T s(x))^2 ], or with variance reduction the second term replaced
  by its v-average 1/2 ||s(x)||^2; J equals E||s - grad log p||^2 / 2 up to a constant. Its noise-conditional form
  applies it at x_t to s(., t) with weight sigma_t^2.

Data come as (n, *shape): n examples of any shape (vectors (n, d), images (n, C, H, W)); alpha_t, sigma_t and the
weights are per example and broadcast over the rest. Each loss sums the squared error over every non-batch axis (the
per-example sum the maths needs, the only place the shape is flattened) and averages over the batch
(``reduction="mean"``, a 0-d tensor) or returns the per-example values (``reduction="none"``, shape (n,)) for standard
errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.torch_schedule import torch_coefficients, torch_kernel
from sdekit.errors import SDEKitError

__all__ = ["WEIGHTINGS", "dsm_loss", "eps_loss", "noise_conditional_ssm_loss", "batch_column", "per_example_sum",
           "perturb", "sample_times", "sliced_score_matching_loss", "v_loss", "x0_loss"]

WEIGHTINGS = ("sigma2", "likelihood", "uniform")
DISTRIBUTIONS = ("gaussian", "rademacher")
REDUCTIONS = ("mean", "none")


# --------------------------------------------------------------------------------------------
# checks and draws
# --------------------------------------------------------------------------------------------


def _check_data(x0: Any, model: Any, name: str = "x0") -> torch.Tensor:
    """x0 if it is a floating tensor of shape (n, *shape), n >= 1, at least one non-batch axis, and (n, dim) where
    the model states a ``dim`` (a vector model such as `ScoreMLP`)."""
    if not torch.is_tensor(x0) or not x0.is_floating_point():
        raise SDEKitError(f"{name} must be a floating torch tensor of shape (n, *shape); got {type(x0).__name__}")
    dim = getattr(model, "dim", None)
    if x0.ndim < 2 or x0.shape[0] < 1 or (dim is not None and (x0.ndim != 2 or x0.shape[1] != dim)):
        want = "(n, *shape)" if dim is None else f"(n, {dim}) (the model's dim)"
        raise SDEKitError(f"{name} must have shape {want} with n >= 1; got shape {tuple(x0.shape)}")
    return x0


def per_example_sum(v: torch.Tensor) -> torch.Tensor:
    """sum_i v[k, i] over every non-batch axis i of v (n, *shape): the per-example sum of a squared error or of
    v^T s (a squared norm ||.||^2 of an image is the sum over its pixels and channels); shape (n,)."""
    return v.reshape(v.shape[0], -1).sum(dim=1)


def batch_column(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """v (n,) (a per-example alpha_t, sigma_t or weight) shaped (n, 1, ..., 1), so that v * x scales example k of
    x (n, *shape) by v[k]."""
    return v.reshape(v.shape[0], *([1] * (like.ndim - 1)))


def _check_forward(forward: Any) -> ForwardSDE:
    if not isinstance(forward, ForwardSDE):
        raise SDEKitError(f"forward must be a ForwardSDE (ForwardSDE.vp(), .ve(), ...); got {type(forward).__name__}")
    return forward


def _method(model: Any, name: str) -> Callable:
    fn = getattr(model, name, None)
    if not callable(fn):
        raise SDEKitError(f"model must have a method {name}(x, t) (a ScoreModel); got {type(model).__name__}")
    return fn


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in REDUCTIONS:
        raise SDEKitError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")
    return values.mean() if reduction == "mean" else values


def sample_times(forward: ForwardSDE, n: int, like: torch.Tensor, t: Any = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """(n,) times in like's dtype and device: t ~ U[forward.eps, forward.T] from ``generator``, or the given t
    (a number, 0-d or (n,) tensor) broadcast to (n,)."""
    forward = _check_forward(forward)
    if t is None:
        u = torch.rand(n, generator=generator, dtype=like.dtype, device=like.device)
        return forward.eps + (forward.T - forward.eps) * u
    if isinstance(t, bool):
        raise SDEKitError(f"t must be None, a number or a tensor of shape ({n},); got {t!r}")
    if torch.is_tensor(t):  # not read: that would synchronise the device
        if t.is_complex():
            raise SDEKitError(f"t must be real; got dtype {t.dtype}")
        tt = t.to(dtype=like.dtype, device=like.device)
    else:
        arr = real_array(t, "t")
        if not np.all(np.isfinite(arr)) or not np.all(arr > 0):
            raise SDEKitError(f"t must be finite and > 0 (sigma_0 = 0: the losses divide by sigma_t); got {t!r}")
        tt = torch.as_tensor(arr, dtype=like.dtype, device=like.device)
    if tt.numel() not in (1, n) or tt.ndim > 1:
        raise SDEKitError(f"t must be None, a number or a tensor of shape ({n},); got shape {tuple(tt.shape)}")
    return tt.reshape(-1).expand(n)


def perturb(x0: torch.Tensor, forward: ForwardSDE, t: torch.Tensor,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """(x_t, z, alpha_t, sigma_t): x_t = alpha_t x_0 + sigma_t z, z ~ N(0, I) from ``generator`` (Song et al. 2021);
    x_0 of shape (n, *shape), alpha_t and sigma_t of shape (n, 1, ..., 1) (broadcasting against x_0)."""
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    alpha, sigma = torch_kernel(forward, t)
    alpha, sigma = batch_column(alpha, x0), batch_column(sigma, x0)
    return alpha * x0 + sigma * z, z, alpha, sigma


def _weights(weighting: str | Callable, forward: ForwardSDE, t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """lambda(t) of shape (n,); sigma: sigma_t of shape (n, 1, ..., 1)."""
    if callable(weighting):
        lam = torch.as_tensor(weighting(t), dtype=t.dtype, device=t.device)
        if lam.numel() not in (1, t.shape[0]):
            raise SDEKitError(f"weighting(t) must return a number or shape ({t.shape[0]},); got {tuple(lam.shape)}")
        return lam.reshape(-1).expand(t.shape[0])
    if weighting == "sigma2":
        return sigma.reshape(-1) ** 2
    if weighting == "likelihood":
        return torch_coefficients(forward, t)[1] ** 2
    if weighting == "uniform":
        return torch.ones_like(t)
    raise SDEKitError(f"weighting must be one of {WEIGHTINGS} or a callable lambda(t); got {weighting!r}")


# --------------------------------------------------------------------------------------------
# denoising losses
# --------------------------------------------------------------------------------------------


def dsm_loss(model: Any, x0: torch.Tensor, forward: ForwardSDE, *, weighting: str | Callable = "sigma2",
             t: Any = None, generator: torch.Generator | None = None, reduction: str = "mean") -> torch.Tensor:
    """Denoising score matching E[ lambda(t) || s_theta(x_t, t) + z / sigma_t ||^2 ] (Vincent 2011; Song & Ermon 2019;
    Song et al. 2021, eq. 7) with x_t = alpha_t x_0 + sigma_t z, t ~ U[eps, T] (or the given t), z ~ N(0, I).

    model: has ``score(x, t)`` (a `ScoreModel`). weighting: "sigma2" (lambda = sigma_t^2), "likelihood" (g(t)^2,
    Song, Durkan, Murray & Ermon 2021), "uniform" (1) or a callable lambda(t (n,)) -> (n,). Minimised by the
    score of the noised data law; for "sigma2" it equals `eps_loss` of an eps-model on the same draws.
    """
    if not (callable(weighting) or weighting in WEIGHTINGS):
        raise SDEKitError(f"weighting must be one of {WEIGHTINGS} or a callable lambda(t); got {weighting!r}")
    score = _method(model, "score")
    x0 = _check_data(x0, model)
    forward = _check_forward(forward)
    tt = sample_times(forward, x0.shape[0], x0, t, generator)
    xt, z, _, sigma = perturb(x0, forward, tt, generator)
    err = per_example_sum((score(xt, tt) + z / sigma) ** 2)
    return _reduce(_weights(weighting, forward, tt, sigma) * err, reduction)


def _regression(kind: str, model: Any, x0: torch.Tensor, forward: ForwardSDE, t: Any,
                generator: torch.Generator | None, reduction: str) -> torch.Tensor:
    predict = _method(model, kind)
    x0 = _check_data(x0, model)
    forward = _check_forward(forward)
    tt = sample_times(forward, x0.shape[0], x0, t, generator)
    xt, z, alpha, sigma = perturb(x0, forward, tt, generator)
    target = {"eps": z, "x0": x0}.get(kind)
    if target is None:
        target = alpha * z - sigma * x0
    return _reduce(per_example_sum((predict(xt, tt) - target) ** 2), reduction)


def eps_loss(model: Any, x0: torch.Tensor, forward: ForwardSDE, *, t: Any = None,
             generator: torch.Generator | None = None, reduction: str = "mean") -> torch.Tensor:
    """The noise-prediction loss E || epshat_theta(x_t, t) - z ||^2 (Ho et al. 2020, L_simple); model has eps(x, t)."""
    return _regression("eps", model, x0, forward, t, generator, reduction)


def x0_loss(model: Any, x0: torch.Tensor, forward: ForwardSDE, *, t: Any = None,
            generator: torch.Generator | None = None, reduction: str = "mean") -> torch.Tensor:
    """The data-prediction loss E || x0hat_theta(x_t, t) - x_0 ||^2 (minimised by E[x_0 | x_t]); model has x0(x, t)."""
    return _regression("x0", model, x0, forward, t, generator, reduction)


def v_loss(model: Any, x0: torch.Tensor, forward: ForwardSDE, *, t: Any = None,
           generator: torch.Generator | None = None, reduction: str = "mean") -> torch.Tensor:
    """The velocity loss E || vhat_theta(x_t, t) - (alpha_t z - sigma_t x_0) ||^2 (Salimans & Ho 2022); model has
    v(x, t)."""
    return _regression("v", model, x0, forward, t, generator, reduction)


# --------------------------------------------------------------------------------------------
# sliced score matching
# --------------------------------------------------------------------------------------------


def _projections(shape: tuple[int, ...], distribution: str, like: torch.Tensor,
                 generator: torch.Generator | None) -> torch.Tensor:
    if distribution == "gaussian":
        return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)
    signs = torch.randint(0, 2, shape, generator=generator, device=like.device)
    return (2 * signs - 1).to(like.dtype)


def sliced_score_matching_loss(score_fn: Callable, x: torch.Tensor, *, n_projections: int = 1,
                               variance_reduction: bool = True, distribution: str = "gaussian",
                               generator: torch.Generator | None = None, reduction: str = "mean") -> torch.Tensor:
    """Sliced score matching (Song, Garg, Shi & Ermon 2019): E_x E_v [ v^T grad_x(v^T s(x)) + 1/2 (v^T s(x))^2 ],
    or with variance_reduction E_x E_v [ v^T grad_x(v^T s(x)) ] + 1/2 ||s(x)||^2 (SSM-VR).

    score_fn(x (n, *shape)) -> (n, *shape), each example depending on its own example of x only (no batch coupling;
    v^T s sums over every non-batch axis); v: n_projections
    draws per example, N(0, I) ("gaussian") or uniform signs ("rademacher"), both with E[v v^T] = I. The
    Jacobian-vector products use autograd with create_graph=True, so the loss trains score_fn's parameters.
    For s(x) = -x / c and x ~ N(0, c I_d) the expectation is -d / (2 c).
    """
    if not callable(score_fn):
        raise SDEKitError(f"score_fn must be callable as score_fn(x) -> (n, *shape); got {type(score_fn).__name__}")
    x = _check_data(x, None, "x")
    if isinstance(n_projections, bool) or not isinstance(n_projections, int) or n_projections < 1:
        raise SDEKitError(f"n_projections must be an integer >= 1; got {n_projections!r}")
    if distribution not in DISTRIBUTIONS:
        raise SDEKitError(f"distribution must be one of {DISTRIBUTIONS}; got {distribution!r}")
    if not isinstance(variance_reduction, bool):
        raise SDEKitError(f"variance_reduction must be True or False; got {variance_reduction!r}")
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        s = score_fn(x)
        if not torch.is_tensor(s) or tuple(s.shape) != tuple(x.shape):
            got = tuple(s.shape) if torch.is_tensor(s) else type(s).__name__
            raise SDEKitError(f"score_fn(x) must return a tensor of shape {tuple(x.shape)} (that of x); got {got}")
        vs = _projections((n_projections, *x.shape), distribution, x, generator)
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for v in vs:
            sv = per_example_sum(v * s)  # v^T s(x), per example
            (grad,) = torch.autograd.grad(sv.sum(), x, create_graph=True)
            total = total + per_example_sum(v * grad)  # v^T J v
            if not variance_reduction:
                total = total + 0.5 * sv * sv
        per_example_loss = total / n_projections
        if variance_reduction:
            per_example_loss = per_example_loss + 0.5 * per_example_sum(s * s)
    return _reduce(per_example_loss, reduction)


def noise_conditional_ssm_loss(model: Any, x0: torch.Tensor, forward: ForwardSDE, *, n_projections: int = 1,
                               variance_reduction: bool = True, distribution: str = "gaussian", t: Any = None,
                               generator: torch.Generator | None = None, reduction: str = "mean") -> torch.Tensor:
    """E_t[ sigma_t^2 J_t(s(., t)) ] with J_t the sliced score matching loss (Song, Garg, Shi & Ermon 2019) of
    s(., t) on x_t = alpha_t x_0 + sigma_t z (Song & Ermon 2019 weight sigma^2); model has score(x, t).

    For data N(0, c I_d) and the exact score the expectation at a fixed t is -d sigma_t^2 / (2 (alpha_t^2 c +
    sigma_t^2)).
    """
    score = _method(model, "score")
    x0 = _check_data(x0, model)
    forward = _check_forward(forward)
    tt = sample_times(forward, x0.shape[0], x0, t, generator)
    xt, _, _, sigma = perturb(x0, forward, tt, generator)
    per_example_loss = sliced_score_matching_loss(lambda x: score(x, tt), xt, n_projections=n_projections,
                                                  variance_reduction=variance_reduction, distribution=distribution,
                                                  generator=generator, reduction="none")
    return _reduce(sigma.reshape(-1) ** 2 * per_example_loss, reduction)
