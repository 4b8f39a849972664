"""Elementwise math that one definition of f and g can use on every backend.

Inside Numba kernels these compile to the NumPy functions of the same name; called on
NumPy arrays they are the NumPy functions; called on torch tensors (the torch backend)
they dispatch to torch. Write `import sdekit.math as sm` and `sm.sin(x)` in a drift that
should run everywhere; plain `np.sin` runs on the NumPy and Numba backends only.
"""

from __future__ import annotations

import numpy as np
from numba.extending import overload

__all__ = ["sin", "cos", "tan", "exp", "log", "log1p", "expm1", "sqrt", "tanh", "sinh", "cosh",
           "arctan", "abs", "square", "maximum", "minimum", "where", "clip", "zeros_like", "stack"]

_TORCH_NAME = {"arctan": "atan", "abs": "abs"}


def _is_torch(x: object) -> bool:
    return type(x).__module__.startswith("torch")


def _make_unary(name: str):
    np_fn = getattr(np, name)

    def fn(x):
        if _is_torch(x):
            import torch

            return getattr(torch, _TORCH_NAME.get(name, name))(x)
        return np_fn(x)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name}(x) on NumPy arrays, torch tensors and inside Numba kernels."

    @overload(fn, inline="always")
    def _numba_impl(x):
        return lambda x: np_fn(x)

    return fn


def _make_binary(name: str):
    np_fn = getattr(np, name)

    def fn(a, b):
        if _is_torch(a) or _is_torch(b):
            import torch

            return getattr(torch, name)(torch.as_tensor(a), torch.as_tensor(b))
        return np_fn(a, b)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name}(a, b) on NumPy arrays, torch tensors and inside Numba kernels."

    @overload(fn, inline="always")
    def _numba_impl(a, b):
        return lambda a, b: np_fn(a, b)

    return fn


sin = _make_unary("sin")
cos = _make_unary("cos")
tan = _make_unary("tan")
exp = _make_unary("exp")
log = _make_unary("log")
log1p = _make_unary("log1p")
expm1 = _make_unary("expm1")
sqrt = _make_unary("sqrt")
tanh = _make_unary("tanh")
sinh = _make_unary("sinh")
cosh = _make_unary("cosh")
arctan = _make_unary("arctan")
abs = _make_unary("abs")  # noqa: A001  (shadows the builtin inside this namespace on purpose)
square = _make_unary("square")
maximum = _make_binary("maximum")
minimum = _make_binary("minimum")


def _tensor_like(v: object, ref: object):
    """v as a tensor on ref's device and dtype (numbers stay numbers: torch broadcasts them)."""
    import torch

    if _is_torch(v) or isinstance(v, (int, float, bool)):
        return v
    return torch.as_tensor(v, dtype=ref.dtype, device=ref.device)


def where(cond, a, b):
    """Elementwise a where cond holds, else b (np.where / torch.where), broadcasting, on every backend."""
    if _is_torch(cond) or _is_torch(a) or _is_torch(b):
        import torch

        ref = next(v for v in (a, b, cond) if _is_torch(v))
        dtype = ref.dtype if ref.dtype.is_floating_point else torch.get_default_dtype()
        ta = a if _is_torch(a) else torch.as_tensor(a, dtype=dtype, device=ref.device)
        tb = b if _is_torch(b) else torch.as_tensor(b, dtype=dtype, device=ref.device)
        return torch.where(torch.as_tensor(cond, device=ref.device), ta, tb)
    return np.where(cond, a, b)


@overload(where, inline="always")
def _where_numba(cond, a, b):
    return lambda cond, a, b: np.where(cond, a, b)


def clip(x, lo, hi):
    """min(max(x, lo), hi) elementwise (np.clip / torch.clamp); lo and hi are numbers or broadcastable arrays."""
    if _is_torch(x):
        import torch

        return torch.clamp(x, _tensor_like(lo, x), _tensor_like(hi, x))
    return np.clip(x, lo, hi)


@overload(clip, inline="always")
def _clip_numba(x, lo, hi):
    return lambda x, lo, hi: np.clip(x, lo, hi)


def zeros_like(x):
    """An array of zeros with x's shape and dtype (and device, for a tensor)."""
    if _is_torch(x):
        import torch

        return torch.zeros_like(x)
    return np.zeros_like(x)


@overload(zeros_like, inline="always")
def _zeros_like_numba(x):
    return lambda x: np.zeros_like(x)


def stack(arrays, axis=0):
    """Join a tuple of equally shaped arrays along a new axis (np.stack / torch.stack). Inside Numba kernels give
    a tuple, not a list (Numba's np.stack takes a tuple)."""
    if any(_is_torch(a) for a in arrays):
        import torch

        return torch.stack(list(arrays), dim=axis)
    return np.stack(arrays, axis=axis)


@overload(stack, inline="always")
def _stack_numba(arrays, axis=0):
    return lambda arrays, axis=0: np.stack(arrays, axis=axis)
