"""The exact mixture model's fused reverse-SDE / probability-flow drift (`sdekit.diffusion.mixture_flow`) against the
composition it replaces and against an independent NumPy/SciPy computation of the exact score.

Reference 1: `reverse.probability_flow_ode` / `reverse.reverse_sde` composed with the unchanged njit score
`exact_mixture_score` (the eigenbasis form) - the drift every exact-model solve used before. From d = BLAS_MIN_DIM on,
the fused drift forms S_k^{-1} = Q_k diag(1/e_k) Q_k^T first (the sums reassociate), so the rows agree to 1e-12
relative (normwise, a few hundred ulps of d = 16 sums), not bit for bit; below BLAS_MIN_DIM they are equal.
Reference 2: s(x) = grad log sum_k pi_k N(x; alpha mu_k, alpha^2 C_k + sigma^2 I) from scipy.stats densities and
np.linalg.solve, then f x - (1 + lambda^2)/2 g^2 s.
"""

import math

import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import multivariate_normal

from sdekit.diffusion import DiffusionModel, ForwardSDE, exact_mixture_score, mixture_marginal_score
from sdekit.diffusion.mixture_flow import exact_mixture_drift, marginal_precisions, mixture_flow_rows
from sdekit.diffusion.reverse import probability_flow_ode, reverse_sde
from sdekit.targets import GaussianMixture
from sdekit.targets.row_blocks import BLAS_MIN_DIM, WIDE_BLOCK_ROWS
from tests.problems import random_gaussian_mixture

RTOL = 1e-12
TIMES = (1.0, 0.5, 0.05, 1e-3)


def random_mixture(d: int, n_comp: int = 4, seed: int = 0):
    return random_gaussian_mixture(d, n_comp, seed)


