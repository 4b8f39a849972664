"""Exact laws the one-sample tests compare against: 1-D laws (CDF, density, quantiles, moments) and
the exact moments of the features phi(x) = (x_i, x_i x_j) under a Gaussian or a Gaussian mixture.

A 1-D law is anything with ``cdf``; `law_1d` wraps sdekit's 1-D targets (``Gaussian``,
``GaussianMixture``), frozen scipy distributions and plain CDF callables into one `Law1D`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.targets.law1d import ArrayFn, Law1D, gaussian_raw_moments

__all__ = ["ArrayFn", "Law1D", "exact_feature_moments", "feature_names", "features", "gaussian_raw_moments",
           "law_1d", "mixture_components"]


def law_1d(law: Any, label: str | None = None) -> Law1D:
    """Wrap a 1-D law: a `Law1D`, a 1-D sdekit ``Gaussian`` / ``GaussianMixture``, a frozen scipy
    distribution (``cdf``, ``pdf`` and ``moment``), or a callable CDF F(z)."""
    if isinstance(law, Law1D):
        return law
    if isinstance(law, Gaussian | GaussianMixture):
        if law.dim != 1:
            raise SDEKitError(f"law must be 1-D; got a {type(law).__name__} of dim {law.dim} (use .project(u))")
        if isinstance(law, Gaussian):
            means, variances, weights = law.mean, law.cov[0], np.ones(1)
        else:
            means, variances, weights = law.means[:, 0], law.covs[:, 0, 0], law.weights

        return Law1D(law.cdf_1d, TargetDensity1D(law), gaussian_raw_moments(means, variances, weights),
                     label or repr(law))
    if hasattr(law, "cdf") and hasattr(law, "dist"):  # frozen scipy.stats distribution
        try:
            moments = tuple(float(law.moment(k)) for k in range(1, 5))
        except (ValueError, TypeError, OverflowError):
            moments = ()
        if not all(np.isfinite(moments)):
            moments = ()
        pdf = getattr(law, "pdf", None)
        return Law1D(law.cdf, pdf, moments, label or law.dist.name)
    if callable(law):
        return Law1D(law, None, (), label or getattr(law, "__name__", "cdf"))
    raise SDEKitError(
        "law must be a Law1D, a 1-D Gaussian / GaussianMixture, a frozen scipy.stats distribution or a CDF "
        f"callable; got {type(law).__name__}")


class TargetDensity1D:
    """The density of a 1-D sdekit target, exp(log_prob(z)), as a picklable callable (reports travel between
    processes when `sdekit validate` runs checks in parallel)."""

    def __init__(self, law: Any):
        self.law = law

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return np.exp(self.law.log_prob(np.asarray(z, dtype=float).reshape(-1, 1))).reshape(np.shape(z))


def feature_names(d: int) -> list[str]:
    """Names of phi(x) = (x_i for i < d, then x_i x_j for i <= j)."""
    names = [f"x{i}" for i in range(d)]
    names += [f"x{i}*x{j}" for i in range(d) for j in range(i, d)]
    return names


def features(x: np.ndarray) -> np.ndarray:
    """phi(x) = (x_1..x_d, x_i x_j for i <= j), shape (n, d + d(d+1)/2)."""
    x = np.atleast_2d(x)
    iu, ju = np.triu_indices(x.shape[1])
    return np.concatenate([x, x[:, iu] * x[:, ju]], axis=1)


def _component_moments(m: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw moments of N(m, S) up to order 4 (Isserlis):

    E[x_a x_b] = S_ab + m_a m_b;
    E[x_a x_b x_c] = m_a m_b m_c + m_a S_bc + m_b S_ac + m_c S_ab;
    E[x_a x_b x_c x_d] = m_a m_b m_c m_d + (six S m m terms) + S_ab S_cd + S_ac S_bd + S_ad S_bc.
    """
    e2 = s + np.outer(m, m)
    e3 = (np.einsum("a,b,c->abc", m, m, m) + np.einsum("a,bc->abc", m, s) + np.einsum("b,ac->abc", m, s)
          + np.einsum("c,ab->abc", m, s))
    mm = np.outer(m, m)
    e4 = (np.einsum("ab,cd->abcd", mm, mm)
          + np.einsum("ab,cd->abcd", s, mm) + np.einsum("ac,bd->abcd", s, mm) + np.einsum("ad,bc->abcd", s, mm)
          + np.einsum("bc,ad->abcd", s, mm) + np.einsum("bd,ac->abcd", s, mm) + np.einsum("cd,ab->abcd", s, mm)
          + np.einsum("ab,cd->abcd", s, s) + np.einsum("ac,bd->abcd", s, s) + np.einsum("ad,bc->abcd", s, s))
    return e2, e3, e4


def mixture_components(target: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights (K,), means (K, d), covs (K, d, d)) of a Gaussian (K = 1) or a Gaussian mixture."""
    if isinstance(target, Gaussian):
        return np.ones(1), target.mean[None, :], target.cov[None, :, :]
    if isinstance(target, GaussianMixture):
        return target.weights, target.means, target.covs
    raise SDEKitError(f"target must be a Gaussian or a GaussianMixture; got {type(target).__name__}")


def exact_feature_moments(target: Any) -> tuple[np.ndarray, np.ndarray]:
    """E phi and Cov phi for phi(x) = (x_i, x_i x_j (i <= j)) under a Gaussian or Gaussian mixture,
    exactly, from the components' moments up to order 4: Cov phi = E[phi phi^T] - E phi E phi^T."""
    weights, means, covs = mixture_components(target)
    d = means.shape[1]
    e1 = np.zeros(d)
    e2 = np.zeros((d, d))
    e3 = np.zeros((d, d, d))
    e4 = np.zeros((d, d, d, d))
    for w, m, s in zip(weights, means, covs):
        c2, c3, c4 = _component_moments(m, s)
        e1 += w * m
        e2 += w * c2
        e3 += w * c3
        e4 += w * c4
    iu, ju = np.triu_indices(d)
    mean = np.concatenate([e1, e2[iu, ju]])
    p = mean.shape[0]
    second = np.empty((p, p))
    second[:d, :d] = e2
    second[:d, d:] = e3[:, iu, ju]
    second[d:, :d] = second[:d, d:].T
    second[d:, d:] = e4[iu, ju][:, iu, ju]
    cov = second - np.outer(mean, mean)
    return mean, 0.5 * (cov + cov.T)
