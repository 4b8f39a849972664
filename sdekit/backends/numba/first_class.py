"""User functions as first-class function values, so that one compiled kernel serves every drift, diffusion and field.

Numba specialises a kernel on each jitted function passed to it (one Dispatcher type per function object): a kernel
taking the user's drift as an argument recompiles for every new function (2-5 s) and cannot be cached on disk.
Here each user function u is wrapped in a small adapter compiled for the kernel's argument types,

    adapter(x: dtype[:, ::1], t: float64, p) = canonical(u(x, t, p)),

where canonical() keeps the value's rank (a scalar, (dim,), (n, dim), (dim, m) or (n, dim, m): the kernels broadcast
it) and makes it C-contiguous in the solve's dtype. The adapter is handed to the kernel as a function pointer
(`FunctionPointer`, Numba's wrapper-address protocol), typed FunctionType(signature). The kernel's type then depends
only on the signatures, never on the function object, so it compiles once per (solver step, noise term, signature)
and is cached on disk; a new user function costs only its adapter's compile (about 0.4 s), and an importable one's
adapter is itself cached (see `disk_cache.adapter_module`).
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
from numba import types
from numba.core.types.function_type import WrapperAddressProtocol
from numba.extending import overload


def canonical(v, x):
    """v as the kernels read it: a scalar, or a C-contiguous array of x's dtype of the same rank."""
    v = np.asarray(v)
    return v[()] if v.ndim == 0 else np.ascontiguousarray(v, dtype=x.dtype)


@overload(canonical)
def _canonical_impl(v, x):
    dtype = nb.np.numpy_support.as_dtype(x.dtype).type
    if isinstance(v, (types.Number, types.Boolean)):
        return lambda v, x: dtype(v)
    if isinstance(v, types.Array) and v.ndim == 0:
        return lambda v, x: dtype(v[()])
    if isinstance(v, types.Array) and v.layout == "C" and v.dtype == x.dtype:
        return lambda v, x: v
    if isinstance(v, types.Array):
        return lambda v, x: np.ascontiguousarray(v).astype(dtype)
    return None


def poison(fn, x, t, p, m):
    """What the adapter returns when fn raised: NaN of fn's canonical type ((n, dim, m) for a matrix), so that the
    kernel stops on the non-finite state with the path, step and time (an exception cannot cross a function
    pointer: Numba would print it and go on with garbage)."""
    raise NotImplementedError  # only compiled (see the overload)


@overload(poison)
def _poison_impl(fn, x, t, p, m):
    dispatcher = fn.dispatcher
    args = (x, t, p)
    dispatcher.compile(args)
    ret = dispatcher.overloads[args].signature.return_type
    dtype = nb.np.numpy_support.as_dtype(x.dtype).type
    rank = ret.ndim if isinstance(ret, types.Array) else 0
    if rank == 0:
        return lambda fn, x, t, p, m: dtype(np.nan)
    if rank == 1:
        return lambda fn, x, t, p, m: np.full(x.shape[1], np.nan, dtype)
    if rank == 2:
        return lambda fn, x, t, p, m: np.full((x.shape[0], x.shape[1]), np.nan, dtype)
    return lambda fn, x, t, p, m: np.full((x.shape[0], x.shape[1], m), np.nan, dtype)


class FunctionPointer(WrapperAddressProtocol):
    """A compiled adapter as a first-class function value: Numba types it FunctionType(signature) and calls it
    through its address, so a kernel taking it compiles once per signature, whatever function it points to."""

    def __init__(self, dispatcher: Any, args: tuple):
        dispatcher.compile(args)
        cres = dispatcher.overloads[args]
        self.dispatcher = dispatcher  # keeps the compiled code alive as long as the pointer
        self._signature = cres.signature
        self._address = cres.library.get_pointer_to_function(cres.fndesc.llvm_cfunc_wrapper_name)

    def __wrapper_address__(self) -> int:
        return self._address

    def signature(self) -> Any:
        return self._signature

    @property
    def return_type(self) -> Any:
        """The Numba type the adapter returns (a scalar or a C-contiguous array)."""
        return self._signature.return_type


def argument_types(x: np.ndarray, params: Any) -> tuple:
    """(x, t, p) as the kernels pass them: a C-contiguous (n, dim) batch of the solve's dtype, a float64 time and
    the runtime parameters."""
    return (types.Array(nb.from_dtype(x.dtype), 2, "C"), types.float64, nb.typeof(params))


def closure_adapter(fn: Any, m: int) -> Any:
    """An adapter (not cached: a closure) around a jitted user function that cannot be imported by name; m is the
    number of Brownian components (the last axis of a matrix diffusion)."""
    def adapter(x, t, p):
        try:
            return canonical(fn(x, t, p), x)
        except Exception:  # any exception becomes a non-finite state, see `poison`
            return poison(fn, x, t, p, m)
    return nb.njit(adapter)
