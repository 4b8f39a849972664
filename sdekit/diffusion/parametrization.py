"""Conversions between the network parametrizations of a Gaussian kernel x_t = alpha x_0 + sigma eps.

For x_t | x_0 ~ N(alpha x_0, sigma^2 I), the four usual regression targets are tied together by Tweedie's formula
(Efron 2011, "Tweedie's formula and selection bias"), E[x_0 | x] = (x + sigma^2 grad log p_t(x)) / alpha, and by
x = alpha E[x_0 | x] + sigma E[eps | x]:

    score  s     = grad log p_t(x) = -(x - alpha x0hat) / sigma^2 = -epshat / sigma     (Song et al. 2021)
    x0hat        = E[x_0 | x] = (x + sigma^2 s) / alpha = (x - sigma epshat) / alpha
    epshat       = E[eps | x] = -sigma s = (x - alpha x0hat) / sigma
    vhat         = alpha epshat - sigma x0hat                                           (Salimans & Ho 2022)
    x0hat        = (alpha x - sigma vhat) / (alpha^2 + sigma^2),  epshat = (sigma x + alpha vhat) / (alpha^2 + sigma^2)

Salimans & Ho define v for VP (alpha^2 + sigma^2 = 1), where the inverse is x0hat = alpha x - sigma v; the general
formulas here reduce to theirs then. Karras et al. 2022 (EDM) write x = s (x_0 + sigma_edm eps) and train the denoiser
D(x / s; sigma_edm) = E[x_0 | x]: s = alpha, sigma_edm = sigma / alpha, and for alpha = 1 (VE) D(x; sigma) = x0hat.

Arguments: predictions and x are arrays of shape (d,) or (n, d) (all of one shape); alpha and sigma are scalars, or
arrays of shape (n,) / (n, 1) giving one value per row. alpha must be > 0 wherever used; sigma must be > 0 where a
formula divides by it and >= 0 otherwise. Bad input raises SDEKitError naming the argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.inputs import real_array
from sdekit.errors import SDEKitError

__all__ = [
    "PARAMETRIZATIONS",
    "convert",
    "edm_denoiser_from_score",
    "edm_scaling",
    "eps_from_score",
    "eps_from_v",
    "eps_from_x0",
    "score_from_edm_denoiser",
    "score_from_eps",
    "score_from_v",
    "score_from_x0",
    "v_from_eps",
    "v_from_eps_x0",
    "v_from_score",
    "v_from_x0",
    "x0_from_eps",
    "x0_from_score",
    "x0_from_v",
]

PARAMETRIZATIONS = ("score", "eps", "x0", "v")


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _arrays(**named: ArrayLike) -> list[np.ndarray]:
    """The named arrays as float64, each of shape (d,) or (n, d), all of one shape (errors name the argument)."""
    out = []
    shape = None
    first = None
    for name, v in named.items():
        a = real_array(v, name)
        if a.ndim not in (1, 2):
            raise SDEKitError(f"{name} must have shape (d,) or (n, d); got shape {a.shape}")
        if shape is None:
            shape, first = a.shape, name
        elif a.shape != shape:
            raise SDEKitError(f"{name} must have the shape of {first}, {shape}; got shape {a.shape}")
        out.append(a)
    return out


def _coef(value: Any, name: str, like: np.ndarray, strict: bool) -> float | np.ndarray:
    """alpha or sigma as a float, or as an (n, 1) array for a batch ``like`` of shape (n, d).

    strict: must be > 0 (the formula divides by it); else >= 0 (alpha is always strict).
    """
    if isinstance(value, bool):
        raise SDEKitError(f"{name} must be a real number or array; got {value!r}")
    a = real_array(value, name)
    if a.ndim == 0:
        out: float | np.ndarray = float(a)
    elif like.ndim == 2 and a.shape in ((like.shape[0],), (like.shape[0], 1)):
        out = a.reshape(-1, 1)
    else:
        rows = f" or shape ({like.shape[0]},) / ({like.shape[0]}, 1), one per row" if like.ndim == 2 else ""
        raise SDEKitError(f"{name} must be a scalar{rows}; got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise SDEKitError(f"{name} must be finite; got {value!r}")
    if strict and not np.all(a > 0):
        raise SDEKitError(f"{name} must be > 0 here (the formula divides by it); got min {float(np.min(a))!r}")
    if not strict and not np.all(a >= 0):
        raise SDEKitError(f"{name} must be >= 0; got min {float(np.min(a))!r}")
    return out


# --------------------------------------------------------------------------------------------
# score <-> eps
# --------------------------------------------------------------------------------------------


def score_from_eps(eps: ArrayLike, sigma: Any) -> np.ndarray:
    """s = -epshat / sigma (Song et al. 2021; the DDPM epsilon-network as a score). sigma > 0."""
    (e,) = _arrays(eps=eps)
    return -e / _coef(sigma, "sigma", e, True)


def eps_from_score(score: ArrayLike, sigma: Any) -> np.ndarray:
    """epshat = E[eps | x] = -sigma s (Tweedie, Efron 2011). sigma >= 0."""
    (s,) = _arrays(score=score)
    return -_coef(sigma, "sigma", s, False) * s


# --------------------------------------------------------------------------------------------
# score <-> x0
# --------------------------------------------------------------------------------------------


def x0_from_score(x: ArrayLike, score: ArrayLike, alpha: Any, sigma: Any) -> np.ndarray:
    """x0hat = E[x_0 | x] = (x + sigma^2 s) / alpha (Tweedie's formula, Efron 2011). alpha > 0, sigma >= 0."""
    xa, s = _arrays(x=x, score=score)
    a = _coef(alpha, "alpha", xa, True)
    sg = _coef(sigma, "sigma", xa, False)
    return (xa + sg * sg * s) / a


def score_from_x0(x: ArrayLike, x0: ArrayLike, alpha: Any, sigma: Any) -> np.ndarray:
    """s = -(x - alpha x0hat) / sigma^2 (inverse Tweedie). alpha > 0, sigma > 0."""
    xa, x0a = _arrays(x=x, x0=x0)
    a = _coef(alpha, "alpha", xa, True)
    sg = _coef(sigma, "sigma", xa, True)
    return (a * x0a - xa) / (sg * sg)


# --------------------------------------------------------------------------------------------
# eps <-> x0
# --------------------------------------------------------------------------------------------


def eps_from_x0(x: ArrayLike, x0: ArrayLike, alpha: Any, sigma: Any) -> np.ndarray:
    """epshat = (x - alpha x0hat) / sigma (from x = alpha x_0 + sigma eps). alpha > 0, sigma > 0."""
    xa, x0a = _arrays(x=x, x0=x0)
    a = _coef(alpha, "alpha", xa, True)
    sg = _coef(sigma, "sigma", xa, True)
    return (xa - a * x0a) / sg


def x0_from_eps(x: ArrayLike, eps: ArrayLike, alpha: Any, sigma: Any) -> np.ndarray:
    """x0hat = (x - sigma epshat) / alpha (from x = alpha x_0 + sigma eps). alpha > 0, sigma >= 0."""
    xa, e = _arrays(x=x, eps=eps)
    a = _coef(alpha, "alpha", xa, True)
    sg = _coef(sigma, "sigma", xa, False)
    return (xa - sg * e) / a


# --------------------------------------------------------------------------------------------
# v (Salimans & Ho 2022): v = alpha eps - sigma x_0
# --------------------------------------------------------------------------------------------


def v_from_eps_x0(eps: ArrayLike, x0: ArrayLike, alpha: Any, sigma: Any) -> np.ndarray:
    """vhat = alpha epshat - sigma x0hat (Salimans & Ho 2022, for any alpha, sigma). alpha > 0, sigma >= 0."""
    e, x0a = _arrays(eps=eps, x0=x0)
    a = _coef(alpha, "alpha", e, True)
    sg = _coef(sigma, "sigma", e, False)
    return a * e - sg * x0a


def v_from_eps(x: ArrayLike, eps: ArrayLike, alpha: Any, sigma: Any) -> np.ndarray:
    """vhat = ((alpha^2 + sigma^2) epshat - sigma x) / alpha (x0hat = (x - sigma epshat) / alpha). alpha > 0."""
    xa, e = _arrays(x=x, eps=eps)
    a = _coef(alpha, "alpha", xa, True)
    sg = _coef(sigma, "sigma", xa, False)
    return ((a * a + sg * sg) * e - sg * xa) / a


def v_from_x0(x: ArrayLike, x0: ArrayLike, alpha: Any, sigma: Any) -> np.ndarray:
    """vhat = (alpha x - (alpha^2 + sigma^2) x0hat) / sigma (epshat = (x - alpha x0hat) / sigma). sigma > 0."""
    xa, x0a = _arrays(x=x, x0=x0)
    a = _coef(alpha, "alpha", xa, True)
    sg = _coef(sigma, "sigma", xa, True)
    return (a * xa - (a * a + sg * sg) * x0a) / sg


def v_from_score(x: ArrayLike, score: ArrayLike, alpha: Any, sigma: Any) -> np.ndarray:
    """vhat = alpha epshat - sigma x0hat = -sigma ((alpha^2 + sigma^2) s + x) / alpha. alpha > 0, sigma >= 0.

    (epshat = -sigma s, x0hat = (x + sigma^2 s) / alpha.)
    """
    xa, s = _arrays(x=x, score=score)
    a = _coef(alpha, "alpha", xa, True)
    sg = _coef(sigma, "sigma", xa, False)
    return -sg * ((a * a + sg * sg) * s + xa) / a


def x0_from_v(x: ArrayLike, v: ArrayLike, alpha: Any, sigma: Any) -> np.ndarray:
    """x0hat = (alpha x - sigma vhat) / (alpha^2 + sigma^2); alpha x - sigma v in VP (Salimans & Ho 2022). alpha > 0.

    Solves x = alpha x_0 + sigma eps, v = alpha eps - sigma x_0 (a rotation scaled by sqrt(alpha^2 + sigma^2)).
    """
    xa, va = _arrays(x=x, v=v)
    a = _coef(alpha, "alpha", xa, True)
    sg = _coef(sigma, "sigma", xa, False)
    return (a * xa - sg * va) / (a * a + sg * sg)


def eps_from_v(x: ArrayLike, v: ArrayLike, alpha: Any, sigma: Any) -> np.ndarray:
    """epshat = (sigma x + alpha vhat) / (alpha^2 + sigma^2); sigma x + alpha v in VP (Salimans & Ho 2022)."""
    xa, va = _arrays(x=x, v=v)
    a = _coef(alpha, "alpha", xa, True)
    sg = _coef(sigma, "sigma", xa, False)
    return (sg * xa + a * va) / (a * a + sg * sg)


def score_from_v(x: ArrayLike, v: ArrayLike, alpha: Any, sigma: Any) -> np.ndarray:
    """s = -epshat / sigma = -(sigma x + alpha vhat) / (sigma (alpha^2 + sigma^2)). alpha > 0, sigma > 0."""
    xa, va = _arrays(x=x, v=v)
    a = _coef(alpha, "alpha", xa, True)
    sg = _coef(sigma, "sigma", xa, True)
    return -(sg * xa + a * va) / (sg * (a * a + sg * sg))


# --------------------------------------------------------------------------------------------
# EDM (Karras et al. 2022)
# --------------------------------------------------------------------------------------------


def edm_scaling(alpha: Any, sigma: Any) -> tuple[Any, Any]:
    """(s, sigma_edm) = (alpha, sigma / alpha): the EDM form x = s (x_0 + sigma_edm eps) of x = alpha x_0 + sigma eps.

    With D the EDM denoiser of the data law (Karras et al. 2022), E[x_0 | x_t = x] = D(x / s; sigma_edm).
    alpha > 0, sigma >= 0 (scalars or arrays of one shape).
    """
    a = np.asarray(alpha, dtype=np.float64)
    sg = np.asarray(sigma, dtype=np.float64)
    if not (np.all(np.isfinite(a)) and np.all(a > 0)):
        raise SDEKitError(f"alpha must be finite and > 0; got {alpha!r}")
    if not (np.all(np.isfinite(sg)) and np.all(sg >= 0)):
        raise SDEKitError(f"sigma must be finite and >= 0; got {sigma!r}")
    if a.ndim == 0 and sg.ndim == 0:
        return float(a), float(sg / a)
    return a, sg / a


def edm_denoiser_from_score(x: ArrayLike, score: ArrayLike, sigma: Any) -> np.ndarray:
    """D(x; sigma) = x + sigma^2 s(x; sigma) for the VE kernel x = x_0 + sigma eps (Karras et al. 2022, eq. 3).

    This is x0hat at alpha = 1 (Tweedie, Efron 2011). sigma >= 0.
    """
    return x0_from_score(x, score, 1.0, sigma)


def score_from_edm_denoiser(x: ArrayLike, denoised: ArrayLike, sigma: Any) -> np.ndarray:
    """s(x; sigma) = (D(x; sigma) - x) / sigma^2 (Karras et al. 2022, eq. 3; alpha = 1). sigma > 0."""
    xa, da = _arrays(x=x, denoised=denoised)
    sg = _coef(sigma, "sigma", xa, True)
    return (da - xa) / (sg * sg)


# --------------------------------------------------------------------------------------------
# dispatcher
# --------------------------------------------------------------------------------------------


def _to_x0(kind: str, x: np.ndarray, pred: np.ndarray, alpha: Any, sigma: Any) -> np.ndarray:
    if kind == "x0":
        return pred
    if kind == "score":
        return x0_from_score(x, pred, alpha, sigma)
    if kind == "eps":
        return x0_from_eps(x, pred, alpha, sigma)
    return x0_from_v(x, pred, alpha, sigma)


def convert(pred: ArrayLike, source: str, target: str, x: ArrayLike, alpha: Any, sigma: Any) -> np.ndarray:
    """Convert a prediction ``pred`` at x between the parametrizations "score", "eps", "x0", "v".

    Direct formulas are used where one exists (score <-> eps needs neither x nor alpha); otherwise the route goes
    through x0hat with the functions of this module.
    """
    for name, kind in (("source", source), ("target", target)):
        if kind not in PARAMETRIZATIONS:
            raise SDEKitError(f"{name} must be one of {PARAMETRIZATIONS}; got {kind!r}")
    xa, p = _arrays(x=x, pred=pred)
    if source == target:
        return p.copy()
    if {source, target} == {"score", "eps"}:
        return score_from_eps(p, sigma) if source == "eps" else eps_from_score(p, sigma)
    if source == "eps" and target == "v":
        return v_from_eps(xa, p, alpha, sigma)
    if source == "score" and target == "v":
        return v_from_score(xa, p, alpha, sigma)
    if source == "v" and target == "eps":
        return eps_from_v(xa, p, alpha, sigma)
    if source == "v" and target == "score":
        return score_from_v(xa, p, alpha, sigma)
    x0 = _to_x0(source, xa, p, alpha, sigma)
    if target == "x0":
        return x0
    if target == "score":
        return score_from_x0(xa, x0, alpha, sigma)
    if target == "eps":
        return eps_from_x0(xa, x0, alpha, sigma)
    return v_from_x0(xa, x0, alpha, sigma)
