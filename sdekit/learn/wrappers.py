"""`ScoreModel`: a network read as a score, a noise, a data or a velocity prediction, and every conversion between.

For the kernel x_t = alpha_t x_0 + sigma_t eps the four targets are tied by Tweedie's formula (Efron 2011) and
x = alpha x0hat + sigma epshat; the formulas are those of `sdekit.diffusion.parametrization`, written in torch:

    epshat = -sigma s                 (Ho et al. 2020, "Denoising diffusion probabilistic models"; Song et al. 2021)
    x0hat  = (x + sigma^2 s) / alpha = (x - sigma epshat) / alpha
    vhat   = alpha epshat - sigma x0hat   (Salimans & Ho 2022, "Progressive distillation for fast sampling")
    x0hat  = (alpha x - sigma vhat) / (alpha^2 + sigma^2),   epshat = (sigma x + alpha vhat) / (alpha^2 + sigma^2).

Conditioning. The network sees c = log(alpha_t / sigma_t), the log-SNR (Kingma et al. 2021, "Variational diffusion
models"), or c = t. The log-SNR names a noise level the same way for every schedule, and a kernel (alpha, sigma)
off the schedule is reduced to one on it: if (alpha*, sigma*) = m (alpha, sigma) lies on the schedule (same log-SNR),
then m x_t is distributed as the schedule's marginal at that level, so

    s(x; alpha, sigma) = m s_sched(m x; alpha*, sigma*),   m = sqrt((alpha*^2 + sigma*^2) / (alpha^2 + sigma^2)),

(m = 1 on the schedule). This is what lets a model trained on ``ForwardSDE.vp()`` serve the EDM sampler's
score(x, 1, sigma) or a DDPM `DiscreteSchedule`'s levels. The time of a log-SNR comes from `time_from_logsnr`
(bisection: the log-SNR of the built-in schedules is strictly decreasing in t); VP-type schedules (alpha^2 + sigma^2
= 1) and VE (alpha = 1) with log-SNR conditioning need no time: m = 1 / sqrt(alpha^2 + sigma^2), resp. 1 / alpha.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from sdekit.diffusion.forward import COSINE, VE, VP, ForwardSDE
from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.torch_schedule import torch_kernel
from sdekit.errors import SDEKitError
from sdekit.learn.losses import batch_column

__all__ = ["CONDITIONINGS", "PARAMETRIZATIONS", "ScoreModel", "convert_prediction", "log_snr", "time_from_logsnr"]

PARAMETRIZATIONS = ("score", "eps", "x0", "v")
CONDITIONINGS = ("logsnr", "t")
BISECTION_STEPS = 64  # T / 2^64 is below float64 resolution


def _checked_numbers(v: Any, name: str, lo: float | None = None) -> np.ndarray:
    """A number or array (not a tensor) as a float64 array, finite and >= lo, or an SDEKitError naming it."""
    if isinstance(v, bool | np.bool_):
        raise SDEKitError(f"{name} must be a number, an array or a tensor; got {v!r}")
    arr = real_array(v, name)
    if not np.all(np.isfinite(arr)) or (lo is not None and not np.all(arr >= lo)):
        raise SDEKitError(f"{name} must be finite{'' if lo is None else f' and >= {lo}'}; got {v!r}")
    return arr


def _check_forward(forward: Any) -> ForwardSDE:
    if not isinstance(forward, ForwardSDE):
        raise SDEKitError(f"forward must be a ForwardSDE (ForwardSDE.vp(), .ve(), ...); got {type(forward).__name__}")
    return forward


# --------------------------------------------------------------------------------------------
# log-SNR and its inverse
# --------------------------------------------------------------------------------------------


def log_snr(forward: ForwardSDE, t: Any) -> torch.Tensor:
    """lambda(t) = log(alpha_t / sigma_t), the log signal-to-noise ratio (Kingma et al. 2021), at tensor or float
    times t, computed in float64 (+inf at t = 0 where sigma_0 = 0); shape of t, on t's device."""
    forward = _check_forward(forward)
    if not torch.is_tensor(t):
        t = torch.from_numpy(_checked_numbers(t, "t", lo=0.0))
    t64 = t.to(torch.float64)
    alpha, sigma = torch_kernel(forward, t64)
    return torch.log(alpha) - torch.log(sigma)


