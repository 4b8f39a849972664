"""backend='torch', solver='milstein' on a Stratonovich SDE with g'' != 0 keeps strong order 1.

torchsde's derivative-free Stratonovich Milstein differences g one-sidedly (error (g''g^2/4) sqrt(h) dW^2, mean
O(h^1.5) per step); the backend runs torchsde's autograd Milstein instead. Deterministic (fixed seed, same
Brownian increments as the Numba backend), against the exact solution X_T = sinh(asinh x0 + mu T + a W_T) of
dX = sqrt(1 + X^2) (mu dt + a o dW) (Kloeden & Platen 1992, §4.4). Measured when this test was written: RMS error
at 64 / 256 steps 0.0351 / 0.0108 (ratio 3.26, numba's milstein 0.0110 at 256); the one-sided update (the planted
bug, torchsde's grad_free option) gives 0.0407 / 0.0172 (ratio 2.37) and fails both checks.
"""

from __future__ import annotations

import numpy as np
import pytest

import sdekit
from sdekit.math import sqrt
from tests.problems import BROWNIAN_1D

torch = pytest.importorskip("torch")

N, SEED = 500, 4


def sinh_drift(x, t, p):
    return p[0] * sqrt(1.0 + x * x)


def sinh_noise(x, t, p):
    return p[1] * sqrt(1.0 + x * x)


SINH = sdekit.SDE(sinh_drift, sinh_noise, 1, noise="scalar", calculus="stratonovich", params=np.array([0.5, 1.0]))
W = BROWNIAN_1D  # dX = dW, scalar noise: W_T of the same seed


def rms_error(steps: int, backend: str) -> float:
    w_t = sdekit.simulate(W, 0.0, (0.0, 1.0), steps=steps, n_paths=N, seed=SEED, save_brownian=True).ws[-1, :, 0]
    x0 = torch.zeros(1, dtype=torch.float64) if backend == "torch" else 0.0
    sol = sdekit.simulate(SINH, x0, (0.0, 1.0), steps=steps, n_paths=N, seed=SEED, solver="milstein",
                          backend=backend)
    final = sol.final.numpy() if backend == "torch" else sol.final
    assert not (backend == "torch" and sol.final.requires_grad)  # no graph dragged over the steps
    return float(np.sqrt(np.mean((final[:, 0] - np.sinh(0.5 + w_t)) ** 2)))


def test_stratonovich_milstein_on_torch_keeps_order_one():
    coarse, fine = rms_error(64, "torch"), rms_error(256, "torch")
    assert coarse / fine > 2.8  # order > 0.74 over a factor 4 in h; the one-sided update gives 2.37
    assert abs(fine / rms_error(256, "numba") - 1.0) < 0.1  # the one-sided update is 56 % worse
