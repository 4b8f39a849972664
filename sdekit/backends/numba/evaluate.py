"""One call of a user function on a chunk of paths, in either form: the batch form f(x, t, p) -> (n, dim), or the
per-path forms, evaluated row by row into a buffer the kernel owns.

Forms (`sdekit.forms`): "batch" (the default) is the user's function itself, called on the whole chunk; it returns
a scalar, (dim,), (n, dim), (dim, m) or (n, dim, m) value that the steps read by broadcasting (`access.at2`/`at3`).
"path" is f(x, t, p, out) with x one path's state (dim,) writing its value into out, (dim,) or (dim, m) for a matrix
diffusion; "scalar" (dim 1) is f(x, t, p) -> float with x a float. A per-path function reaches the kernel wrapped in
one of the markers below (`PathRows`, `PathMatrix`, `PathScalar`), so Numba knows its form when it compiles:

    evaluate(f, site, x, t, p, buf)  =  f(x, t, p)                                       (batch form)
                                     =  buf[site], with f(x[r], t, p, buf[site][r]) for every row r   (path form)
                                     =  buf[site], with buf[site][r, 0] = f(x[r, 0], t, p)            (scalar form)

buf (sites, n, dim) or (sites, n, dim, m) is allocated once per chunk by `path_buffers` (empty for a batch
function), so a per-path solve allocates nothing per step. Within one step several values of the same function are
alive at once (Milstein's g(x), g(x_bar), g(x_-); the θ-method's f(y) and f(y + eps e_j)): every call site of a step
has its own slot `site`, constant in the step's source, and each step uses fewer than F_SITES (drift / field) and
G_SITES (diffusion) slots, so no value is overwritten while it is read. A value read after the next call of the
same site is never needed: the stage loops (SRA, SRI, RK, SK-ROCK) copy each value into their work arrays first.
Batch users get the call they always got (the same compiled arithmetic, the same numbers).
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import numba as nb
import numpy as np
from numba.core import types
from numba.core.imputils import lower_constant
from numba.core.typing.typeof import typeof_impl
from numba.extending import NativeValue, intrinsic, models, overload, register_model, unbox
from numba.np.arrayobj import populate_array

F_SITES = 4  # drift / field call sites per step (SK-ROCK: f(x), f(x + v), f(K_0 + ...), f(K_{j-1}))
G_SITES = 3  # diffusion call sites per step (Milstein: g(x), g(x_+), g(x_-))


class PathRows(NamedTuple):
    """A per-path function f(x, t, p, out): x (dim,), out (dim,) written in place."""
    fn: Any


class PathMatrix(NamedTuple):
    """A per-path matrix diffusion g(x, t, p, out): x (dim,), out (dim, m) written in place."""
    fn: Any


class PathScalar(NamedTuple):
    """A scalar function of a one-dimensional state: f(x, t, p) -> float, x a float."""
    fn: Any


MARKERS = (PathRows, PathMatrix, PathScalar)


def marker_for(form: str, matrix: bool) -> type | None:
    """The marker class of a per-path function of `form` ("path" or "scalar"; None for "batch"); matrix: the
    function is a matrix diffusion (out of shape (dim, m))."""
    if form == "batch":
        return None
    if form == "scalar":
        return PathScalar
    return PathMatrix if matrix else PathRows


def unwrap(fn: Any) -> Any:
    """The user's function inside a marker (fn itself when it is not one)."""
    return fn.fn if isinstance(fn, MARKERS) else fn


class PathFormType(types.Type):
    """The Numba type of a marker: its class and the type of the function inside (a Dispatcher type, which holds
    the function). A marker has no run-time data: the kernel calls the function by its type, so a kernel that binds
    a marker as a global (`disk_cache`) embeds no object address and stays cacheable on disk."""

    def __init__(self, marker: type, fn_type: types.Type):
        self.marker = marker
        self.fn_type = fn_type
        super().__init__(name=f"{marker.__name__}({fn_type})")

    @property
    def key(self) -> tuple:
        return self.marker, self.fn_type


register_model(PathFormType)(models.OpaqueModel)


def _typeof_marker(val: Any, c: Any) -> PathFormType:
    return PathFormType(type(val), typeof_impl(val.fn, c))


for _cls in (PathRows, PathMatrix, PathScalar):
    typeof_impl.register(_cls)(_typeof_marker)


@lower_constant(PathFormType)
def _lower_marker(context: Any, builder: Any, ty: Any, pyval: Any) -> Any:
    return context.get_dummy_value()


@unbox(PathFormType)
def _unbox_marker(typ: Any, obj: Any, c: Any) -> NativeValue:
    return NativeValue(c.context.get_dummy_value())


def _marker(f: Any) -> tuple[type | None, Any]:
    """(marker class, the function it holds) of a marker's Numba type, (None, None) for any other type."""
    if isinstance(f, PathFormType):
        if not isinstance(f.fn_type, types.Dispatcher):
            raise TypeError(f"a per-path function must be a Numba dispatcher; got {f.fn_type}")
        return f.marker, f.fn_type.dispatcher
    return None, None


