"""User functions compiled by Numba once per function object, and compiled again when what Numba froze has changed.

Numba compiles the values a function reads from its closure cells and from module globals as constants: after
``scale = 2.0; f = lambda x, t, p: scale * x`` and a first solve, ``scale = 3.0`` would leave the compiled f at
2.0, and an array edited in place would keep its old entries. sdekit records a copy of every such value (numbers,
arrays, tuples of them, and those read by the jitted helpers f calls) when it compiles f, compares them before
every solve, and compiles f again when one changed; the disk-cache keys include them (`frozen_digest`). So a
solve never runs on stale values. Parameters that change between solves belong in ``p`` (no recompilation).
"""

from __future__ import annotations

import hashlib
import types as pytypes
import weakref
from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np

from sdekit.errors import SDEKitError

_DATA_SCALARS = (bool, int, float, complex, np.number, np.bool_)
_MAX_DEPTH = 4
_EMPTY = object()  # jitted helpers followed this deep when collecting frozen values


def _is_data(v: Any) -> bool:
    if isinstance(v, _DATA_SCALARS) or isinstance(v, np.ndarray):
        return True
    return isinstance(v, tuple) and len(v) > 0 and all(_is_data(e) for e in v)


def _snapshot(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, tuple):
        return tuple(_snapshot(e) for e in v)
    return v


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")))
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    return type(a) is type(b) and (a == b or (a != a and b != b))


def _code_names(code: pytypes.CodeType) -> set[str]:
    """Global names read by a code object and the code objects nested in it (comprehensions, lambdas)."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, pytypes.CodeType):
            names |= _code_names(const)
    return names


def frozen_values(fn: Callable, copy: bool = True, _depth: int = 0, _seen: set | None = None) -> dict[str, Any]:
    """The data values Numba freezes into fn's compiled code: closure cells and module globals it reads (numbers,
    arrays, tuples of them), including those of the jitted functions it calls, keyed by a dotted path; arrays are
    copied unless ``copy`` is False (for a value that is only read at once, as `frozen_digest` does)."""
    py = getattr(fn, "py_func", fn)
    code = getattr(py, "__code__", None)
    seen = set() if _seen is None else _seen
    if code is None or id(py) in seen or _depth > _MAX_DEPTH:
        return {}
    seen.add(id(py))
    out: dict[str, Any] = {}
    cells = zip(code.co_freevars, py.__closure__ or ())
    globals_ = getattr(py, "__globals__", {})
    items = [(name, cell.cell_contents) for name, cell in cells if _cell_filled(cell)]
    items += [(name, globals_[name]) for name in sorted(_code_names(code)) if name in globals_]
    for name, value in items:
        if _is_data(value):
            out[f"{py.__qualname__}.{name}"] = _snapshot(value) if copy else value
        elif isinstance(value, nb.core.registry.CPUDispatcher) or isinstance(value, pytypes.FunctionType):
            out.update(frozen_values(value, copy, _depth + 1, seen))
    return out


def _cell_filled(cell: Any) -> bool:
    try:
        return cell.cell_contents is not _EMPTY
    except ValueError:
        return False


def changed_values(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names whose frozen value differs between two snapshots (or that appeared or vanished)."""
    return sorted(k for k in old.keys() | new.keys() if k not in old or k not in new or not _same(old[k], new[k]))


def frozen_digest(fn: Callable) -> str:
    """A hash of fn's frozen values, for cache keys: a changed global gives a new kernel, never a stale one."""
    h = hashlib.sha256()
    for name, value in sorted(frozen_values(fn, copy=False).items()):
        h.update(name.encode())
        h.update(repr(_digestable(value)).encode())
    return h.hexdigest()[:16]


def _digestable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return (v.dtype.str, v.shape, hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest())
    if isinstance(v, tuple):
        return tuple(_digestable(e) for e in v)
    return (type(v).__name__, repr(v))


_JIT_CACHE: weakref.WeakKeyDictionary[Callable, tuple[Any, dict[str, Any]]] = weakref.WeakKeyDictionary()


def jitted(fn: Callable, role: str) -> Any:
    """The Numba-compiled version of a user function, made once per function object and made again when a value
    it captured (closure cell, global array, number) has changed since (see the module docstring)."""
    if not callable(fn):
        raise SDEKitError(f"{role} must be callable f(x, t, p); got {type(fn).__name__}")
    try:
        compiled, frozen = _JIT_CACHE[fn]
    except (KeyError, TypeError):
        compiled, frozen = None, None
    now = frozen_values(fn)
    if compiled is not None and not changed_values(frozen, now):
        return compiled
    if isinstance(fn, nb.core.registry.CPUDispatcher):
        # The user's own dispatcher is used as it is, unless it was compiled before sdekit first saw it and reads
        # frozen values (they may predate an edit), or one of them changed since: then a fresh copy is compiled.
        trusted = compiled is None and not (fn.overloads and now)
        compiled = fn if trusted else nb.njit(**_jit_options(fn))(fn.py_func)
    else:
        compiled = nb.njit(fn)
    try:
        _JIT_CACHE[fn] = (compiled, now)
    except TypeError:
        pass
    return compiled


def holds_arrays(fn: Callable) -> bool:
    """True when fn (or a jitted helper it calls) reads an array from a closure cell or a global: Numba bakes its
    entries into the compiled code, so such a function is never cached on disk by name (`disk_cache`)."""
    return any(_has_array(v) for v in frozen_values(fn, copy=False).values())


def _has_array(v: Any) -> bool:
    return isinstance(v, np.ndarray) or (isinstance(v, tuple) and any(_has_array(e) for e in v))


def _jit_options(dispatcher: Any) -> dict[str, Any]:
    keep = ("fastmath", "error_model", "boundscheck", "nogil", "parallel")
    return {k: v for k, v in dispatcher.targetoptions.items() if k in keep}