def time_from_logsnr(forward: ForwardSDE, logsnr: Any) -> torch.Tensor:
    """The time t in [0, T] with log(alpha_t / sigma_t) = logsnr, for each entry of logsnr (vectorised bisection).

    lambda(t) = log(alpha_t / sigma_t) is strictly decreasing for the built-in schedules (VE, VP, sub-VP, cosine;
    Kingma et al. 2021 require it of any schedule), so 64 halvings of [0, T] pin t to float64 resolution. Values
    above lambda(0) = +inf cannot occur; values below lambda(T) give T. Returns float64 with logsnr's shape and device.
    """
    forward = _check_forward(forward)
    if torch.is_tensor(logsnr):
        if logsnr.is_complex():
            raise SDEKitError(f"logsnr must be real; got dtype {logsnr.dtype}")
        lam = logsnr.to(torch.float64)
    else:
        lam = torch.from_numpy(_checked_numbers(logsnr, "logsnr"))
    lo = torch.zeros_like(lam)
    hi = torch.full_like(lam, float(forward.T))
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        above = log_snr(forward, mid) > lam  # lambda decreasing: the root lies right of mid
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    return torch.where(torch.isnan(lam), lam, 0.5 * (lo + hi))  # NaN in a tensor stays NaN (no host read)


# --------------------------------------------------------------------------------------------
# conversions (the formulas of sdekit.diffusion.parametrization, in torch)
# --------------------------------------------------------------------------------------------


def _to_x0(kind: str, x: Any, p: Any, a: Any, s: Any) -> Any:
    if kind == "x0":
        return p
    if kind == "score":
        return (x + s * s * p) / a  # Tweedie (Efron 2011)
    if kind == "eps":
        return (x - s * p) / a
    return (a * x - s * p) / (a * a + s * s)  # v (Salimans & Ho 2022)


def _to_eps(kind: str, x: Any, p: Any, a: Any, s: Any) -> Any:
    if kind == "eps":
        return p
    if kind == "score":
        return -s * p
    if kind == "x0":
        return (x - a * p) / s
    return (s * x + a * p) / (a * a + s * s)


def convert_prediction(pred: torch.Tensor, source: str, target: str, x: torch.Tensor, alpha: Any,
                       sigma: Any) -> torch.Tensor:
    """Convert a prediction at x_t = x between "score", "eps", "x0", "v" (module docstring; Ho et al. 2020,
    Salimans & Ho 2022). alpha, sigma: numbers or tensors broadcastable against x (e.g. (n, 1, ..., 1)); alpha > 0, and
    sigma > 0 where a formula divides by it (score from anything, eps from x0, v from x0)."""
    for name, kind in (("source", source), ("target", target)):
        if kind not in PARAMETRIZATIONS:
            raise SDEKitError(f"{name} must be one of {PARAMETRIZATIONS}; got {kind!r}")
    a, s = alpha, sigma
    if source == target:
        return pred
    if target == "x0":
        return _to_x0(source, x, pred, a, s)
    if target == "eps":
        return _to_eps(source, x, pred, a, s)
    if target == "score":
        if source == "eps":
            return -pred / s
        if source == "x0":
            return (a * pred - x) / (s * s)
        return -(s * x + a * pred) / (s * (a * a + s * s))
    # target "v" = alpha epshat - sigma x0hat
    if source == "eps":
        return ((a * a + s * s) * pred - s * x) / a
    if source == "x0":
        return (a * x - (a * a + s * s) * pred) / s
    return -s * ((a * a + s * s) * pred + x) / a


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------


