"""Targets given by an energy U, pi(x) = exp(-U(x)) / Z, for the MCMC samplers of `sdekit.mcmc`.

The energy protocol: an njit function ``energy_fn(x, p, grad) -> float`` that, for one point x of
shape (d,), returns U(x) and writes grad U(x) into ``grad`` (shape (d,)). ``p`` is the target's
runtime parameters (``params``: a tuple of float64 arrays), so new parameter values never
recompile. Samplers call it once per proposal, one chain per thread, with no allocation.

`probe_energy` calls an energy once, before any compiled run, and turns every way a user's energy can
be malformed into an `SDEKitError` naming ``energy_fn`` (or ``params``): a wrong signature, a return
value that is not a real scalar, writes into x, writes past the end of grad or entries of grad left
unset (or added to), reads past the end of an array (user energies are probed once per process with
Numba's bounds checking on), exceptions and compile errors.

`EnergyTarget` wraps a user's energy function; the built-in targets (``Gaussian``,
``GaussianMixture``, ``DoubleWell``, ``Rosenbrock``, ``NealFunnel``) follow the same protocol and add
what is known in closed form (normaliser, marginals, moments, exact sampling).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import ArrayLike

from sdekit.errors import SDEKitError
from sdekit.sde import jitted
from sdekit.targets.gaussian import as_points

__all__ = ["EnergyTarget", "check_energy_target", "check_params", "energy_and_grad", "energy_function", "probe_energy"]

PROBE_STEP = 1e-3  # EnergyTarget probes its energy at x_i = PROBE_STEP (i + 1): near 0, distinct coordinates
_GUARD = 1.2345678901234567e300  # fills the cells just outside grad, to catch writes past its end
_BOUNDS_CHECKED: dict[Any, bool] = {}  # user energies already probed with bounds checking, per process


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


def check_params(params: Any, name: str = "params") -> Any:
    """``params`` as Numba can pass them without copies or deprecated reflected lists: a tuple whose items
    are numbers or real arrays (made float64, C-contiguous; an array already so is kept, not copied) or
    such tuples, or one real array; lists become tuples. Else SDEKitError naming ``name``."""
    if isinstance(params, tuple | list):
        return tuple(check_params(item, f"{name}[{i}]") for i, item in enumerate(params))
    if isinstance(params, bool) or isinstance(params, str | bytes | dict | set) or params is None:
        raise SDEKitError(f"{name} must be a tuple of float64 arrays or numbers (or () when there are none); "
                          f"got {type(params).__name__}")
    if isinstance(params, int | float | np.integer | np.floating):
        return float(params)
    arr = np.asarray(params)
    if arr.dtype.kind not in "fiu" or arr.dtype == object:
        raise SDEKitError(f"{name} must hold real numbers (float64 arrays or numbers); got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _energy_signature_error(energy_fn: Any, name: str) -> SDEKitError | None:
    py = getattr(energy_fn, "py_func", energy_fn)
    try:
        inspect.signature(py).bind(None, None, None)
    except TypeError:
        return SDEKitError(f"{name} must take three arguments (x, p, grad), return U(x) and write grad U(x) into "
                           f"grad; {getattr(py, '__name__', name)}{inspect.signature(py)} does not")
    except ValueError:  # no signature available (a builtin): let the call decide
        return None
    return None


def _call(energy_fn: Any, x: np.ndarray, params: Any, grad: np.ndarray, name: str) -> Any:
    try:
        return energy_fn(x, params, grad)
    except nb.core.errors.TypingError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        raise SDEKitError(f"{name} could not be compiled for x float64[{x.shape[0]}], grad float64[{x.shape[0]}] and "
                          f"params {_describe(params)}: {' '.join(lines[:4])}") from exc
    except Exception as exc:
        raise SDEKitError(f"{name} raised {type(exc).__name__} at x = {np.array2string(x, precision=4)}: "
                          f"{exc}") from exc


def _describe(params: Any) -> str:
    if isinstance(params, tuple):
        return "(" + ", ".join(_describe(p) for p in params) + ("," if len(params) == 1 else "") + ")"
    if isinstance(params, np.ndarray):
        return f"array{params.shape}"
    return type(params).__name__


def _check_value(u: Any, name: str) -> float:
    if u is None:
        raise SDEKitError(f"{name} must return U(x), a real number; it returned nothing (None)")
    if isinstance(u, bool | np.bool_):
        raise SDEKitError(f"{name} must return U(x), a real number; it returned a bool ({u})")
    if isinstance(u, complex | np.complexfloating):
        raise SDEKitError(f"{name} must return U(x), a real number; it returned a complex number ({u})")
    if not isinstance(u, int | float | np.integer | np.floating):
        shape = f" of shape {u.shape}" if isinstance(u, np.ndarray) else ""
        shape = f" of length {len(u)}" if isinstance(u, tuple | list) else shape
        raise SDEKitError(f"{name} must return U(x), a real scalar, and write grad U(x) into grad; it returned "
                          f"{type(u).__name__}{shape}")
    return float(u)


def _bounds_checked_call(energy_fn: Any, x: np.ndarray, params: Any, name: str) -> None:
    """Run a user energy once compiled with Numba's bounds checking (once per function and process)."""
    py = getattr(energy_fn, "py_func", None)
    if py is None or py.__module__.split(".")[0] == "sdekit":
        return
    try:
        if _BOUNDS_CHECKED.get(py):
            return
    except TypeError:
        return
    checked = nb.njit(boundscheck=True)(py)
    try:
        checked(x.copy(), params, np.zeros(x.shape[0]))
    except IndexError as exc:
        raise SDEKitError(f"{name} indexed past the end of an array (x and grad have shape ({x.shape[0]},), params "
                          f"{_describe(params)}): {exc}; check the indices it reads from x and params") from exc
    except Exception:  # noqa: BLE001 - other failures were reported by the plain call already
        pass
    _BOUNDS_CHECKED[py] = True


