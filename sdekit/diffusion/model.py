"""A diffusion model: a forward SDE plus a score, with every parametrization derived from the score, and
the exact model for Gaussian-mixture data (its score is the exact grad log p_t at every t).

The discrete samplers take a `DiffusionModel` and call ``score(x, t)``, ``eps(x, t)`` or
``x0(x, t)`` on (n, d) batches; the SDE/ODE samplers use its njit score through `reverse_sde` /
`probability_flow_ode`. Per-step noise comes from sdekit's per-path streams (`step_normals`), so a
sample does not depend on the batch size or on how paths are split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numba as nb
import numpy as np

from sdekit.diffusion.forward import ForwardSDE, schedule_kernel
from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.mixture_flow import exact_mixture_drift
from sdekit.diffusion.mixture_marginals import MixtureMarginals, mixture_marginal_score
from sdekit.diffusion.reverse import probability_flow_ode, reverse_sde
from sdekit.errors import SDEKitError
from sdekit.noise.counter import counter_normals
from sdekit.sde import ODE, SDE
from sdekit.targets import GaussianMixture

FIRST_SAMPLER_STREAM = 2  # streams 0 and 1 belong to the SDE kernels (Brownian, auxiliary)


@nb.njit(cache=True)
def exact_mixture_score(x, t, p):
    """grad log p_t(x) for mixture data under a built-in schedule: p = (sp, log_w, means, Q, lam)."""
    a, s = schedule_kernel(t, p[0])
    return mixture_marginal_score(x, a, s, p[1:])


def _points(x: Any, dim: int) -> np.ndarray:
    """x as a C-contiguous float64 (n, dim) array (a single point (dim,) becomes one row), real and of the model's
    dimension, or an SDEKitError naming x."""
    arr = real_array(x, "x")
    if arr.ndim == 1 and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise SDEKitError(f"x must have shape ({dim},) or (n, {dim}) (the model's dimension); got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def step_normals(seed: int, n_paths: int, dim: int, step: int, *, path_offset: int = 0) -> np.ndarray:
    """Standard normals (n_paths, dim) for a sampler's step ``step``: the first dim draws of stream 2 + step of each
    path (seed, path_offset + p) of sdekit's counter-based generator (`sdekit.noise.counter`: a normal per (seed,
    stream, path, draw index), so the same numbers can be drawn on any device by
    `sdekit.backends.torch.counter_noise`). Reproducible per path, whatever the batch."""
    if step < 0:
        raise SDEKitError(f"step must be >= 0; got {step}")
    return counter_normals(seed, n_paths, dim, path_offset=path_offset, stream=FIRST_SAMPLER_STREAM + step)


@dataclass
class DiffusionModel:
    """A forward SDE and a score s(x, t) ~ grad log p_t(x).

    score: Python callable (x (n, d), t) -> (n, d). njit_score / njit_params (optional): the same score
    as an njit batch function score(x, t, p) for the compiled reverse SDE and PF-ODE. exact: the
    `MixtureMarginals` when the score is exact (then ``marginal(t)`` gives p_t).
    """

    forward: ForwardSDE
    dim: int
    score_fn: Callable[[np.ndarray, float], np.ndarray]
    njit_score: Callable | None = None
    njit_params: Any = None
    exact: MixtureMarginals | None = None

    @classmethod
    def exact_mixture(cls, forward: ForwardSDE, data: GaussianMixture) -> DiffusionModel:
        """The exact model of Gaussian-mixture data: s(x, t) = grad log p_t(x) in closed form."""
        if not isinstance(forward, ForwardSDE):
            raise SDEKitError(f"forward must be a ForwardSDE; got {type(forward).__name__}")
        mm = MixtureMarginals(data)
        if forward.custom_kernel is not None:
            def score(x: np.ndarray, t: float) -> np.ndarray:
                a, s = forward.kernel(t)
                return mm.score(_points(x, mm.dim), a, s)
            return cls(forward, mm.dim, score, None, None, mm)

        def score(x: np.ndarray, t: float) -> np.ndarray:
            a, s = forward.kernel(t)
            return mixture_marginal_score(_points(x, mm.dim), a, s, mm.params)

        return cls(forward, mm.dim, score, exact_mixture_score, (forward.sp, *mm.params), mm)

    # -- parametrizations (Tweedie: x0hat = (x + sigma^2 s) / alpha, epshat = -sigma s)

    def score(self, x: np.ndarray, t: float) -> np.ndarray:
        """s(x, t)."""
        return self.score_fn(x, t)

    def eps(self, x: np.ndarray, t: float) -> np.ndarray:
        """Predicted noise epshat(x, t) = -sigma_t s(x, t)."""
        return -self.forward.sigma(t) * self.score_fn(x, t)

    def x0(self, x: np.ndarray, t: float) -> np.ndarray:
        """Denoiser E[x_0 | x_t = x] = (x + sigma_t^2 s(x, t)) / alpha_t."""
        a, s = self.forward.kernel(t)
        return (x + s * s * self.score_fn(x, t)) / a

    # -- exact laws

    def marginal(self, t: float) -> GaussianMixture:
        """Exact p_t (only for the exact mixture model)."""
        if self.exact is None:
            raise SDEKitError("marginal(t) needs the exact model (DiffusionModel.exact_mixture)")
        a, s = self.forward.kernel(t)
        return self.exact.marginal(a, s)

    def sample_marginal(self, n: int, t: float, seed: Any = None) -> np.ndarray:
        """n exact draws of p_t (the exact start x_T for sampler tests)."""
        return self.marginal(t).sample(n, seed=seed)

    # -- compiled compositions

    def reverse_sde(self, lam: float = 1.0) -> SDE:
        """The reverse-time SDE (lam = 1) or the lambda family member, compiled with the njit score."""
        if self.njit_score is None:
            raise SDEKitError("this model has no njit score; give njit_score= to use the compiled reverse SDE")
        sde = reverse_sde(self.forward, self.njit_score, self.dim, self.njit_params, lam=lam)
        if self.njit_score is exact_mixture_score:  # the drift and the exact score fused in one pass
            return replace(sde, drift=exact_mixture_drift(self.forward.coefficients_fn, exact_mixture_score))
        return sde

    def probability_flow(self) -> ODE:
        """The probability-flow ODE dx/dt = f x - g^2 s / 2, compiled with the njit score."""
        if self.njit_score is None:
            raise SDEKitError("this model has no njit score; give njit_score= to use the compiled PF-ODE")
        ode = probability_flow_ode(self.forward, self.njit_score, self.dim, self.njit_params)
        if self.njit_score is exact_mixture_score:  # the drift and the exact score fused in one pass
            return replace(ode, field=exact_mixture_drift(self.forward.coefficients_fn, exact_mixture_score))
        return ode