def _strip(context: Any, builder: Any, ty: Any, val: Any) -> Any:
    """val with the meminfo of every array in it (an array, or tuples of them, nested) set to null."""
    if isinstance(ty, types.Array):
        arr = context.make_array(ty)(context, builder, val)
        view = context.make_array(ty)(context, builder)
        populate_array(view, data=arr.data, shape=arr.shape, strides=arr.strides, itemsize=arr.itemsize,
                       meminfo=None)
        return view._getvalue()
    if isinstance(ty, types.BaseTuple):
        for i, elem in enumerate(ty):
            if _holds_arrays(elem):
                part = _strip(context, builder, elem, builder.extract_value(val, i))
                val = builder.insert_value(val, part, i)
    return val


def _holds_arrays(ty: Any) -> bool:
    return isinstance(ty, types.Array) or (isinstance(ty, types.BaseTuple) and any(_holds_arrays(e) for e in ty))


@intrinsic
def unmanaged(typingctx, a):
    """a (an array, a tuple of arrays, or anything else, returned as it is) without reference counts (the same data,
    shapes and strides; null meminfos): arguments handed to a step this way cost no atomic reference counting on
    its entry and exit, which at one path cost more than the step. The value must not outlive a: the kernel passes
    it to one call on arrays it holds itself."""

    def codegen(context, builder, sig, args):
        return _strip(context, builder, sig.args[0], args[0])

    return a(a), codegen


def evaluate(f, site, x, t, p, buf):
    """f's value on the batch x (module docstring): f(x, t, p) for a batch function, else buf[site] filled row by
    row."""
    kind = type(f) if isinstance(f, MARKERS) else None
    if kind is None:
        return f(x, t, p)
    out = buf[site]
    for r in range(x.shape[0]):
        if kind is PathScalar:
            out[r, 0] = f.fn(x[r, 0], t, p)
        else:
            f.fn(x[r], t, p, out[r])
    return out


@overload(evaluate, inline="always")
def _evaluate_impl(f, site, x, t, p, buf):
    kind, fn = _marker(f)
    if kind is None:
        return lambda f, site, x, t, p, buf: f(x, t, p)
    if kind is PathScalar:
        def scalar(f, site, x, t, p, buf):
            out = buf[site]
            for r in range(x.shape[0]):
                out[r, 0] = fn(x[r, 0], t, p)
            return out
        return scalar

    def rows(f, site, x, t, p, buf):
        out = buf[site]
        for r in range(x.shape[0]):
            fn(x[r], t, p, out[r])
        return out
    return rows


def path_buffers(f, sites, x, m):
    """The per-chunk buffer of f's call sites: (sites, n, dim) for a per-path function, (sites, n, dim, m) for a
    per-path matrix diffusion, an empty (0, 0, 0) array for a batch function (never read)."""
    n, d = x.shape
    kind = type(f) if isinstance(f, MARKERS) else None
    if kind is None:
        return np.empty((0, 0, 0), x.dtype)
    if kind is PathMatrix:
        return np.empty((sites, n, d, m), x.dtype)
    return np.empty((sites, n, d), x.dtype)


@overload(path_buffers)
def _path_buffers_impl(f, sites, x, m):
    kind, _ = _marker(f)
    if kind is PathMatrix:
        return lambda f, sites, x, m: np.empty((sites, x.shape[0], x.shape[1], m), x.dtype)
    if kind is None:
        return lambda f, sites, x, m: np.empty((0, 0, 0), x.dtype)
    return lambda f, sites, x, m: np.empty((sites, x.shape[0], x.shape[1]), x.dtype)


def compiled_marker(fn: Any, role: str) -> Any:
    """A marker with its function compiled (`sdekit.user_functions.jitted`), for the kernels that take the user's
    functions as arguments; a batch function is returned compiled as it is."""
    from sdekit.user_functions import jitted

    if isinstance(fn, MARKERS):
        return type(fn)(jitted(fn.fn, role))
    return jitted(fn, role)


def row_argument_types(fn: Any, x0: np.ndarray, params: Any) -> tuple:
    """The Numba argument types a per-path function is compiled for in the kernels: (x[r], t, p, out[r]) with
    C-contiguous rows, or (x[r, 0], t, p) for the scalar form."""
    row = types.Array(nb.from_dtype(x0.dtype), 1, "C")
    if isinstance(fn, PathScalar):
        return (nb.from_dtype(x0.dtype), types.float64, nb.typeof(params))
    out = types.Array(nb.from_dtype(x0.dtype), 2 if isinstance(fn, PathMatrix) else 1, "C")
    return (row, types.float64, nb.typeof(params), out)


def n_arguments(fn: Any) -> int | None:
    """How many positional arguments fn's Python source takes (None when it cannot be told)."""
    py = getattr(fn, "py_func", fn)
    try:
        params = inspect.signature(py).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
