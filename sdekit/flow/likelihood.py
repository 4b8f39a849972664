"""Log-likelihoods of a flow-matching model through its ODE (the instantaneous change of variables).

Along dx/dt = u(x, t) the density of x_t obeys d log p_t(x_t) / dt = -div u(x_t, t) (Chen, Rubanova, Bettencourt &
Duvenaud 2018; Grathwohl et al. 2019; Lipman et al. 2023, appendix C), so for a point x at t = 0

    log p_0(x) = log p_1(x_1) + int_0^1 div u(x_t, t) dt,        x_t solving dx/dt = u from x_0 = x,

with p_1 = N(0, sigma_1^2 I) for an interpolant ending at pure noise (alpha_1 = 0; both built-in ones). The pair
(x_t, int div u) is integrated by classical RK4 on a uniform grid of ``steps`` steps from 0 up to t_max (default 1;
give prior_log_prob for a t_max < 1 or an interpolant with alpha_1 > 0).

Divergence: "exact" -- a ``divergence(x, t)`` function (given, or the velocity's own method, as
`MixtureVelocity.divergence`), or on torch the D reverse-mode passes of autograd (`torch_likelihood`'s helper);
"hutchinson" -- e^T (du/dx) e averaged over ``probes`` Rademacher or Gaussian probes fixed along the path (Grathwohl
et al. 2019; autograd vector-Jacobian products on torch, central differences (u(x + delta e) - u(x - delta e)) / (2
delta) . e in NumPy): each probe gives an unbiased estimate of the integral, their spread the standard error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from sdekit.diffusion.likelihood import Likelihood
from sdekit.diffusion.samplers.arrays import is_torch, to_state
from sdekit.diffusion.samplers.checks import check_count, check_real, check_seed
from sdekit.errors import SDEKitError
from sdekit.flow.interpolants import Interpolant, get_interpolant

__all__ = ["flow_log_likelihood"]

DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")


def _probes(kind: str, m: int, n: int, d: int, seed: int, like: Any) -> Any:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((m, n, d))
    if kind == "rademacher":
        e = np.sign(e)
    if is_torch(like):
        import torch

        return torch.as_tensor(e, dtype=like.dtype, device=like.device)
    return e


class _Field:
    """(u, divergences (m, n)) at (x, t) for the chosen divergence."""

    def __init__(self, velocity: Callable, divergence: str, div_fn: Callable | None, probes: Any, fd_step: float):
        self.velocity, self.kind, self.div_fn, self.probes, self.fd_step = velocity, divergence, div_fn, probes, fd_step
        self.nfe = 0

    def __call__(self, x: Any, t: float) -> tuple[Any, Any]:
        self.nfe += 1
        if is_torch(x):
            return self._torch(x, t)
        u = np.asarray(self.velocity(x, t), dtype=np.float64)
        if self.kind == "exact":
            return u, np.asarray(self.div_fn(x, t), dtype=np.float64).reshape(1, -1)
        rows = []
        for e in self.probes:
            du = np.asarray(self.velocity(x + self.fd_step * e, t)) - np.asarray(self.velocity(x - self.fd_step * e, t))
            rows.append(np.sum(du * e, axis=1) / (2.0 * self.fd_step))
        return u, np.stack(rows)

    def _torch(self, x: Any, t: float) -> tuple[Any, Any]:
        import torch

        from sdekit.diffusion.torch_likelihood import _divergence

        if self.kind == "exact" and self.div_fn is not None:
            with torch.no_grad():
                return self.velocity(x, t), self.div_fn(x, t).reshape(1, -1)
        with torch.enable_grad():
            xs = x.detach().requires_grad_(True)
            u = self.velocity(xs, t)
            div = _divergence(u, xs, None if self.kind == "exact" else self.probes, False)
        return u.detach(), div.detach()


def flow_log_likelihood(velocity: Callable[[Any, float], Any], x: Any, *, steps: int = 200,
                        divergence: str = "exact", divergence_fn: Callable[[Any, float], Any] | None = None,
                        interpolant: Interpolant | str = "linear", t_max: float = 1.0, probes: int = 8,
                        probe: str = "rademacher", seed: int = 0, fd_step: float = 1e-4,
                        prior_log_prob: Callable[[Any], Any] | None = None) -> Likelihood:
    """log p_0(x) per row of x (n, d) under the flow dx/dt = velocity(x, t) (module docstring): RK4 with ``steps``
    steps from 0 to t_max, then log p_{t_max}(x_{t_max}) (``prior_log_prob``, default N(0, sigma_1^2 I) when the
    interpolant has alpha_{t_max} = 0) plus the divergence integral.

    divergence "exact" (``divergence_fn(x, t) -> (n,)``, or velocity.divergence, or torch autograd) or "hutchinson"
    (``probes`` probes of kind ``probe`` from np.random.default_rng(seed); central differences of step fd_step in
    NumPy). x: a NumPy array (float64) or a torch tensor (then the velocity must take tensors; fields are tensors).
    Returns a `sdekit.diffusion.likelihood.Likelihood` (log_prob, stderr, prior_log_prob, divergence_integral,
    x_T = the end points, nfe = field evaluations x 1)."""
    if not callable(velocity):
        raise SDEKitError(f"velocity must be callable as velocity(x, t); got {type(velocity).__name__}")
    if divergence not in DIVERGENCES:
        raise SDEKitError(f"divergence must be one of {DIVERGENCES}; got {divergence!r}")
    if probe not in PROBES:
        raise SDEKitError(f"probe must be one of {PROBES}; got {probe!r}")
    if divergence_fn is not None and not callable(divergence_fn):
        raise SDEKitError(f"divergence_fn must be None or callable as divergence_fn(x, t); got "
                          f"{type(divergence_fn).__name__}")
    if prior_log_prob is not None and not callable(prior_log_prob):
        raise SDEKitError(f"prior_log_prob must be None or callable x -> (n,); got {type(prior_log_prob).__name__}")
    steps = check_count(steps, "steps")
    m = check_count(probes, "probes")
    seed = check_seed(seed)
    fd_step = check_real(fd_step, "fd_step", lo=0.0, strict=True)
    t_end = check_real(t_max, "t_max", lo=0.0, strict=True)
    if t_end > 1.0:
        raise SDEKitError(f"t_max must lie in (0, 1]; got {t_end}")
    ip = get_interpolant(interpolant)
    xs = to_state(x, "x")
    if xs.ndim != 2:
        raise SDEKitError(f"x must have shape (n, d); got shape {tuple(xs.shape)}")
    n, d = int(xs.shape[0]), int(xs.shape[1])
    div_fn = divergence_fn if divergence_fn is not None else getattr(velocity, "divergence", None)
    if divergence == "exact" and div_fn is None and not is_torch(xs):
        raise SDEKitError("divergence 'exact' on NumPy needs divergence_fn(x, t) (or a velocity with a divergence "
                          "method); use divergence='hutchinson' or a torch tensor x (autograd)")
    a_end, s_end = ip.level(t_end)
    if prior_log_prob is None and a_end != 0.0:
        raise SDEKitError(f"prior_log_prob is required: the interpolant has alpha = {a_end} at t_max = {t_end} (the "
                          "default prior N(0, sigma^2 I) holds only where alpha = 0)")
    e = _probes(probe, m, n, d, seed, xs) if divergence == "hutchinson" else None
    field = _Field(velocity, divergence, div_fn if divergence == "exact" else None, e, fd_step)
    h = t_end / steps
    z, acc = xs, _zeros(xs, 1 if e is None else m, n)
    for i in range(steps):
        t = i * h
        k1, j1 = field(z, t)
        k2, j2 = field(z + (0.5 * h) * k1, t + 0.5 * h)
        k3, j3 = field(z + (0.5 * h) * k2, t + 0.5 * h)
        k4, j4 = field(z + h * k3, t + h)
        z = z + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        acc = acc + (h / 6.0) * (j1 + 2.0 * j2 + 2.0 * j3 + j4)
    if prior_log_prob is not None:
        prior = prior_log_prob(z)
        if tuple(getattr(prior, "shape", ())) != (n,):
            raise SDEKitError(f"prior_log_prob must return shape ({n},); got {tuple(getattr(prior, 'shape', ()))}")
    else:
        prior = -0.5 * _row_sum(z * z) / (s_end * s_end) - 0.5 * d * math.log(2.0 * math.pi * s_end * s_end)
    per_probe = prior[None, :] + acc
    est = per_probe.mean(0)
    if per_probe.shape[0] > 1:
        err = per_probe.std(0, **({"correction": 1} if is_torch(per_probe) else {"ddof": 1})) / math.sqrt(m)
    else:
        err = 0.0 * est
    return Likelihood(est, err, prior, acc.mean(0), z, field.nfe)


def _zeros(like: Any, m: int, n: int) -> Any:
    if is_torch(like):
        import torch

        return torch.zeros((m, n), dtype=like.dtype, device=like.device)
    return np.zeros((m, n))


def _row_sum(v: Any) -> Any:
    return v.sum(1) if is_torch(v) else np.sum(v, axis=1)
