"""The built-in Gaussian / mixture / diffusion-mixture scores, log-densities and energies by blocks of rows with
matrix products (`sdekit.targets.row_blocks`) against the row-by-row loops they replaced (copied below as the
reference, run as plain Python).

A matrix product sums in another order than the loops, so the results agree to rounding (1e-12 relative per row,
normwise), not bit for bit; below BLAS_MIN_DIM the block loops sum in the old order and agree bit for bit. A row's
result must not depend on the other rows of the call (sdekit's shards equal the solve of all paths bit for bit).
"""

import math

import numpy as np
import pytest

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.mixture_marginals import (
    MixtureMarginals,
    mixture_marginal_laplacian,
    mixture_marginal_log_prob,
    mixture_marginal_score,
)
from sdekit.diffusion.model import exact_mixture_score
from sdekit.targets.gaussian import (
    LOG_2PI,
    Gaussian,
    gaussian_batch_energy,
    gaussian_energy,
    gaussian_log_prob,
    gaussian_score,
)
from sdekit.targets.mixture import (
    mixture_batch_energy,
    mixture_energy,
    mixture_log_prob,
    mixture_score,
)
from sdekit.targets.row_blocks import BLAS_MIN_DIM, BLOCK_ROWS
from tests.problems import random_gaussian_mixture

RTOL = 1e-12  # a few hundred ulps of the row's norm: sums of d products in another order

# ------------------------------------------------------------------------------------------------
# the row-by-row loops of sdekit before the block rewrite (reference)
# ------------------------------------------------------------------------------------------------


def old_mixture_score(x, t, p):
    """Score of the mixture for each row: s(x) = -sum_k gamma_k P_k (x - mu_k); returns (n, d) float64.

    gamma = softmax(l), l_k = log pi_k - 1/2 r_k^T P_k r_k - 1/2 log det(2 pi S_k), r_k = x - mu_k,
    P_k = S_k^{-1}; the softmax is accumulated in one pass with a running maximum (stable log-sum-exp).
    """
    log_w = p[0]
    mu = p[1]
    prec = p[2]
    log_norm = p[3]
    n, d = x.shape
    n_comp = log_w.shape[0]
    # One allocation: rows 0..n-1 are the output, row n is the work vector v = P_k r_k.
    buf = np.empty((n + 1, d))
    v = buf[n]
    for b in range(n):
        for i in range(d):
            buf[b, i] = 0.0
        m = -np.inf  # running max of l_k
        s = 0.0  # sum_k exp(l_k - m)
        for k in range(n_comp):
            quad = 0.0
            for i in range(d):
                vi = 0.0
                for j in range(d):
                    vi += prec[k, i, j] * (x[b, j] - mu[k, j])
                v[i] = vi
                quad += (x[b, i] - mu[k, i]) * vi
            lk = log_w[k] + log_norm[k] - 0.5 * quad
            if lk > m:
                c = math.exp(m - lk)  # rescale what was accumulated against the old maximum
                s = s * c + 1.0
                for i in range(d):
                    buf[b, i] = buf[b, i] * c - v[i]
                m = lk
            else:
                w = math.exp(lk - m)
                s += w
                for i in range(d):
                    buf[b, i] -= w * v[i]
        for i in range(d):
            buf[b, i] /= s
    return buf[:n]


def old_mixture_log_prob(x, t, p):
    """Log-density of the mixture for each row: log sum_k exp(l_k) (l_k as in `mixture_score`); returns (n,)."""
    log_w = p[0]
    mu = p[1]
    prec = p[2]
    log_norm = p[3]
    n, d = x.shape
    n_comp = log_w.shape[0]
    out = np.empty(n)
    for b in range(n):
        m = -np.inf
        s = 0.0
        for k in range(n_comp):
            # half = r^T P_k r / 2, from the lower triangle of the symmetric P_k
            half = 0.0
            for i in range(d):
                ri = x[b, i] - mu[k, i]
                acc = 0.5 * prec[k, i, i] * ri
                for j in range(i):
                    acc += prec[k, i, j] * (x[b, j] - mu[k, j])
                half += ri * acc
            lk = log_w[k] + log_norm[k] - half
            if lk > m:
                s = s * math.exp(m - lk) + 1.0
                m = lk
            else:
                s += math.exp(lk - m)
        out[b] = m + math.log(s) if m > -np.inf else m
    return out


