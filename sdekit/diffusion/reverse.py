"""Reverse-time SDE and probability-flow ODE from any forward SDE and any score, as compositions.

For the forward SDE dx = f(t) x dt + g(t) dW with marginals p_t and score s(x, t) ~ grad log p_t(x),
the family (Song et al. 2021, eq. 6 and §4.3; Zhang & Chen 2022 for the lambda interpolation)

    dx = [f(t) x - (1 + lambda^2) / 2 g(t)^2 s(x, t)] dt + lambda g(t) dW_bar,

integrated backwards in time from T to eps, has the marginals p_t for every lambda >= 0:
lambda = 1 is the reverse-time SDE, lambda = 0 the probability-flow ODE
dx/dt = f x - g^2 s / 2. sdekit integrates it on a decreasing grid (t0 = T > t1 = eps): each drift
step is multiplied by the signed step h < 0, each noise increment by sqrt(|h|).

The score is an njit batch function score(x, t, p_score) -> (n, d); p_score is a float array or a
tuple of arrays. The composed SDE's params are (control, p_score...) with control = [lambda, sp...],
so changing lambda, the schedule or the score's parameters never recompiles (`with_params`). The composition
also registers its torch twin, so the same SDE runs on ``backend="torch"`` when the score has one.

The score may instead be a torch callable score(x, t) -> (n, d) (an ``nn.Module``, a learned `ScoreModel`'s
``score``, `TorchMixtureScore.score_t`): the result then runs on ``backend="torch"`` only, with the schedule's
coefficients evaluated in torch (`sdekit.diffusion.torch_schedule`) and the score's parameters reachable for
gradients (torchdiffeq's adjoint finds them).

Every call checks the score's output for x's shape (n, d), and a torch score's for being a tensor
(`sdekit.diffusion.score_checks`, no host synchronisation): a wrong one is named as the score, not as the drift.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np

from sdekit.backends.torch.twins import register_torch, torch_function
from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.score_checks import ScoreShapeError, check_torch_score, score_shape_ok, score_value
from sdekit.errors import SDEKitError
from sdekit.sde import ODE, SDE

_FACTORY: dict[tuple, tuple[Callable, Callable]] = {}


def _compose(coefficients: Callable, score: Callable, tuple_params: bool) -> tuple[Callable, Callable]:
    """njit drift(x, t, p) = f x - (1 + lam^2)/2 g^2 s and diffusion(x, t, p) = lam g, memoised per
    (coefficients, score, layout) so that every use shares one compiled kernel."""
    key = (coefficients, score, tuple_params)
    if key in _FACTORY:
        return _FACTORY[key]
    if tuple_params:
        @nb.njit
        def drift(x, t, p):
            control = p[0]
            f, g = coefficients(t, control[1:])
            lam = control[0]
            out = score(x, t, p[1:])
            ok, ndim, rows, cols = score_shape_ok(out, x)
            if not ok:
                raise ScoreShapeError(ndim, rows, cols, x.shape[0], x.shape[1])
            return f * x - 0.5 * (1.0 + lam * lam) * g * g * score_value(out, x)
    else:
        @nb.njit
        def drift(x, t, p):
            control = p[0]
            f, g = coefficients(t, control[1:])
            lam = control[0]
            out = score(x, t, p[1])
            ok, ndim, rows, cols = score_shape_ok(out, x)
            if not ok:
                raise ScoreShapeError(ndim, rows, cols, x.shape[0], x.shape[1])
            return f * x - 0.5 * (1.0 + lam * lam) * g * g * score_value(out, x)

    @nb.njit
    def diffusion(x, t, p):
        control = p[0]
        _, g = coefficients(t, control[1:])
        return control[0] * g

    _FACTORY[key] = (drift, diffusion)
    register_torch(drift, _torch_drift(coefficients, score, tuple_params))
    register_torch(diffusion, _torch_diffusion(coefficients))
    return drift, diffusion


def _torch_drift(coefficients: Callable, score: Callable, tuple_params: bool) -> Callable:
    """The composed drift f x - (1 + lam^2)/2 g^2 s on torch: the same equation through the twins of the parts."""
    def drift(x, t, p):
        control = p[0]
        f, g = torch_function(coefficients)(t, control[1:])
        lam = control[0]
        s = check_torch_score(torch_function(score)(x, t, p[1:] if tuple_params else p[1]), x)
        return f * x - 0.5 * (1.0 + lam * lam) * g * g * s
    return drift


def _torch_diffusion(coefficients: Callable) -> Callable:
    def diffusion(x, t, p):
        control = p[0]
        _, g = torch_function(coefficients)(t, control[1:])
        return control[0] * g
    return diffusion


def _torch_score_parts(forward: ForwardSDE, score: Callable) -> tuple[Callable, Callable]:
    """drift(x, t, p) = f(t) x - (1 + lam^2)/2 g(t)^2 score(x, t) and diffusion = lam g(t), p = [lam], in torch."""
    from sdekit.diffusion.torch_schedule import torch_coefficients

    def drift(x, t, p):
        f, g = torch_coefficients(forward, t, like=x)
        lam = p[0]
        return f * x - 0.5 * (1.0 + lam * lam) * g * g * check_torch_score(score(x, t), x)

    def diffusion(x, t, p):
        _, g = torch_coefficients(forward, t, like=x)
        return p[0] * g

    owner = score if _is_module(score) else getattr(score, "__self__", None)
    drift.torch_modules = tuple(getattr(score, "torch_modules", ())) or ((owner,) if _is_module(owner) else ())
    return drift, diffusion


def _required_positional(fn: Any) -> int:
    """How many positional parameters fn requires (-1 when it takes *args or has no signature)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return -1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return -1
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params)


