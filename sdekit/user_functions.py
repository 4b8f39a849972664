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


_MISSING = object()  # a global name the function reads that is not (yet) defined


class FrozenWatch:
    """A quick test that a function's frozen values (`frozen_values`) are still those seen when the watch was made.

    The watch records every place `frozen_values` looks at while following fn: the code object of each function
    (``py.__code__`` can be reassigned), the object in each closure cell and in each module global its code names
    (the object itself, by identity, and for a data value a copy of its bytes: arrays are mutable), recursively into
    the jitted helpers and functions it calls. `unchanged` re-reads the same places: the same objects and, for arrays,
    the same shape, dtype and bytes mean `frozen_values(fn)` would give what it gave then, so the compiled code is
    still current. Any difference (a rebound name, an edited array, a new global) answers False and the caller falls
    back to the full check (`jitted`), which decides whether to compile again; a watch never answers True wrongly.
    Work per check: identity tests plus one comparison of each array's bytes.
    """

    __slots__ = ("_codes", "_cells", "_globals")

    def __init__(self, fn: Callable) -> None:
        self._codes: list[tuple[Any, Any]] = []  # (function, its code object)
        self._cells: list[tuple[Any, Any, Any]] = []  # (cell, object, bytes snapshot)
        self._globals: list[tuple[dict, str, Any, Any]] = []  # (globals dict, name, object or _MISSING, snapshot)
        self._follow(fn, 0, set())

    def _follow(self, fn: Callable, depth: int, seen: set) -> None:
        """Record what `frozen_values` reads of fn, in its order and with its limits (depth, functions seen)."""
        py = getattr(fn, "py_func", fn)
        code = getattr(py, "__code__", None)
        if code is None or id(py) in seen or depth > _MAX_DEPTH:
            return
        seen.add(id(py))
        self._codes.append((py, code))
        values = []
        for cell in py.__closure__ or ():
            value = cell.cell_contents if _cell_filled(cell) else _MISSING
            self._cells.append((cell, value, _bytes_snapshot(value)))
            values.append(value)
        globals_ = getattr(py, "__globals__", {})
        for name in sorted(_code_names(code)):
            value = globals_.get(name, _MISSING)
            self._globals.append((globals_, name, value, _bytes_snapshot(value)))
            values.append(value)
        for value in values:
            if isinstance(value, nb.core.registry.CPUDispatcher) or isinstance(value, pytypes.FunctionType):
                self._follow(value, depth + 1, seen)

    @property
    def nbytes(self) -> int:
        """Bytes held by the snapshots of arrays."""
        snaps = [e[2] for e in self._cells] + [e[3] for e in self._globals]
        return sum(_snapshot_bytes(s) for s in snaps if s is not None)

    def unchanged(self) -> bool:
        """True when every recorded place holds the same object with the same bytes (class docstring)."""
        for py, code in self._codes:
            if py.__code__ is not code:
                return False
        for cell, value, snap in self._cells:
            now = cell.cell_contents if _cell_filled(cell) else _MISSING
            if now is not value or (snap is not None and not _same_bytes(now, snap)):
                return False
        for globals_, name, value, snap in self._globals:
            now = globals_.get(name, _MISSING)
            if now is not value or (snap is not None and not _same_bytes(now, snap)):
                return False
        return True


def _bytes_snapshot(v: Any) -> tuple | None:
    """For a data value holding arrays: ("array", shape, dtype, bytes) of an array, ("tuple", entries' snapshots) of
    a tuple; None for any other value (immutable: its identity says it all)."""
    if isinstance(v, np.ndarray):
        return ("array", v.shape, v.dtype, v.tobytes())
    if isinstance(v, tuple) and _is_data(v) and _has_array(v):
        return ("tuple", tuple(_bytes_snapshot(e) for e in v))
    return None


def _snapshot_bytes(snap: tuple) -> int:
    return len(snap[3]) if snap[0] == "array" else sum(_snapshot_bytes(s) for s in snap[1] if s is not None)


def _same_bytes(v: Any, snap: tuple) -> bool:
    """v (the object the snapshot was taken of) still has the snapshot's shapes, dtypes and bytes."""
    if snap[0] == "array":
        return v.shape == snap[1] and v.dtype == snap[2] and v.tobytes() == snap[3]
    return all(s is None or _same_bytes(e, s) for e, s in zip(v, snap[1]))


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
