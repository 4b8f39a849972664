"""Torch versions of functions written for Numba: one registry, so that one specification runs on both backends.

A user function f(x, t, p) written with array arithmetic and `sdekit.math` runs on torch tensors as it is
(a Numba dispatcher's Python function is used). Built-ins written as explicit Numba loops for speed (the OU
drift's matrix product, a target's score) register a torch twin here: the same equation in torch operations.
`torch_function(fn)` resolves, in order: a registered twin, the dispatcher's Python function, fn itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_TWINS: dict[int, tuple[Any, Callable]] = {}


def register_torch(fn: Callable, torch_fn: Callable) -> Callable:
    """Declare ``torch_fn`` the torch version of ``fn`` (same signature, same equation); returns torch_fn."""
    if not callable(torch_fn):
        raise TypeError(f"torch_fn must be callable; got {type(torch_fn).__name__}")
    _TWINS[id(fn)] = (fn, torch_fn)
    return torch_fn


def torch_twin(fn: Callable) -> Callable[[Callable], Callable]:
    """Decorator form of `register_torch`: ``@torch_twin(ou_drift) def ou_drift_torch(x, t, p): ...``."""
    def deco(torch_fn: Callable) -> Callable:
        return register_torch(fn, torch_fn)
    return deco


def torch_function(fn: Callable) -> Callable:
    """The function to call on torch tensors for ``fn``: its twin, else its Python function, else fn."""
    hit = _TWINS.get(id(fn))
    if hit is not None and hit[0] is fn:
        return hit[1]
    return getattr(fn, "py_func", fn)
