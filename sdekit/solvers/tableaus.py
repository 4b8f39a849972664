"""Integrators as data: Butcher tableaus (ODE) and SRA tableaus (additive-noise SDE).

Each tableau checks itself at construction (row sums equal c, weights sum to 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_TOL = 1e-14


def _arr(rows, shape=None) -> np.ndarray:
    a = np.array(rows, dtype=np.float64)
    if shape is not None:
        a = a.reshape(shape)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class ButcherTableau:
    """Explicit Runge–Kutta method: k_s = v(x + h sum_{j<s} a_sj k_j, t + c_s h), x' = x + h sum_s b_s k_s.

    b_low (optional) is an embedded lower-order solution; err = h sum_s (b_s - b_low_s) k_s.
    """

    name: str
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    order: int
    b_low: np.ndarray | None = None
    fsal: bool = False

    def __post_init__(self) -> None:
        s = self.stages
        if self.a.shape != (s, s) or self.c.shape != (s,):
            raise ValueError(f"{self.name}: a must be ({s},{s}) and c ({s},)")
        if np.any(np.triu(self.a) != 0):
            raise ValueError(f"{self.name}: a must be strictly lower triangular (explicit method)")
        if not np.allclose(self.a.sum(axis=1), self.c, atol=_TOL, rtol=0):
            raise ValueError(f"{self.name}: row sums of a must equal c")
        if abs(self.b.sum() - 1.0) > _TOL:
            raise ValueError(f"{self.name}: weights b must sum to 1")
        if self.b_low is not None and abs(self.b_low.sum() - 1.0) > _TOL:
            raise ValueError(f"{self.name}: embedded weights must sum to 1")

    @property
    def stages(self) -> int:
        return int(self.b.shape[0])

    @property
    def b_err(self) -> np.ndarray:
        """Weights of the local error estimate, b - b_low."""
        return self.b - self.b_low if self.b_low is not None else np.zeros_like(self.b)


@dataclass(frozen=True)
class SRATableau:
    """Rößler's SRA method for additive noise dX = f(X, t) dt + g(t) dW.

    H_i = x + h sum_{j<i} A0_ij f(H_j, t + c0_j h) + sum_{j<i} B0_ij g(t + c1_j h) I10 / h,
    x' = x + h sum_i alpha_i f(H_i, t + c0_i h) + sum_i (beta1_i I1 + beta2_i I10 / h) g(t + c1_i h),
    with I1 = dW and I10 = int int dW ds. Rößler (2010), SIAM J. Numer. Anal. 48(3), 922–952.
    """

    name: str
    c0: np.ndarray
    c1: np.ndarray
    a0: np.ndarray
    b0: np.ndarray
    alpha: np.ndarray
    beta1: np.ndarray
    beta2: np.ndarray

    def __post_init__(self) -> None:
        s = self.stages
        for nm in ("c0", "c1", "alpha", "beta1", "beta2"):
            if getattr(self, nm).shape != (s,):
                raise ValueError(f"{self.name}: {nm} must have {s} entries")
        if not np.allclose(self.a0.sum(axis=1), self.c0, atol=_TOL, rtol=0):
            raise ValueError(f"{self.name}: row sums of A0 must equal c0")
        if abs(self.alpha.sum() - 1) > _TOL or abs(self.beta1.sum() - 1) > _TOL or abs(self.beta2.sum()) > _TOL:
            raise ValueError(f"{self.name}: need sum(alpha) = sum(beta1) = 1 and sum(beta2) = 0")

    @property
    def stages(self) -> int:
        return int(self.alpha.shape[0])


EULER = ButcherTableau("euler", _arr([[0.0]]), _arr([1.0]), _arr([0.0]), order=1)
HEUN2 = ButcherTableau("heun", _arr([[0, 0], [1, 0]]), _arr([0.5, 0.5]), _arr([0, 1]), order=2)
MIDPOINT = ButcherTableau("midpoint", _arr([[0, 0], [0.5, 0]]), _arr([0, 1]), _arr([0, 0.5]), order=2)
RK4 = ButcherTableau(
    "rk4",
    _arr([[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1, 0]]),
    _arr([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    _arr([0, 0.5, 0.5, 1]),
    order=4,
)
# Dormand & Prince (1980), J. Comput. Appl. Math. 6(1), 19–26: order 5 with embedded order 4, FSAL.
DOPRI5 = ButcherTableau(
    "dopri5",
    _arr([
        [0, 0, 0, 0, 0, 0, 0],
        [1 / 5, 0, 0, 0, 0, 0, 0],
        [3 / 40, 9 / 40, 0, 0, 0, 0, 0],
        [44 / 45, -56 / 15, 32 / 9, 0, 0, 0, 0],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0, 0, 0],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0, 0],
        [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0],
    ]),
    _arr([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0]),
    _arr([0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1]),
    order=5,
    b_low=_arr([5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]),
    fsal=True,
)
# Rößler (2010), Table 5.1 "SRA1": strong order 1.5 for additive noise, weak order 2.
SRA1 = SRATableau(
    "sra1",
    c0=_arr([0, 3 / 4]),
    c1=_arr([1, 0]),
    a0=_arr([[0, 0], [3 / 4, 0]]),
    b0=_arr([[0, 0], [3 / 2, 0]]),
    alpha=_arr([1 / 3, 2 / 3]),
    beta1=_arr([1, 0]),
    beta2=_arr([-1, 1]),
)
