"""A Brownian path with its time integral: W(t) and J(t) = int_{t0}^t W(u) du at any t, keyed by (seed, stream, path).

(W, J) is a Gauss–Markov pair, built by Lévy's midpoint construction on the dyadic cells of [t0, t1] (a "virtual
Brownian tree" that stores nothing, as `sdekit.noise.brownian_path`, here carrying the integral too; the space-time
Lévy area of the tree is that of Foster, Lyons & Oberhauser 2020, "An optimal polynomial approximation of Brownian
motion", and Kidger et al. 2021, "Efficient and accurate gradients for neural SDEs", section 5).

On a cell [a, b] of width d = b - a write W = L + B, with L the line through W(a), W(b) and B the Brownian bridge
of the cell, and A = int_a^b B du = J(b) - J(a) - d (W(a) + W(b)) / 2 the cell's bridge area (A ~ N(0, d^3 / 12),
independent of W(a), W(b)). With beta = B((a + b) / 2) ~ N(0, d / 4) and A_L, A_R the bridge areas of the two halves
(iid N(0, d^3 / 96), independent of beta): A = beta d / 2 + A_L + A_R, Cov(beta, A) = d^2 / 8, so given A

    beta | A  ~  N(3 A / (2 d), d / 16),      and with S = A - beta d / 2 (= A_L + A_R), D = A_L - A_R:
    D ~ N(0, d^3 / 48) independent of (A, beta),    A_L = (S + D) / 2.

Two counter normals per cell and component draw them (z1 for beta, z2 for D):

    W(mid) = (W(a) + W(b)) / 2 + 3 A / (2 d) + sqrt(d) / 4 z1,
    J(mid) = J(a) + (d / 2) (W(a) + W(mid)) / 2 + (S + sqrt(d^3 / 48) z2) / 2.

The root: W(t1) = sqrt(T) z1, J(t1) = T W(t1) / 2 + sqrt(T^3 / 12) z2, T = t1 - t0 (z of node 0). The normal
q in {0, 1} of node k (heap index: the root cell is 1, the halves of cell k are 2k and 2k + 1) and component j is
N(seed, stream, path, 2 (k m + j) + q) of `sdekit.noise.counter`. The cells live in the coordinate
u = (t - t0) / T in [0, 1], whose dyadic points are exact in float64; a value at a dyadic point u = i 2^-l with
l <= depth is exact (in law), elsewhere the last cell is interpolated by the conditional mean given its ends and its
area (W linear, J with the area's share s^2 (3 - 2 s) at s = (u - a) / (b - a)), below the float64 resolution at the
default depth 52.

So W and J are one path per (seed, path): increments over [s, t] are the same whichever grid asked for them, add up
over any partition, and adaptive steps can be rejected and retried on the same path. The step integrals follow:

    dW = W(t) - W(s),   I_(1,0)(s, t) = int_s^t (W(u) - W(s)) du = J(t) - J(s) - (t - s) W(s),
    H(s, t) = I_(1,0) / (t - s) - dW / 2        (the space-time Lévy area: the mean of the path's bridge over
                                                 [s, t], H ~ N(0, (t - s) / 12) independent of dW).

W has the law of `BrownianPath`'s W (it is not the same numbers: its midpoints are conditioned on the areas).
The per-path query `query_path` (Numba) keeps the cells of its last descent in a trail, so a query near the last one
only draws the levels below their common cell; the values are pure functions of the node, bit-identical whatever
was queried before.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sdekit.errors import SDEKitError
from sdekit.noise.brownian_path import _time
from sdekit.noise.counter import check_counter_args, counter_normals, counter_uniform, splitmix64_int, stream_base
from sdekit.noise.inverse_normal import ppnd16
from sdekit.noise.streams import GOLDEN, splitmix64

__all__ = ["DEFAULT_DEPTH", "MAX_COMPONENTS", "STREAM_BROWNIAN_INTEGRAL", "BrownianIntegralPath", "new_trail",
           "path_key", "query_path"]

STREAM_LEVY_INTERVAL = 0x4C455659  # "LEVY": the bridge-area normals of `space_space_levy_area`, keyed by interval
STREAM_BROWNIAN_INTEGRAL = 0x57494E54  # "WINT": distinct from the kernels' 0, 1, the samplers' 2 + step and MCMC's
DEFAULT_DEPTH = 52
MAX_COMPONENTS = 1024  # 2 (k m + j) + q < 2^64 for heap indices k < 2^depth, depth <= 52
MIDPOINT_SD = 0.25  # beta | A has standard deviation sqrt(d / 16) = MIDPOINT_SD sqrt(d)
U64 = nb.uint64


@nb.njit(inline="always")
def _normal(key, index):
    """N(seed, stream, path, index): the counter normal of `sdekit.noise.counter` for key = path_key(..)."""
    return ppnd16(counter_uniform(splitmix64(U64(key) + U64(index) * U64(GOLDEN))))


@nb.njit(cache=True)
def path_key(base, path):
    """The counter key of one path: splitmix64(stream_base(seed, stream) ^ path)."""
    return splitmix64(U64(base) ^ U64(path))


def new_trail(m: int, depth: int = DEFAULT_DEPTH) -> tuple:
    """Buffers of one path's descent: cells (a, b) in u, heap node, (W(a), W(b), J(a), J(b), A) per level, A the
    cell's bridge area (carried, not recomputed from J: J(b) - J(a) - d (W(a) + W(b)) / 2 would lose A ~ d^1.5 to
    rounding in deep cells), and the count of valid levels (0: nothing kept). One trail serves one path at a time."""
    return (np.empty((depth + 1, 2)), np.empty(depth + 1, dtype=np.int64), np.empty((depth + 1, 5, m)),
            np.zeros(1, dtype=np.int64))


@nb.njit(cache=True)
def _root(key, span, m, cells, nodes, ends, valid):
    """Level 0: the cell [0, 1] with W = J = 0 at u = 0 and (W, J)(t1) from node 0's normals."""
    cells[0, 0] = 0.0
    cells[0, 1] = 1.0
    nodes[0] = 1
    for j in range(m):
        w1 = math.sqrt(span) * _normal(key, 2 * j)
        ends[0, 0, j] = 0.0
        ends[0, 1, j] = w1
        ends[0, 2, j] = 0.0
        area = math.sqrt(span * span * span / 12.0) * _normal(key, 2 * j + 1)
        ends[0, 3, j] = span * w1 * 0.5 + area
        ends[0, 4, j] = area
    valid[0] = 1


