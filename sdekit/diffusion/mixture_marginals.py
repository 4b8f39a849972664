"""Exact fixtures for Gaussian-mixture data pushed through a linear forward SDE with a Gaussian kernel.

Data law p_0 = sum_k pi_k N(mu_k, C_k); forward kernel x_t | x_0 ~ N(alpha x_0, sigma^2 I), alpha > 0, sigma >= 0
(Song et al. 2021, "Score-based generative modeling through stochastic differential equations": VE has alpha = 1,
VP has alpha^2 + sigma^2 = 1, sub-VP has sigma = 1 - alpha^2). The schedule t -> (alpha_t, sigma_t) lives
elsewhere: every function here takes the numbers alpha and sigma, never t.

The marginal stays a mixture (VALIDATION.md section 1b):

    p_t = sum_k pi_k N(m_k, S_k),   m_k = alpha mu_k,   S_k = alpha^2 C_k + sigma^2 I.

Each C_k = Q_k diag(lam_k) Q_k^T is diagonalised once, so S_k = Q_k diag(e_k) Q_k^T with e_k = alpha^2 lam_k + sigma^2
is inverted, and log det S_k = sum_i log e_ki taken, in O(d^2) per point and component with no new factorization.
With r_k = x - m_k, u_k = S_k^{-1} r_k and responsibilities gamma_k = softmax_k(l_k) (log-sum-exp),
l_k = log pi_k - 1/2 r_k^T u_k - 1/2 log det(2 pi S_k):

    log p_t(x)   = logsumexp_k l_k
    score s(x)   = -sum_k gamma_k u_k
    Hessian      = sum_k gamma_k (u_k u_k^T - S_k^{-1}) - s s^T = sum_k gamma_k (u_k - ubar)(u_k - ubar)^T
                   - sum_k gamma_k S_k^{-1},   ubar = sum_k gamma_k u_k = -s
    Laplacian    = sum_k gamma_k (||u_k||^2 - tr S_k^{-1}) - ||s||^2
                 = sum_k gamma_k ||u_k - ubar||^2 - sum_k gamma_k tr S_k^{-1}   (the form evaluated: no cancellation)

and the posterior means (joint Gaussian given the component k, then averaged with gamma_k(x)):

    E[x_0 | x_t = x, k] = mu_k + alpha C_k S_k^{-1} (x - alpha mu_k)    (Cov(x_0, x_t | k) = alpha C_k)
    E[eps | x_t = x, k] = sigma S_k^{-1} (x - alpha mu_k)                (Cov(eps, x_t | k) = sigma I)

so that E[x_0 | x] = (x + sigma^2 s(x)) / alpha and E[eps | x] = -sigma s(x) (Tweedie's formula, Efron 2011).

The njit functions ``mixture_marginal_score`` / ``_log_prob`` / ``_laplacian`` take ``(x, alpha, sigma, p)`` with
p = ``MixtureMarginals.params``; they are building blocks for drifts (e.g. the reverse SDE / probability-flow ODE
of a schedule) and agree with the NumPy methods to rounding. They do not validate their inputs. They work on blocks
of rows with matrix products (`sdekit.targets.row_blocks`); a row's result does not depend on the other rows.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import ArrayLike

from sdekit.errors import SDEKitError
from sdekit.targets.gaussian import LOG_2PI, Seed, as_points, sample_count
from sdekit.targets.mixture import GaussianMixture
from sdekit.targets.row_blocks import BLOCK_ROWS, block_product, block_residuals, start_block, stream_logsumexp

__all__ = [
    "MixtureMarginals",
    "check_alpha_sigma",
    "mixture_marginal_laplacian",
    "mixture_marginal_log_prob",
    "mixture_marginal_score",
]


def check_alpha_sigma(alpha: Any, sigma: Any) -> tuple[float, float]:
    """(alpha, sigma) as floats, or an SDEKitError naming the bad one: alpha finite and > 0, sigma finite and >= 0."""
    out = []
    for name, v, strict in (("alpha", alpha, True), ("sigma", sigma, False)):
        if isinstance(v, bool):
            raise SDEKitError(f"{name} must be a real number; got {v!r}")
        try:
            f = float(v)
        except (TypeError, ValueError) as exc:
            raise SDEKitError(f"{name} must be a real number (a scalar); got {v!r}") from exc
        if not math.isfinite(f):
            raise SDEKitError(f"{name} must be finite; got {f}")
        if strict and not f > 0:
            raise SDEKitError(f"{name} must be > 0 (the kernel is N(alpha x_0, sigma^2 I)); got {f}")
        if not strict and f < 0:
            raise SDEKitError(f"{name} must be >= 0 (a noise standard deviation); got {f}")
        out.append(f)
    return out[0], out[1]


# --------------------------------------------------------------------------------------------
# njit batch functions; p = (log_weights (K,), means mu_k (K, d), eigenvectors Q (K, d, d),
#                            eigenvalues lam (K, d)) with C_k = Q_k diag(lam_k) Q_k^T
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True)
def marginal_scales(alpha, sigma, lam):
    """(1 / e (K, d), log_norm (K,)) with e_k = alpha^2 lam_k + sigma^2, log_norm_k = -1/2 log det(2 pi S_k)."""
    n_comp, d = lam.shape
    inv_e = np.empty((n_comp, d))
    log_norm = np.empty(n_comp)
    a2 = alpha * alpha
    s2 = sigma * sigma
    for k in range(n_comp):
        acc = 0.0
        for i in range(d):
            e = a2 * lam[k, i] + s2
            inv_e[k, i] = 1.0 / e
            acc += math.log(e)
        log_norm[k] = -0.5 * (d * LOG_2PI + acc)
    return inv_e, log_norm


@nb.njit(cache=True)
def marginal_rows(x, alpha, sigma, p, score, log_dens, laplacian, with_laplacian):
    """score (n, d), log_dens (n,) and (when with_laplacian) laplacian (n,) of p_t for every row of x, by blocks.

    Per block of BLOCK_ROWS rows and component k: R = X - alpha mu_k, Y = R Q_k, Z = Y diag(1 / e_k),
    quad = row sums of Y * Z, U_k = Z Q_k^T = R S_k^{-1} (two matrix products, `block_product`); the one-pass
    log-sum-exp over k (`stream_logsumexp`) gives s = -sum_k gamma_k U_k and log p_t; the Laplacian is
    sum_k gamma_k ||U_k - ubar||^2 - sum_k gamma_k tr S_k^{-1} from the stored U_k and logits.
    """
    log_w = p[0]
    mu = p[1]
    q = p[2].astype(np.float64)  # BLAS takes one dtype
    inv_e, log_norm = marginal_scales(alpha, sigma, p[3])
    n, d = x.shape
    n_comp = log_w.shape[0]
    qt = np.empty((n_comp, d, d))
    tr = np.zeros(n_comp)
    for k in range(n_comp):
        for i in range(d):
            tr[k] += inv_e[k, i]
            for j in range(d):
                qt[k, i, j] = q[k, j, i]
    r = np.empty((BLOCK_ROWS, d))
    y = np.empty((BLOCK_ROWS, d))
    us = np.empty((n_comp, BLOCK_ROWS, d))
    lks = np.empty((n_comp, BLOCK_ROWS))
    m = np.empty(BLOCK_ROWS)
    s = np.empty(BLOCK_ROWS)
    ubar = np.empty(d)
    for c0 in range(0, n, BLOCK_ROWS):
        nc = min(BLOCK_ROWS, n - c0)
        start_block(score, c0, nc, m, s)
        for k in range(n_comp):
            block_residuals(x, c0, nc, alpha, mu[k], r)
            block_product(r, q[k], y)
            for b in range(nc):
                quad = 0.0
                for j in range(d):
                    zj = y[b, j] * inv_e[k, j]
                    quad += y[b, j] * zj
                    y[b, j] = zj
                lks[k, b] = log_w[k] + log_norm[k] - 0.5 * quad
            block_product(y, qt[k], us[k])
            stream_logsumexp(score, c0, nc, us[k], lks[k], m, s)
        for b in range(nc):
            for i in range(d):
                score[c0 + b, i] /= s[b]
            log_dens[c0 + b] = m[b] + math.log(s[b]) if m[b] > -np.inf else m[b]
            if with_laplacian:
                for i in range(d):
                    ubar[i] = -score[c0 + b, i]
                acc = 0.0
                for k in range(n_comp):
                    g = math.exp(lks[k, b] - m[b]) / s[b]
                    v = 0.0
                    for i in range(d):
                        dev = us[k, b, i] - ubar[i]
                        v += dev * dev
                    acc += g * (v - tr[k])
                laplacian[c0 + b] = acc


@nb.njit(cache=True)
def mixture_marginal_score(x, alpha, sigma, p):
    """Score of p_t for each row: s(x) = -sum_k gamma_k S_k^{-1} (x - alpha mu_k); returns (n, d) float64.

    S_k^{-1} = Q_k diag(1 / (alpha^2 lam_k + sigma^2)) Q_k^T; gamma = softmax(l) accumulated in one pass with a
    running maximum (stable log-sum-exp), l_k = log pi_k - 1/2 r_k^T S_k^{-1} r_k - 1/2 log det(2 pi S_k).
    Evaluated by blocks of rows with matrix products (`marginal_rows`). p = ``MixtureMarginals.params``.
    """
    n, d = x.shape
    out = np.empty((n, d))
    marginal_rows(x, alpha, sigma, p, out, np.empty(n), np.empty(0), False)
    return out


@nb.njit(cache=True)
def mixture_marginal_log_prob(x, alpha, sigma, p):
    """log p_t for each row: logsumexp_k [log pi_k - 1/2 r_k^T S_k^{-1} r_k - 1/2 log det(2 pi S_k)]; returns (n,)."""
    n, d = x.shape
    out = np.empty(n)
    marginal_rows(x, alpha, sigma, p, np.empty((n, d)), out, np.empty(0), False)
    return out


@nb.njit(cache=True)
def mixture_marginal_laplacian(x, alpha, sigma, p):
    """Laplacian of log p_t for each row; returns (n,).

    Delta log p_t = sum_k gamma_k (||u_k||^2 - tr S_k^{-1}) - ||s||^2, evaluated as the equal
    sum_k gamma_k ||u_k - ubar||^2 - sum_k gamma_k tr S_k^{-1} with u_k = S_k^{-1} r_k, ubar = sum_k gamma_k u_k = -s.
    """
    n, d = x.shape
    out = np.empty(n)
    marginal_rows(x, alpha, sigma, p, np.empty((n, d)), np.empty(n), out, True)
    return out


# --------------------------------------------------------------------------------------------
# the fixture
# --------------------------------------------------------------------------------------------


class MixtureMarginals:
    """Exact marginals p_t of Gaussian-mixture data under the kernel x_t | x_0 ~ N(alpha x_0, sigma^2 I).

    Build from a ``GaussianMixture`` (the data law p_0), or from ``weights, means, covs`` as GaussianMixture takes
    them. Every method takes alpha > 0 and sigma >= 0 (numbers, not t) and x of shape (d,) or (n, d); a single point
    gives a scalar / (d,) / (d, d) result, a batch (n,) / (n, d) / (n, d, d).

    Attributes:
      data: the data law p_0 (a GaussianMixture); dim: d; n_components: K.
      eigvals (K, d), eigvecs (K, d, d): C_k = Q_k diag(lam_k) Q_k^T (read-only).
      params: (log_weights (K,), means (K, d), Q (K, d, d), lam (K, d)), contiguous float64: the ``p`` of
        ``mixture_marginal_score`` / ``mixture_marginal_log_prob`` / ``mixture_marginal_laplacian``.
    """

    def __init__(self, data: GaussianMixture | ArrayLike, means: ArrayLike | None = None,
                 covs: ArrayLike | None = None) -> None:
        if isinstance(data, GaussianMixture):
            if means is not None or covs is not None:
                raise SDEKitError("means and covs must be omitted when data is a GaussianMixture")
            mix = data
        else:
            if means is None or covs is None:
                missing = "means" if means is None else "covs"
                raise SDEKitError(f"{missing} is required when data is given as weights (or pass a GaussianMixture)")
            mix = GaussianMixture(data, means, covs)
        lam, q = np.linalg.eigh(mix.covs)
        for k in range(mix.n_components):
            if not np.all(lam[k] > 0):
                raise SDEKitError(f"covs[{k}] must be positive definite; its smallest eigenvalue is {lam[k].min():.3g}")
        self.data: GaussianMixture = mix
        self.dim: int = mix.dim
        self.n_components: int = mix.n_components
        self.params: tuple[np.ndarray, ...] = (
            np.log(mix.weights), np.ascontiguousarray(mix.means, dtype=np.float64),
            np.ascontiguousarray(q), np.ascontiguousarray(lam))
        self.eigvals = lam.copy()
        self.eigvals.flags.writeable = False
        self.eigvecs = q.copy()
        self.eigvecs.flags.writeable = False

    def __repr__(self) -> str:
        return f"MixtureMarginals(dim={self.dim}, n_components={self.n_components})"

    # ---------------------------------------------------------------- internals

    def _eig_scales(self, alpha: Any, sigma: Any) -> tuple[float, float, np.ndarray]:
        """(alpha, sigma, e (K, d)) with e_k = alpha^2 lam_k + sigma^2 the eigenvalues of S_k."""
        alpha, sigma = check_alpha_sigma(alpha, sigma)
        e = alpha * alpha * self.params[3] + sigma * sigma
        if not np.all(e > 0):
            raise SDEKitError(f"alpha = {alpha!r} and sigma = {sigma!r} make a marginal covariance singular "
                              "(alpha^2 lam + sigma^2 underflows to 0)")
        return alpha, sigma, e

    def _parts(self, x: ArrayLike, alpha: Any, sigma: Any) -> dict[str, Any]:
        """Per point and component: y = Q^T r (n, K, d), u = S^{-1} r, gamma (n, K), log p (n,), plus e (K, d)."""
        alpha, sigma, e = self._eig_scales(alpha, sigma)
        if np.iscomplexobj(x):
            raise SDEKitError("x must be real; got complex values")
        pts, single = as_points(x, self.dim, "x")
        pts = pts.astype(np.float64, copy=False)
        log_w, mu, q, _ = self.params
        r = pts[:, None, :] - alpha * mu[None, :, :]  # (n, K, d)
        y = np.einsum("kij,nki->nkj", q, r)  # Q_k^T r_k
        z = y / e  # diag(1/e) Q^T r
        quad = np.einsum("nkj,nkj->nk", y, z)
        logits = log_w - 0.5 * (self.dim * LOG_2PI + np.sum(np.log(e), axis=1)) - 0.5 * quad
        top = np.max(logits, axis=1, keepdims=True)
        w = np.exp(logits - top)
        tot = np.sum(w, axis=1, keepdims=True)
        return {"alpha": alpha, "sigma": sigma, "e": e, "single": single, "y": y, "z": z,
                "u": np.einsum("kij,nkj->nki", q, z), "gamma": w / tot,
                "log_prob": top[:, 0] + np.log(tot[:, 0])}

    @staticmethod
    def _out(a: np.ndarray, single: bool) -> Any:
        if single:
            return float(a[0]) if a.ndim == 1 else a[0]
        return a

    # ---------------------------------------------------------------- laws

    def marginal(self, alpha: float, sigma: float) -> GaussianMixture:
        """The exact p_t = sum_k pi_k N(alpha mu_k, alpha^2 C_k + sigma^2 I) as a GaussianMixture.

        Its mean is alpha E[x_0] and its covariance alpha^2 Cov[x_0] + sigma^2 I.
        """
        alpha, sigma, _ = self._eig_scales(alpha, sigma)
        covs = alpha * alpha * self.data.covs + sigma * sigma * np.eye(self.dim)
        return GaussianMixture(self.data.weights, alpha * self.data.means, covs)

    def sample(self, n: int, alpha: float, sigma: float, seed: Seed = None, *,
               return_pairs: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n draws of x_t = alpha x_0 + sigma eps, x_0 ~ p_0 and eps ~ N(0, I) independent; shape (n, d).

        One generator np.random.default_rng(seed) draws x_0 (``GaussianMixture.sample``) and then eps. With
        return_pairs=True returns (x_t, x_0, eps), e.g. for regression (denoising score matching) checks.
        """
        alpha, sigma, _ = self._eig_scales(alpha, sigma)
        n = sample_count(n)
        rng = np.random.default_rng(seed)
        x0 = self.data.sample(n, rng)
        eps = rng.standard_normal((n, self.dim))
        xt = alpha * x0 + sigma * eps
        return (xt, x0, eps) if return_pairs else xt

    # ---------------------------------------------------------------- density and derivatives

    def log_prob(self, x: ArrayLike, alpha: float, sigma: float) -> np.ndarray | float:
        """log p_t(x) = logsumexp_k [log pi_k - 1/2 r_k^T S_k^{-1} r_k - 1/2 log det(2 pi S_k)], r_k = x - alpha mu_k.

        Returns a float for a single point (d,), shape (n,) for a batch (n, d).
        """
        parts = self._parts(x, alpha, sigma)
        return self._out(parts["log_prob"], parts["single"])

    def responsibilities(self, x: ArrayLike, alpha: float, sigma: float) -> np.ndarray:
        """gamma_k(x) = P(component k | x_t = x) = softmax_k(l_k); shape (K,) or (n, K)."""
        parts = self._parts(x, alpha, sigma)
        return self._out(parts["gamma"], parts["single"])

    def score(self, x: ArrayLike, alpha: float, sigma: float) -> np.ndarray:
        """s(x) = grad log p_t(x) = -sum_k gamma_k(x) S_k^{-1} (x - alpha mu_k) (Song et al. 2021)."""
        parts = self._parts(x, alpha, sigma)
        s = -np.einsum("nk,nki->ni", parts["gamma"], parts["u"])
        return self._out(s, parts["single"])

    def hessian_log_prob(self, x: ArrayLike, alpha: float, sigma: float) -> np.ndarray:
        """grad^2 log p_t = sum_k gamma_k (u_k u_k^T - S_k^{-1}) - s s^T, u_k = S_k^{-1} r_k; (d, d) or (n, d, d).

        Evaluated as sum_k gamma_k (u_k - ubar)(u_k - ubar)^T - sum_k gamma_k S_k^{-1}, ubar = -s.
        """
        parts = self._parts(x, alpha, sigma)
        q = self.params[2]
        gamma, u = parts["gamma"], parts["u"]
        dev = u - np.einsum("nk,nki->ni", gamma, u)[:, None, :]
        s_inv = np.einsum("kij,kj,klj->kil", q, 1.0 / parts["e"], q)
        h = np.einsum("nk,nki,nkj->nij", gamma, dev, dev) - np.einsum("nk,kij->nij", gamma, s_inv)
        return self._out(0.5 * (h + np.swapaxes(h, 1, 2)), parts["single"])

    def laplacian_log_prob(self, x: ArrayLike, alpha: float, sigma: float) -> np.ndarray | float:
        """Delta log p_t = sum_k gamma_k (||S_k^{-1} r_k||^2 - tr S_k^{-1}) - ||s||^2.

        Evaluated as sum_k gamma_k ||u_k - ubar||^2 - sum_k gamma_k tr S_k^{-1} (u_k = S_k^{-1} r_k, ubar = -s), an
        exact rewriting with no cancellation between the two large terms. The probability-flow ODE
        dx/dt = f x - g^2 s / 2 has divergence d f - g^2 Delta log p_t / 2.
        """
        parts = self._parts(x, alpha, sigma)
        gamma, u = parts["gamma"], parts["u"]
        dev = u - np.einsum("nk,nki->ni", gamma, u)[:, None, :]
        tr = np.sum(1.0 / parts["e"], axis=1)
        lap = np.einsum("nk,nki,nki->n", gamma, dev, dev) - gamma @ tr
        return self._out(lap, parts["single"])

    # ---------------------------------------------------------------- regression targets

    def denoiser(self, x: ArrayLike, alpha: float, sigma: float) -> np.ndarray:
        """E[x_0 | x_t = x] = sum_k gamma_k(x) [mu_k + alpha C_k S_k^{-1} (x - alpha mu_k)] (exact posterior mean).

        Per component (x_0, x_t) is jointly Gaussian with Cov(x_0, x_t) = alpha C_k, which gives the bracket; in
        the eigenbasis alpha C_k S_k^{-1} = Q_k diag(alpha lam_k / (alpha^2 lam_k + sigma^2)) Q_k^T. Equals
        (x + sigma^2 s(x)) / alpha by Tweedie's formula (Efron 2011); at alpha = 1 it is the EDM denoiser
        D(x; sigma) of Karras et al. 2022.
        """
        parts = self._parts(x, alpha, sigma)
        alpha = parts["alpha"]
        _, mu, q, lam = self.params
        post = mu[None] + np.einsum("kij,nkj->nki", q, alpha * lam * parts["z"])
        return self._out(np.einsum("nk,nki->ni", parts["gamma"], post), parts["single"])

    def eps_target(self, x: ArrayLike, alpha: float, sigma: float) -> np.ndarray:
        """E[eps | x_t = x] = (x - alpha E[x_0 | x]) / sigma, computed as sigma sum_k gamma_k S_k^{-1} (x - alpha mu_k).

        Per component Cov(eps, x_t) = sigma I gives E[eps | x, k] = sigma S_k^{-1} r_k; hence E[eps | x] = -sigma s(x)
        (the epsilon-prediction target of DDPM / Song et al. 2021). The evaluated form has no 1/sigma and no
        cancellation, and extends continuously to sigma = 0 (eps is then independent of x_t: the target is 0).
        """
        parts = self._parts(x, alpha, sigma)
        eps = parts["sigma"] * np.einsum("nk,nki->ni", parts["gamma"], parts["u"])
        return self._out(eps, parts["single"])

    def v_target(self, x: ArrayLike, alpha: float, sigma: float) -> np.ndarray:
        """E[v | x_t = x] for v = alpha eps - sigma x_0: alpha E[eps | x] - sigma E[x_0 | x].

        The v-prediction target of Salimans & Ho 2022, defined there for VP (alpha^2 + sigma^2 = 1, alpha = cos phi,
        sigma = sin phi, v = d x_t / d phi); here the same formula is used for any (alpha, sigma). Inverse:
        x_0 = (alpha x - sigma v) / (alpha^2 + sigma^2), eps = (sigma x + alpha v) / (alpha^2 + sigma^2).
        """
        parts = self._parts(x, alpha, sigma)
        alpha, sigma = parts["alpha"], parts["sigma"]
        _, mu, q, lam = self.params
        gamma = parts["gamma"]
        x0 = np.einsum("nk,nki->ni", gamma, mu[None] + np.einsum("kij,nkj->nki", q, alpha * lam * parts["z"]))
        eps = sigma * np.einsum("nk,nki->ni", gamma, parts["u"])
        return self._out(alpha * eps - sigma * x0, parts["single"])

    # ---------------------------------------------------------------- njit hooks

    @property
    def score_fn(self) -> Any:
        """The njit ``mixture_marginal_score(x, alpha, sigma, p)`` (p = ``params``)."""
        return mixture_marginal_score

    @property
    def log_prob_fn(self) -> Any:
        """The njit ``mixture_marginal_log_prob(x, alpha, sigma, p)`` (p = ``params``)."""
        return mixture_marginal_log_prob

    @property
    def laplacian_fn(self) -> Any:
        """The njit ``mixture_marginal_laplacian(x, alpha, sigma, p)`` (p = ``params``)."""
        return mixture_marginal_laplacian
