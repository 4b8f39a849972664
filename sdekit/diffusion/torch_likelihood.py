"""Likelihoods through the probability-flow ODE on torch (torchdiffeq), for a torch score s(x, t).

The instantaneous change of variables (Chen et al. 2018; Grathwohl et al. 2019; Song et al. 2021, App. D.2) along
dx/dt = v(x, t) = f(t) x - g(t)^2 s(x, t) / 2 gives

    log p_eps(x_eps) = log p_T(x_T) + int_eps^T div_x v(x_t, t) dt,

integrated from eps up to T on the augmented state (x, int div v) with `sdekit.simulate(..., backend="torch")`
(any torchdiffeq method: rk4 on a fixed grid by default, dopri5 with rtol / atol). The divergence is exact (D
reverse-mode passes, one per coordinate: sum_i d v_i / d x_i) or Hutchinson's estimator e^T (dv/dx) e with
Rademacher or Gaussian probes e fixed along the path (one vector-Jacobian product per probe); each probe gives an
unbiased estimate, and their spread the standard error of the mean.

Data of any shape (n, *shape) (images (n, C, H, W)): the score sees and returns (n, *shape); the solver's
augmented state holds each example flattened to its D = prod(shape) coordinates (the one place the shape is
flattened: the ODE state is a matrix), the divergence and the prior's log-density sum over all D of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral
from typing import Any

import torch

from sdekit.backends.torch.methods import ode_method
from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.likelihood import Likelihood
from sdekit.diffusion.score_checks import ScoreNonFiniteError, check_torch_score
from sdekit.diffusion.torch_schedule import torch_coefficients
from sdekit.errors import SDEKitError
from sdekit.sde import ODE

__all__ = ["torch_log_likelihood"]


def _divergence(v: torch.Tensor, x: torch.Tensor, probes: torch.Tensor | None, create_graph: bool) -> torch.Tensor:
    """(m, n) divergences: exact (m = 1, sum_i dv_i/dx_i) or e_j^T (dv/dx) e_j for each probe e_j."""
    if probes is None:
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(x.shape[1]):
            (gi,) = torch.autograd.grad(v[:, i].sum(), x, create_graph=create_graph, retain_graph=True)
            div = div + gi[:, i]
        return div[None, :]
    rows = []
    for e in probes:
        (vjp,) = torch.autograd.grad(v, x, grad_outputs=e, create_graph=create_graph, retain_graph=True)
        rows.append((vjp * e).sum(dim=1))
    return torch.stack(rows)


def _probe_score(score: Callable, x: torch.Tensor, forward: ForwardSDE) -> None:
    """Call the score once on the first examples of x (n, *shape) at t = eps (a 0-d tensor, as in the solve) so that
    an error (an exception, a wrong kind or shape, a non-finite value) names the score, not the augmented field
    built from it."""
    t = forward.eps
    forward_kernel = forward.kernel(t)
    rows = x[: min(x.shape[0], math.prod(x.shape[1:]) + 2)].detach()
    try:
        out = score(rows, torch.as_tensor(t, dtype=x.dtype, device=x.device))
    except SDEKitError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SDEKitError(f"score could not be evaluated as score(x, t) on x of shape {tuple(rows.shape)} and a "
                          f"0-d tensor t: {first}") from exc
    ok = torch.isfinite(check_torch_score(out, rows)).reshape(rows.shape[0], -1).all(dim=1)
    if not bool(ok.all()):
        raise ScoreNonFiniteError(int(torch.argmin(ok.to(torch.uint8))), 0, *forward_kernel, t=t)


def torch_log_likelihood(score: Callable, forward: ForwardSDE, x: Any, *, solver: str = "rk4", steps: int = 1000,
                         rtol: float = 1e-6, atol: float = 1e-8, divergence: str = "exact", probes: int = 8,
                         probe: str = "rademacher", seed: int = 0,
                         prior_log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Likelihood:
    """log p_eps(x) for each example of the tensor x (n, *shape) (vectors (n, d), images (n, C, H, W)) under the PF-ODE
    of ``forward`` with the torch score s(x, t) (x of shape (n, *shape) -> the same shape), by the instantaneous change
    of variables log p_eps(x_eps) = log p_T(x_T) + int_eps^T div v(x_t, t) dt (Chen et al. 2018; Song et al. 2021,
    App. D.2); the divergence counts all D = prod(shape) coordinates of an example.

    solver: a torchdiffeq method (fixed-grid ones take ``steps``, adaptive ones rtol / atol). divergence: "exact"
    or "hutchinson" (``probes`` probes, "rademacher" or "gaussian", drawn from a torch.Generator seeded ``seed``).
    prior_log_prob: log p_T at x_T (n, *shape) -> (n,) (default: the forward SDE's prior N(0, prior_std^2 I_D)).
    Returns a `Likelihood` whose fields are tensors on x's device (x_T of x's shape); log_prob keeps the autograd
    graph of the score's parameters when gradients are enabled. Bits per dimension: `bits_per_dim(log_prob, shape)`.
    """
    if not isinstance(forward, ForwardSDE):
        raise SDEKitError(f"forward must be a ForwardSDE; got {type(forward).__name__}")
    if not callable(score):
        raise SDEKitError(f"score must be a torch callable score(x, t) -> x's shape; got {type(score).__name__}")
    if not torch.is_tensor(x) or x.ndim < 2 or min(x.shape) < 1:
        raise SDEKitError(f"x must be a tensor of shape (n, *shape) (e.g. (n, d) or (n, C, H, W)) with every size "
                          f">= 1; got {type(x).__name__} {tuple(x.shape) if torch.is_tensor(x) else ''}")
    if x.is_complex():
        raise SDEKitError(f"x must be a real tensor; got dtype {x.dtype}")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise SDEKitError(f"x must be finite; row {int(torch.nonzero(~torch.isfinite(x))[0, 0])} is not")
    if divergence not in ("exact", "hutchinson"):
        raise SDEKitError(f"divergence must be 'exact' or 'hutchinson'; got {divergence!r}")
    if probe not in ("rademacher", "gaussian"):
        raise SDEKitError(f"probe must be 'rademacher' or 'gaussian'; got {probe!r}")
    if isinstance(probes, bool) or not isinstance(probes, Integral) or probes < 1:
        raise SDEKitError(f"probes must be a positive int; got {probes!r}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed < 2**63:
        raise SDEKitError(f"seed must be an integer in [0, 2**63); got {seed!r}")
    if prior_log_prob is not None and not callable(prior_log_prob):
        raise SDEKitError(f"prior_log_prob must be None or a callable x_T -> (n,); got {type(prior_log_prob).__name__}")
    from sdekit.simulate import simulate

    n, shape = x.shape[0], tuple(x.shape[1:])
    d = math.prod(shape)
    _probe_score(score, x, forward)
    if divergence == "hutchinson":
        gen = torch.Generator().manual_seed(int(seed))
        e = torch.randn((int(probes), n, d), generator=gen, dtype=torch.float64)
        e = (e if probe == "gaussian" else torch.sign(e)).to(device=x.device, dtype=x.dtype)
        m = int(probes)
    else:
        e, m = None, 1
    create_graph = torch.is_grad_enabled()

    def augmented(z, t, p):
        """d/dt (x, int div v) = (v(x, t), div v(x, t)) for each probe; z holds the first examples of the batch (all
        of them in the solve, a few in the backend's shape probe), each flattened to a row, and row i keeps its
        probe vectors e[:, i]. The score sees the examples in their shape."""
        xs = z[:, :d]
        with torch.enable_grad():
            xs = xs if xs.requires_grad else xs.detach().requires_grad_(True)
            f, g = torch_coefficients(forward, t, like=xs)
            examples = xs.reshape(xs.shape[0], *shape)
            s = check_torch_score(score(examples, t), examples).reshape(xs.shape)
            v = f * xs - 0.5 * g * g * s
            div = _divergence(v, xs, None if e is None else e[:, :xs.shape[0]], create_graph)
        if not create_graph:
            v, div = v.detach(), div.detach()
        return torch.cat([v, div.T], dim=1)

    owner = score if isinstance(score, torch.nn.Module) else getattr(score, "__self__", None)
    augmented.torch_modules = (owner,) if isinstance(owner, torch.nn.Module) else ()
    ode = ODE(augmented, dim=d + m)
    z0 = torch.cat([x.reshape(n, d), torch.zeros((n, m), dtype=x.dtype, device=x.device)], dim=1)
    _, adaptive = ode_method(solver)
    kw: dict[str, Any] = {"rtol": rtol, "atol": atol} if adaptive else {"steps": steps}
    sol = simulate(ode, z0, (forward.eps, forward.T), solver=solver, backend="torch", **kw)
    z_t = sol.final
    x_t, integral = z_t[:, :d].reshape(n, *shape), z_t[:, d:].T  # (n, *shape), (m, n)
    if prior_log_prob is not None:
        prior = prior_log_prob(x_t)
        if not torch.is_tensor(prior) or tuple(prior.shape) != (n,):
            raise SDEKitError(f"prior_log_prob must return a tensor of shape ({n},) (one log-density per example of "
                              f"x_T); got {type(prior).__name__} {tuple(getattr(prior, 'shape', ()))}")
    else:
        s2 = forward.prior_std() ** 2
        prior = -0.5 * (x_t * x_t).reshape(n, d).sum(dim=1) / s2 - 0.5 * d * math.log(2 * math.pi * s2)
    per_probe = prior[None, :] + integral
    est = per_probe.mean(dim=0)
    se = per_probe.std(dim=0, unbiased=True) / math.sqrt(m) if m > 1 else torch.zeros_like(est)
    return Likelihood(est, se, prior, integral.mean(dim=0), x_t, sol.stats.evals)
