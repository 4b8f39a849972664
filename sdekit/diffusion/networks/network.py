"""`DiffusionNetwork`: one model interface for every sampler, the reverse SDE and the PF-ODE.

A trained network ``net(x*, c, **kwargs)`` predicts eps, x0, v, the score or a flow velocity at a level of its own
kernel x* = a* x_0 + s* eps, conditioned on c (a time, a log-SNR, a sigma or a training timestep). The wrapper
answers any sampler's question "the model at x = alpha x_0 + sigma eps" by

    1. the level of the same SNR on the network's kernel: (a*, s*) = m (alpha, sigma), x* = m x, and its
       conditioning value c (`sdekit.diffusion.networks.native`);
    2. the network's output at (x*, c), with classifier-free guidance (`guidance`) and, optionally, EDM's
       preconditioning (Karras et al. 2022, Table 1; sigma = s* / a*, sigma_d the data's standard deviation):

           D(x*) = c_skip x* + c_out F(c_in x*; c_noise),   c_skip = sigma_d^2 / (sigma^2 + sigma_d^2),
           c_out = sigma sigma_d / sqrt(sigma^2 + sigma_d^2),  c_in = 1 / sqrt(sigma^2 + sigma_d^2),
           c_noise = ln(sigma) / 4  (for the VE kernel a* = 1; the network's F is read as that D = x0hat);

    3. (x0hat, epshat) from the prediction type (`predictions`), x0hat optionally clipped (`thresholding`) with
       epshat made consistent, epshat = (x* - a* x0hat) / s*;
    4. the sampler's score s(x) = -epshat / sigma (Tweedie, Efron 2011; x0hat and epshat do not change with the
       scale m).

Calling the wrapper, ``model(x, alpha, sigma)``, returns that score: the interface of every sdekit sampler (DDPM,
DDIM, DPM-Solver, EDM, predictor-corrector, annealed Langevin). ``model.score_in_time(forward)`` gives
score(x, t) for `reverse_sde` / `probability_flow_ode` on the torch backend and for `torch_log_likelihood`.

States: (n, *shape) NumPy arrays or torch tensors. With ``shape=`` given, flattened states (n, prod(shape)) (those
of the SDE / ODE solvers) are reshaped to (n, *shape) for the network and back. A torch network (an nn.Module)
called with a NumPy state runs under ``torch.no_grad()`` on the network's device and dtype and answers in float64
NumPy; a tensor state is computed in the network's dtype and answered in the state's dtype and device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.networks.guidance import Guidance, apply_guidance
from sdekit.diffusion.networks.native import Native
from sdekit.diffusion.networks.predictions import PREDICTIONS, to_eps, to_x0_eps
from sdekit.diffusion.networks.thresholding import Threshold, threshold_x0
from sdekit.diffusion.samplers.arrays import is_torch, per_row, sqrt
from sdekit.diffusion.samplers.checks import check_real
from sdekit.errors import SDEKitError

__all__ = ["DiffusionNetwork"]


def _is_module(net: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(net).__mro__)


def _output(out: Any, output: Any) -> Any:
    """The prediction tensor in a network's return value: ``output`` an attribute name (diffusers' "sample"), a
    callable, or None (the value itself, or the first entry of a tuple)."""
    if callable(output):
        return output(out)
    if isinstance(output, str):
        if not hasattr(out, output):
            raise SDEKitError(f"the network's output has no attribute {output!r} (output={output!r}); it returned "
                              f"{type(out).__name__}")
        return getattr(out, output)
    if isinstance(out, tuple | list) and out:
        return out[0]
    return out


def _coefficient(v: Any, name: str, x: Any) -> Any:
    """alpha or sigma as a float, or one value per row shaped (n, 1, ...) in x's kind."""
    if is_torch(v):
        if v.numel() == 1:
            return v.reshape(()).to(dtype=x.dtype, device=x.device) if is_torch(x) else float(v)
        if v.numel() != x.shape[0]:
            raise SDEKitError(f"{name} must be a number or hold one value per row ({x.shape[0]}); "
                              f"got shape {tuple(v.shape)}")
        v = v.reshape(-1).to(dtype=x.dtype, device=x.device) if is_torch(x) else v.detach().cpu().numpy()
        return per_row(v, x)
    if isinstance(v, bool):
        raise SDEKitError(f"{name} must be a real number; got {v!r}")
    if type(v) is float:  # a sampler's level: no array conversion
        if not math.isfinite(v):
            raise SDEKitError(f"{name} must be finite; got {v!r}")
        return v
    a = real_array(v, name)
    if a.size == 1:
        return float(a.reshape(()))
    if a.size != x.shape[0]:
        raise SDEKitError(f"{name} must be a number or hold one value per row ({x.shape[0]}); got shape {a.shape}")
    if is_torch(x):
        import torch

        return per_row(torch.as_tensor(a.reshape(-1), dtype=x.dtype, device=x.device), x)
    return per_row(a.reshape(-1), x)


