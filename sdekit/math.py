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
           "arctan", "abs", "square", "maximum", "minimum"]

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
