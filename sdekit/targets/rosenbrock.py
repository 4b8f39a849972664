"""The n-dimensional Rosenbrock density (Pagani, Wiegand & Nadarajah 2022, Scand. J. Stat.):

    pi(x) = exp(-U(x)) / Z,  U(x) = a (x_1 - mu)^2 + b sum_{i=2}^d (x_i - x_{i-1}^2)^2,

their "hybrid" Rosenbrock with a single block (the chained "full" Rosenbrock,
sum_i [b (x_{i+1} - x_i^2)^2 + a (x_i - mu)^2], has no closed-form normaliser). It is a banana that
factorises into x_1 ~ N(mu, s^2), s^2 = 1 / (2a), and x_i | x_{i-1} ~ N(x_{i-1}^2, t), t = 1 / (2b).
So Z = sqrt(pi / a) (pi / b)^((d-1)/2), sampling is exact and sequential, the marginals of x_1 and
x_2 are known (x_2 = x_1^2 + sqrt(t) e), and every moment E prod x_i^{k_i} is a finite sum of normal
moments (computed exactly by composing the conditional-expectation maps).
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from sdekit.errors import SDEKitError
from sdekit.targets.double_well import ClosedFormTarget, check_dim, check_index, finite_scalar
from sdekit.targets.gaussian import Seed, readonly, sample_count
from sdekit.targets.law1d import Law1D, gaussian_raw_moments

INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# x_2's CDF and density: an integral over e ~ N(0, 1) on [-E_MAX, E_MAX] (mass outside ~ 1e-23): PANELS
# Gauss–Legendre panels in e, then KINK_PANELS panels in r = sqrt(z - sqrt(t) e) over the last KINK units of e
E_MAX = 10.0
KINK = 1.0
PANELS = 8
KINK_PANELS = 2
GL_ORDER = 12
GL_NODES, GL_WEIGHTS = np.polynomial.legendre.leggauss(GL_ORDER)
MAX_MOMENT_DIM = 10  # mean / cov need normal moments of order 2^dim


@nb.njit(cache=True)
def rosenbrock_energy(x, p, grad):
    """U(x) = a (x_1 - mu)^2 + b sum_{i>=2} (x_i - x_{i-1}^2)^2 with p = ([mu, a, b],);
    dU/dx_i = 2 b r_i - 4 b x_i r_{i+1} (+ 2 a (x_1 - mu) for i = 1), r_i = x_i - x_{i-1}^2."""
    mu = p[0][0]
    a = p[0][1]
    b = p[0][2]
    d = x.shape[0]
    dx = x[0] - mu
    u = a * dx * dx
    grad[0] = 2.0 * a * dx
    for i in range(1, d):
        r = x[i] - x[i - 1] * x[i - 1]
        u += b * r * r
        grad[i] = 2.0 * b * r
        grad[i - 1] -= 4.0 * b * x[i - 1] * r
    return u


def _positive(v: Any, name: str) -> float:
    x = finite_scalar(v, name)
    if not x > 0:
        raise SDEKitError(f"{name} must be positive; got {x}")
    return x


def normal_raw_moments(mean: float, var: float, kmax: int) -> np.ndarray:
    """E Y^k, k = 0..kmax, for Y ~ N(mean, var): m_k = mean m_{k-1} + (k - 1) var m_{k-2} (Stein)."""
    m = np.zeros(kmax + 1)
    m[0] = 1.0
    if kmax >= 1:
        m[1] = mean
    for k in range(2, kmax + 1):
        m[k] = mean * m[k - 1] + (k - 1) * var * m[k - 2]
    return m


def condition_matrix(nmax: int, noise: np.ndarray) -> np.ndarray:
    """M (nmax + 1, 2 nmax + 1) with M[n, 2l] = C(n, l) E(sqrt(t) e)^{n-l} (``noise`` holds E(sqrt(t) e)^k):
    for X = y^2 + sqrt(t) e, E[sum_n q_n X^n | y] = sum_m (q M)_m y^m."""
    m = np.zeros((nmax + 1, 2 * nmax + 1))
    with np.errstate(over="ignore", invalid="ignore"):
        for n in range(nmax + 1):
            for l in range(n + 1):
                if noise[n - l] != 0.0:
                    m[n, 2 * l] = float(math.comb(n, l)) * noise[n - l]
    return m


@nb.njit(cache=True)
def _phi_cdf(x):
    """Phi(x) = erfc(-x / sqrt 2) / 2."""
    return 0.5 * math.erfc(-x * 0.7071067811865476)


@nb.njit(cache=True)
def _sorted_edges(lo, hi, count, breaks):
    """count + 1 equispaced points on [lo, hi] and the breaks inside (lo, hi), sorted."""
    edges = np.empty(count + 1 + breaks.size)
    m = 0
    for k in range(count + 1):
        edges[m] = lo + (hi - lo) * k / count
        m += 1
    for b in breaks:
        if lo < b < hi:
            edges[m] = b
            m += 1
    out = np.sort(edges[:m])
    out[0], out[m - 1] = lo, hi
    return out


@nb.njit(cache=True)
def rosenbrock_x2_law(z, mu, s, sig, density, nodes, weights):
    """F(z) (density False) or f(z) (density True) of x_2 = y + sig e, y = x_1^2, x_1 ~ N(mu, s^2), e ~ N(0, 1):

    F(z) = int phi(e) G(z - sig e) de, G(y) = P(x_1^2 <= y) = H(sqrt(y)), H(r) = Phi((r - mu) / s)
    - Phi((-r - mu) / s); f(z) = int phi(e) p(z - sig e) de, p(y) = [phi_s(sqrt y - mu) + phi_s(-sqrt y - mu)]
    / (2 sqrt y), over e in [-E_MAX, min(E_MAX, e*)], e* = z / sig (where y = 0). Away from e*
    (e <= e* - KINK): Gauss–Legendre in e on PANELS panels; on [e* - KINK, e*], where G ~ sqrt(y) and
    p ~ 1 / sqrt(y), Gauss–Legendre in r = sqrt(y) on KINK_PANELS panels, where the integrands
    phi((z - r^2) / sig) (2 r / sig) H(r) and phi((z - r^2) / sig) / sig [phi_s(r - mu) + phi_s(-r - mu)]
    are smooth. Both get extra panel edges where sqrt(y) crosses H's transition, |mu| + (-6, -2, 0, 2, 6) s.
    """
    out = np.empty(z.size)
    rb = np.empty(5)
    for k, c in enumerate((-6.0, -2.0, 0.0, 2.0, 6.0)):
        rb[k] = max(abs(mu) + c * s, 0.0)
    eb = np.empty(5)
    for j in range(z.size):
        zj = z[j]
        e_star = zj / sig
        total = 0.0
        a_hi = min(max(e_star - KINK, -E_MAX), E_MAX)
        if a_hi > -E_MAX:  # smooth part, in e
            for k in range(5):
                eb[k] = (zj - rb[k] * rb[k]) / sig
            edges = _sorted_edges(-E_MAX, a_hi, PANELS, eb)
            for q in range(edges.size - 1):
                mid, half = 0.5 * (edges[q] + edges[q + 1]), 0.5 * (edges[q + 1] - edges[q])
                for n in range(nodes.size):
                    e = mid + half * nodes[n]
                    root = math.sqrt(max(zj - sig * e, 0.0))
                    if density:
                        val = (INV_SQRT_2PI / s * (math.exp(-0.5 * ((root - mu) / s) ** 2)
                                                   + math.exp(-0.5 * ((root + mu) / s) ** 2)) / (2.0 * root))
                    else:
                        val = _phi_cdf((root - mu) / s) - _phi_cdf((-root - mu) / s)
                    total += half * weights[n] * INV_SQRT_2PI * math.exp(-0.5 * e * e) * val
        b_lo = min(max(e_star - KINK, -E_MAX), E_MAX)
        b_hi = min(max(e_star, -E_MAX), E_MAX)
        if b_hi > b_lo:  # next to y = 0, in r
            r_lo = 0.0 if e_star <= E_MAX else math.sqrt(max(zj - sig * b_hi, 0.0))
            r_hi = math.sqrt(max(zj - sig * b_lo, 0.0))
            edges = _sorted_edges(r_lo, r_hi, KINK_PANELS, rb)
            for q in range(edges.size - 1):
                mid, half = 0.5 * (edges[q] + edges[q + 1]), 0.5 * (edges[q + 1] - edges[q])
                for n in range(nodes.size):
                    r = mid + half * nodes[n]
                    gauss = INV_SQRT_2PI * math.exp(-0.5 * ((zj - r * r) / sig) ** 2)
                    if density:
                        val = INV_SQRT_2PI / s * (math.exp(-0.5 * ((r - mu) / s) ** 2)
                                                  + math.exp(-0.5 * ((r + mu) / s) ** 2)) / sig
                    else:
                        val = 2.0 * r / sig * (_phi_cdf((r - mu) / s) - _phi_cdf((-r - mu) / s))
                    total += half * weights[n] * gauss * val
        out[j] = total if density else min(max(total, 0.0), 1.0)
    return out


class Rosenbrock(ClosedFormTarget):
    """The n-dimensional Rosenbrock law U(x) = a (x_1 - mu)^2 + b sum_{i=2}^d (x_i - x_{i-1}^2)^2, d >= 2.

    Defaults a = 1/20, b = 100/20 (Pagani et al.'s test case): x_1 ~ N(mu, 10), x_2 | x_1 ~ N(x_1^2, 0.1).

    Attributes:
      dim: d; mu, a, b: the parameters.
      params: ([mu, a, b],), contiguous float64: the ``p`` of ``energy_fn`` (`rosenbrock_energy`).
      log_normalizer: log Z = 1/2 log(pi / a) + (d - 1)/2 log(pi / b).
    """

    def __init__(self, dim: int = 2, mu: float = 1.0, a: float = 1.0 / 20.0, b: float = 100.0 / 20.0) -> None:
        d = check_dim(dim, 2)
        self.mu = finite_scalar(mu, "mu")
        self.a = _positive(a, "a")
        self.b = _positive(b, "b")
        super().__init__(rosenbrock_energy, d, (np.array([self.mu, self.a, self.b]),), name="rosenbrock")
        self.log_normalizer: float = 0.5 * math.log(math.pi / self.a) + 0.5 * (d - 1) * math.log(math.pi / self.b)
        self._s2 = 1.0 / (2.0 * self.a)  # Var x_1
        self._t = 1.0 / (2.0 * self.b)  # Var x_i | x_{i-1}
        self._moments: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        return f"Rosenbrock(dim={self.dim}, mu={self.mu:g}, a={self.a:g}, b={self.b:g})"

    def sample(self, n: int, seed: Seed = None) -> np.ndarray:
        """n exact i.i.d. draws, shape (n, d): x_1 = mu + s z_1, x_i = x_{i-1}^2 + sqrt(t) z_i, z ~ N(0, I)
        from np.random.default_rng(seed). (x_i grows like x_1^(2^(i-1)): high coordinates may overflow.)"""
        n = sample_count(n)
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, self.dim))
        out = np.empty((n, self.dim))
        out[:, 0] = self.mu + math.sqrt(self._s2) * z[:, 0]
        with np.errstate(over="ignore"):
            for i in range(1, self.dim):
                out[:, i] = out[:, i - 1] ** 2 + math.sqrt(self._t) * z[:, i]
        return out

    # ---------------------------------------------------------------------------------- x_2's law

    def _x2_law(self, z: ArrayLike, density: bool) -> np.ndarray | float:
        """F(z) (density False) or f(z) (density True) of x_2, elementwise (`rosenbrock_x2_law`), ~1e-13."""
        z = np.asarray(z, dtype=np.float64)
        out = rosenbrock_x2_law(np.ascontiguousarray(z.reshape(-1)), self.mu, math.sqrt(self._s2),
                                math.sqrt(self._t), density, GL_NODES, GL_WEIGHTS)
        out = out.reshape(z.shape)
        return float(out) if out.ndim == 0 else out

    def _x2_moments(self) -> tuple[float, ...]:
        """E x_2^k, k = 1..4, with x_2 = y + sqrt(t) e, y = x_1^2: E y^j = E x_1^{2j} (normal moments) and
        E x_2 = E y, E x_2^2 = E y^2 + t, E x_2^3 = E y^3 + 3 t E y, E x_2^4 = E y^4 + 6 t E y^2 + 3 t^2."""
        m = normal_raw_moments(self.mu, self._s2, 8)
        t = self._t
        return (float(m[2]), float(m[4] + t), float(m[6] + 3 * t * m[2]), float(m[8] + 6 * t * m[4] + 3 * t * t))

    def marginal_law(self, i: int) -> Law1D:
        """The exact law of x_i (a `sdekit.targets.law1d.Law1D`) for i = 0 (N(mu, 1/(2a))) and i = 1
        (x_2 = x_1^2 + N(0, 1/(2b)): F and f by quadrature, ~1e-12; E X^k, k = 1..4, exact)."""
        i = check_index(i, self.dim)
        if i == 0:
            mu, sd = self.mu, math.sqrt(self._s2)

            def cdf0(z: ArrayLike) -> np.ndarray:
                return ndtr((np.asarray(z, dtype=np.float64) - mu) / sd)

            def pdf0(z: ArrayLike) -> np.ndarray:
                return INV_SQRT_2PI / sd * np.exp(-0.5 * ((np.asarray(z, dtype=np.float64) - mu) / sd) ** 2)

            moments = gaussian_raw_moments(np.array([mu]), np.array([self._s2]), np.ones(1))
            return Law1D(cdf0, pdf0, moments, f"Rosenbrock x[0] ~ N({mu:g}, {self._s2:g})")
        if i == 1:
            return Law1D(lambda z: self._x2_law(z, False), lambda z: self._x2_law(z, True),
                         self._x2_moments(), f"Rosenbrock x[1] (mu={self.mu:g}, a={self.a:g}, b={self.b:g})")
        raise SDEKitError(f"i = {i}: only coordinates 0 and 1 of a Rosenbrock target have closed-form marginals")

    # ---------------------------------------------------------------------------------- mean and cov

    def _exact_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """(E x (d,), E x x^T (d, d)) exactly: E[x_j | x_i] is a polynomial P_ij(x_i) of degree 2^(j-i),
        got by composing y -> E[x^n | x_prev = y] = sum_l C(n, l) y^{2l} E(sqrt(t) e)^{n-l}; then
        E[x_i x_j] = E[x_i P_ij(x_i)] is pushed down to a polynomial in x_1 and averaged with normal moments."""
        if self._moments is not None:
            return self._moments
        d = self.dim
        if d > MAX_MOMENT_DIM:
            raise SDEKitError(f"mean and cov of a Rosenbrock target are computed for dim <= {MAX_MOMENT_DIM} only "
                              f"(they need normal moments of order 2^dim); got dim = {d}")
        with np.errstate(over="ignore", invalid="ignore"):
            cond = condition_matrix(2 ** (d - 1), normal_raw_moments(0.0, self._t, 2 ** (d - 1)))
            x1 = normal_raw_moments(self.mu, self._s2, 2 ** d)

        def expect(q: np.ndarray, level: int) -> float:
            """E[q(x_level)]: push the polynomial down to x_1 (q -> q M), then average over x_1."""
            with np.errstate(over="ignore", invalid="ignore"):
                for _ in range(level):
                    q = q @ cond[:q.size, :2 * q.size - 1]
                return float(q @ x1[:q.size])

        ident = np.array([0.0, 1.0])
        mean = np.array([expect(ident, i) for i in range(d)])
        second = np.empty((d, d))
        for i in range(d):
            q = ident  # P_ij = E[x_j | x_i] as a polynomial in x_i: M applied (j - i) times to x
            for j in range(i, d):
                second[i, j] = second[j, i] = expect(np.concatenate([[0.0], q]), i)  # E[x_i P_ij(x_i)]
                with np.errstate(over="ignore", invalid="ignore"):
                    q = q @ cond[:q.size, :2 * q.size - 1] if j + 1 < d else q
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(second))):
            raise SDEKitError(f"mean and cov of this Rosenbrock target overflow float64 (moments grow like "
                              f"E x_1^(2^(dim-1))); dim = {d} is too large for these parameters")
        self._moments = (mean, second)
        return self._moments

    @property
    def mean(self) -> np.ndarray:
        """E x: E x_1 = mu, E x_2 = mu^2 + s^2, E x_i = E x_{i-1}^2 (exact recursion; dim <= 10)."""
        return readonly(self._exact_moments()[0])

    @property
    def cov(self) -> np.ndarray:
        """Cov x = E x x^T - E x E x^T, exact (for d = 2: Var x_1 = s^2, Cov(x_1, x_2) = 2 mu s^2,
        Var x_2 = 2 s^4 + 4 mu^2 s^2 + t); dim <= 10."""
        mean, second = self._exact_moments()
        return readonly(second - np.outer(mean, mean))
