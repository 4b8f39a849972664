"""Exact one-step laws of UBU and ShOULD on a harmonic potential (for `sdekit.mcmc.underdamped.splitting_factors`).

On U = omega2 x^2 / 2 with M = beta = 1 both schemes are linear: z' = A z + G xi for z = (x, p) and xi the
step's standard normals in the compiled kernel's draw order (UBU: xi_1, xi_2 of each U half step, k = 4;
ShOULD: the normalised W, H, K, k = 3). UBU's factors are built independently of the kernel's power series:
the U(s) flow and noise covariance come from the matrix exponential of the linear SDE (Van Loan 1978,
"Computing integrals involving the matrix exponential", IEEE TAC 23(3)), factored as the kernel draws it
(Z_p = s_p xi_1, Z_x = k_1 xi_1 + k_2 xi_2). ShOULD's come from its NumPy step `should_update` applied to the
basis vectors (the step is linear here).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

from sdekit.mcmc.underdamped_paths import should_update

__all__ = ["exact_ou_flow", "high_order_factors"]


def exact_ou_flow(gamma: float, s: float) -> tuple[np.ndarray, np.ndarray]:
    """(Phi, Q) of dx = p dt, dp = -gamma p dt + sqrt(2 gamma) dW over time s (M = beta = 1): z(s) = Phi z(0)
    + N(0, Q), by Van Loan's block exponential exp([[-F, S], [0, F^T]] s), S = diag(0, 2 gamma)."""
    f = np.array([[0.0, 1.0], [0.0, -gamma]])
    block = np.zeros((4, 4))
    block[:2, :2] = -f
    block[:2, 2:] = np.diag([0.0, 2.0 * gamma])
    block[2:, 2:] = f.T
    e = scipy.linalg.expm(block * s)
    phi = e[2:, 2:].T
    q = phi @ e[:2, 2:]
    return phi, 0.5 * (q + q.T)


def _ubu_factors(omega2: float, gamma: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    phi, q = exact_ou_flow(gamma, 0.5 * h)
    sp = math.sqrt(q[1, 1])
    k1 = q[0, 1] / sp
    g_half = np.array([[k1, math.sqrt(max(q[0, 0] - k1 * k1, 0.0))], [sp, 0.0]])
    kick = np.array([[1.0, 0.0], [-h * omega2, 1.0]])
    second = phi @ kick
    return second @ phi, np.hstack([second @ g_half, g_half])


def _should_factors(omega2: float, gamma: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    def grad(x):
        return omega2 * x

    zero = np.zeros(1)
    cols = [should_update(grad, np.array([1.0]), zero, h, gamma, zero, zero, zero),
            should_update(grad, zero, np.array([1.0]), h, gamma, zero, zero, zero)]
    a = np.array([[c[0][0], c[1][0]] for c in cols]).T
    scales = (math.sqrt(h), math.sqrt(h / 12.0), math.sqrt(h / 720.0))
    g = np.empty((2, 3))
    for j, scale in enumerate(scales):
        noise = [zero, zero, zero]
        noise[j] = np.array([scale])
        x, p = should_update(grad, zero, zero, h, gamma, *noise)
        g[:, j] = (x[0], p[0])
    return a, g


def high_order_factors(scheme: str, omega2: float, gamma: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, G) of "ubu" or "should" on U = omega2 x^2 / 2 (M = beta = 1): z' = A z + G xi (module doc)."""
    return (_ubu_factors if scheme == "ubu" else _should_factors)(omega2, gamma, h)
