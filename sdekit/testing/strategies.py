"""Hypothesis strategies for bounded, well-conditioned problems (VALIDATION.md §3).

Bounds keep every drawn problem inside the range where the statistical checks have power and
the samplers are stable: d <= 4, mixture weights >= 0.1, covariance eigenvalues in [0.2, 2]
(condition number <= 10), step sizes a fraction in [0.05, 0.5] of the stability limit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from sdekit.errors import SDEKitError
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.validate.checks import check_count, check_number


def seeds() -> st.SearchStrategy[int]:
    """Seeds as data: integers in [0, 2^32 - 1]."""
    return st.integers(0, 2**32 - 1)


def _orthogonal(d: int, seed: int) -> np.ndarray:
    """A Haar-random orthogonal matrix: Q from the QR factorisation of a Gaussian matrix, signs fixed."""
    z = np.random.default_rng(seed).standard_normal((d, d))
    q, r = np.linalg.qr(z)
    return q * np.sign(np.diag(r))


def _dims(min_dim: Any, max_dim: Any) -> None:
    check_count(min_dim, "min_dim")
    check_count(max_dim, "max_dim")
    if min_dim > max_dim:
        raise SDEKitError(f"min_dim must be <= max_dim; got min_dim = {min_dim}, max_dim = {max_dim}")


def _eigs(eig_min: Any, eig_max: Any) -> None:
    lo = check_number(eig_min, "eig_min", minimum=0.0, strict=True)
    if check_number(eig_max, "eig_max") < lo:
        raise SDEKitError(f"eig_min must be <= eig_max; got eig_min = {eig_min}, eig_max = {eig_max}")


def spd_matrices(dim: int, eig_min: float = 0.2, eig_max: float = 2.0) -> st.SearchStrategy[np.ndarray]:
    """Q diag(lambda) Q^T with eigenvalues lambda in [eig_min, eig_max] and Q Haar-random (0 < eig_min <= eig_max,
    dim >= 1; checked when the strategy is built)."""
    check_count(dim, "dim")
    _eigs(eig_min, eig_max)
    return _spd_matrices(int(dim), float(eig_min), float(eig_max))


@st.composite
def _spd_matrices(draw: st.DrawFn, dim: int, eig_min: float, eig_max: float) -> np.ndarray:
    eigs = np.array(draw(st.lists(st.floats(eig_min, eig_max), min_size=dim, max_size=dim)))
    q = _orthogonal(dim, draw(seeds()))
    c = (q * eigs) @ q.T
    return 0.5 * (c + c.T)


def gaussian_targets(min_dim: int = 1, max_dim: int = 4, mean_scale: float = 2.0, eig_min: float = 0.2,
                     eig_max: float = 2.0) -> st.SearchStrategy[Gaussian]:
    """N(mu, Sigma) with d in [min_dim, max_dim], |mu_i| <= mean_scale, eig(Sigma) in [eig_min, eig_max]."""
    _dims(min_dim, max_dim)
    _eigs(eig_min, eig_max)
    check_number(mean_scale, "mean_scale", minimum=0.0)
    return _gaussian_targets(min_dim, max_dim, float(mean_scale), float(eig_min), float(eig_max))


@st.composite
def _gaussian_targets(draw: st.DrawFn, min_dim: int, max_dim: int, mean_scale: float, eig_min: float,
                      eig_max: float) -> Gaussian:
    d = draw(st.integers(min_dim, max_dim))
    mu = np.array(draw(st.lists(st.floats(-mean_scale, mean_scale), min_size=d, max_size=d)))
    return Gaussian(mu, draw(spd_matrices(d, eig_min, eig_max)))


def gaussian_mixtures(min_dim: int = 1, max_dim: int = 4, max_components: int = 3, min_weight: float = 0.1,
                      mean_scale: float = 3.0, eig_min: float = 0.2,
                      eig_max: float = 2.0) -> st.SearchStrategy[GaussianMixture]:
    """sum_k pi_k N(mu_k, S_k): K in [2, max_components], weights >= min_weight, eig(S_k) in [eig_min, eig_max]."""
    _dims(min_dim, max_dim)
    _eigs(eig_min, eig_max)
    check_count(max_components, "max_components", 2)
    check_number(min_weight, "min_weight", minimum=0.0, strict=True)
    check_number(mean_scale, "mean_scale", minimum=0.0)
    if not 0 < min_weight * max_components <= 1:
        raise SDEKitError(f"min_weight * max_components must be in (0, 1]; got {min_weight} * {max_components}")
    return _gaussian_mixtures(min_dim, max_dim, max_components, float(min_weight), float(mean_scale),
                              float(eig_min), float(eig_max))


@st.composite
def _gaussian_mixtures(draw: st.DrawFn, min_dim: int, max_dim: int, max_components: int, min_weight: float,
                       mean_scale: float, eig_min: float, eig_max: float) -> GaussianMixture:
    d = draw(st.integers(min_dim, max_dim))
    k = draw(st.integers(2, max_components))
    raw = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k)))
    # weights = min_weight + (1 - k min_weight) raw / sum(raw): each >= min_weight, sum 1
    raw = raw + 1e-3
    weights = min_weight + (1.0 - k * min_weight) * raw / raw.sum()
    means = np.array([draw(st.lists(st.floats(-mean_scale, mean_scale), min_size=d, max_size=d)) for _ in range(k)])
    covs = np.array([draw(spd_matrices(d, eig_min, eig_max)) for _ in range(k)])
    return GaussianMixture(weights / weights.sum(), means, covs)


def ou_parameters(min_dim: int = 1, max_dim: int = 3, decay_min: float = 0.3, decay_max: float = 2.0,
                  rotation: float = 1.0) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    """(A, B) for dX = -A X dt + B dW: A = S + K with S SPD (eigenvalues in [decay_min, decay_max]) and
    K skew (entries |K_ij| <= rotation), so Re lambda(A) >= decay_min > 0 (a stationary law exists);
    B of shape (d, m), m in [d, d + 1], with B B^T positive definite."""
    _dims(min_dim, max_dim)
    lo = check_number(decay_min, "decay_min", minimum=0.0, strict=True)
    if check_number(decay_max, "decay_max") < lo:
        raise SDEKitError(f"decay_min must be <= decay_max; got {decay_min} and {decay_max}")
    check_number(rotation, "rotation", minimum=0.0)
    return _ou_parameters(min_dim, max_dim, float(decay_min), float(decay_max), float(rotation))


@st.composite
def _ou_parameters(draw: st.DrawFn, min_dim: int, max_dim: int, decay_min: float, decay_max: float,
                   rotation: float) -> tuple[np.ndarray, np.ndarray]:
    d = draw(st.integers(min_dim, max_dim))
    s = draw(spd_matrices(d, decay_min, decay_max))
    upper = np.array(draw(st.lists(st.floats(-rotation, rotation), min_size=d * d, max_size=d * d))).reshape(d, d)
    k = np.triu(upper, 1)
    a = s + k - k.T
    m = draw(st.integers(d, d + 1))
    b = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=d * m, max_size=d * m))).reshape(d, m)
    b[:, :d] += np.diag(np.array(draw(st.lists(st.floats(0.5, 1.5), min_size=d, max_size=d))))
    return a, b


def step_fractions(lo: float = 0.05, hi: float = 0.5) -> st.SearchStrategy[float]:
    """Step sizes as a fraction in [lo, hi] of the stability limit (see `stable_step`)."""
    check_number(lo, "lo")
    check_number(hi, "hi")
    if not 0 < lo <= hi < 1:
        raise SDEKitError(f"need 0 < lo <= hi < 1; got lo = {lo}, hi = {hi}")
    return st.floats(lo, hi)


def stable_step(target: Gaussian | GaussianMixture, fraction: float) -> float:
    """h = fraction * 2 lambda_min, the Euler–Maruyama (ULA) stability limit for dX = grad log pi dt + sqrt(2) dW
    on a Gaussian (for a mixture: the smallest eigenvalue over components); fraction in (0, 1)."""
    if not isinstance(target, Gaussian | GaussianMixture):
        raise SDEKitError(f"target must be a Gaussian or a GaussianMixture; got {type(target).__name__}")
    fraction = check_number(fraction, "fraction")
    if not 0.0 < fraction < 1.0:
        raise SDEKitError(f"fraction must be in (0, 1) (a share of the stability limit); got {fraction:g}")
    covs = [target.cov] if isinstance(target, Gaussian) else list(target.covs)
    lam = min(float(np.linalg.eigvalsh(c).min()) for c in covs)
    return float(fraction) * 2.0 * lam