def probe_energy(energy_fn: Any, params: Any, x: ArrayLike, name: str = "energy_fn") -> float:
    """Call ``energy_fn(x, params, grad)`` at one point x (d,) before a compiled run and return U(x);
    raise SDEKitError naming ``name`` when the energy is malformed (see the module docstring).

    grad is given twice with different contents (NaN, then 0) inside a guard band: an entry that is NaN
    after the first call but not after the second was left unset or added to; a change in the guard band is
    a write past the end; x is compared before and after.
    """
    sig_error = _energy_signature_error(energy_fn, name)
    if sig_error is not None:
        raise sig_error
    x = np.ascontiguousarray(x, dtype=np.float64)
    d = x.shape[0]
    grads = []
    values = []
    for fill in (np.nan, 0.0):
        band = np.full(d + 2, _GUARD)
        band[1:d + 1] = fill
        xin = x.copy()
        values.append(_check_value(_call(energy_fn, xin, params, band[1:d + 1], name), name))
        if band[0] != _GUARD or band[d + 1] != _GUARD:
            raise SDEKitError(f"{name} wrote past the end of grad, which has shape ({d},) (x has {d} coordinates)")
        changed = np.flatnonzero(~((xin == x) | (np.isnan(xin) & np.isnan(x))))
        if changed.size:
            raise SDEKitError(f"{name} must not write into its input x; it changed x[{int(changed[0])}]")
        grads.append(band[1:d + 1].copy())
    unset = np.flatnonzero(np.isnan(grads[0]) & ~np.isnan(grads[1]))
    if unset.size:
        raise SDEKitError(f"{name} must write grad U(x) into every entry of grad (it holds arbitrary values on entry); "
                          f"it left grad[{int(unset[0])}] unset or added to it")
    _bounds_checked_call(energy_fn, x, params, name)
    return values[1]


def energy_function(target: Any) -> Any:
    """The target's ``energy_fn`` as a plain njit function: an njit function set as a class attribute reads as
    a method bound to the instance, and is unbound here; compiled again when a closure cell or global it reads
    changed since it was first used (never stale values, see `sdekit.user_functions.jitted`)."""
    fn = target.energy_fn
    fn = fn.__func__ if isinstance(fn, types.MethodType) and hasattr(fn.__func__, "py_func") else fn
    return jitted(fn, "energy_fn")  # a fresh compile when a value it captured changed (sdekit.user_functions)


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
    is passed as ``p`` (default: an empty tuple; see `check_params`). The energy is probed once near 0, at
    x_i = 0.001 (i + 1) (`probe_energy`): a malformed one raises SDEKitError here, not inside a compiled run.
    `check_gradient` compares grad with central differences. Nothing is known in closed form, so there is no ``sample``.
    """

    def __init__(self, energy_fn: Callable, dim: int, params: Any = (), name: str = "energy") -> None:
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise SDEKitError(f"dim must be an integer >= 1; got {dim!r}")
        self.energy_fn = jitted(energy_fn, "energy_fn")
        self.dim: int = int(dim)
        self.params = check_params(params)
        self.name = name
        probe_energy(self.energy_fn, self.params, PROBE_STEP * np.arange(1, self.dim + 1))

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
