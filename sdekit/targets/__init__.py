"""Analytic target distributions whose score and log-density are njit batch functions f(x, t, p).

Each target has ``dim``, ``params`` (the runtime ``p``), njit ``score_fn`` / ``log_prob_fn``
(usable as drifts or inside other Numba kernels), and Python-level ``log_prob``, ``score``,
``sample``, ``mean``, ``cov``, ``project`` (exact 1-D law of u^T x) and, in 1-D, ``cdf_1d``.

The MCMC targets (`sdekit.targets.energy`): `EnergyTarget` wraps a user's njit energy
U(x) (with its gradient); `DoubleWell`, `Rosenbrock` and `NealFunnel` are energies with their
normaliser, exact sampler and exact 1-D marginal laws (``marginal_law(i)``). ``Gaussian`` and
``GaussianMixture`` follow the same energy protocol.
"""

from sdekit.targets.double_well import DoubleWell
from sdekit.targets.energy import EnergyTarget
from sdekit.targets.funnel import NealFunnel
from sdekit.targets.gaussian import Gaussian
from sdekit.targets.mixture import GaussianMixture
from sdekit.targets.rosenbrock import Rosenbrock

__all__ = ["Gaussian", "GaussianMixture", "EnergyTarget", "DoubleWell", "Rosenbrock", "NealFunnel"]
