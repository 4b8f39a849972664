"""Analytic target distributions whose score and log-density are njit batch functions f(x, t, p).

Each target has ``dim``, ``params`` (the runtime ``p``), njit ``score_fn`` / ``log_prob_fn``
(usable as drifts or inside other Numba kernels), and Python-level ``log_prob``, ``score``,
``sample``, ``mean``, ``cov``, ``project`` (exact 1-D law of u^T x) and, in 1-D, ``cdf_1d``.
"""

from sdekit.targets.gaussian import Gaussian
from sdekit.targets.mixture import GaussianMixture

__all__ = ["Gaussian", "GaussianMixture"]
