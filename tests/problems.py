"""Small test problems, one per noise type, defined once so kernels compile once per session."""

import numba as nb
import numpy as np

import sdekit


@nb.njit
def coupled_drift(x, t, p):
    """f_i = -p0 x_i + p1 sin(x_{i+1}) (cyclic) + 0.1 t."""
    n, d = x.shape
    out = np.empty((n, d))
    for r in range(n):
        for i in range(d):
            out[r, i] = -p[0] * x[r, i] + p[1] * np.sin(x[r, (i + 1) % d]) + 0.1 * t
    return out


@nb.njit
def diag_diffusion(x, t, p):
    """g_i = p2 (1 + 0.5 cos x_i): diagonal, state-dependent."""
    return p[2] * (1.0 + 0.5 * np.cos(x))


@nb.njit
def general_diffusion(x, t, p):
    """g_ij = p2 (delta_ij + 0.3 sin(x_i + j)), shape (n, d, m) with m = 2."""
    n, d = x.shape
    out = np.empty((n, d, 2))
    for r in range(n):
        for i in range(d):
            for j in range(2):
                out[r, i, j] = p[2] * ((1.0 if i == j else 0.0) + 0.3 * np.sin(x[r, i] + j))
    return out


@nb.njit
def additive_matrix(x, t, p):
    """Constant (3, 2) matrix scaled by (1 + t)."""
    g = np.empty((3, 2))
    for i in range(3):
        for j in range(2):
            g[i, j] = p[2] * (1.0 + t) * (0.5 if i == j else 0.2)
    return g


PARAMS = [1.0, 0.5, 0.4]
DIAGONAL = sdekit.SDE(coupled_drift, diag_diffusion, dim=3, noise="diagonal", params=PARAMS, name="diag")
SCALAR = sdekit.SDE(coupled_drift, diag_diffusion, dim=3, noise="scalar", params=PARAMS, name="scalar")
GENERAL = sdekit.SDE(coupled_drift, general_diffusion, dim=3, noise="general", brownian_dim=2, params=PARAMS,
                     name="general")
ADDITIVE = sdekit.SDE(coupled_drift, additive_matrix, dim=3, noise="additive", brownian_dim=2, params=PARAMS,
                      name="additive")
DIAGONAL_STRAT = sdekit.SDE(coupled_drift, diag_diffusion, dim=3, noise="diagonal", calculus="stratonovich",
                            params=PARAMS, name="diag_strat")


@nb.njit
def commutative_diffusion(x, t, p):
    """g_ij = p2 (0.5 + 0.5 j) x_i, shape (n, d, 2): columns sigma_j x commute (L^j g_k = sigma_j sigma_k x)."""
    n, d = x.shape
    out = np.empty((n, d, 2))
    for r in range(n):
        for i in range(d):
            for j in range(2):
                out[r, i, j] = p[2] * (0.5 + 0.5 * j) * x[r, i]
    return out


COMMUTATIVE = sdekit.SDE(coupled_drift, commutative_diffusion, dim=3, noise="commutative", brownian_dim=2,
                         params=PARAMS, name="commutative")
ALL = [DIAGONAL, SCALAR, GENERAL, ADDITIVE, DIAGONAL_STRAT, COMMUTATIVE]


def compatible(solver, sde):
    """Whether the solver declares support for the SDE's calculus and noise type."""
    return sde.calculus in solver.calculus and sde.noise in solver.noise_types and not (
        solver.family == "milstein" and sde.matrix_noise)


DRIFT_SCALE = 1.0  # a module global read by a compiled drift (tests/test_user_functions.py rebinds it)


@nb.njit
def global_scaled_drift(x, t, p):
    """f = -DRIFT_SCALE x, the scale read from a module global."""
    return -DRIFT_SCALE * x


@nb.njit
def unit_diffusion(x, t, p):
    """g = 1."""
    return 1.0


@nb.njit
def drift_raising_late(x, t, p):
    """f = -x until t = 0.5, then a ZeroDivisionError (a user function failing in the middle of a solve)."""
    if t > 0.5:
        return (1.0 / (t - t)) * x  # a scalar division by zero raises under Numba's Python error model
    return -1.0 * x


