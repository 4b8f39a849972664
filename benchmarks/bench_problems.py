"""The benchmark's SDE coefficients, written the way a user would: plain batch functions f(x, t, p), x of shape (n, d).

They live in a module of their own (not in the script, whose functions would belong to ``__main__``) so that sdekit
can import them by name and cache their compiled kernels on disk across processes.
"""

import math

import numpy as np

import sdekit.math as sm
from sdekit.backends.torch import register_torch  # does not import torch

try:
    import torch
except ImportError:  # torch is optional: the twin is registered but only called on the torch backend
    torch = None


def ou_drift(x, t, p):
    return -p[0] * x


def sqrt2_diffusion(x, t, p):
    return 2**0.5


def ou_drift_scalar(x, t, p):
    """The OU drift in sdekit's per-path scalar form (form="scalar": x is one path's float state)."""
    return -p[0] * x


def sqrt2_scalar(x, t, p):
    """The constant noise sqrt(2) in the per-path scalar form."""
    return 2**0.5


def gmm_score(x, t, p):
    """Score of sum_k w_k N(mu_k, Sigma_k): -sum_k r_k(x) P_k (x - mu_k), r the responsibilities."""
    means, precs, log_norm, log_w = p
    n, d = x.shape
    n_comp = means.shape[0]
    out = np.empty_like(x)
    diff = np.empty(d)
    pdiff = np.empty((n_comp, d))
    logp = np.empty(n_comp)
    for r in range(n):
        for k in range(n_comp):
            for i in range(d):
                diff[i] = x[r, i] - means[k, i]
            q = 0.0
            for i in range(d):
                s = 0.0
                for j in range(d):
                    s += precs[k, i, j] * diff[j]
                pdiff[k, i] = s
                q += diff[i] * s
            logp[k] = log_w[k] + log_norm[k] - 0.5 * q
        mx = logp.max()
        tot = 0.0
        for k in range(n_comp):
            logp[k] = math.exp(logp[k] - mx)
            tot += logp[k]
        for i in range(d):
            s = 0.0
            for k in range(n_comp):
                s += logp[k] * pdiff[k, i]
            out[r, i] = -s / tot
    return out


def gmm_score_torch(x, t, p):
    """`gmm_score` in batched torch operations (its twin on sdekit's torch backend): r_k = x - mu_k, u_k = P_k r_k,
    l_k = log w_k + log_norm_k - r_k^T u_k / 2, s = -sum_k softmax_k(l) u_k."""
    means, precs, log_norm, log_w = p
    r = x[:, None, :] - means  # (n, K, d)
    u = torch.einsum("kij,nkj->nki", precs, r)
    logits = log_w + log_norm - 0.5 * (r * u).sum(-1)  # (n, K)
    return -(torch.softmax(logits, dim=1)[:, :, None] * u).sum(1)


register_torch(gmm_score, gmm_score_torch)


def pf_field(x, t, p):
    """Probability-flow ODE of dX = -X dt + sqrt(2) dW from X_0 ~ N(0, v0), p = [v0]: dx/dt = x (1 / v(t) - 1),
    v(t) = v0 e^{-2t} + 1 - e^{-2t} the marginal variance. Exact flow x(t) = x(0) sqrt(v(t) / v0). Written with
    sdekit.math, so it runs as it is on both backends (t is a float in Numba, a 0-d tensor on torch)."""
    e = sm.exp(-2.0 * t)
    v = p[0] * e + 1.0 - e
    return x * (1.0 / v - 1.0)


def make_gmm(dim: int = 16, n_comp: int = 4, seed: int = 0, scale: float = 2.0) -> tuple:
    """(means, precisions, log normalising constants, log weights) of a random GMM.

    Means ~ scale * N(0, I); covariances Q diag(lam) Q^T with Q random orthogonal, lam ~ U[0.5, 2]; equal weights.
    """
    rng = np.random.default_rng(seed)
    means = scale * rng.standard_normal((n_comp, dim))
    precs = np.empty((n_comp, dim, dim))
    log_norm = np.empty(n_comp)
    for k in range(n_comp):
        q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        lam = rng.uniform(0.5, 2.0, dim)
        prec = (q / lam) @ q.T
        precs[k] = 0.5 * (prec + prec.T)
        log_norm[k] = -0.5 * (np.sum(np.log(lam)) + dim * math.log(2.0 * math.pi))
    return means, precs, log_norm, np.full(n_comp, -math.log(n_comp))
