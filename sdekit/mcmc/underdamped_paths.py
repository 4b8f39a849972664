"""Underdamped-Langevin splittings driven by one exactly coupled Brownian path: strong errors at nested steps.

For the strong order of BAOAB, OBABO, UBU and ShOULD on dX = P dt, dP = -grad U(X) dt - gamma P dt
+ sqrt(2 gamma) dW (M = beta = 1) every step size must see the SAME Brownian path, including the integrals
each scheme needs over its own (half-)steps: the exponentially weighted increment E = int e^{-gamma (b - r)}
dW_r over [a, b] (the exact OU noise of O and U) and the space-time / space-time-time Levy areas H, K of ShOULD
(definitions in `sdekit.mcmc.underdamped_high_order`). All four are linear functionals int phi(r) dW_r, so
each finest cell [0, delta] draws the Gaussian vector (W, I1, I2, E) with phi = 1, delta - r,
(delta^2 - r^2)/2, e^{-gamma (delta - r)} (I1 = int W_t dt, I2 = int t W_t dt; exact covariance
int phi_i phi_j dr by Gauss-Legendre quadrature, factor by eigendecomposition) and cells are merged exactly:
for [a, b] + [b, c] with lengths l, r,

    W = W_L + W_R,   I1 = I1_L + r W_L + I1_R,   I2 = I2_L + W_L (l r + r^2 / 2) + l I1_R + I2_R,
    E = e^{-gamma r} E_L + E_R,

and over a step of length h: H = I1 / h - W / 2, K = (h I1 / 2 - I2 + h^2 W / 12) / h^2 (so H ~ N(0, h/12),
K ~ N(0, h/720), independent of W). The solvers here are NumPy, vectorised over paths, and follow the compiled
steps' formulas with these integrals in place of the normals.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.mcmc.underdamped_high_order import should_coefficients

__all__ = ["PATH_SCHEMES", "brownian_levels", "cell_covariance", "merge_cells", "should_update", "solve_on_path",
           "strong_sq_errors"]

PATH_SCHEMES = ("baoab", "obabo", "ubu", "should")
Grad = Callable[[np.ndarray], np.ndarray]


def cell_covariance(delta: float, gamma: float) -> np.ndarray:
    """Covariance of (W, I1, I2, E) over one cell of length delta: int_0^delta phi_i(r) phi_j(r) dr."""
    nodes, weights = np.polynomial.legendre.leggauss(40)
    r = 0.5 * delta * (nodes + 1.0)
    phi = np.stack([np.ones_like(r), delta - r, 0.5 * (delta**2 - r**2), np.exp(-gamma * (delta - r))])
    return (phi * (0.5 * delta * weights)) @ phi.T


def brownian_levels(seed: int, n_paths: int, n_cells: int, delta: float, gamma: float) -> list[dict]:
    """Level k = cells of length delta 2^k (k = 0 .. log2 n_cells): dicts of W, I1, I2, E, each (n_paths, cells)."""
    if n_cells & (n_cells - 1):
        raise SDEKitError(f"n_cells must be a power of 2; got {n_cells}")
    lam, vecs = np.linalg.eigh(cell_covariance(delta, gamma))
    root = vecs * np.sqrt(np.clip(lam, 0.0, None))
    z = np.random.default_rng(seed).standard_normal((n_paths, n_cells, 4))
    cells = z @ root.T
    level = {"W": cells[..., 0], "I1": cells[..., 1], "I2": cells[..., 2], "E": cells[..., 3], "len": delta}
    levels = [level]
    while level["W"].shape[1] > 1:
        level = merge_cells({k: v[:, 0::2] for k, v in level.items() if k != "len"},
                            {k: v[:, 1::2] for k, v in level.items() if k != "len"}, level["len"], gamma)
        levels.append(level)
    return levels


def merge_cells(left: dict, right: dict, length: float, gamma: float) -> dict:
    """The integrals (W, I1, I2, E) over [a, c] from those over [a, b] (``left``) and [b, c] (``right``),
    both of length ``length`` (module doc); "len" = 2 length."""
    lw = left["W"]
    return {"W": lw + right["W"], "I1": left["I1"] + length * lw + right["I1"],
            "I2": left["I2"] + lw * 1.5 * length**2 + length * right["I1"] + right["I2"],
            "E": math.exp(-gamma * length) * left["E"] + right["E"], "len": 2 * length}


def _baoab(grad: Grad, x, p, h, gamma, step, halves):
    c = math.exp(-gamma * h)
    p = p - 0.5 * h * grad(x)
    x = x + 0.5 * h * p
    p = c * p + math.sqrt(2 * gamma) * step["E"]
    x = x + 0.5 * h * p
    return x, p - 0.5 * h * grad(x)


def _obabo(grad: Grad, x, p, h, gamma, step, halves):
    c = math.exp(-0.5 * gamma * h)
    p = c * p + math.sqrt(2 * gamma) * halves["E"][:, 0]
    p = p - 0.5 * h * grad(x)
    x = x + h * p
    p = p - 0.5 * h * grad(x)
    return x, c * p + math.sqrt(2 * gamma) * halves["E"][:, 1]


def _ubu(grad: Grad, x, p, h, gamma, step, halves):
    c = math.exp(-0.5 * gamma * h)
    root = math.sqrt(2 * gamma)
    for j in (0, 1):
        e, w = halves["E"][:, j], halves["W"][:, j]
        x = x + (1 - c) / gamma * p + root * (w - e) / gamma
        p = c * p + root * e
        if j == 0:
            p = p - h * grad(x)
    return x, p


def should_update(grad: Grad, x: np.ndarray, p: np.ndarray, h: float, gamma: float, w: np.ndarray, hh: np.ndarray,
                  kk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One ShOULD step (M = beta = 1) of (x, p) with the Brownian increment w and Levy areas hh = H, kk = K
    of the step (the formula of `sdekit.mcmc.underdamped_high_order`, coefficients from `should_coefficients`)."""
    coef = np.empty((13, 1))
    should_coefficients(gamma, h, np.ones(1), 1.0, coef)
    e1, e_half, a_half, b_half, a1, b1, aa, c_h, c_k = coef[:9, 0]
    rho = math.sqrt(2 * gamma)
    f0 = grad(x)
    v1 = p + rho * (hh + 6 * kk)
    x1 = x + a_half * v1 + b_half * (-h * f0 + rho * (w - 12 * kk))
    f1 = grad(x1)
    shift = c_h * hh + c_k * kk
    x_out = x + a1 * p - h * b1 * (f0 + 2 * f1) / 3 + rho * (b1 * w + shift)
    f_out = grad(x_out)
    p_out = e1 * p - h * (e1 * f0 / 6 + 2 * e_half * f1 / 3 + f_out / 6) + rho * (aa * w - gamma * shift)
    return x_out, p_out


