"""Stable names of runs and shards: a digest of everything that decides a shard's numbers.

A shard of a sharded solve is a pure function of (problem, x0 rows, time grid, solver options, seed, path range),
so its key, a SHA-256 over a canonical description of those, names its result: the scheduler recomputes a lost
shard under the same key, and a checkpoint file is trusted only when it carries the key of the shard asked for.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

import numpy as np

from sdekit._version import __version__


def _function_token(fn: Any) -> str:
    """A function's identity: module, name, a digest of its source (or bytecode), and the values it captures (the
    numbers and arrays it reads from its closure or its module's globals), so that a changed constant is a changed
    function."""
    py = getattr(fn, "py_func", fn)
    name = f"{getattr(py, '__module__', '?')}.{getattr(py, '__qualname__', type(py).__name__)}"
    h = hashlib.sha256()
    try:
        h.update(inspect.getsource(py).encode())
    except (OSError, TypeError):
        code = getattr(py, "__code__", None)
        h.update(code.co_code + repr(code.co_consts).encode() if code is not None else repr(py).encode())
    code = getattr(py, "__code__", None)
    if code is not None:
        scope = getattr(py, "__globals__", {})
        captured = [(n, scope[n]) for n in code.co_names if n in scope and _is_value(scope[n])]
        cells = [c.cell_contents for c in (getattr(py, "__closure__", None) or ()) if _has_contents(c)]
        captured += [(str(i), v) for i, v in enumerate(cells) if _is_value(v)]
        for n, v in captured:
            h.update(n.encode())
            _feed(h, v)
    return f"{name}:{h.hexdigest()[:16]}"


def _is_value(v: Any) -> bool:
    return isinstance(v, (int, float, complex, np.ndarray, np.generic)) and not isinstance(v, bool) or (
        isinstance(v, tuple) and all(isinstance(x, (int, float, np.ndarray, np.generic)) for x in v))


def _has_contents(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # an empty cell
        return False
    return True


def _feed(h: Any, value: Any) -> None:
    """Hash ``value`` canonically: arrays by dtype, shape and bytes; containers element by element; functions by
    `_function_token`; everything else by repr."""
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        arr = np.ascontiguousarray(value)
        h.update(f"nd{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    elif isinstance(value, (list, tuple)):
        h.update(f"seq{len(value)}(".encode())
        for v in value:
            _feed(h, v)
        h.update(b")")
    elif isinstance(value, dict):
        h.update(f"map{len(value)}(".encode())
        for k in sorted(value, key=repr):
            _feed(h, k)
            _feed(h, value[k])
        h.update(b")")
    elif callable(value) and not isinstance(value, type):
        h.update(_function_token(value).encode())
    else:
        h.update(repr(value).encode())


def problem_token(problem: Any) -> tuple:
    """What of an SDE / ODE decides its solutions: its functions, sizes, noise, calculus and parameters."""
    fields = ("drift", "diffusion", "field", "drift_jacobian", "dim", "m", "noise", "calculus", "matrix_noise",
              "params", "name")
    return tuple((f, getattr(problem, f, None)) for f in fields)


def digest(*parts: Any) -> str:
    """SHA-256 (hex) of the canonical description of ``parts`` and the sdekit version."""
    h = hashlib.sha256(f"sdekit {__version__}".encode())
    for p in parts:
        _feed(h, p)
    return h.hexdigest()