class DiffusionNetwork:
    """A trained network read as a diffusion model (module docstring).

    net: callable ``net(x*, c, **net_kwargs)`` (a torch nn.Module, or a NumPy function). prediction: one of
    "eps", "x0", "v", "score", "velocity" (`sdekit.diffusion.networks.predictions`). kernel: "vp", "ve", "flow",
    a `DiscreteSchedule` or a `ForwardSDE`; conditioning: "sigma", "logsnr", "t", "timestep", "edm" or a callable
    (`sdekit.diffusion.networks.native`; timestep_rounding "interpolate" or "nearest", timestep_interpolation "log" or
    "linear"). precondition: None or
    "edm" (then kernel "ve", conditioning "edm", sigma_data the data's standard deviation, and the network is EDM's
    F). guidance: a `Guidance` (classifier-free guidance). threshold: a `Threshold` (static or dynamic clipping of
    x0hat). shape: the shape of one example, to accept flattened (n, prod(shape)) states. output: how to read the
    network's return value (an attribute name such as diffusers' "sample", a callable, or None). net_kwargs: fixed
    keyword arguments of every call (e.g. a class label when there is no guidance).
    """

    def __init__(self, net: Any, *, prediction: str, kernel: Any = "vp", conditioning: Any = "sigma",
                 timestep_rounding: str = "interpolate", timestep_interpolation: str = "log",
                 precondition: str | None = None, sigma_data: float = 0.5,
                 guidance: Guidance | None = None, threshold: Threshold | None = None,
                 shape: tuple[int, ...] | None = None, output: Any = None,
                 net_kwargs: dict[str, Any] | None = None) -> None:
        if not callable(net):
            raise SDEKitError(f"net must be callable as net(x, c, **kwargs); got {type(net).__name__}")
        if prediction not in PREDICTIONS:
            raise SDEKitError(f"prediction must be one of {tuple(PREDICTIONS)}; got {prediction!r}")
        if prediction == "velocity" and kernel != "flow":
            raise SDEKitError("prediction 'velocity' (flow matching, x = (1 - t) x_0 + t eps) needs kernel='flow'")
        if precondition not in (None, "edm"):
            raise SDEKitError(f"precondition must be None or 'edm'; got {precondition!r}")
        if precondition == "edm":
            if kernel != "ve":
                raise SDEKitError("precondition 'edm' needs kernel='ve' (EDM's x = x_0 + sigma eps)")
            conditioning = "edm"
        self.sigma_data = check_real(sigma_data, "sigma_data", lo=0.0, strict=True)
        if guidance is not None and not isinstance(guidance, Guidance):
            raise SDEKitError(f"guidance must be None or a Guidance; got {type(guidance).__name__}")
        if threshold is not None and not isinstance(threshold, Threshold):
            raise SDEKitError(f"threshold must be None or a Threshold; got {type(threshold).__name__}")
        if shape is not None:
            try:
                shape = tuple(int(v) for v in shape)
            except (TypeError, ValueError):
                raise SDEKitError(f"shape must be a tuple of positive ints; got {shape!r}") from None
            if not shape or min(shape) < 1:
                raise SDEKitError(f"shape must be a non-empty tuple of positive ints; got {shape!r}")
        if net_kwargs is not None and not isinstance(net_kwargs, dict):
            raise SDEKitError(f"net_kwargs must be None or a dict; got {type(net_kwargs).__name__}")
        self.net, self.prediction, self.precondition = net, prediction, precondition
        self.native = Native(kernel, conditioning, timestep_rounding, timestep_interpolation)
        self.guidance, self.threshold, self.shape, self.output = guidance, threshold, shape, output
        self.net_kwargs = dict(net_kwargs or {})
        self.is_torch_net = _is_module(net)

    def __repr__(self) -> str:
        k = self.native.kernel
        kernel = k if isinstance(k, str) else type(k).__name__
        return (f"DiffusionNetwork(prediction={self.prediction!r}, kernel={kernel!r}, "
                f"conditioning={self.native.conditioning!r}, guidance={self.guidance is not None}, "
                f"threshold={self.threshold is not None})")

    def with_guidance(self, scale: float, cond: dict[str, Any], uncond: dict[str, Any], *, rescale: float = 0.0,
                      batched: bool = True) -> DiffusionNetwork:
        """A copy of this model with classifier-free guidance (`Guidance`, Ho & Salimans 2022)."""
        out = object.__new__(DiffusionNetwork)
        out.__dict__.update(self.__dict__)
        out.guidance = Guidance(scale, cond, uncond, rescale, batched)
        return out

    # ---------------------------------------------------------------- network calls

    def _net_dtype(self, default: Any) -> Any:
        if self.is_torch_net:
            for p in self.net.parameters():
                if p.is_floating_point():
                    return p.dtype
        return default

    def _net_device(self) -> Any:
        if self.is_torch_net:
            for p in self.net.parameters():
                return p.device
        return None

    def _call(self, x_net: Any, c: Any, kwargs: dict[str, Any]) -> Any:
        try:
            out = self.net(x_net, c, **kwargs)
        except TypeError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SDEKitError(f"net must be callable as net(x, c, **kwargs); calling it failed: {first}") from exc
        pred = _output(out, self.output)
        if pred is None or tuple(getattr(pred, "shape", ())) != tuple(x_net.shape):
            raise SDEKitError(f"the network returned {type(pred).__name__} of shape "
                              f"{tuple(getattr(pred, 'shape', ()))}; expected x's shape {tuple(x_net.shape)}")
        return pred

    def _guided(self, x_net: Any, c: Any) -> Any:
        g = self.guidance
        if g is None:
            return self._call(x_net, c, self.net_kwargs)
        if not g.batched:
            p_c = self._call(x_net, c, {**self.net_kwargs, **g.cond})
            p_u = self._call(x_net, c, {**self.net_kwargs, **g.uncond})
            return apply_guidance(p_c, p_u, g)
        cat = _concat(x_net)
        kwargs = dict(self.net_kwargs)
        for key in g.cond:
            kwargs[key] = cat([g.uncond[key], g.cond[key]])
        out = self._call(cat([x_net, x_net]), cat([c, c]), kwargs)
        n = x_net.shape[0]
        return apply_guidance(out[n:], out[:n], g)

    # ---------------------------------------------------------------- the model at (alpha, sigma)

    def predict(self, x: Any, alpha: Any, sigma: Any) -> tuple[Any, Any]:
        """(x0hat, epshat) at x = alpha x_0 + sigma eps (steps 1-3 of the module docstring), in x's kind, dtype and
        shape. alpha > 0, sigma > 0: numbers, or one value per row."""
        return self._run(x, alpha, sigma, True)

    def _run(self, x: Any, alpha: Any, sigma: Any, want_x0: bool) -> tuple[Any, Any]:
        """`predict`, with x0hat left out (None) when not wanted and not needed (no preconditioning, no threshold)."""
        numpy_in = not is_torch(x)
        if numpy_in and self.is_torch_net:
            import torch

            xt = torch.as_tensor(real_array(x, "x"), dtype=self._net_dtype(torch.float64), device=self._net_device())
            with torch.no_grad():
                x0, eps = self._predict(xt, alpha, sigma, want_x0)
            return (None if x0 is None else x0.detach().cpu().numpy().astype(np.float64),
                    eps.detach().cpu().numpy().astype(np.float64))
        return self._predict(x if not numpy_in else real_array(x, "x"), alpha, sigma, want_x0)

    def _predict(self, x: Any, alpha: Any, sigma: Any, want_x0: bool = True) -> tuple[Any, Any]:
        shape_in = tuple(x.shape)
        if self.shape is not None and shape_in[1:] != self.shape:
            if math.prod(shape_in[1:]) != math.prod(self.shape):
                raise SDEKitError(f"x must have shape (n, *{self.shape}) or (n, {math.prod(self.shape)}); "
                                  f"got shape {shape_in}")
            x = x.reshape((shape_in[0],) + self.shape)
        a = _coefficient(alpha, "alpha", x)
        s = _coefficient(sigma, "sigma", x)
        m, a_star, s_star, c = self.native.level(a, s)
        x_star = x if (type(m) is float and m == 1.0) else m * x
        x_net, pre = x_star, None
        if self.precondition == "edm":
            sig = s_star / a_star
            norm = sqrt(sig * sig + self.sigma_data ** 2)
            pre = (self.sigma_data ** 2 / (norm * norm), sig * self.sigma_data / norm)
            x_net = x_star / norm
        pred = self._network(x_net, c, x)
        if pre is not None:
            x0 = pre[0] * x_star + pre[1] * pred
            eps = (x_star - a_star * x0) / s_star
        elif not want_x0 and self.threshold is None:
            return None, to_eps(self.prediction, pred, x_star, a_star, s_star).reshape(shape_in)
        else:
            x0, eps = to_x0_eps(self.prediction, pred, x_star, a_star, s_star)
        if self.threshold is not None:
            x0 = threshold_x0(x0, self.threshold)
            eps = (x_star - a_star * x0) / s_star
        return x0.reshape(shape_in), eps.reshape(shape_in)

    def _network(self, x_net: Any, c: Any, like: Any) -> Any:
        """The (guided) network output at x_net with conditioning c (a number or one per row), in like's dtype."""
        n = x_net.shape[0]
        if is_torch(x_net):
            import torch

            dt = self._net_dtype(x_net.dtype)
            c_t = c.reshape(-1).to(dt) if is_torch(c) else torch.full((n,), float(c), dtype=dt, device=x_net.device)
            if c_t.numel() == 1 and n > 1:
                c_t = c_t.expand(n)
            pred = self._guided(x_net.to(dt), c_t)
            return pred.to(like.dtype)
        c_np = np.broadcast_to(np.asarray(c, dtype=np.float64).reshape(-1), (n,)).copy()
        return real_array(self._guided(x_net, c_np), "the network's output")

    def denoise(self, x: Any, alpha: Any, sigma: Any) -> Any:
        """x0hat = E[x_0 | x] at x = alpha x_0 + sigma eps (the denoiser D of Karras et al. 2022 for alpha = 1)."""
        return self.predict(x, alpha, sigma)[0]

    def eps(self, x: Any, alpha: Any, sigma: Any) -> Any:
        """epshat = E[eps | x] at x = alpha x_0 + sigma eps."""
        return self._run(x, alpha, sigma, False)[1]

    def score(self, x: Any, alpha: Any, sigma: Any) -> Any:
        """grad log p(x) at x = alpha x_0 + sigma eps: -epshat / sigma (Tweedie, Efron 2011)."""
        eps = self._run(x, alpha, sigma, False)[1]
        sg = sigma
        if is_torch(eps) or isinstance(sg, np.ndarray) or is_torch(sg):
            sg = _coefficient(sigma, "sigma", eps)
        return -eps / sg

    __call__ = score

    def score_in_time(self, forward: ForwardSDE) -> Any:
        """score(x, t) = model(x, alpha_t, sigma_t) on ``forward``'s kernel: the torch score that `reverse_sde`,
        `probability_flow_ode` and `torch_log_likelihood` take (t a number or a tensor; alpha_t, sigma_t from
        `sdekit.diffusion.torch_schedule.torch_kernel` for tensors)."""
        if not isinstance(forward, ForwardSDE):
            raise SDEKitError(f"forward must be a ForwardSDE; got {type(forward).__name__}")
        return _InTime(self, forward)


class _InTime:
    """score(x, t) of a `DiffusionNetwork` on a ForwardSDE's kernel (picklable, no closure)."""

    def __init__(self, model: DiffusionNetwork, forward: ForwardSDE) -> None:
        self.model, self.forward = model, forward
        self.torch_modules = (model.net,) if model.is_torch_net else ()  # for the adjoint's parameters

    def __call__(self, x: Any, t: Any) -> Any:
        if is_torch(x):
            from sdekit.diffusion.torch_schedule import torch_kernel

            alpha, sigma = torch_kernel(self.forward, t, like=x)
        else:
            alpha, sigma = self.forward.kernel(float(t))
        return self.model.score(x, alpha, sigma)


def _concat(like: Any) -> Any:
    if is_torch(like):
        import torch

        return lambda parts: torch.cat([p if torch.is_tensor(p) else torch.as_tensor(p, device=like.device)
                                        for p in parts])
    return lambda parts: np.concatenate([np.asarray(p) for p in parts])

