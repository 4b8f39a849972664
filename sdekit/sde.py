"""The specification: an SDE (drift, diffusion, noise type, calculus) and an ODE (vector field).

Pure description, no integration code. User functions have the batch signature (form="batch", the default)

    f(x, t, p) -> array broadcastable to (n, dim)

where x has shape (n, dim) (a batch of paths), t is a float and p the runtime parameters.
The same function runs on the NumPy reference (n = all paths), inside Numba kernels
(n = a chunk of paths) and on torch tensors (later backend). See README "Writing f and g".
Or the per-path forms (`sdekit.forms`): form="path", f(x, t, p, out) with x one path's (dim,) state writing its
value into out ((dim,), or (dim, m) for a matrix diffusion), and form="scalar" at dim 1, f(x, t, p) -> float with x
a float; the Numba kernels evaluate them row by row into buffers of their own (nothing allocated per step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.forms import FORMS, check_form
from sdekit.params import normalize_params
from sdekit.user_functions import jitted

NOISE_TYPES = ("diagonal", "scalar", "additive", "general", "commutative")
CALCULI = ("ito", "stratonovich")

__all__ = ["CALCULI", "FORMS", "NOISE_TYPES", "ODE", "SDE", "jitted"]


def _check_dim(dim: Any, name: str = "dim") -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise SDEKitError(f"{name} must be a positive integer; got {dim!r}")
    return int(dim)


@dataclass(frozen=True, eq=False)
class SDE:
    """dX = f(X, t, p) dt + g(X, t, p) dW, W a Brownian motion in R^m.

    noise:
      * "diagonal" (m = dim): g broadcasts to (n, dim); dX_i = f_i dt + g_i dW_i.
      * "scalar"   (m = 1):   g broadcasts to (n, dim); dX_i = f_i dt + g_i dW.
      * "additive": g does not depend on x. Without ``brownian_dim`` it is diagonal
        (g broadcasts to (dim,), m = dim); with ``brownian_dim = m`` it is a (dim, m) matrix.
      * "general" (m = brownian_dim, default dim): g has shape (n, dim, m) or (dim, m);
        dX_i = f_i dt + sum_j g_ij dW_j.
      * "commutative": general noise whose columns commute, L^j g_k = L^k g_j with L^j = sum_i g_ij d/dx_i (checked
        at x0 before a solve); Milstein then needs no Lévy area (solver "milstein_commutative").
    calculus: "ito" or "stratonovich" (the integral g o dW).
    params: runtime parameters (see `sdekit.params.normalize_params`); new values never recompile.
    drift_jacobian: optional J(x, t, p) = df/dx in the same batch signature, shape (n, dim, dim) or (dim, dim),
      J[b, i, j] = df_i/dx_j at row b. The drift-implicit solvers (``implicit_euler_maruyama``, ``theta_maruyama``,
      ``implicit_milstein``) use it in Newton's iteration instead of forward differences (dim drift evaluations per
      iteration saved); it is checked against forward differences of the drift at x0 before a solve. It keeps the
      batch signature whatever the form.
    form: how drift and diffusion are written (`sdekit.forms`): "batch" (above), "path" (f(x, t, p, out) on one
      path, x (dim,), out (dim,) or for a matrix diffusion (dim, m), returning None) or "scalar" (dim 1 and one
      value per component: f(x, t, p) -> float, x a float). Every form gives the same numbers; the per-path forms
      allocate nothing per step in the Numba kernels (fastest for few paths).
    """

    drift: Callable
    diffusion: Callable
    dim: int
    noise: str = "diagonal"
    calculus: str = "ito"
    params: Any = None
    brownian_dim: int | None = None
    name: str = "sde"
    drift_jacobian: Callable | None = None
    form: str = "batch"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim", _check_dim(self.dim))
        if self.noise not in NOISE_TYPES:
            raise SDEKitError(f"noise must be one of {NOISE_TYPES}; got {self.noise!r}")
        if self.calculus not in CALCULI:
            raise SDEKitError(f"calculus must be one of {CALCULI}; got {self.calculus!r}")
        if self.brownian_dim is not None:
            _check_dim(self.brownian_dim, "brownian_dim")
            if self.noise in ("diagonal", "scalar"):
                raise SDEKitError(
                    f"brownian_dim is set by noise={self.noise!r} (m = dim or 1); leave it None")
        for role in ("drift", "diffusion"):
            if not callable(getattr(self, role)):
                raise SDEKitError(f"{role} must be callable f(x, t, p); got {getattr(self, role)!r}")
        if self.drift_jacobian is not None and not callable(self.drift_jacobian):
            raise SDEKitError(f"drift_jacobian must be None or callable J(x, t, p) -> (n, dim, dim); got "
                              f"{self.drift_jacobian!r}")
        check_form(self.form, self.dim, self.matrix_noise)
        object.__setattr__(self, "params", normalize_params(self.params))

    @property
    def m(self) -> int:
        """Number of Brownian components."""
        if self.noise == "scalar":
            return 1
        if self.noise == "diagonal" or self.brownian_dim is None:
            return self.dim
        return int(self.brownian_dim)

    @property
    def matrix_noise(self) -> bool:
        """True when g is a (dim, m) matrix per path (general, or additive with brownian_dim)."""
        return self.noise in ("general", "commutative") or (self.noise == "additive" and self.brownian_dim is not None)

    def with_params(self, params: Any) -> SDE:
        """The same equation with new parameter values (reuses compiled kernels)."""
        return replace(self, params=params)

    def compiled(self) -> tuple[Any, Any]:
        """(drift, diffusion) compiled by Numba; made once per function object."""
        return jitted(self.drift, "drift"), jitted(self.diffusion, "diffusion")


@dataclass(frozen=True, eq=False)
class ODE:
    """dx/dt = v(x, t, p), with v in the batch signature of the module docstring, or per path (form="path":
    v(x, t, p, out) with x, out of shape (dim,); form="scalar" at dim 1: v(x, t, p) -> float), see `SDE`."""

    field: Callable
    dim: int
    params: Any = None
    name: str = "ode"
    form: str = "batch"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim", _check_dim(self.dim))
        if not callable(self.field):
            raise SDEKitError(f"field must be callable v(x, t, p); got {self.field!r}")
        check_form(self.form, self.dim, False)
        object.__setattr__(self, "params", normalize_params(self.params))

    def with_params(self, params: Any) -> ODE:
        """The same equation with new parameter values (reuses compiled kernels)."""
        return replace(self, params=params)

    def compiled(self) -> Any:
        """The vector field compiled by Numba."""
        return jitted(self.field, "field")

