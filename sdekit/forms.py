"""The forms a user function may be written in, and their batch equivalents.

    form="batch" (default)  f(x, t, p) -> value broadcastable to (n, dim)   x: (n, dim), a batch of paths
    form="path"             f(x, t, p, out) -> None                        x: (dim,), one path; out: (dim,), or
                                                                            (dim, m) for a matrix diffusion
    form="scalar" (dim 1)   f(x, t, p) -> float                            x: a float, one path's state

A solve gives the same numbers in every form: the per-path value of row r is the batch value's row r. The Numba
fixed-step kernels evaluate a per-path function row by row into a buffer they own (`sdekit.backends.numba.evaluate`:
nothing allocated per step, the call inlined); everything else (the probe, the NumPy reference backend, the
adaptive kernels) sees the batch function of `batch_function`, which loops over the rows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError

FORMS = ("batch", "path", "scalar")


def check_form(form: Any, dim: int, matrix_diffusion: bool) -> str:
    """form checked: one of FORMS; "scalar" needs dim = 1 and, for an SDE, non-matrix noise."""
    if not isinstance(form, str) or form not in FORMS:
        raise SDEKitError(f"form must be one of {FORMS} (batch: f(x, t, p) on an (n, dim) batch; path: "
                          f"f(x, t, p, out) on one path's (dim,) state; scalar: f(x, t, p) -> float at dim 1); "
                          f"got {form!r}")
    if form == "scalar" and dim != 1:
        raise SDEKitError(f"form='scalar' (f(x, t, p) -> float with x a float) needs dim = 1; got dim={dim}: use "
                          "form='path' (f(x, t, p, out) writing out[i]) for a vector state")
    if form == "scalar" and matrix_diffusion:
        raise SDEKitError("form='scalar' needs a diffusion with one value per component (noise 'diagonal', "
                          "'scalar' or 'additive' without brownian_dim); a (dim, m) matrix diffusion needs "
                          "form='path' (g(x, t, p, out) writing out[i, j])")
    return form


def roles(problem: Any) -> tuple[str, ...]:
    """The names of a problem's user functions in its form: ("drift", "diffusion") or ("field",)."""
    return ("drift", "diffusion") if hasattr(problem, "drift") else ("field",)


def is_matrix(problem: Any, role: str) -> bool:
    """True when role's value is a (dim, m) matrix per path (a general or matrix-additive diffusion)."""
    return role == "diffusion" and bool(getattr(problem, "matrix_noise", False))


def python_batch(fn: Any, form: str, role: str, m: int, matrix: bool) -> Any:
    """A Python batch function b(x, t, p) -> (n, dim) (or (n, dim, m)) evaluating the per-path function fn (its
    Python source, ``py_func`` of a jitted function) row by row: for the probe and the NumPy reference."""
    py = getattr(fn, "py_func", fn)

    def batch(x, t, p):
        n, d = x.shape
        if form == "scalar":
            return np.array([[py(x[r, 0], t, p)] for r in range(n)], dtype=np.result_type(x.dtype, float))
        out = np.zeros((n, d, m) if matrix else (n, d), dtype=np.result_type(x.dtype, float))
        for r in range(n):
            py(x[r], t, p, out[r])
        return out

    batch.__name__ = batch.__qualname__ = f"{role}_batch"
    batch.__wrapped__ = fn
    return batch


def batch_view(problem: Any) -> Any:
    """The problem with its per-path functions replaced by their row-by-row batch equivalents (`python_batch`),
    form "batch"; a batch problem is returned as it is."""
    form = getattr(problem, "form", "batch")
    if form == "batch":
        return problem
    m = getattr(problem, "m", 0)
    new = {role: python_batch(getattr(problem, role), form, role, m, is_matrix(problem, role))
           for role in roles(problem)}
    return replace(problem, form="batch", **new)


_JIT_BATCH: dict = {}


def jitted_batch(fn: Any, form: str, role: str, m: int, matrix: bool) -> Any:
    """A Numba-compiled batch function evaluating the per-path fn row by row into a new (n, dim) (or (n, dim, m))
    array per call: for the adaptive kernels, which call the batch form (one allocation per call, as a batch
    function's own). Made once per (function, form, m)."""
    import numba as nb

    from sdekit.user_functions import jitted

    key = (fn, form, m, matrix)
    if key in _JIT_BATCH:
        return _JIT_BATCH[key]
    row = jitted(fn, role)
    if form == "scalar":
        def batch(x, t, p):
            out = np.empty((x.shape[0], 1), x.dtype)
            for r in range(x.shape[0]):
                out[r, 0] = row(x[r, 0], t, p)
            return out
    elif matrix:
        def batch(x, t, p):
            out = np.empty((x.shape[0], x.shape[1], m), x.dtype)
            for r in range(x.shape[0]):
                row(x[r], t, p, out[r])
            return out
    else:
        def batch(x, t, p):
            out = np.empty((x.shape[0], x.shape[1]), x.dtype)
            for r in range(x.shape[0]):
                row(x[r], t, p, out[r])
            return out
    compiled = nb.njit(batch)
    _JIT_BATCH[key] = compiled
    return compiled


def batch_functions(problem: Any) -> tuple:
    """The problem's functions in the batch form, compiled-ready (the user's own for form "batch", else
    `jitted_batch`): what the adaptive kernels call."""
    form = getattr(problem, "form", "batch")
    fns = tuple(getattr(problem, role) for role in roles(problem))
    if form == "batch":
        return fns
    m = getattr(problem, "m", 0)
    return tuple(jitted_batch(fn, form, role, m, is_matrix(problem, role)) for fn, role in zip(fns, roles(problem)))


def kernel_functions(problem: Any) -> tuple:
    """The problem's functions as the fixed-step Numba kernels take them: the user's own (batch form), or wrapped
    in the marker of their per-path form (`sdekit.backends.numba.evaluate`), which the kernel evaluates row by
    row into its own buffers."""
    from sdekit.backends.numba.evaluate import marker_for

    form = getattr(problem, "form", "batch")
    out = []
    for role in roles(problem):
        fn = getattr(problem, role)
        marker = marker_for(form, is_matrix(problem, role))
        out.append(fn if marker is None else marker(fn))
    return tuple(out)
