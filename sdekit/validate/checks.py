"""Argument checks shared by the validation toolkit: every bad input is an `SDEKitError` naming the argument.

Samples and the outputs of users' callables (exact solutions, test functions, scores, samplers) are checked before
any statistic is computed: real floating-point values (complex values are refused, never cast: NumPy would drop the
imaginary part with only a warning), the expected shape, and finiteness. A test of a law can only be as right as the
numbers it is handed.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.targets import Gaussian

__all__ = ["check_alpha", "check_callable", "check_count", "check_gaussian_law", "check_number", "check_output_path",
           "check_sample", "check_seed", "checked_output", "real_array"]


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """alpha as a float in (0, 1), or a clear error."""
    if isinstance(alpha, bool):
        raise SDEKitError(f"{name} must be a number in (0, 1); got {alpha!r}")
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise SDEKitError(f"{name} must be a number in (0, 1); got {alpha!r}") from None
    if not 0.0 < a < 1.0:
        raise SDEKitError(f"{name} must be in (0, 1); got {alpha!r}")
    return a


def check_count(v: Any, name: str, minimum: int = 1) -> int:
    """v as an int >= minimum (bools and floats refused)."""
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or int(v) < minimum:
        raise SDEKitError(f"{name} must be an integer >= {minimum}; got {v!r}")
    return int(v)


def check_seed(seed: Any, name: str = "seed") -> int:
    """seed as a non-negative int."""
    return check_count(seed, name, 0)


def check_number(v: Any, name: str, *, minimum: float | None = None, strict: bool = False) -> float:
    """v as a finite real float, >= minimum (> minimum when strict) when minimum is given."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise SDEKitError(f"{name} must be a real number; got {v!r}")
    f = float(v)
    if not math.isfinite(f):
        raise SDEKitError(f"{name} must be finite; got {f}")
    if minimum is not None and (f <= minimum if strict else f < minimum):
        raise SDEKitError(f"{name} must be {'>' if strict else '>='} {minimum:g}; got {f:g}")
    return f


def check_callable(fn: Any, name: str, signature: str) -> Callable:
    """fn when callable; otherwise an error showing the expected signature, e.g. 'exact_fn(x0, w) -> (n, dim)'."""
    if not callable(fn):
        raise SDEKitError(f"{name} must be callable as {signature}; got {type(fn).__name__}")
    return fn