@nb.njit(cache=True)
def query_path(key, span, depth, u, cells, nodes, ends, valid, w_out, j_out):
    """(W, J) of one path at u = (t - t0) / span in [0, 1] into w_out, j_out (m,), by descent from the deepest kept
    cell of the trail (cells, nodes, ends, valid: `new_trail`; valid[0] = 0 starts afresh) that contains u."""
    m = w_out.shape[0]
    if valid[0] == 0:
        _root(key, span, m, cells, nodes, ends, valid)
    k = valid[0] - 1
    while k > 0 and not (cells[k, 0] <= u <= cells[k, 1]):
        k -= 1
    while True:
        a = cells[k, 0]
        b = cells[k, 1]
        if u == a or u == b:
            side = 0 if u == a else 1
            for j in range(m):
                w_out[j] = ends[k, side, j]
                j_out[j] = ends[k, 2 + side, j]
            valid[0] = k + 1
            return
        d = span * (b - a)
        if k == depth:  # the last level: the conditional mean given the cell's ends and area
            s = (u - a) / (b - a)
            for j in range(m):
                wa, wb, ja, area = ends[k, 0, j], ends[k, 1, j], ends[k, 2, j], ends[k, 4, j]
                w_out[j] = wa + s * (wb - wa)
                j_out[j] = ja + d * s * wa + d * s * s * 0.5 * (wb - wa) + area * s * s * (3.0 - 2.0 * s)
            valid[0] = k + 1
            return
        mid = 0.5 * (a + b)
        node = nodes[k]
        left = u < mid
        nodes[k + 1] = 2 * node if left else 2 * node + 1
        cells[k + 1, 0] = a if left else mid
        cells[k + 1, 1] = mid if left else b
        sd_beta = MIDPOINT_SD * math.sqrt(d)
        sd_diff = math.sqrt(d * d * d / 48.0)
        for j in range(m):
            wa, wb, ja, jb, area = ends[k, 0, j], ends[k, 1, j], ends[k, 2, j], ends[k, 3, j], ends[k, 4, j]
            idx = 2 * (node * m + j)
            beta = 1.5 * area / d + sd_beta * _normal(key, idx)
            wm = (wa + wb) * 0.5 + beta
            halves = area - beta * d * 0.5
            diff = sd_diff * _normal(key, idx + 1)
            area_left = 0.5 * (halves + diff)
            jm = ja + 0.25 * d * (wa + wm) + area_left
            if left:
                ends[k + 1, 0, j], ends[k + 1, 2, j] = wa, ja
                ends[k + 1, 1, j], ends[k + 1, 3, j] = wm, jm
                ends[k + 1, 4, j] = area_left
            else:
                ends[k + 1, 0, j], ends[k + 1, 2, j] = wm, jm
                ends[k + 1, 1, j], ends[k + 1, 3, j] = wb, jb
                ends[k + 1, 4, j] = 0.5 * (halves - diff)
        k += 1