def old_mixture_energy(x, p, grad):
    """Energy U(x) = -log sum_k exp(l_k) of the mixture at one point x (d,) (l_k as in `mixture_score`);
    writes grad U = sum_k gamma_k P_k (x - mu_k). One-pass log-sum-exp, no allocation."""
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
        quad = 0.0
        for i in range(d):
            vi = 0.0
            for j in range(d):
                vi += prec[k, i, j] * (x[j] - mu[k, j])
            quad += (x[i] - mu[k, i]) * vi
        lk = log_w[k] + log_norm[k] - 0.5 * quad
        if lk > m:
            c = math.exp(m - lk)
            s = s * c + 1.0
            for i in range(d):
                vi = 0.0
                for j in range(d):
                    vi += prec[k, i, j] * (x[j] - mu[k, j])
                grad[i] = grad[i] * c + vi
            m = lk
        else:
            w = math.exp(lk - m)
            s += w
            for i in range(d):
                vi = 0.0
                for j in range(d):
                    vi += prec[k, i, j] * (x[j] - mu[k, j])
                grad[i] += w * vi
    for i in range(d):
        grad[i] /= s
    return -(m + math.log(s))


def old_gaussian_score(x, t, p):
    """Score of N(mu, S) for each row: s(x) = -P (x - mu), P = S^{-1}; returns (n, d) float64."""
    mu = p[0]
    prec = p[1]
    n, d = x.shape
    out = np.empty((n, d))
    for b in range(n):
        for i in range(d):
            s = 0.0
            for j in range(d):
                s += prec[i, j] * (x[b, j] - mu[j])
            out[b, i] = -s
    return out


def old_gaussian_log_prob(x, t, p):
    """Log-density of N(mu, S) for each row: -1/2 (x - mu)^T P (x - mu) - 1/2 log det(2 pi S); returns (n,)."""
    mu = p[0]
    prec = p[1]
    log_norm = p[2][0]
    n, d = x.shape
    out = np.empty(n)
    for b in range(n):
        # half = sum_i r_i (P_ii r_i / 2 + sum_{j<i} P_ij r_j) = r^T P r / 2 (P symmetric)
        half = 0.0
        for i in range(d):
            ri = x[b, i] - mu[i]
            s = 0.5 * prec[i, i] * ri
            for j in range(i):
                s += prec[i, j] * (x[b, j] - mu[j])
            half += ri * s
        out[b] = log_norm - half
    return out


def old__scales(alpha, sigma, lam):
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


def old__component(xb, alpha, mu, q, inv_e, k, z):
    """For one point and component k: fills z = diag(1/e_k) Q_k^T r_k and returns r_k^T S_k^{-1} r_k."""
    d = xb.shape[0]
    quad = 0.0
    for j in range(d):
        y = 0.0
        for i in range(d):
            y += q[k, i, j] * (xb[i] - alpha * mu[k, i])
        z[j] = y * inv_e[k, j]
        quad += y * z[j]
    return quad


def old_mixture_marginal_score(x, alpha, sigma, p):
    """Score of p_t for each row: s(x) = -sum_k gamma_k S_k^{-1} (x - alpha mu_k); returns (n, d) float64.

    S_k^{-1} = Q_k diag(1 / (alpha^2 lam_k + sigma^2)) Q_k^T; gamma = softmax(l) accumulated in one pass with a
    running maximum (stable log-sum-exp), l_k = log pi_k - 1/2 r_k^T S_k^{-1} r_k - 1/2 log det(2 pi S_k).
    p = ``MixtureMarginals.params``.
    """
    log_w = p[0]
    mu = p[1]
    q = p[2]
    inv_e, log_norm = old__scales(alpha, sigma, p[3])
    n, d = x.shape
    n_comp = log_w.shape[0]
    out = np.empty((n, d))
    z = np.empty(d)
    u = np.empty(d)
    for b in range(n):
        for i in range(d):
            out[b, i] = 0.0
        m = -np.inf
        s = 0.0
        for k in range(n_comp):
            quad = old__component(x[b], alpha, mu, q, inv_e, k, z)
            for i in range(d):
                acc = 0.0
                for j in range(d):
                    acc += q[k, i, j] * z[j]
                u[i] = acc
            lk = log_w[k] + log_norm[k] - 0.5 * quad
            if lk > m:
                c = math.exp(m - lk)
                s = s * c + 1.0
                for i in range(d):
                    out[b, i] = out[b, i] * c - u[i]
                m = lk
            else:
                w = math.exp(lk - m)
                s += w
                for i in range(d):
                    out[b, i] -= w * u[i]
        for i in range(d):
            out[b, i] /= s
    return out


