"""What a network predicts, as data: each prediction type maps the network's output at a point of its own kernel to
the pair (x0hat, epshat).

A network works on its native kernel x* = a* x_0 + s* eps (`sdekit.diffusion.networks.native`). Its output ``pred``
at x* is read as one of

    "eps"       epshat = pred                                  x0hat = (x* - s* pred) / a*          (Ho et al. 2020)
    "x0"        x0hat = pred                                   epshat = (x* - a* pred) / s*
    "v"         x0hat = (a* x* - s* pred) / (a*^2 + s*^2),     epshat = (s* x* + a* pred) / (a*^2 + s*^2)
                                                                                          (Salimans & Ho 2022)
    "score"     epshat = -s* pred                              x0hat = (x* + s*^2 pred) / a*  (Tweedie, Efron 2011)
    "velocity"  the flow-matching velocity u = dx*/dt = eps - x_0 on the flow kernel a* = 1 - t, s* = t
                (Liu et al. 2022, rectified flow; Lipman et al. 2023): x0hat = x* - s* pred, epshat = x* + a* pred.

x0hat and epshat are invariant under rescaling the kernel (x = alpha x_0 + sigma eps and m x have the same x_0 and
eps), which is what lets any sampler's (alpha, sigma) be answered by a network trained on another kernel. Every
formula uses +, -, *, / only, so it works on NumPy arrays and torch tensors alike; a* and s* are numbers or arrays
broadcastable against x*.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["EPS_ONLY", "PREDICTIONS", "to_eps", "to_x0_eps"]


def _eps(pred: Any, x: Any, a: Any, s: Any) -> tuple[Any, Any]:
    return (x - s * pred) / a, pred


def _x0(pred: Any, x: Any, a: Any, s: Any) -> tuple[Any, Any]:
    return pred, (x - a * pred) / s


def _v(pred: Any, x: Any, a: Any, s: Any) -> tuple[Any, Any]:
    norm = a * a + s * s
    return (a * x - s * pred) / norm, (s * x + a * pred) / norm


def _score(pred: Any, x: Any, a: Any, s: Any) -> tuple[Any, Any]:
    return (x + (s * s) * pred) / a, -s * pred


def _velocity(pred: Any, x: Any, a: Any, s: Any) -> tuple[Any, Any]:
    return x - s * pred, x + a * pred


PREDICTIONS: dict[str, Callable[[Any, Any, Any, Any], tuple[Any, Any]]] = {
    "eps": _eps,
    "x0": _x0,
    "v": _v,
    "score": _score,
    "velocity": _velocity,
}


EPS_ONLY: dict[str, Callable[[Any, Any, Any, Any], Any]] = {  # epshat alone, the same formulas (fewer operations)
    "eps": lambda pred, x, a, s: pred,
    "x0": lambda pred, x, a, s: (x - a * pred) / s,
    "v": lambda pred, x, a, s: (s * x + a * pred) / (a * a + s * s),
    "score": lambda pred, x, a, s: -s * pred,
    "velocity": lambda pred, x, a, s: x + a * pred,
}


def to_eps(prediction: str, pred: Any, x: Any, a: Any, s: Any) -> Any:
    """epshat alone from a network output (the second entry of `to_x0_eps`, computed the same way)."""
    return EPS_ONLY[prediction](pred, x, a, s)


def to_x0_eps(prediction: str, pred: Any, x: Any, a: Any, s: Any) -> tuple[Any, Any]:
    """(x0hat, epshat) from a network output ``pred`` of type ``prediction`` at x = a x_0 + s eps (module docstring)."""
    return PREDICTIONS[prediction](pred, x, a, s)
