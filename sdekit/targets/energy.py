"""Targets given by an energy U, pi(x) = exp(-U(x)) / Z, for the MCMC samplers of `sdekit.mcmc`.

The energy protocol: an njit function ``energy_fn(x, p, grad) -> float`` that, for one point x of
shape (d,), returns U(x) and writes grad U(x) into ``grad`` (shape (d,)). ``p`` is the target's
runtime parameters (``params``: a tuple of float64 arrays), so new parameter values never
recompile. Samplers call it once per proposal, one chain per thread, with no allocation.

`EnergyTarget` wraps a user's energy function; the built-in targets (``Gaussian``,
``GaussianMixture``, ``DoubleWell``, ``Rosenbrock``, ``NealFunnel``) follow the same protocol and add
what is known in closed form (normaliser, marginals, moments, exact sampling).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.errors import SDEKitError
from sdekit.sde import jitted
from sdekit.targets.gaussian import as_points

__all__ = ["EnergyTarget", "check_energy_target", "energy_and_grad"]


def energy_and_grad(target: Any, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(U(x) of shape (n,), grad U(x) of shape (n, d)) for x of shape (n, d), via ``target.energy_fn``."""
    pts, _ = as_points(x, target.dim)
    pts = np.asarray(pts, dtype=np.float64)
    n = pts.shape[0]
    u = np.empty(n)
    g = np.empty((n, target.dim))
    for i in range(n):
        u[i] = target.energy_fn(pts[i], target.params, g[i])
    return u, g


def check_energy_target(target: Any, name: str = "target") -> None:
    """Raise SDEKitError unless ``target`` has ``dim`` (int >= 1), ``energy_fn`` (jitted) and ``params``."""
    dim = getattr(target, "dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
        raise SDEKitError(f"{name} must have an integer dim >= 1; got {dim!r}")
    if not hasattr(target, "energy_fn") or not hasattr(target.energy_fn, "py_func"):
        raise SDEKitError(
            f"{name} must have energy_fn, an njit function energy_fn(x, p, grad) -> U(x) writing grad U into grad "
            f"(got {type(target).__name__}); wrap your energy in sdekit.targets.EnergyTarget")
    if not hasattr(target, "params"):
        raise SDEKitError(f"{name} must have params (a tuple of float64 arrays; () when there are none)")


class EnergyTarget:
    """pi(x) proportional to exp(-U(x)) on R^d from a user's njit ``energy_fn(x, p, grad) -> U(x)``.

    The function must return U(x) for x of shape (d,) and write grad U(x) into ``grad``; ``params``
    is passed as ``p`` (default: an empty tuple). `check_gradient` compares grad with central
    differences. Nothing is known in closed form, so there is no ``sample``.
    """

    def __init__(self, energy_fn: Callable, dim: int, params: Any = (), name: str = "energy") -> None:
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise SDEKitError(f"dim must be an integer >= 1; got {dim!r}")
        self.energy_fn = jitted(energy_fn, "energy_fn")
        self.dim: int = int(dim)
        self.params = params
        self.name = name
        u, g = energy_and_grad(self, np.zeros((1, self.dim)))
        if g.shape != (1, self.dim):
            raise SDEKitError(f"energy_fn must write a gradient of shape ({self.dim},)")

    def __repr__(self) -> str:
        return f"EnergyTarget({self.name!r}, dim={self.dim})"

    def energy(self, x: ArrayLike) -> np.ndarray:
        """U(x) for x of shape (n, d) (or (d,)); shape (n,)."""
        return energy_and_grad(self, x)[0]

    def grad_energy(self, x: ArrayLike) -> np.ndarray:
        """grad U(x) for x of shape (n, d) (or (d,)); shape (n, d)."""
        return energy_and_grad(self, x)[1]

    def score(self, x: ArrayLike) -> np.ndarray:
        """grad log pi(x) = -grad U(x), shape (n, d)."""
        return -energy_and_grad(self, x)[1]

    def check_gradient(self, x: ArrayLike, rel_step: float = 1e-6, rtol: float = 1e-4) -> float:
        """Max relative error of grad U against central differences (U(x + e_i d) - U(x - e_i d)) / (2 d)
        at the rows of x; raises SDEKitError naming the worst row and coordinate when it exceeds rtol."""
        pts, _ = as_points(x, self.dim)
        _, g = energy_and_grad(self, pts)
        worst, where = 0.0, (0, 0)
        for i in range(pts.shape[0]):
            for j in range(self.dim):
                step = rel_step * max(1.0, abs(pts[i, j]))
                up, dn = pts[i].copy(), pts[i].copy()
                up[j] += step
                dn[j] -= step
                fd = (self.energy(up)[0] - self.energy(dn)[0]) / (2 * step)
                err = abs(fd - g[i, j]) / max(1.0, abs(fd))
                if err > worst:
                    worst, where = err, (i, j)
        if worst > rtol:
            raise SDEKitError(f"energy_fn's gradient disagrees with central differences at row {where[0]}, "
                              f"coordinate {where[1]}: relative error {worst:.3g} > {rtol:g}")
        return worst
