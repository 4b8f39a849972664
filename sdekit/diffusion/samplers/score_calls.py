"""The model calls of one sampler run: score(x, alpha, sigma), each output checked as the SDE kernels check a state.

Every output must be an array of x's kind and shape (n, d) or (n, *shape): a NumPy state takes anything NumPy
converts to float64; a torch state needs a tensor (a NumPy array is refused: it has left the device and the autograd
graph). Those checks are on the host. Finiteness costs one elementwise pass and one reduction per call (over each
row's entries):

- NumPy: checked at once;
- torch: each call's (n,) record of finite rows stays on the device (two kernels per call), and the records of the
  latest calls are reduced to their first bad rows and read in one host synchronisation every `CHECK_EVERY` calls
  and at the end of the run (`ScoreCalls.finish`), as the torch backend's solver loop does.

Either way the error is a `ScoreNonFiniteError` naming the path, the sampler step (counted from 0 in the order the
steps run) and the noise level (alpha, sigma) of the first call that returned NaN or infinity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sdekit.diffusion.samplers.arrays import State, as_like, is_torch
from sdekit.diffusion.score_checks import ScoreNonFiniteError, ScoreShapeError

__all__ = ["CHECK_EVERY", "ScoreCalls"]

CHECK_EVERY = 32  # torch: calls between host reads of the finiteness record (the torch backend's interval)


def _rows_ok_torch(s: Any) -> Any:
    """(n,) bool tensor: whether each row of s is finite (two kernels; the first bad row is found at the read)."""
    import torch

    return torch.isfinite(s.reshape(s.shape[0], -1)).all(dim=1)


def _first_bad_rows(oks: list) -> list[int]:
    """For each call's (n,) record, the first non-finite row, or n when all are finite (one host read)."""
    import torch

    bad = ~torch.stack(oks)
    n = bad.shape[1]
    first = torch.where(bad.any(dim=1), bad.to(torch.uint8).argmax(dim=1), torch.full_like(bad[:, 0], n,
                                                                                         dtype=torch.int64))
    return first.tolist()


class ScoreCalls:
    """score(x, alpha, sigma) for one sampler run, checked (module docstring); ``nfe`` counts the calls.

    Call it as ``calls(x, alpha, sigma, step)`` (``t=`` where the sampler has a time) and return the run's result
    through ``calls.finish(result)``, which reads the torch record once more."""

    def __init__(self, score: Callable[[State, float, float], Any], name: str = "score") -> None:
        self.score, self.name, self.nfe = score, name, 0
        self._pending: list[tuple[Any, int, int, float, float, float | None]] = []

    def __call__(self, x: State, alpha: float, sigma: float, step: int, t: float | None = None) -> State:
        s = as_like(self.score(x, alpha, sigma), x, self.name)
        if tuple(s.shape) != tuple(x.shape):
            raise ScoreShapeError.of_shapes(tuple(s.shape), tuple(x.shape), self.name)
        self.nfe += 1
        if is_torch(s):
            self._pending.append((_rows_ok_torch(s), int(s.shape[0]), step, alpha, sigma, t))
            if len(self._pending) >= CHECK_EVERY:
                self.flush()
        elif not np.isfinite(s).all():
            row = int(np.argmin(np.isfinite(s.reshape(s.shape[0], -1)).all(axis=1)))
            raise ScoreNonFiniteError(row, step, alpha, sigma, t, self.name)
        return s

    def flush(self) -> None:
        """Read the pending torch finiteness record (one host synchronisation) and raise at its first bad call."""
        if not self._pending:
            return
        codes = _first_bad_rows([p[0] for p in self._pending])
        pending, self._pending = self._pending, []
        for code, (_, n, step, alpha, sigma, t) in zip(codes, pending):
            if code < n:
                raise ScoreNonFiniteError(code, step, alpha, sigma, t, self.name)

    def finish(self, result: Any) -> Any:
        """result, once every call of the run is known to have returned finite values."""
        self.flush()
        return result
