"""Small array helpers that let the samplers run on float64 NumPy arrays or on torch tensors.

A sampler's state is either a NumPy float64 array or a torch floating tensor of shape (n, *shape): n paths (rows),
each a point of shape ``shape`` (a vector (d,), an image (C, H, W), ...). Every helper here takes the state (or an
array of the same kind) and answers in kind, so the update formulas are written once; the row-wise helpers (sums,
norms) reduce over all trailing dimensions. torch is an
optional dependency: a tensor is recognised by ``type(x).__module__.startswith("torch")`` and torch is imported only
inside the functions that are reached with a tensor, never at import time.

Noise is drawn where the state lives (`sdekit.diffusion.samplers.run.sampler_normals`: sdekit's counter-based
streams, on the CPU by Numba and on any other device by torch, the same numbers), so a float64 torch run equals the
NumPy run to rounding and no result depends on the batch size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from sdekit.diffusion.inputs import real_array
from sdekit.errors import SDEKitError

if TYPE_CHECKING:
    import torch

    State: TypeAlias = np.ndarray | torch.Tensor
else:
    State: TypeAlias = Any

__all__ = ["State", "all_finite", "any_nan", "as_like", "count_true", "dims", "flat", "is_torch", "row_norms",
           "per_row", "row_sums", "select_rows", "sqrt", "to_state"]


def is_torch(x: Any) -> bool:
    """True when x is a torch tensor (checked by its type's module, so torch is not imported)."""
    return type(x).__module__.startswith("torch")


def to_state(x: Any, name: str) -> State:
    """x as a fresh (n, *shape) sampler state with n >= 1, at least one trailing dimension, no empty dimension and all
    entries finite, or an SDEKitError naming it.

    A torch tensor stays a tensor on its device: floating dtypes are kept, integer / bool ones become float64.
    Anything else becomes a C-contiguous float64 NumPy copy.
    """
    if is_torch(x):
        import torch

        if x.is_complex():
            raise SDEKitError(f"{name} must be a real tensor of shape (n, d); got dtype {x.dtype}")
        a = x.clone() if x.is_floating_point() else x.to(torch.float64)
        shape = tuple(a.shape)
    else:
        a = np.array(real_array(x, name), dtype=np.float64, copy=True, order="C")
        shape = a.shape
    if len(shape) < 2 or min(shape) < 1:
        raise SDEKitError(f"{name} must have shape (n, d) or (n, *shape) (e.g. images (n, C, H, W)) with no empty "
                          f"dimension; got shape {shape}")
    if not all_finite(a):
        raise SDEKitError(f"{name} must be finite")
    return a


def as_like(v: Any, like: State, name: str) -> State:
    """v (a model output) as an array of like's kind: float64 NumPy for a NumPy state; for a torch state v must be a
    tensor (a NumPy array has left the device and the autograd graph: refused), moved to like's dtype and device.
    A complex, None or non-numeric output is an SDEKitError naming ``name``."""
    if v is None:
        raise SDEKitError(f"{name} returned None; it must return an array of x's shape (n, d)")
    if not is_torch(like):
        if is_torch(v):
            v = v.detach().cpu().numpy()
        return real_array(v, f"the output of {name}")
    if not is_torch(v):
        kind = "a NumPy array" if isinstance(v, np.ndarray) else f"a {type(v).__name__}"
        raise SDEKitError(f"{name} returned {kind} for a torch state x; return a torch tensor on x's device (a NumPy "
                          "result leaves the device and the autograd graph)")
    if v.is_complex():
        raise SDEKitError(f"{name} returned complex values (dtype {v.dtype}); it must return a real tensor")
    if v.dtype != like.dtype or v.device != like.device:
        v = v.to(device=like.device, dtype=like.dtype)
    return v


def all_finite(a: State) -> bool:
    """True when every entry of a is finite (for a tensor on a device this is one host synchronisation)."""
    if is_torch(a):
        import torch

        return bool(torch.isfinite(a).all())
    return bool(np.all(np.isfinite(a)))


def any_nan(a: State) -> bool:
    """True when some entry of a is NaN (one host synchronisation for a tensor on a device)."""
    if is_torch(a):
        import torch

        return bool(torch.isnan(a).any())
    return bool(np.any(np.isnan(a)))


def row_sums(a: State) -> State:
    """sum_j a_ij for each row i, over all trailing dimensions: shape (n,)."""
    if a.ndim == 1:
        return a
    return a.reshape(a.shape[0], -1).sum(1) if is_torch(a) else np.sum(a.reshape(a.shape[0], -1), axis=1)


def per_row(v: State, like: State) -> State:
    """A per-row value v of shape (n,) broadcastable against like (n, *shape): shape (n, 1, ..., 1)."""
    return v.reshape((v.shape[0],) + (1,) * (like.ndim - 1))


def dims(x: State) -> int:
    """The number of entries of one row of x (n, *shape): prod(shape)."""
    return int(math.prod(tuple(x.shape[1:])))


def row_norms(a: State) -> State:
    """||a_i||_2 = sqrt(sum_j a_ij^2) for each row i: shape (n,)."""
    return sqrt(row_sums(a * a))


def _elementwise(name: str) -> Callable[[Any], Any]:
    """The function ``name`` on a number (math), a NumPy array (numpy) or a tensor (torch)."""
    math_fn, numpy_fn = getattr(math, name), getattr(np, name)

    def fn(v: Any) -> Any:
        if is_torch(v):
            import torch

            return getattr(torch, name)(v)
        return numpy_fn(v) if isinstance(v, np.ndarray) else math_fn(v)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{name} of a number (math.{name}), a NumPy array (np.{name}) or a tensor (torch.{name})."
    return fn


sqrt = _elementwise("sqrt")
log = _elementwise("log")
cos = _elementwise("cos")
sin = _elementwise("sin")


def flat(v: Any) -> Any:
    """A step size as used in a row-wise formula: a number stays a number, an (n, 1) array / tensor becomes (n,)."""
    if is_torch(v) or isinstance(v, np.ndarray):
        return v.reshape(-1)
    return float(v)


def select_rows(mask: State, a: State, b: State) -> State:
    """Row i of a where mask_i, else row i of b (mask (n,) bool; a, b (n,) or (n, d)); out of place, no sync."""
    m = mask if a.ndim == 1 else per_row(mask, a)
    if is_torch(a):
        import torch

        return torch.where(m, a, b)
    return np.where(m, a, b)


def count_true(mask: State) -> Any:
    """The number of True entries: an int for NumPy, a 0-d tensor for torch (so that no host sync is needed)."""
    return mask.sum() if is_torch(mask) else int(np.count_nonzero(mask))
