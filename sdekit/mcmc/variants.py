"""Planted-bug variants of compiled functions: the same code with one of the njit helpers it calls replaced.

A sampler's step (or kernel) calls small njit helpers by their global names, e.g. ``mala_step`` calls
``mala_log_ratio``. `with_helpers(mala_step, mala_log_ratio=wrong)` compiles the step's own bytecode
against a copy of its module's globals in which that name is bound to ``wrong``: the production function
is untouched, the variant shares every other line with it, and no production code carries a switch.
Numba resolves globals from the Python function's ``__globals__`` at compile time, so the variant is a
separate dispatcher. Variants are never cached on disk (their source equals the production function's,
so a cache keyed on source would confuse the two). Each sampler module registers its variants in its
``DEFECTS`` table; `sdekit.mcmc.defects.planted` runs them.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any

import numba as nb


@dataclass(frozen=True)
class Defect:
    """A planted bug: what it gets wrong (``description``) and the compiled function that has it
    (``variant``: the sampler's step or kernel with one helper replaced, see `with_helpers`)."""

    description: str
    variant: Any


def with_helpers(fn: Any, **helpers: Any) -> Any:
    """A new njit dispatcher running ``fn``'s code (``fn`` an njit dispatcher) with the global names in
    ``helpers`` bound to the given njit functions instead; same compile options except that it is never
    disk-cached and never parallel (cheaper to compile; the numbers are the same)."""
    py = fn.py_func
    unknown = sorted(set(helpers) - set(py.__code__.co_names))
    if unknown:
        raise ValueError(f"{py.__qualname__} calls no global named {unknown}")
    namespace = dict(py.__globals__)
    namespace.update(helpers)
    clone = types.FunctionType(py.__code__, namespace, py.__name__, py.__defaults__, py.__closure__)
    swapped = ",".join(f"{name}={getattr(value, '__name__', value)}" for name, value in helpers.items())
    clone.__qualname__ = f"{py.__qualname__}[{swapped}]"
    clone.__doc__ = py.__doc__
    clone.__module__ = py.__module__
    # njit implies nopython; no disk cache (see above); serial: a planted bug runs to be rejected, not to be fast,
    # and every chain's numbers depend only on (seed, chain), so prange as range gives the same results
    options = {k: v for k, v in fn.targetoptions.items() if k not in ("cache", "nopython", "parallel")}
    return nb.njit(**options)(clone)
