"""Broadcasting reads of user-function outputs inside kernels, and the noise term g dW.

A drift returns a scalar, a (dim,) array or an (n, dim) array; a matrix diffusion returns
(dim, m) or (n, dim, m). `at2` and `at3` read element (b, i) / (b, i, j) with NumPy
broadcasting rules; Numba picks the branch at compile time from the array's ndim, so the
hot loops carry no shape branches (the probe checks the shapes once before a solve).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import types
from numba.extending import overload


def at2(a, b, i):
    """a broadcast to (n, dim), element (b, i): a scalar, a (dim,) vector or an (n, dim) batch."""
    a = np.asarray(a)
    if a.ndim == 0:
        return a[()]
    if a.ndim == 1:
        return a[i]
    return a[b, i]


def at3(a, b, i, j):
    """a broadcast to (n, dim, m), element (b, i, j): a (dim, m) matrix or an (n, dim, m) batch."""
    a = np.asarray(a)
    if a.ndim == 2:
        return a[i, j]
    return a[b, i, j]


def check_rows(a, n):
    """Raise if a batch output (ndim 2) does not have n rows (shapes are probed once; this guards the rest)."""
    if np.ndim(a) == 2 and np.shape(a)[0] != n:
        raise ValueError("a drift or field returned a batch with the wrong number of rows")


@overload(check_rows)
def _check_rows_impl(a, n):
    if isinstance(a, types.Array) and a.ndim == 2:
        def impl(a, n):
            if a.shape[0] != n:
                raise ValueError("a drift or field returned a batch with the wrong number of rows")
        return impl
    return lambda a, n: None


@overload(at2)
def _at2_impl(a, b, i):
    if isinstance(a, types.Number):
        return lambda a, b, i: a
    if isinstance(a, types.Array) and a.ndim == 1:
        return lambda a, b, i: a[i]
    if isinstance(a, types.Array) and a.ndim == 2:
        return lambda a, b, i: a[b, i]
    return None


@overload(at3)
def _at3_impl(a, b, i, j):
    if isinstance(a, types.Array) and a.ndim == 2:
        return lambda a, b, i, j: a[i, j]
    if isinstance(a, types.Array) and a.ndim == 3:
        return lambda a, b, i, j: a[b, i, j]
    return None


@nb.njit
def gdw_diagonal(g, dw, b, i):
    """(g dW)_i = g_i dW_i (diagonal and diagonal-additive noise)."""
    return at2(g, b, i) * dw[b, i]


@nb.njit
def gdw_scalar(g, dw, b, i):
    """(g dW)_i = g_i dW (one Brownian component)."""
    return at2(g, b, i) * dw[b, 0]


@nb.njit
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
