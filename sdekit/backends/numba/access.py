"""Broadcasting reads of user-function outputs inside kernels, and the noise term g dW.

A drift returns a scalar, a (dim,) array or an (n | 1, dim) array; a matrix diffusion
returns (dim, m) or (n | 1, dim, m). `at2` and `at3` read element (b, i) / (b, i, j) with
NumPy broadcasting rules; Numba picks the branch at compile time from the array's ndim.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import types
from numba.extending import overload


def at2(a, b, i):
    """a broadcast to (n, dim), element (b, i)."""
    a = np.asarray(a)
    if a.ndim == 0:
        return a[()]
    if a.ndim == 1:
        return a[i]
    return a[b if a.shape[0] != 1 else 0, i]


def at3(a, b, i, j):
    """a broadcast to (n, dim, m), element (b, i, j)."""
    a = np.asarray(a)
    if a.ndim == 2:
        return a[i, j]
    return a[b if a.shape[0] != 1 else 0, i, j]


@overload(at2)
def _at2_impl(a, b, i):
    if isinstance(a, types.Number):
        return lambda a, b, i: a
    if isinstance(a, types.Array) and a.ndim == 1:
        return lambda a, b, i: a[i]
    if isinstance(a, types.Array) and a.ndim == 2:
        def impl(a, b, i):
            row = b if a.shape[0] != 1 else 0
            return a[row, i]
        return impl
    return None


@overload(at3)
def _at3_impl(a, b, i, j):
    if isinstance(a, types.Array) and a.ndim == 2:
        return lambda a, b, i, j: a[i, j]
    if isinstance(a, types.Array) and a.ndim == 3:
        def impl(a, b, i, j):
            row = b if a.shape[0] != 1 else 0
            return a[row, i, j]
        return impl
    return None


@nb.njit(inline="always")
def gdw_diagonal(g, dw, b, i):
    """(g dW)_i = g_i dW_i (diagonal and diagonal-additive noise)."""
    return at2(g, b, i) * dw[b, i]


@nb.njit(inline="always")
def gdw_scalar(g, dw, b, i):
    """(g dW)_i = g_i dW (one Brownian component)."""
    return at2(g, b, i) * dw[b, 0]


@nb.njit(inline="always")
def gdw_general(g, dw, b, i):
    """(g dW)_i = sum_j g_ij dW_j (matrix noise)."""
    s = 0.0
    for j in range(dw.shape[1]):
        s += at3(g, b, i, j) * dw[b, j]
    return s


def noise_term_for(noise: str, matrix: bool):
    """The g dW function matching an SDE's noise type."""
    if matrix:
        return gdw_general
    return gdw_scalar if noise == "scalar" else gdw_diagonal