def old_mixture_marginal_log_prob(x, alpha, sigma, p):
    """log p_t for each row: logsumexp_k [log pi_k - 1/2 r_k^T S_k^{-1} r_k - 1/2 log det(2 pi S_k)]; returns (n,)."""
    log_w = p[0]
    mu = p[1]
    q = p[2]
    inv_e, log_norm = old__scales(alpha, sigma, p[3])
    n, d = x.shape
    n_comp = log_w.shape[0]
    out = np.empty(n)
    z = np.empty(d)
    for b in range(n):
        m = -np.inf
        s = 0.0
        for k in range(n_comp):
            lk = log_w[k] + log_norm[k] - 0.5 * old__component(x[b], alpha, mu, q, inv_e, k, z)
            if lk > m:
                s = s * math.exp(m - lk) + 1.0
                m = lk
            else:
                s += math.exp(lk - m)
        out[b] = m + math.log(s) if m > -np.inf else m
    return out


def old_mixture_marginal_laplacian(x, alpha, sigma, p):
    """Laplacian of log p_t for each row; returns (n,).

    Delta log p_t = sum_k gamma_k (||u_k||^2 - tr S_k^{-1}) - ||s||^2, evaluated as the equal
    sum_k gamma_k ||u_k - ubar||^2 - sum_k gamma_k tr S_k^{-1} with u_k = S_k^{-1} r_k, ubar = sum_k gamma_k u_k = -s.
    """
    log_w = p[0]
    mu = p[1]
    q = p[2]
    inv_e, log_norm = old__scales(alpha, sigma, p[3])
    n, d = x.shape
    n_comp = log_w.shape[0]
    tr = np.empty(n_comp)
    for k in range(n_comp):
        acc = 0.0
        for i in range(d):
            acc += inv_e[k, i]
        tr[k] = acc
    out = np.empty(n)
    z = np.empty(d)
    us = np.empty((n_comp, d))
    lks = np.empty(n_comp)
    ubar = np.empty(d)
    for b in range(n):
        m = -np.inf
        for k in range(n_comp):
            quad = old__component(x[b], alpha, mu, q, inv_e, k, z)
            for i in range(d):
                acc = 0.0
                for j in range(d):
                    acc += q[k, i, j] * z[j]
                us[k, i] = acc
            lks[k] = log_w[k] + log_norm[k] - 0.5 * quad
            if lks[k] > m:
                m = lks[k]
        s = 0.0
        for k in range(n_comp):
            lks[k] = math.exp(lks[k] - m)
            s += lks[k]
        for i in range(d):
            ubar[i] = 0.0
        for k in range(n_comp):
            lks[k] /= s
            for i in range(d):
                ubar[i] += lks[k] * us[k, i]
        acc = 0.0
        for k in range(n_comp):
            v = 0.0
            for i in range(d):
                dev = us[k, i] - ubar[i]
                v += dev * dev
            acc += lks[k] * (v - tr[k])
        out[b] = acc
    return out


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------

DIMS = (2, 16)  # one below BLAS_MIN_DIM (bit for bit), one through BLAS


def random_mixture(d: int, n_comp: int = 3, seed: int = 0):
    return random_gaussian_mixture(d, n_comp, seed)