def real_array(value: Any, name: str) -> np.ndarray:
    """value as a float64 array of real numbers. Complex, boolean, string and object values and ragged nested
    lists are refused with an error naming `name` (a complex value is never cast to its real part)."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested sequences
        raise SDEKitError(f"{name} must be an array of real numbers; got {type(value).__name__} ({exc})") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise SDEKitError(f"{name} must be real; got complex values (dtype {arr.dtype}): the imaginary part would be "
                          "dropped; pass .real explicitly if it is zero")
    if kind == "b":
        raise SDEKitError(f"{name} must be real numbers; got booleans (dtype bool)")
    if kind == "O":
        try:
            return arr.astype(np.float64)
        except (TypeError, ValueError):
            raise SDEKitError(f"{name} must be an array of real numbers; got objects such as "
                              f"{type(arr.flat[0]).__name__ if arr.size else 'none'}") from None
    if kind not in "iuf":
        raise SDEKitError(f"{name} must be an array of real numbers; got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def check_sample(sample: Any, name: str = "sample", dim: int | None = None, min_size: int = 20) -> np.ndarray:
    """sample as a finite float array of shape (N, d), or a clear error.

    1-D input becomes (N, 1). An array of shape (N, *shape) with more than two axes (e.g. a batch of images
    (N, C, H, W)) is flattened row-wise in C order to (N, prod(shape)): draw n is the vector x[n].ravel(), which
    is what the statistics need. With ``dim`` given, d (or prod(shape)) must equal it."""
    x = real_array(sample, name)
    shape = x.shape
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim == 0:
        raise SDEKitError(f"{name} must have shape (N,), (N, d) or (N, *shape); got a scalar")
    if x.ndim > 2:
        x = x.reshape(x.shape[0], math.prod(x.shape[1:]))
        if x.shape[1] == 0:
            raise SDEKitError(f"{name} must have at least one coordinate per draw; got shape {shape}")
    if dim is not None and x.shape[1] != dim:
        raise SDEKitError(f"{name} must have shape (N, {dim}), or (N, *shape) with prod(shape) = {dim}, to match "
                          f"the target of dim {dim}; got shape {shape}")
    if x.shape[0] < min_size:
        raise SDEKitError(f"{name} must hold at least {min_size} draws; got {x.shape[0]}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise SDEKitError(f"{name} has {int(bad.sum())} non-finite rows (first: row {int(np.flatnonzero(bad)[0])}); "
                          "a sampler that diverged cannot be tested against a law")
    return x


def checked_output(value: Any, name: str, shape: tuple[int, ...], meaning: str, *, flat_ok: bool = False,
                   finite: bool = True) -> np.ndarray:
    """The output of a user callable `name` as a float64 array of exactly `shape`, or an error naming `name` with
    the shape it returned and the shape expected (`meaning` spells the expected shape out, e.g. '(n_paths, dim)').

    flat_ok: also accept shape (n,) for an expected (n, 1), reshaped explicitly (a one-column output is
    unambiguous; nothing else is reshaped or broadcast). finite: refuse NaN and infinite values.
    """
    arr = real_array(value, f"{name}'s output")
    if flat_ok and len(shape) == 2 and shape[1] == 1 and arr.shape == shape[:1]:
        arr = arr.reshape(shape)
    if arr.shape != tuple(shape):
        raise SDEKitError(f"{name} returned shape {arr.shape}; expected {tuple(shape)} = {meaning}")
    if finite:
        bad = ~np.isfinite(arr)
        if bad.any():
            first = np.unravel_index(int(np.flatnonzero(bad)[0]), arr.shape)
            raise SDEKitError(f"{name} returned {int(bad.sum())} non-finite values (first at index "
                              f"{tuple(int(i) for i in first)}: {arr[first]})")
    return arr


def check_gaussian_law(law: Any, name: str, dim: int | None = None, *,
                       parts: tuple[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,), cov (d, d)) from a pair or a `Gaussian`, cov finite, symmetric and positive definite, d = dim
    when given; errors name `name` (or the two arguments in `parts`, e.g. ("mean", "cov"))."""
    if isinstance(law, Gaussian):
        if dim is not None and law.dim != dim:
            raise SDEKitError(f"{name} must have dim {dim}; got a Gaussian of dim {law.dim}")
        return law.mean, law.cov
    try:
        mean, cov = law
    except (TypeError, ValueError):
        raise SDEKitError(f"{name} must be a pair (mean, cov) or a Gaussian; got {type(law).__name__}") from None
    mean_name, cov_name = parts or (f"{name}'s mean", f"{name}'s cov")
    m = np.atleast_1d(real_array(mean, mean_name))
    c = np.atleast_2d(real_array(cov, cov_name))
    d = m.shape[0] if dim is None else dim
    if m.shape != (d,) or c.shape != (d, d):
        raise SDEKitError(f"{name} must be (mean of shape ({d},), cov of shape ({d}, {d})); got mean {m.shape}, "
                          f"cov {c.shape}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(c))):
        raise SDEKitError(f"{mean_name} and {cov_name} must be finite; got {m.tolist()} and {c.tolist()}")
    if not np.allclose(c, c.T, rtol=1e-10, atol=1e-12 * max(1.0, float(np.abs(c).max()))):
        raise SDEKitError(f"{cov_name} must be symmetric; got {c.tolist()}")
    try:
        np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        raise SDEKitError(f"{cov_name} must be positive definite; its smallest eigenvalue is "
                          f"{float(np.linalg.eigvalsh(c).min()):.4g}") from None
    return m, c


def check_output_path(path: Any, name: str = "path") -> Path:
    """path as a Path to a file that can be written: its folder exists and it is not itself a folder."""
    if not isinstance(path, str | os.PathLike):
        raise SDEKitError(f"{name} must be a file path (str or os.PathLike); got {type(path).__name__}")
    out = Path(path)
    if out.is_dir():
        raise SDEKitError(f"{name} must be a file, not the folder {str(out)!r}")
    if not out.parent.is_dir():
        raise SDEKitError(f"{name}: the folder {str(out.parent)!r} does not exist (or is a file); create it first")
    return out