def _is_module(obj: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__)


def _params(forward: ForwardSDE, score_params: Any, lam: float) -> tuple[tuple, bool]:
    control = np.concatenate([[float(lam)], forward.sp]).astype(float)
    if isinstance(score_params, tuple):
        return (control, *tuple(np.ascontiguousarray(real_array(a, f"score_params[{i}]"))
                                for i, a in enumerate(score_params))), True
    arr = np.zeros(1) if score_params is None else np.ascontiguousarray(real_array(score_params, "score_params"))
    return (control, arr), False


def _lam(lam: Any) -> float:
    """lam as a finite float >= 0."""
    if isinstance(lam, bool | np.bool_ | str) or np.ndim(lam) != 0 or np.iscomplexobj(lam):
        raise SDEKitError(f"lam must be a finite number >= 0; got {lam!r}")
    try:
        value = float(lam)
    except (TypeError, ValueError):
        raise SDEKitError(f"lam must be a finite number >= 0; got {lam!r}") from None
    if not (np.isfinite(value) and value >= 0):
        raise SDEKitError(f"lam must be a finite number >= 0; got {lam!r}")
    return value


def _check(forward: Any, score: Any, dim: Any) -> int:
    if not isinstance(forward, ForwardSDE):
        raise SDEKitError(f"forward must be a ForwardSDE (ForwardSDE.vp(), .ve(), ...); got {type(forward).__name__}")
    if not callable(score) or (not hasattr(score, "py_func") and _required_positional(score) == 3):
        raise SDEKitError("score must be a numba.njit batch function score(x, t, p) -> (n, d), or a torch callable "
                          f"score(x, t) -> (n, d); got {getattr(score, '__name__', type(score).__name__)}")
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
        raise SDEKitError(f"dim must be a positive int; got {dim!r}")
    return int(dim)


def reverse_sde(forward: ForwardSDE, score: Callable, dim: int, score_params: Any = None, *,
                lam: float = 1.0, name: str | None = None) -> SDE:
    """dx = [f x - (1 + lam^2)/2 g^2 s(x, t)] dt + lam g dW_bar (lam = 1: Anderson's reverse-time SDE).

    score: njit score(x, t, p) (both backends) or a torch callable score(x, t) (backend="torch").

    Integrate it with ``simulate(rsde, x_T, (forward.T, forward.eps), ...)``. lam = 0 gives the
    probability-flow field with zero noise (use `probability_flow_ode` for the ODE solvers).
    """
    dim = _check(forward, score, dim)
    lam = _lam(lam)
    if not hasattr(score, "py_func"):
        drift, diffusion = _torch_score_parts(forward, score)
        return SDE(drift, diffusion, dim=dim, noise="additive", params=[float(lam)],
                   name=name or f"{forward.name}_reverse_sde")
    params, tuple_params = _params(forward, score_params, lam)
    drift, diffusion = _compose(forward.coefficients_fn, score, tuple_params)
    return SDE(drift, diffusion, dim=dim, noise="additive", params=params,
               name=name or f"{forward.name}_reverse_sde")


def probability_flow_ode(forward: ForwardSDE, score: Callable, dim: int, score_params: Any = None, *,
                         name: str | None = None) -> ODE:
    """dx/dt = f(t) x - g(t)^2 s(x, t) / 2, whose flow carries p_T to p_eps deterministically."""
    dim = _check(forward, score, dim)
    if not hasattr(score, "py_func"):
        drift, _ = _torch_score_parts(forward, score)
        return ODE(drift, dim=dim, params=[0.0], name=name or f"{forward.name}_probability_flow")
    params, tuple_params = _params(forward, score_params, 0.0)
    drift, _ = _compose(forward.coefficients_fn, score, tuple_params)
    return ODE(drift, dim=dim, params=params, name=name or f"{forward.name}_probability_flow")