@nb.njit(cache=True)
def _query_all(base, path_offset, span, depth, u, cells, nodes, ends, valid, w_out, j_out):
    """(W, J) at u of every path (one descent from the root each)."""
    for p in range(w_out.shape[0]):
        valid[0] = 0
        query_path(path_key(base, U64(path_offset) + U64(p)), span, depth, u, cells, nodes, ends, valid, w_out[p],
                   j_out[p])


class BrownianIntegralPath:
    """(W(t), J(t) = int_{t0}^t W du), t in [t0, t1], for the paths path_offset .. path_offset + n_paths - 1 with
    m components each (module docstring): ``path(t)`` is the pair of (n_paths, m) float64 arrays (W(t), J(t)).

    ``increment(s, t)`` gives (dW, I_(1,0)) over [s, t], ``space_time_levy_area(s, t)`` gives H = I_(1,0) / (t - s)
    - dW / 2. seed, stream: the counter key (default `STREAM_BROWNIAN_INTEGRAL`, the stream the adaptive SDE solvers
    read); depth: dyadic levels (1..52), m <= 1024.
    """

    def __init__(self, seed: int, n_paths: int, m: int = 1, *, t0: float = 0.0, t1: float = 1.0,
                 path_offset: int = 0, stream: int = STREAM_BROWNIAN_INTEGRAL, depth: int = DEFAULT_DEPTH) -> None:
        self.t0, self.t1 = _time(t0, "t0"), _time(t1, "t1")
        if not self.t1 > self.t0:
            raise SDEKitError(f"t1 must exceed t0; got t0 = {self.t0}, t1 = {self.t1}")
        if isinstance(m, bool) or not isinstance(m, int | np.integer) or not 1 <= int(m) <= MAX_COMPONENTS:
            raise SDEKitError(f"m must be an integer in 1..{MAX_COMPONENTS} (Brownian components); got {m!r}")
        if isinstance(depth, bool) or not isinstance(depth, int | np.integer) or not 1 <= int(depth) <= DEFAULT_DEPTH:
            raise SDEKitError(f"depth must be an integer in 1..{DEFAULT_DEPTH} (dyadic levels); got {depth!r}")
        if isinstance(n_paths, bool) or not isinstance(n_paths, int | np.integer) or int(n_paths) < 1:
            raise SDEKitError(f"n_paths must be an integer >= 1; got {n_paths!r}")
        self.m, self.depth = int(m), int(depth)
        self.seed, self.n_paths, _, self.path_offset, self.stream, _ = check_counter_args(
            seed, n_paths, 2 * self.m, path_offset, stream, 0)
        self._base = np.uint64(stream_base(self.seed, self.stream))
        self._trail = new_trail(self.m, self.depth)

    def __repr__(self) -> str:
        return (f"BrownianIntegralPath(seed={self.seed}, n_paths={self.n_paths}, m={self.m}, t0={self.t0}, "
                f"t1={self.t1}, depth={self.depth})")

    def __call__(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(W(t), J(t)) for every path, each of shape (n_paths, m)."""
        t = _time(t, "t")
        if not self.t0 <= t <= self.t1:
            raise SDEKitError(f"t must lie in [t0, t1] = [{self.t0}, {self.t1}]; got {t}")
        span = self.t1 - self.t0
        w, j = np.empty((self.n_paths, self.m)), np.empty((self.n_paths, self.m))
        _query_all(self._base, np.uint64(self.path_offset), span, self.depth, (t - self.t0) / span, *self._trail,
                   w, j)
        return w, j

    def increment(self, s: float, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(dW, I_(1,0)) over [s, t]: W(t) - W(s) and int_s^t (W(u) - W(s)) du = J(t) - J(s) - (t - s) W(s)."""
        ws, js = self(s)
        wt, jt = self(t)
        return wt - ws, jt - js - (t - s) * ws

    def space_time_levy_area(self, s: float, t: float) -> np.ndarray:
        """H(s, t) = I_(1,0) / (t - s) - dW / 2, the mean of the Brownian bridge over [s, t] (N(0, (t - s) / 12),
        independent of dW); s < t."""
        if not _time(t, "t") > _time(s, "s"):
            raise SDEKitError(f"the Lévy area needs s < t; got s = {s}, t = {t}")
        dw, i10 = self.increment(s, t)
        return i10 / (t - s) - 0.5 * dw

    def space_space_levy_area(self, s: float, t: float, method: str = "foster") -> np.ndarray:
        """A_jk(s, t) = 1/2 int_s^t (dW_j dW_k - dW_k dW_j) (increments from W(s)), shape (n_paths, m, m),
        antisymmetric, approximated from the path's exact (dW, H) over [s, t] and independent bridge normals:

            A_jk = H_j dW_k - dW_j H_k + sigma_jk Z_jk,  Z_jk ~ N(0, 1) (j < k),

        "foster": sigma_jk^2 = h^2/20 + h (H_j^2 + H_k^2)/5, the exact conditional variance of the bridge part given H
        (Foster, Lyons & Oberhauser 2020, SIAM J. Numer. Anal. 58(3)); "davie": sigma^2 = h^2/12 (Davie 2014), both
        with E A = 0 and Var A = h^2/4 exactly (`sdekit.noise.levy_area`). The Z are counter normals keyed by (seed,
        path, the interval's end points), so the same interval gives the same area; unlike dW and H these areas are
        NOT consistent under refinement (Chen's relation does not join the areas of [s, u] and [u, t] into that of
        [s, t]), and a solver driven by them has pathwise (strong) order 0.5 on non-commutative noise but order 1 in
        2-Wasserstein (Davie 2014). The fixed-grid `milstein_levy` uses the pathwise-convergent Fourier areas instead.
        """
        from sdekit.noise.levy_area import davie_area, foster_area

        approximations = {"foster": foster_area, "davie": davie_area}
        if method not in approximations:
            raise SDEKitError(f"method must be one of {sorted(approximations)}; got {method!r}")
        h_area = self.space_time_levy_area(s, t)
        dw, _ = self.increment(s, t)
        s_bits, t_bits = (int(np.float64(v).view(np.uint64)) for v in (s, t))
        key = splitmix64_int(splitmix64_int(s_bits) ^ t_bits)
        lam = counter_normals(self.seed, self.n_paths, self.m * self.m, path_offset=self.path_offset,
                              stream=STREAM_LEVY_INTERVAL, draw_offset=(key >> 24) * self.m * self.m)
        return approximations[method](dw, h_area, lam.reshape(self.n_paths, self.m, self.m), t - s)