def _should(grad: Grad, x, p, h, gamma, step, halves):
    w = step["W"]
    hh = step["I1"] / h - 0.5 * w
    kk = (0.5 * h * step["I1"] - step["I2"] + h * h * w / 12.0) / h**2
    return should_update(grad, x, p, h, gamma, w, hh, kk)


_STEPS = {"baoab": _baoab, "obabo": _obabo, "ubu": _ubu, "should": _should}


def solve_on_path(scheme: str, grad: Grad, x0: np.ndarray, p0: np.ndarray, gamma: float, levels: list[dict],
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """Terminal (x, p) of ``scheme`` (a key of PATH_SCHEMES) with steps = the cells of ``levels[k]`` (k >= 1:
    the half steps are the cells of level k - 1), one coordinate per path (x0, p0: (n_paths,))."""
    if scheme not in _STEPS:
        raise SDEKitError(f"scheme must be one of {PATH_SCHEMES}; got {scheme!r}")
    if k < 1:
        raise SDEKitError(f"k must be >= 1 (the half steps are level k - 1's cells); got {k}")
    level, half = levels[k], levels[k - 1]
    h = level["len"]
    x, p = np.array(x0, dtype=float), np.array(p0, dtype=float)
    for n in range(level["W"].shape[1]):
        step = {key: level[key][:, n] for key in ("W", "I1", "I2", "E")}
        halves = {key: half[key][:, 2 * n:2 * n + 2] for key in ("W", "E")}
        x, p = _STEPS[scheme](grad, x, p, h, gamma, step, halves)
    return x, p


def strong_sq_errors(scheme: str, grad: Grad, x0: np.ndarray, p0: np.ndarray, gamma: float, levels: list[dict],
                     ks: list[int], reference: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(hs, sq): the step sizes of levels ``ks`` and the squared errors |x_h - x_ref|^2 + |p_h - p_ref|^2 at
    the end time, (len(ks), n_paths), against ``reference`` = (x, p) on the same path (`sdekit.validate.fit_order`
    fits the order)."""
    hs, sq = [], []
    for k in ks:
        x, p = solve_on_path(scheme, grad, x0, p0, gamma, levels, k)
        hs.append(levels[k]["len"])
        sq.append((x - reference[0]) ** 2 + (p - reference[1]) ** 2)
    return np.array(hs), np.array(sq)
