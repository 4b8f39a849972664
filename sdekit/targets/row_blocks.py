"""Blocks of rows times a matrix, for the batch scores, log-densities and energies of the built-in targets.

The Gaussian and mixture scores need, per component k, u = A_k (x - c_k) for every row x of a batch. Row by row
that is a matrix-vector product whose inner sums form a chain of dependent additions; on a block of rows it is one
matrix product U = R A_k with R = X - c_k, which BLAS (Numba's ``np.dot`` on contiguous float64 blocks calls
scipy's) runs at several times the speed (Goto & van de Geijn 2008, "Anatomy of high-performance matrix
multiplication").

A BLAS may sum a row's products in an order that depends on how many rows the call has (its blocking, or a
matrix-vector path for one row), and sdekit promises that a path's numbers do not depend on the batch (paths
[a, b) solved alone equal rows a..b-1 of the solve of all paths, bit for bit). So every product here has exactly
``BLOCK_ROWS`` rows: a batch is cut into blocks of that many rows and the last block is filled up with copies of
its last row (computed and discarded). Every call then has the same shape, and a row's result depends only on
the row.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["BLAS_MIN_DIM", "BLOCK_ROWS", "WIDE_BLOCK_ROWS", "block_product", "block_residuals", "start_block",
           "stream_logsumexp"]

BLOCK_ROWS = 8  # rows per matrix product: a multiple of the GEMM micro-kernels' row count (4 on AVX2)
WIDE_BLOCK_ROWS = 32  # rows per product for kernels run on large batches (the exact diffusion mixture's drift,
# `sdekit.diffusion.mixture_flow`): longer blocks amortise each BLAS call; a short last block is filled up the same way
BLAS_MIN_DIM = 4  # below this dimension a BLAS call costs more than the product: plain loops instead


@nb.njit(cache=True)
def block_residuals(x, c0, nc, scale, center, r):
    """r[b] = x[c0 + min(b, nc - 1)] - scale * center for b < BLOCK_ROWS (rows past nc repeat row nc - 1)."""
    d = r.shape[1]
    for b in range(r.shape[0]):
        row = c0 + min(b, nc - 1)
        for i in range(d):
            r[b, i] = x[row, i] - scale * center[i]


@nb.njit(cache=True)
def block_product(r, a, u):
    """u = r a for a block r (BLOCK_ROWS, d) and a C-contiguous (d, d) matrix a.

    BLAS (``np.dot``) when d >= BLAS_MIN_DIM; else loops summing u[b, j] = sum_i r[b, i] a[i, j] in the order
    i = 0..d-1, which for a symmetric a is bit for bit the row-by-row product (a r)_j of the loops they replace.
    """
    n, d = r.shape
    if d >= BLAS_MIN_DIM:
        np.dot(r, a, u)
        return
    for b in range(n):
        for j in range(d):
            u[b, j] = 0.0
        for i in range(d):
            rbi = r[b, i]
            for j in range(d):
                u[b, j] += rbi * a[i, j]


@nb.njit(cache=True)
def start_block(out, c0, nc, m, s):
    """The one-pass log-sum-exp of rows c0..c0+nc-1 started: out rows 0, running maxima m = -inf, sums s = 0."""
    for b in range(nc):
        m[b] = -np.inf
        s[b] = 0.0
        for i in range(out.shape[1]):
            out[c0 + b, i] = 0.0


@nb.njit(cache=True)
def stream_logsumexp(out, c0, nc, u, lk, m, s):
    """One component's pass of the one-pass log-sum-exp of rows c0..c0+nc-1.

    With running maxima m (nc,) and sums s = sum_j exp(l_j - m): out[c0 + b] <- c out[c0 + b] - w u[b], where a
    new maximum l_k > m rescales what was accumulated (c = exp(m - l_k), w = 1) and otherwise c = 1,
    w = exp(l_k - m). Dividing by s at the end gives -sum_k gamma_k u_k, gamma = softmax(l).
    """
    d = u.shape[1]
    for b in range(nc):
        if lk[b] > m[b]:
            c = math.exp(m[b] - lk[b])
            s[b] = s[b] * c + 1.0
            for i in range(d):
                out[c0 + b, i] = out[c0 + b, i] * c - u[b, i]
            m[b] = lk[b]
        else:
            w = math.exp(lk[b] - m[b])
            s[b] += w
            for i in range(d):
                out[c0 + b, i] -= w * u[b, i]

