"""The Gaussian mixture target sum_k pi_k N(mu_k, S_k): njit batch score and log-density, moments, sampling.

The njit functions follow sdekit's batch signature f(x, t, p) (x of shape (n, d), t ignored,
p = ``GaussianMixture.params``); component log-likelihoods are combined by a one-pass
(streaming) log-sum-exp, so no responsibility under- or overflows however far x is from the modes. The batch
functions work on blocks of rows with one matrix product per component (`sdekit.targets.row_blocks`); a row's
result does not depend on the other rows of the batch.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from sdekit.errors import SDEKitError
from sdekit.targets.gaussian import (
    LOG_2PI,
    WEIGHT_SUM_TOL,
    Seed,
    as_points,
    direction,
    float_array,
    readonly,
    sample_count,
    spd_factors,
)
from sdekit.targets.row_blocks import BLOCK_ROWS, block_product, block_residuals, start_block, stream_logsumexp

# --------------------------------------------------------------------------------------------
# njit batch functions; p = (log_weights (K,), means (K, d), precisions (K, d, d),
#                            log_norms (K,) = -1/2 log det(2 pi S_k), chols (K, d, d))
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True)
def mixture_rows(x, p, score, log_dens):
    """score[b] = grad log pi(x_b) and log_dens[b] = log pi(x_b) for every row b of x (n, d), by blocks of rows.

    Per block of BLOCK_ROWS rows and component k: R = X - mu_k, U = R P_k (one matrix product, `block_product`),
    quad = row sums of R * U, l_k = log pi_k + log_norm_k - quad / 2; then the one-pass log-sum-exp over k
    (`stream_logsumexp`) gives s = -sum_k gamma_k U_k and log pi = m + log sum_k exp(l_k - m).
    """
    log_w = p[0]
    mu = p[1]
    prec = p[2].astype(np.float64)  # BLAS takes one dtype (float32 params: a float32 solve)
    log_norm = p[3]
    n, d = x.shape
    n_comp = log_w.shape[0]
    r = np.empty((BLOCK_ROWS, d))
    u = np.empty((BLOCK_ROWS, d))
    lk = np.empty(BLOCK_ROWS)
    m = np.empty(BLOCK_ROWS)
    s = np.empty(BLOCK_ROWS)
    for c0 in range(0, n, BLOCK_ROWS):
        nc = min(BLOCK_ROWS, n - c0)
        start_block(score, c0, nc, m, s)
        for k in range(n_comp):
            block_residuals(x, c0, nc, 1.0, mu[k], r)
            block_product(r, prec[k], u)
            for b in range(nc):
                quad = 0.0
                for i in range(d):
                    quad += r[b, i] * u[b, i]
                lk[b] = log_w[k] + log_norm[k] - 0.5 * quad
            stream_logsumexp(score, c0, nc, u, lk, m, s)
        for b in range(nc):
            for i in range(d):
                score[c0 + b, i] /= s[b]
            log_dens[c0 + b] = m[b] + math.log(s[b]) if m[b] > -np.inf else m[b]


@nb.njit(cache=True)
def mixture_score(x, t, p):
    """Score of the mixture for each row: s(x) = -sum_k gamma_k P_k (x - mu_k); returns (n, d) float64.

    gamma = softmax(l), l_k = log pi_k - 1/2 r_k^T P_k r_k - 1/2 log det(2 pi S_k), r_k = x - mu_k,
    P_k = S_k^{-1}; evaluated by blocks of rows with one matrix product per component (`mixture_rows`) and a
    one-pass log-sum-exp with a running maximum (stable however far x is from the modes).
    """
    n, d = x.shape
    out = np.empty((n, d))
    mixture_rows(x, p, out, np.empty(n))
    return out


@nb.njit(cache=True)
def mixture_log_prob(x, t, p):
    """Log-density of the mixture for each row: log sum_k exp(l_k) (l_k as in `mixture_score`); returns (n,)."""
    n, d = x.shape
    out = np.empty(n)
    mixture_rows(x, p, np.empty((n, d)), out)
    return out


@nb.njit(cache=True)
def mixture_batch_energy(x, p, grad):
    """Energy U = -log pi of every row of x (n, d), returned (n,); writes grad U = sum_k gamma_k P_k (x - mu_k)
    into grad (n, d). The batch form of `mixture_energy` (e.g. for AIS / SMC particles), by `mixture_rows`."""
    u = np.empty(x.shape[0])
    mixture_rows(x, p, grad, u)
    for b in range(x.shape[0]):
        u[b] = -u[b]
        for i in range(x.shape[1]):
            grad[b, i] = -grad[b, i]
    return u


@nb.njit(cache=True)
def mixture_energy(x, p, grad):
    """Energy U(x) = -log sum_k exp(l_k) of the mixture at one point x (d,) (l_k as in `mixture_score`);
    writes grad U = sum_k gamma_k P_k (x - mu_k). One-pass log-sum-exp, no allocation.

    Per component r^T P_k r / 2 is summed over the lower triangle of the symmetric P_k (d^2 / 2 products) and
    P_k r once, into the gradient (d^2): 3/2 d^2 per component where two full products took 2 d^2.
    """
    log_w = p[0]
    mu = p[1]
    prec = p[2]
    log_norm = p[3]
    d = x.shape[0]
    n_comp = log_w.shape[0]
    for i in range(d):
        grad[i] = 0.0
    m = -np.inf
    s = 0.0
    for k in range(n_comp):
        half = 0.0
        for i in range(d):
            ri = x[i] - mu[k, i]
            acc = 0.5 * prec[k, i, i] * ri
            for j in range(i):
                acc += prec[k, i, j] * (x[j] - mu[k, j])
            half += ri * acc
        lk = log_w[k] + log_norm[k] - half
        if lk > m:
            c = math.exp(m - lk)
            s = s * c + 1.0
            w = 1.0
            m = lk
        else:
            c = 1.0
            w = math.exp(lk - m)
            s += w
        for i in range(d):
            vi = 0.0
            for j in range(d):
                vi += prec[k, i, j] * (x[j] - mu[k, j])
            grad[i] = grad[i] * c + w * vi
    for i in range(d):
        grad[i] /= s
    return -(m + math.log(s))


# --------------------------------------------------------------------------------------------
# the target
# --------------------------------------------------------------------------------------------


class GaussianMixture:
    """The mixture pi(x) = sum_k pi_k N(x; mu_k, S_k) on R^d, K components with full covariances.

    weights (K,): positive, summing to 1 within 1e-9 (then renormalised exactly); means (K, d);
    covs (K, d, d) symmetric positive definite. For d = 1, means (K,) and covs (K,) (variances) are accepted.

    Attributes:
      dim: d; n_components: K; weights, means, covs: the validated inputs (read-only).
      params: (log_weights (K,), means (K, d), precisions S_k^{-1} (K, d, d),
        log_norms (K,) = -1/2 log det(2 pi S_k), chols (K, d, d) with S_k = L_k L_k^T),
        contiguous float64 arrays: the ``p`` of the njit functions.
      score_fn(x, t, p) -> (n, d): njit, s(x) = -sum_k gamma_k(x) S_k^{-1} (x - mu_k).
      log_prob_fn(x, t, p) -> (n,): njit, log pi(x) by log-sum-exp.
      energy_fn(x, p, grad) -> U: njit, one point, U = -log pi(x) (normalised: log_normalizer = 0).
      batch_energy_fn(x, p, grad) -> U (n,): njit, the same for every row of x (n, d), grad (n, d).
    """

    def __init__(self, weights: ArrayLike, means: ArrayLike, covs: ArrayLike) -> None:
        w = float_array(weights, "weights")
        if w.ndim == 0:
            w = w.reshape(1)
        if w.ndim != 1 or w.shape[0] < 1:
            raise SDEKitError(f"weights must have shape (K,) with K >= 1; got shape {w.shape}")
        n_comp = w.shape[0]
        if not np.all(w > 0):
            k = int(np.flatnonzero(~(w > 0))[0])
            raise SDEKitError(f"weights must be positive; weights[{k}] = {w[k]}")
        total = float(np.sum(w))
        if abs(total - 1.0) > WEIGHT_SUM_TOL:
            raise SDEKitError(f"weights must sum to 1 (within {WEIGHT_SUM_TOL:g}); they sum to {total!r}")
        w = w / total
        mu = float_array(means, "means")
        c = float_array(covs, "covs")
        if mu.ndim == 1 and c.ndim == 1:  # 1-D shorthand: means (K,), variances (K,)
            mu = mu[:, None]
            c = c[:, None, None]
        if mu.ndim != 2 or mu.shape[0] != n_comp or mu.shape[1] < 1:
            raise SDEKitError(
                f"means must have shape (K, d) = ({n_comp}, d) to match weights of shape ({n_comp},); "
                f"got shape {mu.shape}")
        d = mu.shape[1]
        if c.shape != (n_comp, d, d):
            raise SDEKitError(
                f"covs must have shape (K, d, d) = ({n_comp}, {d}, {d}) to match weights {w.shape} and "
                f"means {mu.shape}; got shape {c.shape}")
        chols = np.empty_like(c)
        precs = np.empty_like(c)
        log_norm = np.empty(n_comp)
        for k in range(n_comp):
            c[k], chols[k], precs[k], logdet = spd_factors(c[k], f"covs[{k}]")
            log_norm[k] = -0.5 * (d * LOG_2PI + logdet)
        self.dim: int = d
        self.n_components: int = n_comp
        self._weights = readonly(w)
        self._means = readonly(mu)
        self._covs = readonly(c)
        self.params: tuple[np.ndarray, ...] = (
            np.log(w), np.ascontiguousarray(mu), precs, log_norm, chols)
        self.score_fn = mixture_score
        self.log_prob_fn = mixture_log_prob
        self.energy_fn = mixture_energy
        self.batch_energy_fn = mixture_batch_energy
        self.log_normalizer: float = 0.0

    def __repr__(self) -> str:
        return f"GaussianMixture(dim={self.dim}, n_components={self.n_components})"

    @property
    def weights(self) -> np.ndarray:
        """Component weights pi_k, shape (K,), summing to 1."""
        return self._weights

    @property
    def means(self) -> np.ndarray:
        """Component means mu_k, shape (K, d)."""
        return self._means

    @property
    def covs(self) -> np.ndarray:
        """Component covariances S_k, shape (K, d, d)."""
        return self._covs

    @property
    def mean(self) -> np.ndarray:
        """E[X] = mu = sum_k pi_k mu_k, shape (d,)."""
        return self._weights @ self._means

    @property
    def cov(self) -> np.ndarray:
        """Cov[X] = sum_k pi_k (S_k + mu_k mu_k^T) - mu mu^T, shape (d, d).

        Evaluated as the equal sum_k pi_k (S_k + (mu_k - mu)(mu_k - mu)^T), free of cancellation.
        """
        dev = self._means - self.mean
        out = np.einsum("k,kij->ij", self._weights, self._covs) + np.einsum("k,ki,kj->ij", self._weights, dev, dev)
        return 0.5 * (out + out.T)

    def log_prob(self, x: ArrayLike) -> np.ndarray | float:
        """log pi(x) for x of shape (d,) (a float) or (n, d) (shape (n,))."""
        pts, single = as_points(x, self.dim)
        out = self.log_prob_fn(pts, 0.0, self.params)
        return float(out[0]) if single else out

    def score(self, x: ArrayLike) -> np.ndarray:
        """grad log pi(x) = -sum_k gamma_k(x) S_k^{-1} (x - mu_k) for x of shape (d,) or (n, d)."""
        pts, single = as_points(x, self.dim)
        out = self.score_fn(pts, 0.0, self.params)
        return out[0] if single else out

    def sample(self, n: int, seed: Seed = None) -> np.ndarray:
        """n independent draws, shape (n, d), from np.random.default_rng(seed).

        Component counts (n_1..n_K) ~ Multinomial(n, pi); component k gives mu_k + L_k z, z ~ N(0, I);
        the rows are then randomly permuted, so any subset of rows is itself an i.i.d. sample.
        """
        n = sample_count(n)
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(n, self._weights)
        chols = self.params[4]
        out = np.empty((n, self.dim))
        start = 0
        for k, nk in enumerate(counts):
            z = rng.standard_normal((nk, self.dim))
            out[start:start + nk] = self._means[k] + z @ chols[k].T
            start += nk
        return out[rng.permutation(n)]

    def project(self, u: ArrayLike) -> GaussianMixture:
        """The exact law of u^T X: the 1-D mixture sum_k pi_k N(u^T mu_k, u^T S_k u)."""
        u = direction(u, self.dim)
        var = np.einsum("i,kij,j->k", u, self._covs, u)
        return GaussianMixture(self._weights, self._means @ u, var)

    def cdf_1d(self, z: ArrayLike) -> np.ndarray | float:
        """CDF of a 1-D mixture, F(z) = sum_k pi_k Phi((z - mu_k) / sigma_k), elementwise over z (scipy ndtr)."""
        if self.dim != 1:
            raise SDEKitError(f"cdf_1d needs a 1-D target (dim = 1); this one has dim = {self.dim}; use project(u)")
        z = np.asarray(z, dtype=np.float64)
        sd = np.sqrt(self._covs[:, 0, 0])
        out = ndtr((z[..., None] - self._means[:, 0]) / sd) @ self._weights
        return float(out) if out.ndim == 0 else out
