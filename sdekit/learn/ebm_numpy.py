"""A NumPy view of a torch energy-based model, for samplers and log-Z estimators written in NumPy (AIS / SMC).

For a model returning f_theta(x) (n,) (p_theta ∝ exp f_theta), `energy_and_grad_numpy(model)` is the callable
x (n, d) float64 -> (U(x) (n,), grad_x U(x) (n, d)) with U = -f_theta, both float64.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sdekit.diffusion.inputs import real_array
from sdekit.errors import SDEKitError
from sdekit.learn.ebm_sampling import log_density_and_grad

__all__ = ["energy_and_grad_numpy"]


def energy_and_grad_numpy(model: torch.nn.Module) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The energy U = -f_theta and its gradient grad_x U = -grad_x f_theta (autograd in x only; the parameters'
    ``.grad`` are not touched) as a NumPy callable x (n, d) -> (U (n,), grad U (n, d)), both float64.

    x is evaluated in the model's parameter dtype (float64 for a float64 model, so nothing is rounded) on its
    device; the model's mode (train / eval) is left as it is.
    """
    if not isinstance(model, torch.nn.Module):
        raise SDEKitError(f"model must be a torch.nn.Module returning f_theta(x) of shape (n,); got "
                          f"{type(model).__name__}")
    like = next(iter(model.parameters()), None)
    dtype = like.dtype if like is not None else torch.float64
    device = like.device if like is not None else torch.device("cpu")

    def energy_and_grad(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        arr = real_array(x, "x")
        if arr.ndim != 2 or arr.shape[0] < 1:
            raise SDEKitError(f"x must be an array (n, d) with n >= 1; got shape {arr.shape}")
        f, g = log_density_and_grad(model, torch.as_tensor(arr, dtype=dtype, device=device))
        return (-f).cpu().numpy().astype(np.float64), (-g).cpu().numpy().astype(np.float64)
    return energy_and_grad
