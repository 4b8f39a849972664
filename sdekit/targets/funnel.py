"""Neal's funnel (Neal 2003, "Slice sampling", Ann. Stat.): v = x_0 ~ N(0, scale^2) and
x_i | v ~ N(0, e^v), i = 1..d-1, i.e. pi(x) = exp(-U(x)) / Z with

    U(x) = v^2 / (2 scale^2) + sum_{i>=1} x_i^2 e^{-v} / 2 + (d - 1) v / 2,
    log Z = 1/2 log(2 pi scale^2) + (d - 1)/2 log(2 pi).

The neck (v << 0) is narrow and the mouth wide: a standard stress test for MCMC step sizes. The
marginal of x_i (i >= 1) is the scale mixture E_v[N(0, e^v)], evaluated by the trapezoidal rule
over v (exponentially convergent here: the integrands are analytic in the strip |Im v| < pi/2).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from sdekit.errors import SDEKitError
from sdekit.targets.double_well import ClosedFormTarget, check_dim, check_index, finite_scalar
from sdekit.targets.gaussian import Seed, readonly, sample_count
from sdekit.targets.law1d import Law1D, gaussian_raw_moments

LOG_2PI = math.log(2.0 * math.pi)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# x_i marginals: trapezoidal rule over v in [-V_SDS scale, V_SDS scale] with step min(V_STEP, scale / 4)
V_SDS = 11.0
V_STEP = 0.25
CHUNK = 8192


@nb.njit(cache=True)
def funnel_energy(x, p, grad):
    """U(x) = v^2 / (2 scale^2) + sum_{i>=1} x_i^2 e^{-v} / 2 + (d - 1) v / 2, v = x_0, p = ([scale],);
    dU/dv = v / scale^2 - sum_{i>=1} x_i^2 e^{-v} / 2 + (d - 1) / 2, dU/dx_i = x_i e^{-v}."""
    scale = p[0][0]
    d = x.shape[0]
    v = x[0]
    ev = math.exp(-v)
    ss = 0.0
    for i in range(1, d):
        ss += x[i] * x[i]
        grad[i] = x[i] * ev
    grad[0] = v / (scale * scale) - 0.5 * ss * ev + 0.5 * (d - 1)
    return 0.5 * v * v / (scale * scale) + 0.5 * ss * ev + 0.5 * (d - 1) * v


class NealFunnel(ClosedFormTarget):
    """Neal's funnel on R^d, d >= 2: v = x_0 ~ N(0, scale^2), x_i | v ~ N(0, e^v) for i = 1..d-1.

    Attributes:
      dim: d; scale: the standard deviation of v.
      params: ([scale],), contiguous float64: the ``p`` of ``energy_fn`` (`funnel_energy`).
      log_normalizer: log Z = 1/2 log(2 pi scale^2) + (d - 1)/2 log(2 pi).
    """

    def __init__(self, dim: int = 10, scale: float = 3.0) -> None:
        d = check_dim(dim, 2)
        sc = finite_scalar(scale, "scale")
        if not sc > 0:
            raise SDEKitError(f"scale must be positive; got {sc}")
        self.scale = sc
        super().__init__(funnel_energy, d, (np.array([self.scale]),), name="funnel")
        self.log_normalizer: float = 0.5 * math.log(2.0 * math.pi * self.scale**2) + 0.5 * (d - 1) * LOG_2PI
        # E g(v) = sum_k w_k g(v_k), v ~ N(0, scale^2): trapezoidal nodes and weights h phi(v_k / scale) / scale
        h = min(V_STEP, self.scale / 4.0)
        m = int(math.ceil(V_SDS * self.scale / h))
        self._v = h * np.arange(-m, m + 1)
        self._log_w = math.log(h * INV_SQRT_2PI / self.scale) - 0.5 * (self._v / self.scale) ** 2

    def __repr__(self) -> str:
        return f"NealFunnel(dim={self.dim}, scale={self.scale:g})"

    def sample(self, n: int, seed: Seed = None) -> np.ndarray:
        """n exact i.i.d. draws, shape (n, d): v = scale z_0, x_i = e^{v/2} z_i, z ~ N(0, I) from
        np.random.default_rng(seed)."""
        n = sample_count(n)
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, self.dim))
        v = self.scale * z[:, 0]
        out = np.empty((n, self.dim))
        out[:, 0] = v
        out[:, 1:] = np.exp(0.5 * v)[:, None] * z[:, 1:]
        return out

    def _mixture(self, z: ArrayLike, density: bool) -> np.ndarray | float:
        """F(z) = E_v[Phi(z e^{-v/2})] or f(z) = E_v[phi(z e^{-v/2}) e^{-v/2}], v ~ N(0, scale^2), by
        the trapezoidal rule over v; F is evaluated as 1/2 + sign(z) E_v[Phi(|z| e^{-v/2}) - 1/2] (symmetric)."""
        z = np.asarray(z, dtype=np.float64)
        flat = z.reshape(-1)
        out = np.empty(flat.shape)
        for c in range(0, flat.size, CHUNK):
            with np.errstate(divide="ignore", over="ignore"):  # z = 0: log|z| = -inf, y = 0; y = inf is fine
                y = np.exp(np.log(np.abs(flat[c:c + CHUNK]))[:, None] - 0.5 * self._v[None, :])
                if density:  # sum_k exp(log w_k - v_k / 2 - y^2 / 2) / sqrt(2 pi), overflow-free
                    out[c:c + CHUNK] = INV_SQRT_2PI * np.sum(
                        np.exp(self._log_w[None, :] - 0.5 * self._v[None, :] - 0.5 * y * y), axis=1)
                else:
                    half = (ndtr(y) - 0.5) @ np.exp(self._log_w)
                    out[c:c + CHUNK] = np.clip(0.5 + np.sign(flat[c:c + CHUNK]) * half, 0.0, 1.0)
        out = out.reshape(z.shape)
        return float(out) if out.ndim == 0 else out

    def marginal_law(self, i: int) -> Law1D:
        """The exact law of x_i (a `sdekit.targets.law1d.Law1D`): i = 0: N(0, scale^2); i >= 1: the scale mixture
        F(z) = E_v[Phi(z e^{-v/2})], f(z) = E_v[phi(z e^{-v/2}) e^{-v/2}] (trapezoidal rule over v, ~1e-12), with
        E X = E X^3 = 0, E X^2 = e^{scale^2/2}, E X^4 = 3 e^{2 scale^2}."""
        i = check_index(i, self.dim)
        sd = self.scale
        if i == 0:
            def cdf0(z: ArrayLike) -> np.ndarray:
                return ndtr(np.asarray(z, dtype=np.float64) / sd)

            def pdf0(z: ArrayLike) -> np.ndarray:
                return INV_SQRT_2PI / sd * np.exp(-0.5 * (np.asarray(z, dtype=np.float64) / sd) ** 2)

            moments = gaussian_raw_moments(np.zeros(1), np.array([sd * sd]), np.ones(1))
            return Law1D(cdf0, pdf0, moments, f"NealFunnel v = x[0] ~ N(0, {sd * sd:g})")
        with np.errstate(over="ignore"):
            moments = (0.0, float(np.exp(0.5 * sd * sd)), 0.0, 3.0 * float(np.exp(2.0 * sd * sd)))
        if not all(np.isfinite(moments)):  # E X^4 overflows float64 for scale > ~18.8
            moments = ()
        return Law1D(lambda z: self._mixture(z, False), lambda z: self._mixture(z, True), moments,
                     f"NealFunnel x[{i}] (scale={sd:g})")

    @property
    def mean(self) -> np.ndarray:
        """E x = 0, shape (d,)."""
        return readonly(np.zeros(self.dim))

    @property
    def cov(self) -> np.ndarray:
        """Cov x = diag(scale^2, e^{scale^2/2}, ..., e^{scale^2/2}) (E x_i^2 = E e^v; the x_i are uncorrelated)."""
        with np.errstate(over="ignore"):
            var = float(np.exp(0.5 * self.scale**2))
        return readonly(np.diag([self.scale**2] + [var] * (self.dim - 1)))
