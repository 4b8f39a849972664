"""The benchmark's SDE coefficients, written the way a user would: plain batch functions f(x, t, p), x of shape (n, d).

They live in a module of their own (not in the script, whose functions would belong to ``__main__``) so that sdekit
can import them by name and cache their compiled kernels on disk across processes.
"""

import math

import numpy as np


def ou_drift(x, t, p):
    return -p[0] * x


def sqrt2_diffusion(x, t, p):
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
