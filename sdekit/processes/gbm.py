"""Geometric Brownian motion dX = mu X dt + sigma X dW (componentwise), Itô or Stratonovich."""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from sdekit.errors import SDEKitError
from sdekit.sde import SDE


@nb.njit(cache=True)
def gbm_drift(x, t, p):
    """f(x) = mu x; p = [mu, sigma]."""
    return p[0] * x


@nb.njit(cache=True)
def gbm_diffusion(x, t, p):
    """g(x) = sigma x (diagonal noise); p = [mu, sigma]."""
    return p[1] * x


class GeometricBrownianMotion:
    """dX = mu X dt + sigma X dW (Itô) or sigma X o dW (Stratonovich), componentwise in R^d.

    Itô: X_t = X_0 exp((mu - sigma^2/2) t + sigma W_t), E X_t = X_0 e^{mu t},
    Var X_t = X_0^2 e^{2 mu t} (e^{sigma^2 t} - 1). Stratonovich: X_t = X_0 exp(mu t + sigma W_t),
    i.e. Itô with drift mu + sigma^2 / 2.
    """

    def __init__(self, mu: float, sigma: float, calculus: str = "ito", dim: int = 1):
        self.mu, self.sigma = float(mu), float(sigma)
        if not (np.isfinite(self.mu) and np.isfinite(self.sigma)):
            raise SDEKitError(f"mu and sigma must be finite; got {mu!r}, {sigma!r}")
        self.calculus = calculus
        self.sde = SDE(gbm_drift, gbm_diffusion, dim=dim, noise="diagonal", calculus=calculus,
                       params=[self.mu, self.sigma], name=f"gbm_{calculus}")

    @property
    def ito_mu(self) -> float:
        """The drift rate of the equivalent Itô equation."""
        return self.mu + (0.5 * self.sigma**2 if self.calculus == "stratonovich" else 0.0)

    def exact(self, x0: Any, t: float, w: Any) -> np.ndarray:
        """The strong solution X_t = X_0 exp((mu_ito - sigma^2/2) t + sigma W_t)."""
        return np.asarray(x0) * np.exp((self.ito_mu - 0.5 * self.sigma**2) * t + self.sigma * np.asarray(w))

    def log_law(self, x0: float, t: float) -> tuple[float, float]:
        """(mean, variance) of log X_t: log X_0 + (mu_ito - sigma^2/2) t and sigma^2 t."""
        return float(np.log(x0) + (self.ito_mu - 0.5 * self.sigma**2) * t), self.sigma**2 * t

    def moments(self, x0: float, t: float) -> tuple[float, float]:
        """(E X_t, Var X_t)."""
        m = x0 * np.exp(self.ito_mu * t)
        return float(m), float(m**2 * np.expm1(self.sigma**2 * t))

    def euler_maruyama_moments(self, x0: float, h: float, steps: int) -> tuple[float, float]:
        """Exact (E X_n, E X_n^2) of Euler–Maruyama: x0 (1 + mu h)^n and x0^2 ((1 + mu h)^2 + sigma^2 h)^n."""
        return x0 * (1 + self.ito_mu * h) ** steps, x0**2 * ((1 + self.ito_mu * h) ** 2 + self.sigma**2 * h) ** steps