class ScoreModel(nn.Module):
    """A network net(x (n, *shape), c (n,)) -> (n, *shape) read as the ``parametrization`` it predicts, under a forward
    SDE: vectors (n, d) (`ScoreMLP`) or images (n, C, H, W) (`ConvScoreNet`); alpha_t, sigma_t are per example.

    parametrization: "score", "eps" (Ho et al. 2020), "x0" or "v" (Salimans & Ho 2022): what the net's output is.
    conditioning: "logsnr" (c = log(alpha_t / sigma_t), Kingma et al. 2021) or "t" (c = t).

    Methods in time: ``score(x, t)``, ``eps(x, t)``, ``x0(x, t)``, ``v(x, t)`` with t a number, a 0-d tensor or an
    (n,) tensor, (alpha_t, sigma_t) from ``forward``'s kernel. Methods in the kernel: ``score_alpha_sigma(x, alpha,
    sigma)`` and calling the module, ``model(x, alpha, sigma)``, return the score at x_t = alpha x_0 + sigma eps,
    the interface of sdekit's samplers (DDPM, DDIM, EDM, DPM-Solver, predictor-corrector); alpha, sigma: numbers,
    0-d or (n,) tensors, or (n,) / (n, 1) arrays. An (alpha, sigma) off the schedule is rescaled onto it (module
    docstring). x: an (n, *shape) tensor ((n, dim) for a net that states its ``dim``), computed on in the net's dtype
    and returned in x's dtype and shape; a NumPy array is evaluated under ``torch.no_grad()`` and answered with a
    float64 NumPy array (for NumPy sampler runs).
    """

    def __init__(self, net: nn.Module, forward: ForwardSDE, parametrization: str = "eps",
                 conditioning: str = "logsnr") -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise SDEKitError(f"net must be a torch.nn.Module net(x, c); got {type(net).__name__}")
        if parametrization not in PARAMETRIZATIONS:
            raise SDEKitError(f"parametrization must be one of {PARAMETRIZATIONS}; got {parametrization!r}")
        if conditioning not in CONDITIONINGS:
            raise SDEKitError(f"conditioning must be one of {CONDITIONINGS}; got {conditioning!r}")
        self.net = net
        self.forward_sde = _check_forward(forward)
        self.parametrization = parametrization
        self.conditioning = conditioning
        self.dim: int | None = getattr(net, "dim", None)

    def extra_repr(self) -> str:
        return (f"forward={self.forward_sde.name}, parametrization={self.parametrization!r}, "
                f"conditioning={self.conditioning!r}")

    # ---------------------------------------------------------------- inputs

    def _net_dtype(self, default: torch.dtype = torch.float64) -> torch.dtype:
        """The dtype of the net's first floating parameter (``default`` for a net without one)."""
        for p in self.net.parameters():
            if p.is_floating_point():
                return p.dtype
        return default

    def _net_device(self) -> torch.device:
        """The device of the net's first parameter (the CPU for a net without one)."""
        for p in self.net.parameters():
            return p.device
        return torch.device("cpu")

    def _points(self, x: Any) -> tuple[torch.Tensor, bool]:
        """(x as an (n, *shape) floating tensor, whether it came as NumPy)."""
        numpy_in = not torch.is_tensor(x)
        if numpy_in:
            arr = real_array(x, "x")
            if not np.all(np.isfinite(arr)):
                raise SDEKitError("x must be finite")
            x = torch.as_tensor(arr, dtype=self._net_dtype(), device=self._net_device())
        elif x.is_complex():
            raise SDEKitError(f"x must be a real tensor; got dtype {x.dtype}")
        elif not x.is_floating_point():
            x = x.to(self._net_dtype(torch.get_default_dtype()))
        if x.ndim < 2 or (self.dim is not None and (x.ndim != 2 or x.shape[1] != self.dim)):
            want = "(n, *shape)" if self.dim is None else f"(n, {self.dim})"
            raise SDEKitError(f"x must have shape {want}; got shape {tuple(x.shape)}")
        return x, numpy_in

    @staticmethod
    def _per_row(v: Any, name: str, x: torch.Tensor, positive: bool) -> torch.Tensor:
        """v (a number, 0-d or (n,) / (n, 1) tensor or array) as an (n,) float64 tensor on x's device; a number or
        array must be finite and > 0 (positive) or >= 0 (a time); a tensor is not read (no host synchronisation)."""
        if isinstance(v, bool):
            raise SDEKitError(f"{name} must be a number or a tensor; got {v!r}")
        if not torch.is_tensor(v):
            arr = real_array(v, name)
            bad = not np.all(np.isfinite(arr)) or not np.all(arr > 0 if positive else arr >= 0)
            if bad:
                raise SDEKitError(f"{name} must be finite and {'> 0' if positive else '>= 0'}; got {v!r}")
            v = torch.from_numpy(arr)
        elif v.is_complex():
            raise SDEKitError(f"{name} must be real; got dtype {v.dtype}")
        n = x.shape[0]
        if v.numel() not in (1, n) or v.ndim > 2 or (v.ndim == 2 and v.shape[1] != 1):
            raise SDEKitError(f"{name} must be a number, a 0-d tensor or of shape ({n},) / ({n}, 1); "
                              f"got shape {tuple(v.shape)}")
        return v.to(device=x.device, dtype=torch.float64).reshape(-1).expand(n)

    def _call_net(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        dt = self._net_dtype(x.dtype)
        try:
            out = self.net(x.to(dt), c.to(dt))
        except TypeError as exc:  # a net that is not net(x, c)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SDEKitError(f"net must be callable as net(x (n, *shape), c (n,)) -> (n, *shape); calling it failed: "
                              f"{first}") \
                from exc
        if not torch.is_tensor(out) or tuple(out.shape) != tuple(x.shape):
            raise SDEKitError(f"net(x, c) must return a tensor of shape {tuple(x.shape)} (that of x); got "
                              f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))}")
        return out.to(x.dtype)

    @staticmethod
    def _answer(out: torch.Tensor, numpy_in: bool) -> Any:
        return out.detach().cpu().numpy().astype(np.float64) if numpy_in else out

    # ---------------------------------------------------------------- in time

    def _in_time(self, x: Any, t: Any, target: str) -> Any:
        x, numpy_in = self._points(x)
        with torch.no_grad() if numpy_in else nullcontext():
            t64 = self._per_row(t, "t", x, positive=False)
            alpha, sigma = torch_kernel(self.forward_sde, t64)
            c = torch.log(alpha) - torch.log(sigma) if self.conditioning == "logsnr" else t64
            pred = self._call_net(x, c)
            a, s = batch_column(alpha.to(x.dtype), x), batch_column(sigma.to(x.dtype), x)
            return self._answer(convert_prediction(pred, self.parametrization, target, x, a, s), numpy_in)

    def score(self, x: Any, t: Any) -> Any:
        """s_theta(x, t) ~ grad log p_t(x) (Song et al. 2021), from the net's prediction at (x, t); x's shape."""
        return self._in_time(x, t, "score")

    def eps(self, x: Any, t: Any) -> Any:
        """epshat(x, t) ~ E[eps | x_t = x] = -sigma_t s (Ho et al. 2020); x's shape."""
        return self._in_time(x, t, "eps")

    def x0(self, x: Any, t: Any) -> Any:
        """x0hat(x, t) ~ E[x_0 | x_t = x] = (x + sigma_t^2 s) / alpha_t (Tweedie, Efron 2011); x's shape."""
        return self._in_time(x, t, "x0")

    def v(self, x: Any, t: Any) -> Any:
        """vhat(x, t) = alpha_t epshat - sigma_t x0hat (Salimans & Ho 2022); x's shape."""
        return self._in_time(x, t, "v")

    # ---------------------------------------------------------------- in (alpha, sigma)

    def _on_schedule(self, alpha: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(m, alpha*, sigma*, c) in float64 with (alpha*, sigma*) = m (alpha, sigma) on the schedule (docstring)."""
        lam = torch.log(alpha) - torch.log(sigma)
        fw = self.forward_sde
        kind = int(fw.sp[0]) if fw.custom_kernel is None else -1
        if self.conditioning == "logsnr" and kind in (VP, COSINE, VE):
            m = 1.0 / alpha if kind == VE else torch.rsqrt(alpha * alpha + sigma * sigma)
            return m, m * alpha, m * sigma, lam
        t_star = time_from_logsnr(fw, lam)
        a_star, s_star = torch_kernel(fw, t_star)
        m = torch.sqrt((a_star * a_star + s_star * s_star) / (alpha * alpha + sigma * sigma))
        return m, a_star, s_star, (lam if self.conditioning == "logsnr" else t_star)

    def score_alpha_sigma(self, x: Any, alpha: Any, sigma: Any) -> Any:
        """The score at x_t = alpha x_0 + sigma eps: m s_sched(m x; alpha*, sigma*) with (alpha*, sigma*) = m (alpha,
        sigma) on the schedule (same log-SNR log(alpha / sigma), Kingma et al. 2021); m = 1 on it. alpha > 0,
        sigma > 0. The sampler interface score(x, alpha, sigma); x's shape."""
        x, numpy_in = self._points(x)
        with torch.no_grad() if numpy_in else nullcontext():
            a64 = self._per_row(alpha, "alpha", x, positive=True)
            s64 = self._per_row(sigma, "sigma", x, positive=True)
            m, a_star, s_star, c = self._on_schedule(a64, s64)
            m, a_star, s_star = (batch_column(v.to(x.dtype), x) for v in (m, a_star, s_star))
            xm = m * x
            pred = self._call_net(xm, c)
            s = m * convert_prediction(pred, self.parametrization, "score", xm, a_star, s_star)
            return self._answer(s, numpy_in)

    def forward(self, x: Any, alpha: Any, sigma: Any) -> Any:
        """The score at x_t = alpha x_0 + sigma eps (see `score_alpha_sigma`): calling the model is a sampler score."""
        return self.score_alpha_sigma(x, alpha, sigma)
