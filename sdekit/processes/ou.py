"""Ornstein–Uhlenbeck dX = -A X dt + B dW and Brownian motion, with their exact laws."""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
import scipy.linalg as sla

from sdekit.errors import SDEKitError
from sdekit.sde import SDE


@nb.njit(cache=True)
def ou_drift(x, t, p):
    """f(x) = -A x for each row; p = (A, B)."""
    a = p[0]
    n, d = x.shape
    out = np.empty((n, d))
    for r in range(n):
        for i in range(d):
            s = 0.0
            for j in range(d):
                s -= a[i, j] * x[r, j]
            out[r, i] = s
    return out


@nb.njit(cache=True)
def ou_diffusion(x, t, p):
    """g = B, the (d, m) noise matrix; p = (A, B)."""
    return p[1]


@nb.njit(cache=True)
def zero_drift(x, t, p):
    """f = 0."""
    return 0.0


@nb.njit(cache=True)
def constant_diffusion(x, t, p):
    """g = p[0] (isotropic additive noise)."""
    return p[0]


def _matrix(v: Any, name: str, shape0: int | None = None) -> np.ndarray:
    arr = np.atleast_2d(np.asarray(v, dtype=float))
    if arr.ndim != 2 or not np.all(np.isfinite(arr)):
        raise SDEKitError(f"{name} must be a finite scalar or matrix; got {v!r}")
    if shape0 is not None and arr.shape[0] != shape0:
        raise SDEKitError(f"{name} must have {shape0} rows; got shape {arr.shape}")
    return np.ascontiguousarray(arr)


class OrnsteinUhlenbeck:
    """dX = -A X dt + B dW in R^d with W in R^m; Q = B B^T.

    Transition law X_t | X_0 ~ N(e^{-At} X_0, Sigma_t), Sigma_t = int_0^t e^{-As} Q e^{-A^T s} ds,
    computed by Van Loan's block exponential; stationary N(0, Sigma_inf) with
    A Sigma_inf + Sigma_inf A^T = Q when Re eig(A) > 0.
    """

    def __init__(self, A: Any, B: Any):
        self.A = _matrix(A, "A")
        d = self.A.shape[0]
        if self.A.shape != (d, d):
            raise SDEKitError(f"A must be square; got shape {self.A.shape}")
        self.B = _matrix(B, "B", d)
        self.dim, self.m = d, self.B.shape[1]
        self.Q = self.B @ self.B.T
        self.sde = SDE(ou_drift, ou_diffusion, dim=d, noise="additive", brownian_dim=self.m,
                       params=(self.A, self.B), name="ornstein_uhlenbeck")

    def transition(self, x0: Any, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(mean, cov) of X_t given X_0 = x0: e^{-At} x0 and Sigma_t.

        Sigma_tau = G22^T G12 with G = exp(tau [[A, Q], [0, -A^T]]) (Van Loan) on a short tau = t / 2^k
        (|A| tau <= 1/2), then k doublings Sigma_{2 tau} = e^{-A tau} Sigma_tau e^{-A^T tau} + Sigma_tau, which
        avoids the cancellation of the one-shot block exponential at large t.
        """
        d = self.dim
        t = abs(float(t))
        k = max(0, int(np.ceil(np.log2(max(np.linalg.norm(self.A, 2) * t, 1e-300) / 0.5))))
        tau = t / 2**k
        block = np.zeros((2 * d, 2 * d))
        block[:d, :d] = self.A
        block[:d, d:] = self.Q
        block[d:, d:] = -self.A.T
        g = sla.expm(tau * block)
        decay = g[d:, d:].T
        cov = decay @ g[:d, d:]
        for _ in range(k):
            cov = decay @ cov @ decay.T + cov
            decay = decay @ decay
        return np.asarray(x0, dtype=float) @ decay.T, 0.5 * (cov + cov.T)

    def stationary_cov(self) -> np.ndarray:
        """Sigma_inf solving A S + S A^T = Q (needs Re eig(A) > 0)."""
        if np.any(np.linalg.eigvals(self.A).real <= 0):
            raise SDEKitError("A has an eigenvalue with non-positive real part: no stationary law")
        s = sla.solve_continuous_lyapunov(self.A, self.Q)
        return 0.5 * (s + s.T)

    def euler_maruyama_law(self, mean0: Any, cov0: Any, h: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact law of Euler–Maruyama after `steps` steps: m' = M m, S' = M S M^T + |h| Q, M = I - hA."""
        mmat = np.eye(self.dim) - h * self.A
        mean = np.asarray(mean0, dtype=float).copy()
        cov = np.asarray(cov0, dtype=float).copy()
        for _ in range(steps):
            mean = mean @ mmat.T
            cov = mmat @ cov @ mmat.T + abs(h) * self.Q
        return mean, cov


class BrownianMotion:
    """dX = sigma dW in R^d: X_t | X_0 ~ N(X_0, sigma^2 t I)."""

    def __init__(self, dim: int = 1, sigma: float = 1.0):
        self.sigma = float(sigma)
        if not np.isfinite(self.sigma) or self.sigma <= 0:
            raise SDEKitError(f"sigma must be a positive number; got {sigma!r}")
        self.sde = SDE(zero_drift, constant_diffusion, dim=dim, noise="additive", params=[self.sigma],
                       name="brownian_motion")
        self.dim = self.sde.dim

    def transition(self, x0: Any, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(mean, cov) = (x0, sigma^2 |t| I)."""
        return np.asarray(x0, dtype=float), self.sigma**2 * abs(t) * np.eye(self.dim)
