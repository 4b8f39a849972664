"""The same noise streams in plain NumPy, vectorised over paths (the reference backend's RNG).

An independent implementation of `sdekit.noise.streams` (SplitMix64 seeding, xoshiro256++,
ziggurat), so that the NumPy reference and the Numba kernel see identical increments and
each checks the other.
"""

from __future__ import annotations

import numpy as np

from sdekit.noise.ziggurat import TAIL_START, ZIG_F, ZIG_K, ZIG_W

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _u(v: int) -> np.uint64:
    return np.uint64(v)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z + _GOLDEN
    z = (z ^ (z >> _u(30))) * _M1
    z = (z ^ (z >> _u(27))) * _M2
    return z ^ (z >> _u(31))


def _rotl(x: np.ndarray, k: int) -> np.ndarray:
    return (x << _u(k)) | (x >> _u(64 - k))


class PathStreams:
    """xoshiro256++ states for paths [offset, offset + n), one row each; draws advance them."""

    def __init__(self, seed: int, n_paths: int, stream: int = 0, offset: int = 0):
        with np.errstate(over="ignore"):
            key = _splitmix64(np.array([seed], dtype=np.uint64))
            key = _splitmix64(key ^ np.uint64(stream))
            z = _splitmix64(key ^ np.arange(offset, offset + n_paths, dtype=np.uint64))
            self.state = np.empty((n_paths, 4), dtype=np.uint64)
            for i in range(4):
                z = _splitmix64(z)
                self.state[:, i] = z

    def next_u64(self, rows: np.ndarray) -> np.ndarray:
        """Advance the streams of `rows` by one 64-bit output."""
        s = self.state[rows]
        s0, s1, s2, s3 = s[:, 0].copy(), s[:, 1].copy(), s[:, 2].copy(), s[:, 3].copy()
        result = _rotl(s0 + s3, 23) + s0
        t = s1 << _u(17)
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, 45)
        self.state[rows] = np.stack([s0, s1, s2, s3], axis=1)
        return result

    def next_double(self, rows: np.ndarray) -> np.ndarray:
        return (self.next_u64(rows) >> _u(11)).astype(np.int64) * (1.0 / 9007199254740992.0)

    def normal(self) -> np.ndarray:
        """One standard normal per path (ziggurat, same decisions as the Numba generator)."""
        n = self.state.shape[0]
        out = np.empty(n)
        pending = np.arange(n)
        with np.errstate(over="ignore"):
            while pending.size:
                r = self.next_u64(pending)
                idx = (r & _u(0xFF)).astype(np.int64)
                neg = ((r >> _u(8)) & _u(1)).astype(bool)
                rabs = (r >> _u(12)).astype(np.int64)
                x = rabs * ZIG_W[idx]
                x = np.where(neg, -x, x)
                fast = rabs < ZIG_K[idx]
                out[pending[fast]] = x[fast]
                slow = ~fast
                tail_rows = pending[slow & (idx == 0)]
                tail_neg = neg[slow & (idx == 0)]
                out[tail_rows] = self._tail(tail_rows, tail_neg)
                wedge = slow & (idx != 0)
                rows, xw, iw = pending[wedge], x[wedge], idx[wedge]
                u = self.next_double(rows)
                accept = ZIG_F[iw] + u * (ZIG_F[iw + 1] - ZIG_F[iw]) < np.exp(-0.5 * xw * xw)
                out[rows[accept]] = xw[accept]
                pending = rows[~accept]
        return out

    def _tail(self, rows: np.ndarray, neg: np.ndarray) -> np.ndarray:
        values = np.empty(rows.size)
        todo = np.arange(rows.size)
        while todo.size:
            xx = -np.log1p(-self.next_double(rows[todo])) * (1.0 / TAIL_START)
            yy = -np.log1p(-self.next_double(rows[todo]))
            ok = yy + yy > xx * xx
            values[todo[ok]] = TAIL_START + xx[ok]
            todo = todo[~ok]
        return np.where(neg, -values, values)

    def normals(self, n_draws: int) -> np.ndarray:
        """n_draws consecutive normals per path, shape (n_paths, n_draws)."""
        return np.stack([self.normal() for _ in range(n_draws)], axis=1) if n_draws else np.empty(
            (self.state.shape[0], 0))
