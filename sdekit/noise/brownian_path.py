"""A Brownian path as a function of time: W(t) of every path at any t, keyed by (seed, stream, path).

Lévy's midpoint construction on the dyadic cells of [t0, t1] (Lévy 1939; as a "virtual Brownian tree" that stores
nothing, Li, Wong, Chen & Duvenaud 2020, "Scalable gradients for stochastic differential equations", section 4):

    W(t0) = 0,   W(t1) = sqrt(t1 - t0) Z_0,
    for the cell k = [a, b] (heap index: the root [t0, t1] is k = 1, the halves of cell k are 2k and 2k + 1),
        W((a + b) / 2) = (W(a) + W(b)) / 2 + sqrt((b - a) / 4) Z_k,

where Z_k = N(seed, stream, path, k m + j) for component j of m, the counter-based normals of `sdekit.noise.counter`
(a pure function of their key, so a value is the same whatever was queried before, in whatever order, on whatever
batch of paths). W(t) descends from the root to the cell containing t, one level at a time, and is exact when t is a
dyadic point t0 + i (t1 - t0) 2^-l with l <= depth; otherwise it is the linear interpolation of the two end values of
its cell at the last level, whose error has standard deviation at most sqrt((t1 - t0) 2^-depth) / 2 (3.7e-9
sqrt(t1 - t0) at the default depth 52, below the float64 resolution of t relative to the span for most t).

So W is one path per (seed, path): an increment W(t) - W(s) over [s, t] is the same whichever grid asked for it,
increments over any partition of [s, t] add up to it (to float64 rounding), and any grid can be coupled to any
other (adaptive steps can be rejected and retried). The Numba kernels' fixed-grid streams (`sdekit.noise.streams`)
remain the fast path; this path draws `depth` blocks of normals per query (depth x 8 ns per path and component).
A query reuses the top cells that the previous query's descent shared with it (their end values are the same
numbers), so nearby times cost only the levels below their common cell; each level's arithmetic is the same IEEE
operations, done in place in buffers kept by the path (no allocation per level), so the values are bit-identical to
a descent from the root.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from sdekit.errors import SDEKitError
from sdekit.noise.counter import check_counter_args, fill_counter_normals, stream_base

__all__ = ["DEFAULT_DEPTH", "MAX_COMPONENTS", "BrownianPath"]

DEFAULT_DEPTH = 52
MAX_COMPONENTS = 2048  # heap indices < 2^(depth + 1) times m components must stay below 2^64
TRAIL_BYTES = 1 << 23  # memory for the top cells of the last descent (reused by the next query)


def _bridge_std(width: float) -> float:
    """Standard deviation of the midpoint of a Brownian bridge over a cell of this width: sqrt(width / 4)."""
    return math.sqrt(width / 4.0)


@nb.njit(cache=True)
def _midpoint_values(z: np.ndarray, std: float, wa: np.ndarray, wb: np.ndarray, out: np.ndarray) -> None:
    """out = (wa + wb) * 0.5 + std z elementwise, the IEEE operations of ``0.5 * (wa + wb) + std * z`` (no
    contraction into fused multiply-adds: the values are those of the NumPy expression, bit for bit)."""
    zf, af, bf, of = z.ravel(), wa.ravel(), wb.ravel(), out.ravel()
    for i in range(of.size):
        of[i] = (af[i] + bf[i]) * 0.5 + std * zf[i]


def _time(t: Any, name: str) -> float:
    if isinstance(t, bool) or not isinstance(t, int | float | np.integer | np.floating):
        raise SDEKitError(f"{name} must be a real number; got {t!r}")
    v = float(t)
    if not math.isfinite(v):
        raise SDEKitError(f"{name} must be finite; got {v}")
    return v


class BrownianPath:
    """W(t), t in [t0, t1], for the paths path_offset .. path_offset + n_paths - 1 with m components each (module
    docstring): ``path(t)`` is an (n_paths, m) float64 array, ``path.increment(s, t)`` is W(t) - W(s).

    seed, stream: the counter streams' key (stream separates independent uses; the fused torch loop uses stream 0,
    the samplers 2 + step); depth: the number of dyadic levels (1 .. 60; values at dyadic points of level <= depth
    are exact). m <= 2048. A path keeps buffers between queries (the kept cells, at most TRAIL_BYTES = 8 MiB, and four
    (n_paths, m) work arrays), so one object serves one query at a time (not several threads at once).
    """

    def __init__(self, seed: int, n_paths: int, m: int = 1, *, t0: float = 0.0, t1: float = 1.0,
                 path_offset: int = 0, stream: int = 0, depth: int = DEFAULT_DEPTH) -> None:
        self.t0, self.t1 = _time(t0, "t0"), _time(t1, "t1")
        if not self.t1 > self.t0:
            raise SDEKitError(f"t1 must exceed t0; got t0 = {self.t0}, t1 = {self.t1}")
        if isinstance(m, bool) or not isinstance(m, int | np.integer) or not 1 <= int(m) <= MAX_COMPONENTS:
            raise SDEKitError(f"m must be an integer in 1..{MAX_COMPONENTS} (Brownian components); got {m!r}")
        if isinstance(depth, bool) or not isinstance(depth, int | np.integer) or not 1 <= int(depth) <= 60:
            raise SDEKitError(f"depth must be an integer in 1..60 (dyadic levels); got {depth!r}")
        if isinstance(n_paths, bool) or not isinstance(n_paths, int | np.integer) or int(n_paths) < 1:
            raise SDEKitError(f"n_paths must be an integer >= 1; got {n_paths!r}")
        self.m, self.depth = int(m), int(depth)
        self.seed, self.n_paths, _, self.path_offset, self.stream, _ = check_counter_args(
            seed, n_paths, self.m, path_offset, stream, 0)
        if (2 ** (self.depth + 1)) * self.m > 2**64:
            raise SDEKitError(f"depth {self.depth} with m = {self.m} components exceeds the counter's 2^64 draws")
        self._base = stream_base(self.seed, self.stream)
        self._end = math.sqrt(self.t1 - self.t0) * self._normals(0)
        shape = (self.n_paths, self.m)
        self._trail = [(self.t0, self.t1, np.zeros(shape), self._end, 1)]
        kept = min(self.depth, TRAIL_BYTES // (8 * self.n_paths * self.m))  # levels whose W(mid) outlives a query
        self._kept = [np.empty(shape) for _ in range(kept)]
        self._work = (np.empty(shape), [np.empty(shape) for _ in range(3)])

    def __repr__(self) -> str:
        return (f"BrownianPath(seed={self.seed}, n_paths={self.n_paths}, m={self.m}, t0={self.t0}, t1={self.t1}, "
                f"depth={self.depth})")

    def _normals(self, node: int) -> np.ndarray:
        out = np.empty((self.n_paths, self.m))
        fill_counter_normals(out, self._base, self.path_offset, node * self.m)  # = counter_normals(.., node m)
        return out

    def __call__(self, t: float) -> np.ndarray:
        """W(t) for every path: shape (n_paths, m)."""
        t = _time(t, "t")
        if not self.t0 <= t <= self.t1:
            raise SDEKitError(f"t must lie in [t0, t1] = [{self.t0}, {self.t1}]; got {t}")
        if t == self.t0:
            return np.zeros((self.n_paths, self.m))
        if t == self.t1:
            return self._end.copy()
        trail = self._trail  # cells (a, b, W(a), W(b), node) of the last descent, root first, levels < len(_kept)
        k = 0
        while k + 1 < len(trail) and trail[k + 1][0] < t < trail[k + 1][1]:
            k += 1  # t's descent passes this cell too: its end values are already known
        del trail[k + 1:]
        a, b, wa, wb, node = trail[k]
        z, scratch = self._work
        for level in range(k, self.depth):
            mid = 0.5 * (a + b)
            if level < len(self._kept):
                wm = self._kept[level]  # W(mid) of this level, kept for the next query
            else:
                wm = next(w for w in scratch if w is not wa and w is not wb)
            fill_counter_normals(z, self._base, self.path_offset, node * self.m)  # Z_node = self._normals(node)
            _midpoint_values(z, _bridge_std(b - a), wa, wb, wm)
            if t == mid:
                return wm.copy()
            if t < mid:
                b, wb, node = mid, wm, 2 * node
            else:
                a, wa, node = mid, wm, 2 * node + 1
            if level < len(self._kept):
                trail.append((a, b, wa, wb, node))
        return wa + (t - a) / (b - a) * (wb - wa)

    def increment(self, s: float, t: float) -> np.ndarray:
        """W(t) - W(s) for every path, shape (n_paths, m) (t < s gives the negative of the forward increment)."""
        return self(t) - self(s)
