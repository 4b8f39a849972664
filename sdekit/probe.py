"""Check user functions once, before a solve: they compile, and return the shapes the noise type needs."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdekit.errors import SDEKitError


def _compile_error(role: str, exc: Exception) -> SDEKitError:
    first = str(exc).strip().splitlines()
    msg = first[0] if first else type(exc).__name__
    return SDEKitError(
        f"{role} could not be evaluated on a batch x of shape (n, dim): {msg}\n"
        "Write it with NumPy-style array math on x (shape (n, dim)), a float t and the parameters p; "
        "see README 'Writing f and g' for the constructs Numba supports.")


def call(fn: Any, role: str, x: np.ndarray, t: float, p: Any) -> np.ndarray:
    """fn(x, t, p) as an array, with compilation and evaluation errors named after the role."""
    try:
        out = fn(x, t, p)
    except SDEKitError:
        raise
    except Exception as exc:  # numba TypingError, NumPy broadcasting errors, user bugs
        raise _compile_error(role, exc) from exc
    return np.asarray(out)


def check_vector(out: np.ndarray, role: str, n: int, dim: int) -> None:
    """A drift, field or diagonal diffusion must be () or (dim,) (the same for every path) or (n, dim)."""
    ok = out.ndim == 0 or (out.ndim == 1 and out.shape[0] == dim) or (out.ndim == 2 and out.shape == (n, dim))
    if not ok:
        raise SDEKitError(
            f"{role} returned shape {out.shape} for x of shape ({n}, {dim}); expected ({n}, {dim}), "
            f"({dim},) or a scalar")


def check_matrix(out: np.ndarray, role: str, n: int, dim: int, m: int) -> None:
    """A matrix diffusion must be (dim, m) (the same for every path) or (n, dim, m)."""
    ok = (out.ndim == 2 and out.shape == (dim, m)) or (out.ndim == 3 and out.shape == (n, dim, m))
    if not ok:
        raise SDEKitError(
            f"{role} returned shape {out.shape} for x of shape ({n}, {dim}); a matrix diffusion "
            f"(noise='general' or additive with brownian_dim) must be ({dim}, {m}) or ({n}, {dim}, {m})")


def probe_problem(problem: Any, functions: tuple, x0: np.ndarray, t0: float, params: Any) -> None:
    """Evaluate f (and g) once on the first rows of x0 at t0 and check shapes, aliasing and finiteness."""
    from sdekit.sde import SDE

    dim = problem.dim
    n = dim + 2  # a batch size unequal to dim, so (n,) and (dim,) outputs cannot be confused
    rows = x0[: min(n, x0.shape[0])]
    x = np.ascontiguousarray(np.concatenate([rows] * (n // rows.shape[0] + 1))[:n])
    roles = ("drift", "diffusion") if isinstance(problem, SDE) else ("field",)
    for fn, role in zip(functions, roles):
        out = call(fn, role, x, t0, params)
        if role == "diffusion" and problem.matrix_noise:
            check_matrix(out, role, n, dim, problem.m)
        else:
            check_vector(out, role, n, dim)
        if np.shares_memory(out, x):
            raise SDEKitError(f"{role} returned a view of x; return a new array (e.g. x.copy() or -1.0 * x)")
        if not np.all(np.isfinite(out)):
            raise SDEKitError(f"{role}(x0, t0) is not finite: {out.ravel()[:6]}")
    if isinstance(problem, SDE) and problem.noise == "additive":
        shifted = call(functions[1], "diffusion", x + 1.0 + np.abs(x), t0, params)
        base = call(functions[1], "diffusion", x, t0, params)
        if not np.array_equal(np.broadcast_to(shifted, np.broadcast_shapes(shifted.shape, base.shape)),
                              np.broadcast_to(base, np.broadcast_shapes(shifted.shape, base.shape))):
            raise SDEKitError(
                "noise='additive' but the diffusion changes with x; use noise='diagonal', 'scalar' or 'general'")
