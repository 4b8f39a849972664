"""The interface every streaming reduction follows, and the helpers shared by all of them.

A reduction summarises samples x of shape (n, d) (1-D input (n,) means d = 1) so that shards can be summarised
separately and the summaries merged: ``update(x)`` absorbs a batch in place, ``merge(other)`` returns a NEW summary of
both sample sets (``other``'s samples came after ``self``'s), ``result()`` gives the statistic(s) and ``empty()`` a
fresh summary with the same configuration. Summaries pickle and their size does not grow with n.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.validate.checks import check_count, real_array

__all__ = ["Reduction", "as_batch", "check_dim", "check_mergeable", "merge_all", "summarize"]

R = TypeVar("R", bound="Reduction")


@runtime_checkable
class Reduction(Protocol):
    """A mergeable summary of samples: update (in place), merge (new object), result, empty."""

    def update(self: R, x: Any) -> R:
        """Absorb a batch of samples (n, d) in place (n may be 0); returns self."""
        ...

    def merge(self: R, other: R) -> R:
        """A new summary of both sample sets (other's samples came after self's)."""
        ...

    def result(self) -> Any:
        """The statistic(s) as a frozen dataclass."""
        ...

    def empty(self: R) -> R:
        """A fresh summary with the same configuration and no data."""
        ...


def check_dim(d: Any, name: str = "d") -> int:
    """d as an int >= 1 (the number of coordinates per sample)."""
    return check_count(d, name, 1)


def as_batch(x: Any, d: int, name: str = "x") -> np.ndarray:
    """x as a finite float64 array of shape (n, d), n >= 0; 1-D input of shape (n,) is one coordinate (d = 1).

    Errors name ``name``, the shape expected and what was wrong (non-finite rows are refused: a summary that
    silently absorbed NaN would be NaN forever after)."""
    arr = real_array(x, name)
    if arr.ndim == 1 and d == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != d:
        raise SDEKitError(f"{name} must have shape (n, {d})" + (" or (n,)" if d == 1 else "")
                          + f" to match the reduction's d = {d}; got shape {arr.shape}")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise SDEKitError(f"{name} has {int(bad.sum())} non-finite rows (first: row {int(np.flatnonzero(bad)[0])}); "
                          "reductions need finite samples")
    return np.ascontiguousarray(arr)


def check_mergeable(a: Any, b: Any, **config: tuple[Any, Any]) -> None:
    """Refuse to merge summaries of different types or configurations: each keyword is a pair (mine, theirs)
    compared exactly (arrays element-wise); the error names every setting that differs."""
    if type(b) is not type(a):
        raise SDEKitError(f"can only merge a {type(a).__name__} with another {type(a).__name__}; "
                          f"got {type(b).__name__}")
    differ = []
    for key, (mine, theirs) in config.items():
        if isinstance(mine, np.ndarray) or isinstance(theirs, np.ndarray):
            m, t = np.asarray(mine), np.asarray(theirs)
            same = m.shape == t.shape and bool(np.array_equal(m, t))
        else:
            same = mine == theirs
        if not same:
            differ.append(f"{key} ({_short(mine)} vs {_short(theirs)})")
    if differ:
        raise SDEKitError(f"cannot merge {type(a).__name__} summaries with different configurations: "
                          + ", ".join(differ))


def _short(v: Any) -> str:
    """A short printable form of a configuration value."""
    if isinstance(v, np.ndarray):
        return f"array of shape {v.shape}" if v.size > 6 else np.array2string(v, precision=6)
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def merge_all(reductions: Sequence[R]) -> R:
    """Left fold of ``merge`` in the given order: ((r0 + r1) + r2) + ... ; a single reduction is returned as a
    merge with its own empty copy (a new object). The order matters only for the quantile sketch (its coins)."""
    try:
        items = None if isinstance(reductions, Reduction) else list(reductions)
    except TypeError:
        items = None
    if not items:
        raise SDEKitError("reductions must be a non-empty sequence of reductions of one type")
    for i, r in enumerate(items):
        if not isinstance(r, Reduction):
            raise SDEKitError(f"reductions[{i}] is a {type(r).__name__}, not a reduction (update/merge/result/empty)")
    out = items[0].empty().merge(items[0])
    for r in items[1:]:
        out = out.merge(r)
    return out


def summarize(reduction: R, x: Any) -> R:
    """reduction.empty().update(x): a summary of the samples x alone, with reduction's configuration."""
    if not isinstance(reduction, Reduction):
        raise SDEKitError(f"reduction must be a reduction (update/merge/result/empty); got {type(reduction).__name__}")
    return reduction.empty().update(x)
