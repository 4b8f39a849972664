"""jax log-densities (up to a constant) of sdekit's benchmark targets, for the blackjax comparisons of
`benchmarks/mcmc.py` and `benchmarks/nuts.py` (jax is imported inside: it is not a dependency of sdekit)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdekit.targets import Gaussian, GaussianMixture, NealFunnel, Rosenbrock


def jax_log_density(target: Any) -> Any:
    """The jax log-density log pi(x) + const of a Gaussian, GaussianMixture, NealFunnel or Rosenbrock target, or
    None for any other target."""
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    if isinstance(target, Gaussian):
        mu, prec = jnp.asarray(target.mean), jnp.asarray(np.linalg.inv(target.cov))
        return lambda x: -0.5 * (x - mu) @ prec @ (x - mu)
    if isinstance(target, GaussianMixture):
        lw, mus = jnp.asarray(np.log(target.weights)), jnp.asarray(target.means)
        precs = jnp.asarray(np.linalg.inv(target.covs))
        lnorm = jnp.asarray([-0.5 * np.linalg.slogdet(c)[1] for c in target.covs])

        def logp(x):
            r = x - mus
            return logsumexp(lw + lnorm - 0.5 * jnp.einsum("ki,kij,kj->k", r, precs, r))
        return logp
    if isinstance(target, NealFunnel):
        s2 = target.scale ** 2

        def logp(x):
            v = x[0]
            return -v * v / (2 * s2) - 0.5 * jnp.sum(x[1:] ** 2) * jnp.exp(-v) - 0.5 * (x.shape[0] - 1) * v
        return logp
    if isinstance(target, Rosenbrock):
        mu, a, b = target.mu, target.a, target.b

        def logp(x):
            return -a * (x[0] - mu) ** 2 - b * jnp.sum((x[1:] - x[:-1] ** 2) ** 2)
        return logp
    return None
