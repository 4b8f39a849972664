"""Check user functions once, before a solve: they run, read only what exists, leave x alone, return real finite
values of the shapes the noise type needs.

The probe calls each function's Python source (``py_func`` of a jitted function) on a small batch built from x0,
so it compiles nothing (a later process that loads its kernel from the disk cache starts in milliseconds) and
reads arrays with Python's bounds checks: ``p[1]`` on one parameter is an IndexError here, where a compiled kernel
would read past the end. A function that runs only under Numba is probed compiled, with Numba's ``boundscheck``
on. The probe batch has n = 2 rows (3 when dim = 2), so (n,) and (dim,) outputs cannot be confused.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numba as nb
import numpy as np

from sdekit.errors import SDEKitError

_CAUSES = re.compile(r"(Untyped global name[^\n]*|Cannot determine Numba type[^\n]*|No implementation of function"
                     r"[^\n]*|Unknown attribute[^\n]*|NameError[^\n]*|Use of unsupported[^\n]*|"
                     r"Cannot unify[^\n]*|non-precise type[^\n]*)")
_WHERE = re.compile(r'File "([^"]+)", line (\d+):\s*\n(?:<source[^\n]*>\n)?\s*(?:[^\n]*\n)*?\s*>\s*([^\n]+)')


def explain(exc: Exception) -> str:
    """The informative part of an exception raised while compiling or running a user function: the first line,
    and for Numba typing errors the actual cause (e.g. "Untyped global name 'helper'", a helper that is not
    @njit) with the file, line and source line it points at."""
    text = str(exc).strip()
    lines = text.splitlines()
    first = lines[0] if lines else type(exc).__name__
    causes = []
    for match in _CAUSES.finditer(text):
        cause = match.group(1).strip()
        if cause not in causes and cause != first:
            causes.append(cause)
    where = _WHERE.search(text)
    parts = [first] + causes[:3]
    if where:
        parts.append(f"at {where.group(1)}, line {where.group(2)}: {where.group(3).strip()}")
    return "; ".join(parts)


def compile_error(role: str, exc: Exception) -> SDEKitError:
    return SDEKitError(
        f"{role} could not be evaluated on a batch x of shape (n, dim): {explain(exc)}\n"
        "Write it with NumPy-style array math on x (shape (n, dim)), a float t and the parameters p; a helper it "
        "calls must be @numba.njit itself; see README 'Writing f and g' for the constructs Numba supports.")


def _index_error(role: str, exc: Exception, params: Any) -> SDEKitError:
    if isinstance(params, tuple):
        have = f"params is a tuple of {len(params)} entries with shapes {[np.shape(v) for v in params]}"
    else:
        have = f"params has {np.size(params)} entries {np.asarray(params).tolist()!r}"
    return SDEKitError(
        f"{role} reads past the end of an array ({exc}); {have}. Give every parameter the function reads "
        "(SDE(..., params=...) or .with_params(...)); a compiled kernel would have read memory beyond the array")


def call(fn: Any, role: str, x: np.ndarray, t: float, p: Any) -> np.ndarray:
    """fn(x, t, p) as an array, with compilation and evaluation errors named after the role."""
    try:
        out = fn(x, t, p)
    except SDEKitError:
        raise
    except IndexError as exc:
        raise _index_error(role, exc, p) from exc
    except Exception as exc:  # numba TypingError, NumPy broadcasting errors, user bugs
        raise compile_error(role, exc) from exc
    return np.asarray(out)


def evaluate(fn: Any, role: str, x: np.ndarray, t: float, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """(fn(x', t, p), x') with x' a copy of x, run as Python (compiled with bounds checks when only Numba can run
    it) and checked for writes into x'. NumPy's floating-point warnings are silenced: non-finite values are
    reported instead."""
    py = getattr(fn, "py_func", fn)
    x_in = x.copy()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            out = np.asarray(py(x_in, t, p))
        except IndexError as exc:
            raise _index_error(role, exc, p) from exc
        except Exception as exc:  # numba-only constructs: probe the compiled function, bounds-checked
            if _raised_in_torch(exc):
                raise SDEKitError(
                    f"{role} works on torch tensors (on a NumPy batch it raised {type(exc).__name__}: "
                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); run it with "
                    "simulate(..., backend='torch')") from exc
            x_in = x.copy()
            out = call(_bounds_checked(py), role, x_in, t, p)
    if not np.array_equal(x_in, x, equal_nan=True):
        r, i = (int(v[0]) for v in np.nonzero(~((x_in == x) | (np.isnan(x_in) & np.isnan(x)))))
        raise SDEKitError(
            f"{role} writes into its input x (x[{r}, {i}] went from {float(x[r, i])!r} to {float(x_in[r, i])!r}); "
            "the solvers reuse x after the call, so return a new array and leave x unchanged "
            "(e.g. out = -1.0 * x, not x *= -1)")
    return out, x_in


def _raised_in_torch(exc: BaseException) -> bool:
    """True when the exception came from inside torch (a torch network or function given NumPy arrays)."""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        if name == "torch" or name.startswith("torch."):
            return True
        tb = tb.tb_next
    return False


def _bounds_checked(py: Any) -> Any:
    return nb.njit(boundscheck=True)(py)


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


def check_real(out: np.ndarray, role: str) -> None:
    """Values must be real numbers (bool, integer or floating): sdekit integrates real equations."""
    if out.dtype.kind not in "biuf":
        what = "complex values" if out.dtype.kind == "c" else f"values of dtype {out.dtype}"
        raise SDEKitError(f"{role} returned {what}; sdekit integrates real equations: return real floats "
                          "(split a complex state into real and imaginary components of x)")


def probe_batch(x0: np.ndarray, dim: int) -> np.ndarray:
    """The probe's rows: the first rows of x0, repeated to n = 2 (3 when dim = 2) rows."""
    n = 3 if dim == 2 else 2
    if x0.shape[0] == 0:
        raise SDEKitError("x0 has 0 rows; give at least one path")
    rows = x0[: min(n, x0.shape[0])]
    return np.ascontiguousarray(np.concatenate([rows] * (n // rows.shape[0] + 1))[:n])


def probe_problem(problem: Any, x0: np.ndarray, t0: float, params: Any) -> None:
    """Evaluate f (and g) once on the first rows of x0 at t0 and check reads, writes, shapes, dtype and
    finiteness; for additive noise, that g does not change with x."""
    from sdekit.sde import SDE

    dim = problem.dim
    x = probe_batch(x0, dim)
    n = x.shape[0]
    problem = probe_per_path(problem, x, t0, params)  # per-path functions checked; their batch equivalents below
    roles = ("drift", "diffusion") if isinstance(problem, SDE) else ("field",)
    outputs = {}
    for role in roles:
        out, x_in = evaluate(getattr(problem, role), role, x, t0, params)
        check_real(out, role)
        if role == "diffusion" and problem.matrix_noise:
            check_matrix(out, role, n, dim, problem.m)
        else:
            check_vector(out, role, n, dim)
        if np.shares_memory(out, x_in):
            raise SDEKitError(f"{role} returned a view of x; return a new array (e.g. x.copy() or -1.0 * x)")
        if not np.all(np.isfinite(out)):
            raise SDEKitError(f"{role}(x0, t0) is not finite: {out.ravel()[:6]}")
        outputs[role] = out
    if isinstance(problem, SDE) and problem.noise == "additive":
        shifted, _ = evaluate(problem.diffusion, "diffusion", x + 1.0 + np.abs(x), t0, params)
        base = outputs["diffusion"]
        shape = np.broadcast_shapes(shifted.shape, base.shape)
        if not np.array_equal(np.broadcast_to(shifted, shape), np.broadcast_to(base, shape)):
            raise SDEKitError(
                "noise='additive' but the diffusion changes with x; use noise='diagonal', 'scalar' or 'general'")
    if isinstance(problem, SDE) and problem.noise == "commutative":
        from sdekit.solvers.commutative import check_commutative

        check_commutative(problem, x, t0, params)
    if isinstance(problem, SDE) and problem.drift_jacobian is not None:
        check_drift_jacobian(problem, x, t0, params, outputs["drift"])


JACOBIAN_RTOL = 1e-4  # a user Jacobian may differ from central differences by this much (relative, per entry)


def check_drift_jacobian(problem: Any, x: np.ndarray, t0: float, params: Any, fx: np.ndarray) -> None:
    """The SDE's drift_jacobian J must have shape (n, dim, dim) or (dim, dim), be finite, and agree with central
    differences of the drift at the probe rows: |J_ij - D_ij| <= JACOBIAN_RTOL (1 + |D_ij|) + 1e-12 |f_i(x)| /
    eps_j, D_ij = (f_i(x + eps_j e_j) - f_i(x - eps_j e_j)) / (2 eps_j), eps_j = 1e-6 max(1, |x_j|) (the last term
    covers the rounding of the differences, about 2e-16 |f_i| / eps_j). A wrong Jacobian is refused here: in a solve
    it would only slow Newton's iteration down or stop it converging, far from where the mistake is."""
    n, dim = x.shape
    jac, _ = evaluate(problem.drift_jacobian, "drift_jacobian", x, t0, params)
    check_real(jac, "drift_jacobian")
    if not ((jac.ndim == 2 and jac.shape == (dim, dim)) or (jac.ndim == 3 and jac.shape == (n, dim, dim))):
        raise SDEKitError(f"drift_jacobian returned shape {jac.shape} for x of shape ({n}, {dim}); expected "
                          f"({n}, {dim}, {dim}) or ({dim}, {dim}) with J[b, i, j] = df_i/dx_j")
    if not np.all(np.isfinite(jac)):
        raise SDEKitError(f"drift_jacobian(x0, t0) is not finite: {jac.ravel()[:6]}")
    jac = np.broadcast_to(jac, (n, dim, dim))
    f_abs = np.abs(np.broadcast_to(np.asarray(fx, dtype=float), (n, dim)))
    diff = np.empty((n, dim, dim))
    tol = np.empty((n, dim, dim))
    for j in range(dim):
        eps = 1e-6 * np.maximum(1.0, np.abs(x[:, j].astype(float)))
        ends = []
        for sign in (1.0, -1.0):
            xs = x.astype(float, copy=True)
            xs[:, j] += sign * eps
            out, _ = evaluate(problem.drift, "drift", xs, t0, params)
            ends.append(np.broadcast_to(np.asarray(out, dtype=float), (n, dim)))
        diff[:, :, j] = (ends[0] - ends[1]) / (2.0 * eps[:, None])
        tol[:, :, j] = JACOBIAN_RTOL * (1.0 + np.abs(diff[:, :, j])) + 1e-12 * f_abs / eps[:, None]
    bad = np.argwhere(~(np.abs(jac - diff) <= tol))
    if bad.size:
        b, i, j = (int(v) for v in bad[0])
        raise SDEKitError(f"drift_jacobian disagrees with the drift: at x0 row {b}, J[{i}, {j}] = {jac[b, i, j]:.6g} "
                          f"but central differences of the drift give df_{i}/dx_{j} ≈ {diff[b, i, j]:.6g}; check "
                          "J[b, i, j] = df_i/dx_j (row i: component of f, column j: component of x)")


def probe_per_path(problem: Any, x: np.ndarray, t0: float, params: Any) -> Any:
    """For form "path" / "scalar" (`sdekit.forms`): check each per-path function on the probe rows (its Python
    source): the number of arguments, that it returns None (path) or a real scalar (scalar), writes every entry of
    out and only out; return the problem with the row-by-row batch equivalents (`sdekit.forms.batch_view`), which
    the batch checks then see. A batch problem is returned as it is."""
    from sdekit.forms import batch_view, is_matrix, roles

    form = getattr(problem, "form", "batch")
    if form == "batch":
        return problem
    for role in roles(problem):
        fn = getattr(problem, role)
        shape = (problem.dim, problem.m) if is_matrix(problem, role) else (problem.dim,)
        _check_row_function(getattr(fn, "py_func", fn), role, form, shape, x, t0, params)
    return batch_view(problem)


def _check_row_function(py: Any, role: str, form: str, shape: tuple, x: np.ndarray, t0: float, params: Any) -> None:
    from sdekit.backends.numba.evaluate import n_arguments

    want = "f(x, t, p, out) writing out" if form == "path" else "f(x, t, p) -> float"
    arity = n_arguments(py)
    if arity is not None and arity != (4 if form == "path" else 3):
        raise SDEKitError(f"{role} has form={form!r}: expected {want}; got a function of {arity} arguments")
    for r in range(x.shape[0]):
        row = x[r].copy()
        out = np.full(shape, np.nan, dtype=np.result_type(x.dtype, float))
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                ret = py(row, t0, params, out) if form == "path" else py(float(row[0]), t0, params)
        except IndexError as exc:
            raise SDEKitError(f"{role} (form={form!r}) reads or writes past the end of an array ({exc}): x and out "
                              f"are one path's, x of shape {row.shape}, out of shape {shape}; "
                              f"{_index_error(role, exc, params)}") from exc
        except Exception as exc:
            raise SDEKitError(f"{role} (form={form!r}, {want}) raised {type(exc).__name__} on one path x = "
                              f"{row.tolist()}: {exc}") from exc
        if form == "path" and ret is not None:
            raise SDEKitError(f"{role} has form='path': it must write its value into out (shape {shape}) and return "
                              f"None; it returned {type(ret).__name__}")
        if form == "scalar" and (np.ndim(ret) != 0 or np.asarray(ret).dtype.kind not in "biuf"):
            raise SDEKitError(f"{role} has form='scalar': it must return one real number for a float x; it returned "
                              f"{type(ret).__name__} of shape {np.shape(ret)}")
        if not np.array_equal(row, x[r]):
            raise SDEKitError(f"{role} (form={form!r}) writes into its input x; write only into out")
        if form == "path" and np.isnan(out).any():
            first = ", ".join(str(int(v)) for v in np.argwhere(np.isnan(out))[0])
            raise SDEKitError(f"{role} (form='path') left out[{first}] unwritten (or NaN) at x0: it must write every "
                              f"entry of out, shape {shape}")
