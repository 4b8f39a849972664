"""Normalised reference densities q for energy-based models: the noise that short-run and persistent chains start
from (Nijkamp et al. 2019; Du & Mordatch 2019) and the contrast of noise-contrastive estimation (Gutmann &
Hyvärinen 2010, 2012).

A reference is any object with

    sample(n: int, generator: torch.Generator) -> Tensor (n, d)     draws from q with the given generator,
    log_prob(x: Tensor (n, d)) -> Tensor (n,)                        log q(x), normalised.

``torch.distributions`` draw from torch's global generator (their ``sample`` takes no generator), so they are not
references here: the training loops draw everything from one seeded ``torch.Generator``. Two are provided: a
Gaussian N(m, C) and the uniform law on a box.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from sdekit.diffusion.inputs import real_array
from sdekit.errors import SDEKitError

__all__ = ["GaussianReference", "Reference", "UniformBoxReference", "check_reference"]


@runtime_checkable
class Reference(Protocol):
    """A normalised density q with seeded draws: ``sample(n, generator)`` (n, d) and ``log_prob(x)`` (n,)."""

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor: ...

    def log_prob(self, x: torch.Tensor) -> torch.Tensor: ...


def _vector(v: Any, name: str) -> np.ndarray:
    out = real_array(v, name)
    if out.ndim != 1 or out.size < 1 or not np.isfinite(out).all():
        raise SDEKitError(f"{name} must be a finite vector (d,); got shape {out.shape}")
    return out


class GaussianReference:
    """q = N(m, C): x = m + L z with C = L L^T (Cholesky), z ~ N(0, I_d);
    log q(x) = -1/2 |L^{-1}(x - m)|^2 - sum_i log L_ii - d/2 log(2 pi).

    mean: (d,); cov: (d, d) symmetric positive definite, a (d,) vector of variances, or a positive number (c I);
    None means I. dtype: the dtype of the draws (float64 by default; the loops cast to the model's dtype).
    """

    def __init__(self, mean: Any, cov: Any = None, dtype: torch.dtype = torch.float64) -> None:
        m = _vector(mean, "mean")
        d = m.size
        if cov is None:
            c = np.eye(d)
        else:
            c = real_array(cov, "cov")
            if c.ndim == 0:
                c = float(c) * np.eye(d)
            elif c.ndim == 1 and c.shape == (d,):
                c = np.diag(c)
        if c.shape != (d, d) or not np.isfinite(c).all() or not np.allclose(c, c.T, rtol=1e-12, atol=0.0):
            raise SDEKitError(f"cov must be a symmetric ({d}, {d}) matrix, a ({d},) vector of variances or a "
                              f"positive number; got shape {c.shape}")
        try:
            chol = np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            raise SDEKitError("cov must be positive definite (its Cholesky factorisation failed)") from None
        self.dim = d
        self.mean = torch.as_tensor(m, dtype=dtype)
        self.chol = torch.as_tensor(chol, dtype=dtype)
        self._log_norm = float(np.log(np.diag(chol)).sum()) + 0.5 * d * math.log(2.0 * math.pi)

    @classmethod
    def fit(cls, data: Any, jitter: float = 1e-9, dtype: torch.dtype = torch.float64) -> GaussianReference:
        """The Gaussian with the mean and (1/N) covariance of data (N, d) (plus jitter * mean variance on the
        diagonal, so that a degenerate table still gives a density)."""
        x = real_array(data.detach().cpu() if torch.is_tensor(data) else data, "data")
        if x.ndim != 2 or x.shape[0] < 2 or not np.isfinite(x).all():
            raise SDEKitError(f"data must be a finite table (N, d) with N >= 2 to fit a Gaussian reference; got "
                              f"shape {x.shape}")
        m = x.mean(axis=0)
        c = np.atleast_2d(np.cov(x, rowvar=False, bias=True))
        c = 0.5 * (c + c.T) + jitter * max(float(np.trace(c)) / c.shape[0], 1e-300) * np.eye(c.shape[0])
        return cls(m, c, dtype=dtype)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n draws m + L z, z ~ N(0, I) from generator; shape (n, d)."""
        z = torch.randn(n, self.dim, generator=generator, dtype=self.mean.dtype, device=generator.device)
        return self.mean.to(z.device) + z @ self.chol.to(z.device).T

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; m, C) per row of x (n, d); shape (n,), in x's dtype."""
        chol = self.chol.to(x)
        r = torch.linalg.solve_triangular(chol, (x - self.mean.to(x)).T, upper=False)
        return -0.5 * (r * r).sum(dim=0) - self._log_norm


class UniformBoxReference:
    """q = uniform on the box prod_i [low_i, high_i]: log q = -sum_i log(high_i - low_i) inside, -inf outside.

    low, high: (d,) vectors (or numbers with dim) with low < high.
    """

    def __init__(self, low: Any, high: Any, dim: int | None = None, dtype: torch.dtype = torch.float64) -> None:
        lo, hi = real_array(low, "low"), real_array(high, "high")
        if dim is not None:
            lo, hi = np.broadcast_to(lo, (dim,)).copy(), np.broadcast_to(hi, (dim,)).copy()
        lo, hi = _vector(lo, "low"), _vector(hi, "high")
        if lo.shape != hi.shape or not (hi > lo).all():
            raise SDEKitError(f"high must exceed low in every coordinate (shape {lo.shape}); got low={lo}, high={hi}")
        self.dim = lo.size
        self.low = torch.as_tensor(lo, dtype=dtype)
        self.high = torch.as_tensor(hi, dtype=dtype)
        self._log_volume = float(np.log(hi - lo).sum())

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n uniform draws low + (high - low) u, u ~ U[0, 1)^d from generator; shape (n, d)."""
        u = torch.rand(n, self.dim, generator=generator, dtype=self.low.dtype, device=generator.device)
        lo = self.low.to(u.device)
        return lo + (self.high.to(u.device) - lo) * u

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """-log(volume) inside the box, -inf outside; shape (n,)."""
        inside = ((x >= self.low.to(x)) & (x <= self.high.to(x))).all(dim=1)
        out = torch.full(x.shape[:1], -self._log_volume, dtype=x.dtype, device=x.device)
        return out.masked_fill(~inside, -math.inf)


def check_reference(ref: Any, name: str) -> Reference:
    """ref if it has callable ``sample`` and ``log_prob``; an SDEKitError naming it otherwise."""
    if not (callable(getattr(ref, "sample", None)) and callable(getattr(ref, "log_prob", None))):
        raise SDEKitError(f"{name} must have sample(n, generator) and log_prob(x) (e.g. GaussianReference); got "
                          f"{type(ref).__name__}")
    return ref
