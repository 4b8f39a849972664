"""Exact likelihoods through the probability-flow ODE (instantaneous change of variables).

Along the PF-ODE dx/dt = v(x, t) = f(t) x - g(t)^2 s(x, t) / 2 (Chen et al. 2018; Grathwohl et al.
2019; Song et al. 2021, App. D.2):

    log p_eps(x_eps) = log p_T(x_T) + int_eps^T div v(x_t, t) dt,
    div v = d f(t) - g(t)^2 / 2 * Laplacian log p_t(x)      (exact, when the Laplacian is known),

or Hutchinson's estimator div v ~ (1/M) sum_m e_m^T J_v e_m with Rademacher or Gaussian probes e_m
(fixed along the trajectory), J_v e by a central difference of v. Each probe gives its own
estimate of the integral, so the M estimates' spread gives the standard error of their mean.
The integration is classical RK4 on the augmented state (x, int div v), from eps up to T.

`bits_per_dim` turns a continuous log-density into bits per dimension of 8-bit data under uniform
dequantization (Theis, van den Oord & Bethge 2016): -log2 p(x) / d is an upper bound on the
discrete code length of the dequantized data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.model import DiffusionModel
from sdekit.errors import SDEKitError


@dataclass(frozen=True)
class Likelihood:
    """log p_eps(x) per row (mean over probes for Hutchinson), its standard error (0 when exact), the
    prior and divergence parts, the end points x_T and the number of field evaluations."""

    log_prob: np.ndarray
    stderr: np.ndarray
    prior_log_prob: np.ndarray
    divergence_integral: np.ndarray
    x_T: np.ndarray
    nfe: int


def _field(model: DiffusionModel, x: np.ndarray, t: float) -> np.ndarray:
    """v(x, t) = f(t) x - g(t)^2 s(x, t) / 2."""
    return model.forward.f(t) * x - 0.5 * model.forward.g(t) ** 2 * model.score(x, t)


def _exact_divergence(model: DiffusionModel, x: np.ndarray, t: float) -> np.ndarray:
    """d f - g^2 / 2 Laplacian log p_t (exact model only)."""
    a, s = model.forward.kernel(t)
    lap = np.atleast_1d(model.exact.laplacian_log_prob(x, a, s))
    return x.shape[1] * model.forward.f(t) - 0.5 * model.forward.g(t) ** 2 * lap


def log_likelihood(model: DiffusionModel, x: Any, *, steps: int = 1000, divergence: str = "exact",
                   probes: int = 8, probe: str = "rademacher", seed: int = 0, fd_step: float = 1e-4,
                   prior_log_prob: Callable[[np.ndarray], np.ndarray] | None = None) -> Likelihood:
    """log p_eps(x) for rows x at t = eps by the PF-ODE from eps to T (RK4, ``steps`` steps). x: (n, d), or
    (n, *shape) with prod(shape) = d (each example flattened in C order).

    divergence: "exact" (needs the exact mixture model's Laplacian) or "hutchinson" (``probes`` probes,
    "rademacher" or "gaussian"). prior_log_prob: log p_T at x_T (default: the exact marginal p_T for
    the exact model, otherwise the forward SDE's prior N(0, prior_std^2 I)).
    """
    if not isinstance(model, DiffusionModel):
        raise SDEKitError(f"model must be a DiffusionModel; got {type(model).__name__}")
    x = np.atleast_2d(real_array(x, "x"))
    if x.ndim > 2 and x.shape[0] >= 1 and math.prod(x.shape[1:]) == model.dim:  # (n, *shape): flat points, C order
        x = x.reshape(x.shape[0], model.dim)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != model.dim:
        raise SDEKitError(f"x must have shape (n, {model.dim}) or (n, *shape) with prod(shape) = {model.dim}, n >= 1; "
                          f"got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SDEKitError(f"x must be finite; row {int(np.argmin(np.all(np.isfinite(x), axis=1)))} is not")
    if divergence not in ("exact", "hutchinson"):
        raise SDEKitError(f"divergence must be 'exact' or 'hutchinson'; got {divergence!r}")
    if probe not in ("rademacher", "gaussian"):
        raise SDEKitError(f"probe must be 'rademacher' or 'gaussian'; got {probe!r}")
    if divergence == "exact" and model.exact is None:
        raise SDEKitError("divergence='exact' needs the exact model's Laplacian; use divergence='hutchinson'")
    for name, v in (("steps", steps), ("probes", probes)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise SDEKitError(f"{name} must be a positive int; got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SDEKitError(f"seed must be a non-negative integer; got {seed!r}")
    if isinstance(fd_step, bool) or not isinstance(fd_step, int | float) \
            or not (math.isfinite(fd_step) and fd_step > 0):
        raise SDEKitError(f"fd_step must be a positive number (the central difference's step); got {fd_step!r}")
    if prior_log_prob is not None and not callable(prior_log_prob):
        raise SDEKitError(f"prior_log_prob must be None or a callable x_T -> (n,); got {type(prior_log_prob).__name__}")
    probes, steps = int(probes), int(steps)
    n, d = x.shape
    t0, t1 = model.forward.eps, model.forward.T
    h = (t1 - t0) / steps
    if divergence == "hutchinson":
        rng = np.random.default_rng(seed)
        e = rng.standard_normal((probes, n, d)) if probe == "gaussian" else rng.choice([-1.0, 1.0], (probes, n, d))
        m = probes
    else:
        e, m = None, 1
    nfe = [0]

    def rhs(xs: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        v = _field(model, xs, t)
        nfe[0] += 1
        if e is None:
            return v, _exact_divergence(model, xs, t)[None, :]
        div = np.empty((m, n))
        for j in range(m):
            vp = _field(model, xs + fd_step * e[j], t)
            vm = _field(model, xs - fd_step * e[j], t)
            div[j] = np.einsum("ni,ni->n", e[j], (vp - vm) / (2.0 * fd_step))
        nfe[0] += 2 * m
        return v, div

    xs = x.copy()
    integral = np.zeros((m, n))
    t = t0
    for _ in range(steps):
        k1x, k1d = rhs(xs, t)
        k2x, k2d = rhs(xs + 0.5 * h * k1x, t + 0.5 * h)
        k3x, k3d = rhs(xs + 0.5 * h * k2x, t + 0.5 * h)
        k4x, k4d = rhs(xs + h * k3x, t + h)
        xs = xs + h / 6.0 * (k1x + 2 * k2x + 2 * k3x + k4x)
        integral = integral + h / 6.0 * (k1d + 2 * k2d + 2 * k3d + k4d)
        t += h
    if prior_log_prob is not None:
        prior = real_array(prior_log_prob(xs), "prior_log_prob's output")
        if prior.shape != (n,):
            raise SDEKitError(f"prior_log_prob must return shape ({n},) (one log-density per row of x_T); got "
                              f"{prior.shape}")
    elif model.exact is not None:
        prior = np.atleast_1d(model.marginal(t1).log_prob(xs))
    else:
        prior = model.forward.prior_log_prob(xs)
    per_probe = prior[None, :] + integral
    est = per_probe.mean(axis=0)
    se = per_probe.std(axis=0, ddof=1) / math.sqrt(m) if m > 1 else np.zeros(n)
    return Likelihood(est, se, prior, integral.mean(axis=0), xs, nfe[0])


def _dimension_count(dim: Any) -> int:
    """D: dim itself (an integer >= 1) or prod(dim) for a shape (a tuple / list of integers >= 1)."""
    sizes = tuple(dim) if isinstance(dim, tuple | list) else (dim,)
    ok = len(sizes) >= 1 and all(not isinstance(k, bool) and isinstance(k, int | np.integer) and k >= 1 for k in sizes)
    if not ok:
        raise SDEKitError(f"dim must be an integer >= 1 or a shape (a tuple of integers >= 1, e.g. (C, H, W)); "
                          f"got {dim!r}")
    return math.prod(int(k) for k in sizes)


def bits_per_dim(log_prob: Any, dim: int | tuple[int, ...], *, data_scale: float = 1.0 / 127.5) -> np.ndarray:
    """Bits per dimension of 8-bit data: -(log p_y(y) + D log(data_scale)) / (D ln 2).

    dim: D, the number of dimensions of one example, or the example's shape (C, H, W), counting D = C H W. The
    model works on y = data_scale * x + shift for pixel values x in [0, 256) after uniform dequantization
    x + u, u ~ U[0, 1)^D; the density of x is p_y(y) data_scale^D. The default scale 1/127.5 is the usual map to
    [-1, 1]; use 1/256 for [0, 1), 2/K for K levels mapped to [-1, 1). The result upper-bounds the discrete negative
    log-likelihood in bits per dimension (Theis, van den Oord & Bethge 2016).
    """
    d = _dimension_count(dim)
    if isinstance(data_scale, bool) or not isinstance(data_scale, int | float) \
            or not (math.isfinite(data_scale) and data_scale > 0):
        raise SDEKitError(f"data_scale must be a positive number; got {data_scale!r}")
    lp = real_array(log_prob, "log_prob")
    return -(lp + d * math.log(data_scale)) / (d * math.log(2.0))
