"""The exact InDI denoiser for Gaussian-mixture data and Gaussian denoising: F(x_t, t) = E[x | x_t].

Data x ~ sum_k pi_k N(mu_k, C_k), observation y = x + sigma_y n (n ~ N(0, I)) and the InDI interpolant
x_t = (1 - t) x + t y + t eps_t eta (Delbracio & Milanfar 2023; `sdekit.restoration.interpolant`). Then
x_t = x + s(t) xi with s(t) = t sqrt(sigma_y^2 + eps_t^2) and xi ~ N(0, I) independent of x: the variance-exploding
kernel (alpha, sigma) = (1, s(t)) of `sdekit.diffusion.MixtureMarginals`, whose posterior mean is Tweedie's formula
(Efron 2011)

    F(x, t) = E[x | x_t = x] = x + s(t)^2 grad log p_{s(t)}(x),     p_s = sum_k pi_k N(mu_k, C_k + s^2 I),

evaluated with the njit mixture score for NumPy states and with `sdekit.diffusion.torch_mixture.TorchMixtureScore`
(imported on first use) for torch states, in the state's dtype and on its device. F(x, 0) = x and F(y, 1) = E[x | y],
the one-shot MMSE restoration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sdekit.diffusion.mixture_marginals import MixtureMarginals, mixture_marginal_score
from sdekit.diffusion.samplers.arrays import State, is_torch
from sdekit.diffusion.samplers.checks import check_real
from sdekit.errors import SDEKitError
from sdekit.restoration.interpolant import NoiseSchedule, check_noise_schedule, denoising_level, noise_at
from sdekit.targets.mixture import GaussianMixture

__all__ = ["MixtureDenoiser"]


class MixtureDenoiser:
    """F(x, t) = E[x | x_t = x] for Gaussian-mixture data x, y = x + sigma_y n and the InDI interpolant with the
    noise schedule eps_t (module docstring): x + s^2 grad log p_s(x), s = t sqrt(sigma_y^2 + eps_t^2).

    data: a `GaussianMixture` or `MixtureMarginals` (the law of the clean x); sigma_y > 0; noise_schedule: None, a
    number or a callable eps(t) (`sdekit.restoration.interpolant`). Calling it with x (n, *shape), prod(shape) = d,
    a float64 array or a torch tensor, and t in [0, 1] (a number; for a tensor x also a 0-d or (n,) tensor, one time
    per row, whose schedule values the callable must then compute) returns F of x's shape and kind.
    """

    def __init__(self, data: GaussianMixture | MixtureMarginals, sigma_y: float,
                 noise_schedule: NoiseSchedule = None) -> None:
        if isinstance(data, GaussianMixture):
            data = MixtureMarginals(data)
        if not isinstance(data, MixtureMarginals):
            raise SDEKitError(f"data must be a GaussianMixture or a MixtureMarginals; got {type(data).__name__}")
        self.marginals: MixtureMarginals = data
        self.dim: int = data.dim
        self.sigma_y: float = check_real(sigma_y, "sigma_y", lo=0.0, strict=True)
        self.noise_schedule: NoiseSchedule = check_noise_schedule(noise_schedule)
        self._torch: Any = None

    def __repr__(self) -> str:
        return f"MixtureDenoiser(dim={self.dim}, sigma_y={self.sigma_y})"

    def level(self, t: Any) -> Any:
        """s(t) = t sqrt(sigma_y^2 + eps_t^2), the VE noise level of x_t (`denoising_level`)."""
        return denoising_level(t, self.sigma_y, self.noise_schedule)

    def _flat(self, x: State) -> State:
        if x.ndim < 2 or int(np.prod(tuple(x.shape[1:]))) != self.dim:
            raise SDEKitError(f"x must have shape (n, *shape) with prod(shape) = {self.dim}; got {tuple(x.shape)}")
        return x.reshape(x.shape[0], self.dim)

    def _time(self, t: Any) -> float:
        t = check_real(t, "t", lo=0.0)
        if t > 1.0:
            raise SDEKitError(f"t must be in [0, 1] (the InDI time); got {t}")
        eps = noise_at(self.noise_schedule, t) if t > 0 else 0.0
        check_real(eps, f"noise_schedule({t!r})", lo=0.0)
        return t

    def __call__(self, x: State, t: Any) -> State:
        if is_torch(x):
            return self._torch_call(x, t)
        t = self._time(t)
        flat = np.ascontiguousarray(self._flat(np.asarray(x, dtype=np.float64)))
        s = float(self.level(t)) if t > 0 else 0.0
        out = flat + (s * s) * mixture_marginal_score(flat, 1.0, s, self.marginals.params)
        return out.reshape(x.shape)

    def _torch_call(self, x: Any, t: Any) -> Any:
        import torch

        from sdekit.diffusion.torch_mixture import TorchMixtureScore

        if self._torch is None:
            self._torch = TorchMixtureScore(self.marginals)
        flat = self._flat(x)
        if torch.is_tensor(t):
            if t.ndim > 1 or (t.ndim == 1 and t.shape[0] not in (1, x.shape[0])):
                raise SDEKitError(f"t must be a number, a 0-d tensor or a tensor of shape ({x.shape[0]},); got shape "
                                  f"{tuple(t.shape)}")
            s = self.level(t.to(dtype=x.dtype, device=x.device)).reshape(-1)
            out = flat + (s * s).reshape(-1, 1) * self._torch.score(flat, 1.0, s)
        else:
            t = self._time(t)
            s = float(self.level(t)) if t > 0 else 0.0
            out = flat + (s * s) * self._torch.score(flat, 1.0, s)
        return out.reshape(x.shape)
