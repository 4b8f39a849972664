"""One-dimensional laws: `Law1D` (CDF, density, raw moments, quantiles) and the raw moments of a Gaussian mixture.

The closed-form targets give their exact marginals as `Law1D` (``marginal_law(i)``), and the one-sample tests of
`sdekit.validate` test samples against them; this module sits below both (it needs only NumPy), so the targets
never import the validation package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ArrayFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Law1D:
    """A 1-D law: cdf F(z) (required), density f(z), raw moments E[X^k], k = 1..4 (when known).

    ``moments`` holds (E X, E X^2, E X^3, E X^4) or is empty; it lets the tests report the
    standardized bias of the sample mean, (xbar - E X) / (sd / sqrt(N)).
    """

    cdf: ArrayFn
    pdf: ArrayFn | None = None
    moments: tuple[float, ...] = ()
    label: str = "law"

    @property
    def mean(self) -> float:
        """E X (nan when unknown)."""
        return self.moments[0] if self.moments else float("nan")

    @property
    def sd(self) -> float:
        """sqrt(E X^2 - (E X)^2) (nan when unknown)."""
        if len(self.moments) < 2:
            return float("nan")
        return float(np.sqrt(max(self.moments[1] - self.moments[0] ** 2, 0.0)))

    def ppf(self, q: np.ndarray, iterations: int = 80) -> np.ndarray:
        """Quantiles F^{-1}(q) by vectorised bisection on the CDF (for QQ plots)."""
        q = np.asarray(q, dtype=float)
        scale = self.sd if np.isfinite(self.sd) and self.sd > 0 else 1.0
        centre = self.mean if np.isfinite(self.mean) else 0.0
        lo = np.full(q.shape, centre - scale)
        hi = np.full(q.shape, centre + scale)
        for _ in range(200):  # bracket: widen until F(lo) <= q <= F(hi)
            bad_lo = self.cdf(lo) > q
            bad_hi = self.cdf(hi) < q
            if not (bad_lo.any() or bad_hi.any()):
                break
            width = hi - lo
            lo = np.where(bad_lo, lo - width, lo)
            hi = np.where(bad_hi, hi + width, hi)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid) < q
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return 0.5 * (lo + hi)


def gaussian_raw_moments(mean: np.ndarray, var: np.ndarray, weights: np.ndarray) -> tuple[float, ...]:
    """E X^k, k = 1..4, of sum_k w_k N(m_k, v_k): m, m^2 + v, m^3 + 3 m v, m^4 + 6 m^2 v + 3 v^2."""
    m, v, w = (np.asarray(a, dtype=float) for a in (mean, var, weights))
    return (float(w @ m), float(w @ (m**2 + v)), float(w @ (m**3 + 3 * m * v)),
            float(w @ (m**4 + 6 * m**2 * v + 3 * v**2)))