def points(d: int, n: int = 2 * BLOCK_ROWS + 3, seed: int = 1) -> np.ndarray:
    """n rows: near the modes, and far out (scale 40: every responsibility but one underflows without log-sum-exp)."""
    rng = np.random.default_rng([seed, d])
    x = 1.5 * rng.standard_normal((n, d))
    x[n // 2:] *= 40.0
    return x


def row_close(new: np.ndarray, old: np.ndarray) -> None:
    """Per row |new - old| <= RTOL |old| (vectors: norms; scalars: absolute values)."""
    new, old = np.atleast_2d(new.T).T, np.atleast_2d(old.T).T
    err = np.linalg.norm(new - old, axis=-1)
    scale = np.linalg.norm(old, axis=-1)
    assert np.all(err <= RTOL * scale), np.max(err / scale)


# ------------------------------------------------------------------------------------------------
# agreement with the loops
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
def test_gaussian_and_mixture_match_the_loops(d):
    mix = random_mixture(d)
    g = Gaussian(mix.means[0], mix.covs[0])
    for n in (1, 2 * BLOCK_ROWS + 3):
        x = points(d, n)
        pairs = [(mixture_score(x, 0.0, mix.params), old_mixture_score(x, 0.0, mix.params)),
                 (mixture_log_prob(x, 0.0, mix.params), old_mixture_log_prob(x, 0.0, mix.params)),
                 (gaussian_score(x, 0.0, g.params), old_gaussian_score(x, 0.0, g.params)),
                 (gaussian_log_prob(x, 0.0, g.params), old_gaussian_log_prob(x, 0.0, g.params))]
        for new, old in pairs:
            assert new.shape == old.shape and new.dtype == np.float64
            row_close(new, old)
            if d < BLAS_MIN_DIM and new.ndim == 2:  # scores: the same sums in the same order
                assert np.array_equal(new, old)
    x32 = points(d).astype(np.float32)  # float32 input: float64 results from the float32 values
    row_close(mixture_score(x32, 0.0, mix.params), old_mixture_score(x32.astype(np.float64), 0.0, mix.params))
    row_close(gaussian_log_prob(x32, 0.0, g.params), old_gaussian_log_prob(x32.astype(np.float64), 0.0, g.params))


@pytest.mark.parametrize("d", DIMS)
def test_energies_match_the_loops(d):
    mix = random_mixture(d)
    g = Gaussian(mix.means[0], mix.covs[0])
    x = points(d)
    n = x.shape[0]
    gm, gm_old, gb, gg = (np.empty((n, d)) for _ in range(4))
    um = np.array([mixture_energy(x[b], mix.params, gm[b]) for b in range(n)])
    um_old = np.array([old_mixture_energy(x[b], mix.params, gm_old[b]) for b in range(n)])
    row_close(um, um_old)
    row_close(gm, gm_old)
    ub = mixture_batch_energy(x, mix.params, gb)
    row_close(ub, um_old)
    row_close(gb, gm_old)
    ug = gaussian_batch_energy(x, g.params, gb)
    ug_one = np.array([gaussian_energy(x[b], g.params, gg[b]) for b in range(n)])
    row_close(ug, ug_one)
    row_close(gb, gg)
    near = g.mean + 1e-6  # U near the mode: computed as 1/2 r^T P r, not log_norm - log pi (no cancellation)
    row_close(gaussian_batch_energy(near[None], g.params, gb[:1]), np.array([gaussian_energy(near, g.params, gg[0])]))


@pytest.mark.parametrize("d", DIMS)
def test_mixture_marginals_match_the_loops(d):
    mm = MixtureMarginals(random_mixture(d))
    for alpha, sigma in ((1.0, 0.0), (0.6, 0.8), (0.05, 1.0)):
        for n in (1, 2 * BLOCK_ROWS + 3):
            x = points(d, n)
            new = mixture_marginal_score(x, alpha, sigma, mm.params)
            old = old_mixture_marginal_score(x, alpha, sigma, mm.params)
            row_close(new, old)
            if d < BLAS_MIN_DIM:
                assert np.array_equal(new, old)
            row_close(mixture_marginal_log_prob(x, alpha, sigma, mm.params),
                      old_mixture_marginal_log_prob(x, alpha, sigma, mm.params))
            lap = mixture_marginal_laplacian(x, alpha, sigma, mm.params)
            lap_old = old_mixture_marginal_laplacian(x, alpha, sigma, mm.params)
            assert np.all(np.abs(lap - lap_old) <= RTOL * np.abs(lap_old) + RTOL * np.sum(1 / mm.eigvals))


def test_exact_mixture_score_and_numpy_methods_agree():
    mm = MixtureMarginals(random_mixture(16))
    x = points(16)
    forward = ForwardSDE.vp()
    a, s = forward.kernel(0.3)
    row_close(exact_mixture_score(x, 0.3, (forward.sp, *mm.params)), old_mixture_marginal_score(x, a, s, mm.params))
    row_close(mixture_marginal_score(x, 0.7, 0.5, mm.params), mm.score(x, 0.7, 0.5))


# ------------------------------------------------------------------------------------------------
# a row's numbers do not depend on the rest of the batch
# ------------------------------------------------------------------------------------------------


def test_rows_do_not_depend_on_the_batch():
    d = 17  # not a multiple of any BLAS kernel width
    mix = random_mixture(d)
    mm = MixtureMarginals(mix)
    x = points(d, 5 * BLOCK_ROWS + 1)
    fns = [lambda z: mixture_score(z, 0.0, mix.params), lambda z: mixture_log_prob(z, 0.0, mix.params),
           lambda z: gaussian_score(z, 0.0, Gaussian(mix.means[0], mix.covs[0]).params),
           lambda z: mixture_marginal_score(z, 0.8, 0.6, mm.params),
           lambda z: mixture_marginal_laplacian(z, 0.8, 0.6, mm.params)]
    for f in fns:
        full = f(x)
        for a, b in ((0, 1), (3, 4), (1, 6), (5, 5 + 3 * BLOCK_ROWS), (2, x.shape[0])):
            assert np.array_equal(f(np.ascontiguousarray(x[a:b])), full[a:b]), (a, b)
