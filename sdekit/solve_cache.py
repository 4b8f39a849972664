"""The prepared fixed-step solves that `sdekit.simulate` keeps, so that solving the same problem again with a new x0,
new parameter values or a new seed skips the checks, the probe of the user functions, the grid and the kernel set-up.

A solve is remembered under a key made of everything that shapes the prepared solve (`FixedSolve`): the problem's
functions (by identity), dim, noise, calculus, Brownian dimension and the structure, shapes and dtypes of its
parameters; t, steps, dt and save_at (their exact values: floats by their bits, arrays by their bytes); every other
option of `simulate` except the seed and path_offset; and x0's shape. Equal keys mean the full path would have checked
the same arguments and made the same solve (the same kernel, grid, thread plan and scratch shapes), so the remembered
one runs the same kernel on the same arguments: the same numbers, bit for bit.

Not part of the key and checked on every call instead: the values Numba froze into the compiled user functions
(closure cells, global arrays and numbers, `sdekit.user_functions.FrozenWatch`: a changed one sends the call down the
full path, which compiles again), the seed, path_offset and x0 (shape, dtype, finiteness). Like `sdekit.plan`, a
remembered solve does not probe the functions again at a new x0 or new parameter values; a non-finite state is still
caught by the kernel (NonFiniteError).

At most `CACHE_ENTRIES` solves are kept (the oldest is dropped), each holding at most `CACHE_BYTES` of scratch, grid
and snapshots: the cache is for the many small solves whose set-up costs more than their steps.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.backends.numba.fixed_solve import FixedSolve
from sdekit.sde import ODE, SDE
from sdekit.user_functions import FrozenWatch

CACHE_ENTRIES = 32
CACHE_BYTES = 2**20


class _Uncacheable(Exception):
    """An argument with no exact, hashable form: the call takes the full path and is not remembered."""


def _exact(v: Any) -> Any:
    """A hashable form of an argument that is equal for two arguments exactly when they are the same value of the
    same type (so 1, 1.0 and True differ; floats by their bits, -0.0 is not 0.0; arrays by dtype, shape and bytes).
    None, a str and an int stand for themselves (none of them equals another one's form)."""
    tv = type(v)
    if v is None or tv is str or tv is int:
        return v
    if tv is float or isinstance(v, np.floating):
        return (tv, float(v).hex())
    if tv is bool or isinstance(v, (np.integer, np.bool_)):
        return (tv, v.item() if tv is not bool else v)
    if tv is tuple or tv is list:
        return (tv, *map(_exact, v))
    if tv is np.ndarray:
        return (tv, v.dtype.str, v.shape, v.tobytes())
    if tv is type or isinstance(v, np.dtype):
        return (tv, v)
    raise _Uncacheable


def _params_signature(params: Any) -> tuple:
    """Structure, shapes and dtypes of normalised parameters (an array or a tuple of arrays and floats)."""
    if isinstance(params, tuple):
        return tuple((type(v), np.shape(v), np.asarray(v).dtype) for v in params)
    return (params.shape, params.dtype)


def _problem_key(problem: Any) -> tuple:
    """What of the problem shapes the prepared solve; its functions by identity."""
    if type(problem) is SDE or isinstance(problem, SDE):
        return (type(problem), problem.drift, problem.diffusion, problem.dim, problem.noise, problem.calculus,
                problem.brownian_dim, problem.drift_jacobian, _params_signature(problem.params))
    if isinstance(problem, ODE):
        return (type(problem), problem.field, problem.dim, _params_signature(problem.params))
    raise _Uncacheable


def user_functions(problem: SDE | ODE) -> tuple:
    """The problem's functions that are compiled into the kernel (whose frozen values are watched)."""
    if isinstance(problem, SDE):
        return tuple(fn for fn in (problem.drift, problem.diffusion, problem.drift_jacobian) if fn is not None)
    return (problem.field,)


@dataclass
class CachedSolve:
    """A remembered solve: the prepared solve and the watches of its problem's frozen values."""

    prepared: FixedSolve
    watches: tuple
    save_ts: np.ndarray

    def current(self) -> bool:
        """True when no frozen value of the problem's functions changed since the solve was prepared."""
        for watch in self.watches:
            if not watch.unchanged():
                return False
        return True


class SolveCache:
    """Remembered solves by key (module docstring); safe to use from several threads."""

    def __init__(self, entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES) -> None:
        self.entries = entries
        self.max_bytes = max_bytes
        self._solves: dict[tuple, CachedSolve] = {}
        self._lock = threading.Lock()

    def key(self, problem: Any, x0: Any, t: Any, options: tuple) -> tuple | None:
        """The key of a call (module docstring), or None when it cannot be remembered (an argument without an exact
        hashable form, another backend, a problem that is not an SDE or ODE)."""
        try:
            shape = x0.shape if type(x0) is np.ndarray else (type(x0),)
            return (_problem_key(problem), shape, _exact(t),
                    *[v if v is None or type(v) is int or type(v) is str else _exact(v) for v in options])
        except (_Uncacheable, AttributeError, TypeError):
            return None

    def get(self, key: tuple) -> CachedSolve | None:
        """The solve remembered under key if its problem's frozen values are unchanged, else None."""
        found = self._solves.get(key)
        if found is None or not found.current():
            return None
        return found

    def put(self, key: tuple, prepared: FixedSolve, problem: SDE | ODE) -> None:
        """Remember a solve just prepared (unless it holds more than max_bytes); the oldest goes beyond `entries`."""
        watches = tuple(FrozenWatch(fn) for fn in user_functions(problem))
        if prepared.retained_bytes() + sum(w.nbytes for w in watches) > self.max_bytes:
            return
        with self._lock:
            self._solves.pop(key, None)
            self._solves[key] = CachedSolve(prepared, watches, prepared.grid.save_ts)
            while len(self._solves) > self.entries:
                del self._solves[next(iter(self._solves))]

    def clear(self) -> None:
        """Forget every remembered solve."""
        with self._lock:
            self._solves.clear()

    def __len__(self) -> int:
        return len(self._solves)


SOLVES = SolveCache()