def points(d: int, n: int = 2 * WIDE_BLOCK_ROWS + 5, seed: int = 1) -> np.ndarray:
    """Rows near the data and far out (scale 30: all responsibilities but one underflow without the maximum)."""
    rng = np.random.default_rng([seed, d])
    x = 2.0 * rng.standard_normal((n, d))
    x[n // 2:] *= 15.0
    return x


def row_close(new: np.ndarray, ref: np.ndarray, rtol: float = RTOL, scale: np.ndarray | None = None) -> None:
    """Per row ||new - ref|| <= rtol * scale, scale = ||ref|| unless given (a drift f x - c s: ||f x|| + ||c s||,
    the size of the two terms, which cancel where p_t is near Gaussian: the rounding of s is relative to s)."""
    err = np.linalg.norm(new - ref, axis=1) / (np.linalg.norm(ref, axis=1) if scale is None else scale)
    assert np.all(err <= rtol), float(err.max())


def term_scale(forward: ForwardSDE, x: np.ndarray, t: float, lam: float, score: np.ndarray) -> np.ndarray:
    """||f x|| + ||(1 + lam^2)/2 g^2 s|| per row."""
    f, g = forward.f(t), forward.g(t)
    return np.linalg.norm(f * x, axis=1) + 0.5 * (1.0 + lam * lam) * g * g * np.linalg.norm(score, axis=1)


MODELS = {d: DiffusionModel.exact_mixture(ForwardSDE.vp(), random_mixture(d)) for d in (2, 16)}


@pytest.mark.parametrize("d", (2, 16))
@pytest.mark.parametrize("lam", (0.0, 1.0))
def test_fused_drift_matches_the_composition(d, lam):
    model = MODELS[d]
    fused = model.reverse_sde(lam) if lam else model.probability_flow()
    composed = (reverse_sde(model.forward, exact_mixture_score, d, model.njit_params, lam=lam) if lam else
                probability_flow_ode(model.forward, exact_mixture_score, d, model.njit_params))
    new_fn = fused.drift if lam else fused.field
    old_fn = composed.drift if lam else composed.field
    assert new_fn is exact_mixture_drift(model.forward.coefficients_fn, exact_mixture_score)
    assert old_fn is not new_fn
    x = points(d)
    for t in TIMES:
        new = new_fn(x, t, fused.params)
        old = old_fn(x, t, composed.params)
        assert new.shape == old.shape and new.dtype == np.float64
        if d < BLAS_MIN_DIM:
            assert np.array_equal(new, old)
        else:
            row_close(new, old, scale=term_scale(model.forward, x, t, lam, exact_mixture_score(x, t, fused.params[1:])))
    x32 = x.astype(np.float32)  # float32 states: float64 drift of the float32 values, as the composition gives
    score32 = exact_mixture_score(x32, 0.5, fused.params[1:])
    row_close(new_fn(x32, 0.5, fused.params), old_fn(x32, 0.5, composed.params),
              scale=term_scale(model.forward, x32.astype(np.float64), 0.5, lam, score32))


def scipy_score(mix: GaussianMixture, x: np.ndarray, alpha: float, sigma: float) -> np.ndarray:
    """grad log p_t(x) with p_t = sum_k pi_k N(alpha mu_k, S_k), S_k = alpha^2 C_k + sigma^2 I: gamma from scipy's
    log-densities, S_k^{-1} r_k by np.linalg.solve."""
    d = mix.dim
    covs = [alpha * alpha * c + sigma * sigma * np.eye(d) for c in mix.covs]
    logits = np.stack([math.log(w) + multivariate_normal(alpha * m, c).logpdf(x)
                       for w, m, c in zip(mix.weights, mix.means, covs, strict=True)], axis=1)
    gamma = softmax(logits, axis=1)
    u = np.stack([np.linalg.solve(c, (x - alpha * m).T).T for m, c in zip(mix.means, covs, strict=True)], axis=1)
    return -np.einsum("nk,nki->ni", gamma, u)


@pytest.mark.parametrize("forward", (ForwardSDE.vp(), ForwardSDE.ve()), ids=("vp", "ve"))
def test_fused_drift_matches_scipy(forward):
    mix = random_mixture(16, seed=3)
    model = DiffusionModel.exact_mixture(forward, mix)
    ode = model.probability_flow()
    x = points(16, 40)[:20]  # rows near the data, where every component's density is representable for scipy
    for frac in (0.9, 0.3, 0.02):
        t = forward.eps + frac * (forward.T - forward.eps)
        alpha, sigma = forward.kernel(t)
        f, g = forward.f(t), forward.g(t)
        score = scipy_score(mix, x, alpha, sigma)
        row_close(ode.field(x, t, ode.params), f * x - 0.5 * g * g * score, scale=term_scale(forward, x, t, 0.0, score))


def test_precisions_are_the_inverse_marginal_covariances():
    mix = random_mixture(16, seed=5)
    model = DiffusionModel.exact_mixture(ForwardSDE.vp(), mix)
    _, _, q, lam = model.exact.params
    for alpha, sigma in ((1.0, 0.0), (0.6, 0.8), (0.05, 0.999)):
        prec, log_c = marginal_precisions(alpha, sigma, q, lam)
        for k in range(mix.n_components):
            s_k = alpha * alpha * mix.covs[k] + sigma * sigma * np.eye(16)
            inv = np.linalg.inv(s_k)
            assert np.max(np.abs(prec[k] - inv)) <= 1e-11 * np.max(np.abs(inv))
            assert abs(log_c[k] + 0.5 * np.linalg.slogdet(2 * math.pi * s_k)[1]) <= 1e-12 * abs(log_c[k])


def test_rows_do_not_depend_on_the_batch():
    d = 17  # not a multiple of any BLAS kernel width
    mm = DiffusionModel.exact_mixture(ForwardSDE.vp(), random_mixture(d)).exact
    x = points(d, 3 * WIDE_BLOCK_ROWS + 7)
    full = mixture_flow_rows(x, 0.8, 0.6, mm.params, -0.3, 0.7)
    for a, b in ((0, 1), (3, 4), (1, 6), (5, 5 + WIDE_BLOCK_ROWS), (2, 2 + 2 * WIDE_BLOCK_ROWS + 1), (0, x.shape[0])):
        assert np.array_equal(mixture_flow_rows(np.ascontiguousarray(x[a:b]), 0.8, 0.6, mm.params, -0.3, 0.7),
                              full[a:b]), (a, b)


def test_score_part_matches_the_old_score_and_a_planted_error_fails():
    """f = 0, c = -1 gives the score alone: it agrees with the unchanged `mixture_marginal_score` (the eigenbasis
    form) to 1e-12, and the score of a slightly different time (alpha off by 1e-9 relative) fails the same check."""
    mm = MODELS[16].exact
    x = points(16)
    for alpha, sigma in ((1.0, 0.0), (0.8, 0.6), (0.05, 0.999)):
        ref = mixture_marginal_score(x, alpha, sigma, mm.params)
        row_close(mixture_flow_rows(x, alpha, sigma, mm.params, 0.0, -1.0), ref)
        with pytest.raises(AssertionError):
            row_close(mixture_flow_rows(x, alpha * (1.0 + 1e-9), sigma, mm.params, 0.0, -1.0), ref)
