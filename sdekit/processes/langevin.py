"""Overdamped Langevin dX = s(X) dt + sqrt(2) dW, with s = grad log pi = -grad U.

Convention: sdekit uses dX = s(X) dt + sqrt(2) dW, whose stationary law is pi. The
tutorials' form dY = 1/2 grad log pi(Y) dt + dW is the same process on a doubled clock:
Y_t has the law of X_{t/2}. So sdekit's time T equals the tutorials' time 2T, and an
Euler step of size h here is a step of size 2h there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np

from sdekit.backends.torch.twins import register_torch, torch_function
from sdekit.errors import SDEKitError
from sdekit.sde import SDE, jitted

SQRT2 = float(np.sqrt(2.0))


@nb.njit(cache=True)
def sqrt2_diffusion(x, t, p):
    """g = sqrt(2)."""
    return 1.4142135623730951


def _negated(grad_energy: Callable) -> Callable:
    grad = jitted(grad_energy, "grad_energy")

    @nb.njit
    def score_from_energy(x, t, p):
        return -1.0 * grad(x, t, p)

    def score_from_energy_torch(x, t, p):
        return -1.0 * torch_function(grad_energy)(x, t, p)

    register_torch(score_from_energy, score_from_energy_torch)  # the same composition on the torch backend
    return score_from_energy


def overdamped_langevin(dim: int, *, score: Callable | None = None, grad_energy: Callable | None = None,
                        target: Any = None, params: Any = None, name: str = "overdamped_langevin") -> SDE:
    """dX = s(X) dt + sqrt(2) dW with s from `score(x, t, p)`, `-grad_energy(x, t, p)` or `target.score_fn`.

    Exactly one of score, grad_energy and target; a target brings its own params.
    """
    given = [v is not None for v in (score, grad_energy, target)]
    if sum(given) != 1:
        raise SDEKitError("give exactly one of score=, grad_energy= or target=")
    if target is not None:
        if params is not None:
            raise SDEKitError("params come from the target; leave params None")
        drift, params = target.score_fn, target.params
        if getattr(target, "dim", dim) != dim:
            raise SDEKitError(f"dim = {dim} but target.dim = {target.dim}")
    elif score is not None:
        drift = score
    else:
        drift = _negated(grad_energy)
    return SDE(drift, sqrt2_diffusion, dim=dim, noise="additive", params=params, name=name)


def ula_gaussian_variance(cov: Any, h: float) -> np.ndarray:
    """Stationary covariance of Euler–Maruyama (ULA) for pi = N(mu, Sigma): V_h = Sigma (I - h Sigma^{-1} / 2)^{-1}.

    Stable iff h < 2 lambda_min(Sigma). (VALIDATION.md §1c.)
    """
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    lam = np.linalg.eigvalsh(cov)
    if h >= 2 * lam.min():
        raise SDEKitError(f"h = {h} is beyond the stability limit 2 lambda_min(Sigma) = {2 * lam.min()}")
    return cov @ np.linalg.inv(np.eye(cov.shape[0]) - 0.5 * h * np.linalg.inv(cov))