def with_comprehension(x, t, p):
    """A function whose code holds a nested code object (the comprehension), for cache-key stability tests."""
    return np.array([2.0 * v for v in x.ravel()]).reshape(x.shape)


# matrix noise for the Milstein solvers (tests/test_orders.py, tests/test_milstein_matrix.py)
GBM2_MU, GBM2_SIGMA = 0.5, (0.6, 0.8)


@nb.njit
def gbm2_drift(x, t, p):
    """f = mu X (mu = 0.5)."""
    return 0.5 * x


@nb.njit
def gbm2_diffusion(x, t, p):
    """g = (sigma_1 X, sigma_2 X), shape (n, 1, 2): commutative (L^1 g_2 = sigma_1 sigma_2 X = L^2 g_1)."""
    n = x.shape[0]
    out = np.empty((n, 1, 2))
    for r in range(n):
        out[r, 0, 0] = 0.6 * x[r, 0]
        out[r, 0, 1] = 0.8 * x[r, 0]
    return out


def gbm2_exact(calculus: str, t: float):
    """X_t = x0 exp(sum_j sigma_j W_j + (mu - [Itô] sum_j sigma_j^2 / 2) t) as exact_fn(x0, w)."""
    shift = sum(s * s for s in GBM2_SIGMA) / 2.0 if calculus == "ito" else 0.0

    def exact(x0: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x0 * np.exp(w @ np.array(GBM2_SIGMA)[:, None] + (GBM2_MU - shift) * t)

    return exact


@nb.njit
def noncomm_drift(x, t, p):
    """f = -X / 2."""
    return -0.5 * x


@nb.njit
def noncomm_diffusion(x, t, p):
    """g = [[1, sin x_2], [cos x_1, 1]]: L^1 g_2 = (cos x_1 cos x_2, 0) != L^2 g_1 = (0, -sin x_1 sin x_2)."""
    n = x.shape[0]
    out = np.empty((n, 2, 2))
    for r in range(n):
        out[r, 0, 0] = 1.0
        out[r, 0, 1] = np.sin(x[r, 1])
        out[r, 1, 0] = np.cos(x[r, 0])
        out[r, 1, 1] = 1.0
    return out


GBM2 = {c: sdekit.SDE(gbm2_drift, gbm2_diffusion, dim=1, noise="commutative", brownian_dim=2, calculus=c,
                      name=f"gbm2_{c}") for c in ("ito", "stratonovich")}
NONCOMM = {c: sdekit.SDE(noncomm_drift, noncomm_diffusion, dim=2, noise="general", brownian_dim=2, calculus=c,
                         name=f"noncomm_{c}") for c in ("ito", "stratonovich")}
NONCOMM_X0 = [0.3, -0.2]


# Brownian motion dX = dW in 1-D (scalar noise), read by tests that need a solve's Brownian increments
# (tests/test_stiff.py, tests/test_torch_stratonovich_milstein.py): one problem, so its kernel compiles once per run


def zero_array_drift(x, t, p):
    """f = 0, an array of x's shape."""
    return 0.0 * x


def unit_array_noise(x, t, p):
    """g = 1, an array of x's shape."""
    return 1.0 + 0.0 * x


BROWNIAN_1D = sdekit.SDE(zero_array_drift, unit_array_noise, 1, noise="scalar", name="bm")


def random_gaussian_mixture(d: int, n_comp: int, seed: int = 0):
    """A K-component mixture in d dimensions with random weights, means (scale 2) and covariances A A^T / d + 0.3 I,
    seeded by (seed, d): the random mixtures of the matrix-product and fused-drift tests."""
    from sdekit.targets import GaussianMixture

    rng = np.random.default_rng([seed, d])
    a = rng.standard_normal((n_comp, d, d)) / np.sqrt(d)
    covs = a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(d)
    w = rng.uniform(0.5, 1.5, n_comp)
    return GaussianMixture(w / w.sum(), 2.0 * rng.standard_normal((n_comp, d)), covs)
