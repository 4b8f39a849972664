"""Checks on what a score returns, shared by the compositions (reverse SDE, PF-ODE, torch likelihood) and the
discrete samplers, so that a wrong score is named as the score (not as the drift it feeds).

A score s(x, ...) for x of shape (n, d) must return an array of shape (n, d): one score per row. Three checks:

- shape: `score_shape_ok` inside njit code (dispatched on the output's type at compile time, so a 1-D or scalar
  output compiles and is reported instead of failing Numba's typing) and `check_torch_score` on torch tensors; both
  raise `ScoreShapeError` with the shape returned and the one expected;
- kind: on torch, a score must return a tensor; a NumPy array (off the device, out of the autograd graph) is refused;
- finiteness: `ScoreNonFiniteError` (a `NonFiniteError`) names the sampler step, the path and the noise level.

None of these synchronises a device: the shape and kind are known on the host.
"""

from __future__ import annotations

import math
from typing import Any

from numba import types
from numba.extending import overload

from sdekit.errors import NonFiniteError, SDEKitError

__all__ = ["ScoreNonFiniteError", "ScoreShapeError", "check_torch_score", "score_shape_ok", "score_value"]


class ScoreShapeError(SDEKitError):
    """A score returned something other than an array of x's shape (n, d).

    Raised from njit code too (Numba passes the integers): ndim = -1 for a non-array, 0 for a scalar; rows and cols
    are the output's first two sizes (-1 where it has none)."""

    def __init__(self, ndim: int, rows: int, cols: int, n: int, d: int, name: str = "score"):
        ndim, rows, cols = int(ndim), int(rows), int(cols)
        if ndim < 0:
            got = "a value that is not an array"
        elif ndim == 0:
            got = "a scalar"
        elif ndim == 1:
            got = f"shape ({rows},)"
        else:
            got = f"shape ({rows}, {cols}{', ...' if ndim > 2 else ''})"
        super().__init__(f"{name} returned {got} for a batch x of shape ({n}, {d}); expected ({n}, {d}), one score "
                         "per row of x")

    @classmethod
    def of_shapes(cls, got: tuple | None, expected: tuple, name: str = "score") -> ScoreShapeError:
        """The error for any batch shape: ``got`` the output's shape (None for a non-array), ``expected`` x's."""
        err = cls.__new__(cls)
        what = "a value that is not an array" if got is None else ("a scalar" if got == () else f"shape {got}")
        SDEKitError.__init__(err, f"{name} returned {what} for a batch x of shape {expected}; expected {expected}, "
                                  "one output per row of x")
        return err


class ScoreNonFiniteError(NonFiniteError):
    """A score returned NaN or infinity: ``path`` (row of the batch), sampler ``step`` and the noise level
    (``alpha``, ``sigma``; ``t`` where the sampler has a time, else NaN) say where it first happened."""

    def __init__(self, path: int, step: int, alpha: float, sigma: float, t: float | None = None,
                 name: str = "score"):
        self.path, self.step = int(path), int(step)
        self.alpha, self.sigma = float(alpha), float(sigma)
        self.t = math.nan if t is None else float(t)
        when = f"t = {self.t:.6g}, " if t is not None else ""
        FloatingPointError.__init__(
            self, f"{name} returned non-finite values for path {self.path} at step {self.step} "
                  f"({when}alpha = {self.alpha:.6g}, sigma = {self.sigma:.6g}); check the model at that noise level")


def score_shape_ok(s: Any, x: Any) -> tuple[bool, int, int, int]:
    """(s has x's 2-D shape, s.ndim, rows, cols) for use inside njit code (Python fallback for tests)."""
    ndim = getattr(s, "ndim", -1)
    shape = tuple(getattr(s, "shape", ())) + (-1, -1)
    return tuple(getattr(s, "shape", ())) == tuple(x.shape), ndim, shape[0], shape[1]


@overload(score_shape_ok)
def _score_shape_ok_nb(s, x):
    """Typed at compile time: a 2-D array compares its shape, anything else is reported by its rank."""
    if isinstance(s, types.Array) and s.ndim == 2:
        return lambda s, x: (s.shape[0] == x.shape[0] and s.shape[1] == x.shape[1], 2, s.shape[0], s.shape[1])
    if isinstance(s, types.Array) and s.ndim == 1:
        return lambda s, x: (False, 1, s.shape[0], -1)
    if isinstance(s, types.Array) and s.ndim > 2:
        rank = s.ndim
        return lambda s, x: (False, rank, s.shape[0], s.shape[1])
    if isinstance(s, types.Number | types.Boolean):
        return lambda s, x: (False, 0, -1, -1)
    return lambda s, x: (False, -1, -1, -1)


def score_value(s: Any, x: Any) -> Any:
    """s itself when it is a 2-D array, else x (never used: the caller raised first); lets njit code that checked
    `score_shape_ok` type the arithmetic on any score output."""
    return s


@overload(score_value)
def _score_value_nb(s, x):
    if isinstance(s, types.Array) and s.ndim == 2:
        return lambda s, x: s
    return lambda s, x: x


def check_torch_score(s: Any, x: Any, name: str = "score") -> Any:
    """s if it is a torch tensor of x's shape; else an SDEKitError naming ``name`` (a NumPy array is refused: it
    leaves the device and the autograd graph). No host synchronisation."""
    if type(s).__module__.startswith("torch") and hasattr(s, "shape"):
        if tuple(s.shape) != tuple(x.shape):
            if x.ndim != 2:  # (n, *shape) batches, e.g. images: name both shapes in full
                raise SDEKitError(f"{name} returned shape {tuple(s.shape)} for a batch x of shape {tuple(x.shape)}; "
                                  "expected x's shape, one score per example of x")
            shape = tuple(s.shape) + (-1, -1)
            raise ScoreShapeError(len(s.shape), shape[0], shape[1], x.shape[0], x.shape[1], name)
        return s
    kind = "a NumPy array" if type(s).__module__ == "numpy" else f"a {type(s).__name__}"
    raise SDEKitError(f"{name} returned {kind} for torch tensors x; return a torch tensor of x's shape on x's "
                      "device (a NumPy result leaves the device and the autograd graph)")
