"""The exact flow-matching velocity of Gaussian-mixture data, its divergence and the flow ODE, NumPy (Numba) and
torch.

Data p_0 = sum_k pi_k N(mu_k, C_k), C_k = Q_k diag(lam_k) Q_k^T, under an interpolant x_t = alpha_t x_0 + sigma_t eps
(`sdekit.flow.interpolants`): the marginal at every t is the mixture of `sdekit.diffusion.mixture_marginals`,
S_k = alpha^2 C_k + sigma^2 I = Q_k diag(e_k) Q_k^T, e_k = alpha^2 lam_k + sigma^2, with responsibilities gamma_k(x)
and, per component (jointly Gaussian (x_0, eps, x_t)), with w_k = S_k^{-1} (x - alpha mu_k):

    E[x_0 | x, k] = mu_k + alpha C_k w_k,        E[eps | x, k] = sigma w_k,
    u_k(x, t)     = alpha' mu_k + Q_k diag(c_k) Q_k^T w_k,   c_k = alpha' alpha lam_k + sigma' sigma,
    u(x, t)       = sum_k gamma_k(x) u_k(x, t) = alpha' E[x_0 | x] + sigma' E[eps | x]   (the marginal velocity).

This form needs no division by alpha or sigma, so it holds at t = 1 (alpha = 0: u = alpha' E[x_0] + sigma' x / sigma)
and at t = 0 (sigma = 0: u = alpha' x / alpha + sigma' E[eps | x_0 = x] = alpha' x). Away from those ends it equals
the Tweedie form alpha' (x + sigma^2 s) / alpha - sigma' sigma s with the mixture score s (tested).

The divergence (for the instantaneous change of variables): with grad gamma_k = gamma_k (wbar - w_k),

    div u = sum_k gamma_k [tr(Q_k diag(c_k / e_k) Q_k^T) - (u_k - ubar) . (w_k - wbar)],   ubar = u, wbar = -s.

The probability-flow ODE of flow matching is dx/dt = u(x, t), integrated from t = 1 (x_1 ~ p_1) to t = 0.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.mixture_marginals import MixtureMarginals, mixture_marginal_log_prob
from sdekit.diffusion.samplers.arrays import is_torch
from sdekit.errors import SDEKitError
from sdekit.flow.interpolants import INTERPOLANTS, Interpolant, get_interpolant
from sdekit.sde import ODE
from sdekit.targets.gaussian import LOG_2PI, Seed, sample_count
from sdekit.targets.mixture import GaussianMixture

__all__ = ["MixtureVelocity", "mixture_velocity", "mixture_velocity_divergence"]

HALF_PI = 0.5 * math.pi


@nb.njit(cache=True)
def _row_parts(xb, a, s, da, ds, log_w, mu, q, lam, us, ws, lks, cs, es):
    """For one point: fills u_k (K, d), w_k (K, d), the normalised responsibilities lks (K,), the velocity weights
    c_k / e_k (K, d) and e_k (K, d)."""
    n_comp, d = lam.shape
    y = np.empty(d)
    m = -np.inf
    for k in range(n_comp):
        logdet = 0.0
        quad = 0.0
        for j in range(d):
            e = a * a * lam[k, j] + s * s
            es[k, j] = e
            cs[k, j] = (da * a * lam[k, j] + ds * s) / e
            logdet += math.log(e)
            acc = 0.0
            for i in range(d):
                acc += q[k, i, j] * (xb[i] - a * mu[k, i])
            y[j] = acc / e  # z = diag(1/e) Q^T r
            quad += acc * y[j]
        for i in range(d):
            wi = 0.0
            ui = 0.0
            for j in range(d):
                wi += q[k, i, j] * y[j]
                ui += q[k, i, j] * (da * a * lam[k, j] + ds * s) * y[j]
            ws[k, i] = wi
            us[k, i] = da * mu[k, i] + ui
        lks[k] = log_w[k] - 0.5 * (d * LOG_2PI + logdet) - 0.5 * quad
        if lks[k] > m:
            m = lks[k]
    tot = 0.0
    for k in range(n_comp):
        lks[k] = math.exp(lks[k] - m)
        tot += lks[k]
    for k in range(n_comp):
        lks[k] /= tot


@nb.njit(cache=True)
def mixture_velocity(x, a, s, da, ds, p):
    """u(x, t) = sum_k gamma_k u_k for each row (module docstring); a, s, da, ds: (n,) arrays, the interpolant's
    alpha_t, sigma_t, alpha'_t, sigma'_t of each row; p = ``MixtureMarginals.params``. Returns (n, d)."""
    log_w, mu, q, lam = p[0], p[1], p[2], p[3]
    n, d = x.shape
    n_comp = log_w.shape[0]
    out = np.zeros((n, d))
    us = np.empty((n_comp, d))
    ws = np.empty((n_comp, d))
    lks = np.empty(n_comp)
    cs = np.empty((n_comp, d))
    es = np.empty((n_comp, d))
    for b in range(n):
        _row_parts(x[b], a[b], s[b], da[b], ds[b], log_w, mu, q, lam, us, ws, lks, cs, es)
        for k in range(n_comp):
            for i in range(d):
                out[b, i] += lks[k] * us[k, i]
    return out


@nb.njit(cache=True)
def mixture_velocity_divergence(x, a, s, da, ds, p):
    """div_x u(x, t) for each row: sum_k gamma_k [sum_j c_kj / e_kj - (u_k - ubar) . (w_k - wbar)]; returns (n,)."""
    log_w, mu, q, lam = p[0], p[1], p[2], p[3]
    n, d = x.shape
    n_comp = log_w.shape[0]
    out = np.empty(n)
    us = np.empty((n_comp, d))
    ws = np.empty((n_comp, d))
    lks = np.empty(n_comp)
    cs = np.empty((n_comp, d))
    es = np.empty((n_comp, d))
    ubar = np.empty(d)
    wbar = np.empty(d)
    for b in range(n):
        _row_parts(x[b], a[b], s[b], da[b], ds[b], log_w, mu, q, lam, us, ws, lks, cs, es)
        for i in range(d):
            ubar[i] = 0.0
            wbar[i] = 0.0
            for k in range(n_comp):
                ubar[i] += lks[k] * us[k, i]
                wbar[i] += lks[k] * ws[k, i]
        acc = 0.0
        for k in range(n_comp):
            tr = 0.0
            dot = 0.0
            for i in range(d):
                tr += cs[k, i]
                dot += (us[k, i] - ubar[i]) * (ws[k, i] - wbar[i])
            acc += lks[k] * (tr - dot)
        out[b] = acc
    return out


@nb.njit(cache=True)
def builtin_coefficients(code, t):
    """(alpha, sigma, alpha', sigma') of the built-in interpolant ``code`` (0 linear, 1 trigonometric) at t."""
    if code == 0:
        return 1.0 - t, t, -1.0, 1.0
    return (math.sin(HALF_PI * (1.0 - t)), math.sin(HALF_PI * t), -HALF_PI * math.cos(HALF_PI * (1.0 - t)),
            HALF_PI * math.cos(HALF_PI * t))


@nb.njit
def _flow_field(x, t, p):
    """dx/dt = u(x, t) of the exact mixture velocity; p = (control [code], log_w, mu, Q, lam)."""
    a, s, da, ds = builtin_coefficients(int(p[0][0]), t)
    n = x.shape[0]
    return mixture_velocity(x, np.full(n, a), np.full(n, s), np.full(n, da), np.full(n, ds), p[1:])


def _torch_parts(x: Any, a: Any, s: Any, da: Any, ds: Any, log_w: Any, mu: Any, q: Any, lam: Any) -> tuple:
    """torch (gamma (n, K), u_k (n, K, d), w_k (n, K, d), c / e (n, K, d)); a .. ds are (n, 1, 1) tensors."""
    import torch

    r = x[:, None, :] - a * mu  # (n, K, d)
    y = torch.einsum("kij,nki->nkj", q, r)
    e = a * a * lam + s * s
    c = da * a * lam + ds * s
    z = y / e
    logits = log_w - 0.5 * (x.shape[1] * LOG_2PI + torch.log(e).sum(-1)) - 0.5 * (y * z).sum(-1)
    w = torch.einsum("kij,nkj->nki", q, z)
    u = da * mu + torch.einsum("kij,nkj->nki", q, c * z)
    return torch.softmax(logits, dim=1), u, w, c / e


class MixtureVelocity:
    """The exact marginal velocity u(x, t) of Gaussian-mixture data under an interpolant (module docstring).

    data: a `GaussianMixture` or `MixtureMarginals`; interpolant: an `Interpolant` or a built-in name (default
    "linear"). Call it as ``velocity(x, t)``: x (n, d) a NumPy array (the Numba kernel) or a torch tensor (the same
    formulas in torch, in x's dtype and device, differentiable), t a number or one value per row ((n,) array or
    tensor). Every flow sampler, `flow_ode` and `flow_log_likelihood` take it."""

    def __init__(self, data: GaussianMixture | MixtureMarginals, interpolant: Any = "linear") -> None:
        if isinstance(data, GaussianMixture):
            data = MixtureMarginals(data)
        if not isinstance(data, MixtureMarginals):
            raise SDEKitError(f"data must be a GaussianMixture or a MixtureMarginals; got {type(data).__name__}")
        self.marginals: MixtureMarginals = data
        self.interpolant: Interpolant = get_interpolant(interpolant)
        self.dim: int = data.dim
        self._torch: dict[tuple, tuple] = {}

    def __repr__(self) -> str:
        return f"MixtureVelocity(dim={self.dim}, interpolant={self.interpolant.name!r})"

    # ---------------------------------------------------------------- coefficients per row

    def _rows_numpy(self, t: Any, n: int) -> tuple[np.ndarray, ...]:
        tt = np.broadcast_to(np.asarray(t, dtype=np.float64).reshape(-1), (n,)) if np.size(t) in (1, n) else None
        if tt is None:
            raise SDEKitError(f"t must be a number or hold one value per row ({n}); got shape {np.shape(t)}")
        if not (np.all(np.isfinite(tt)) and np.all(tt >= 0) and np.all(tt <= 1)):
            raise SDEKitError("t must lie in [0, 1]")
        ip = self.interpolant
        return tuple(np.ascontiguousarray(np.broadcast_to(np.asarray(f(tt.copy()), dtype=np.float64), (n,)))
                     for f in (ip.alpha, ip.sigma, ip.dalpha, ip.dsigma))

    def _rows_torch(self, t: Any, x: Any) -> tuple:
        import torch

        tt = t.to(dtype=x.dtype, device=x.device) if torch.is_tensor(t) else torch.as_tensor(
            float(t), dtype=x.dtype, device=x.device)
        if tt.numel() not in (1, x.shape[0]):
            raise SDEKitError(f"t must be a number or hold one value per row ({x.shape[0]}); got shape "
                              f"{tuple(tt.shape)}")
        tt = tt.reshape(-1, 1, 1)
        ip = self.interpolant
        return tuple(torch.as_tensor(f(tt), dtype=x.dtype, device=x.device).expand(tt.shape)
                     for f in (ip.alpha, ip.sigma, ip.dalpha, ip.dsigma))

    def _params_torch(self, x: Any) -> tuple:
        import torch

        key = (x.dtype, x.device)
        if key not in self._torch:
            self._torch[key] = tuple(torch.as_tensor(np.array(v), dtype=x.dtype, device=x.device)
                                     for v in self.marginals.params)
        return self._torch[key]

    def _points(self, x: Any) -> Any:
        if is_torch(x):
            if x.ndim != 2 or x.shape[1] != self.dim:
                raise SDEKitError(f"x must have shape (n, {self.dim}); got shape {tuple(x.shape)}")
            return x
        pts = np.ascontiguousarray(real_array(x, "x"), dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != self.dim:
            raise SDEKitError(f"x must have shape (n, {self.dim}); got shape {pts.shape}")
        return pts

    # ---------------------------------------------------------------- the velocity and its divergence

    def __call__(self, x: Any, t: Any) -> Any:
        """u(x, t) = alpha'_t E[x_0 | x_t = x] + sigma'_t E[eps | x_t = x]; shape (n, d), in x's kind."""
        x = self._points(x)
        if is_torch(x):
            import torch

            gamma, u, _, _ = _torch_parts(x, *self._rows_torch(t, x), *self._params_torch(x))
            return torch.einsum("nk,nki->ni", gamma, u)
        return mixture_velocity(x, *self._rows_numpy(t, x.shape[0]), self.marginals.params)

    def divergence(self, x: Any, t: Any) -> Any:
        """div_x u(x, t) (module docstring); shape (n,), in x's kind."""
        x = self._points(x)
        if is_torch(x):
            import torch

            gamma, u, w, ce = _torch_parts(x, *self._rows_torch(t, x), *self._params_torch(x))
            ubar = torch.einsum("nk,nki->ni", gamma, u)[:, None, :]
            wbar = torch.einsum("nk,nki->ni", gamma, w)[:, None, :]
            return (gamma * (ce.sum(-1) - ((u - ubar) * (w - wbar)).sum(-1))).sum(-1)
        return mixture_velocity_divergence(x, *self._rows_numpy(t, x.shape[0]), self.marginals.params)

    # ---------------------------------------------------------------- the marginals

    def level(self, t: float) -> tuple[float, float]:
        """(alpha_t, sigma_t)."""
        return self.interpolant.level(t)

    def marginal(self, t: float) -> GaussianMixture:
        """The exact law of x_t: sum_k pi_k N(alpha_t mu_k, alpha_t^2 C_k + sigma_t^2 I)."""
        a, s = self.level(t)
        data = self.marginals.data
        return GaussianMixture(data.weights, a * data.means, a * a * data.covs + s * s * np.eye(self.dim))

    def log_prob(self, x: Any, t: float) -> np.ndarray:
        """log p_t(x) of the exact marginal at t (valid at t = 1, alpha = 0, too); shape (n,)."""
        a, s = self.level(t)
        return mixture_marginal_log_prob(self._points(x), a, s, self.marginals.params)

    def sample(self, n: int, t: float, seed: Seed = None) -> np.ndarray:
        """n draws of x_t = alpha_t x_0 + sigma_t eps (x_0 then eps from np.random.default_rng(seed)); (n, d)."""
        n = sample_count(n)
        a, s = self.level(t)
        rng = np.random.default_rng(seed)
        x0 = self.marginals.data.sample(n, rng)
        return a * x0 + s * rng.standard_normal((n, self.dim))

    def ode(self) -> ODE:
        """The flow ODE dx/dt = u(x, t) as an `sdekit.ODE` with a Numba field, for `sdekit.simulate` (any ODE solver,
        e.g. "rk4" or "dopri5", from t = 1 to 0); built-in interpolants only (their coefficients are compiled)."""
        if not any(self.interpolant is ip for ip in INTERPOLANTS.values()):
            raise SDEKitError("MixtureVelocity.ode() needs a built-in interpolant ('linear', 'trigonometric'); for a "
                              "custom one use flow_ode(velocity) on backend='torch' or flow_sample")
        return ODE(_flow_field, dim=self.dim, params=(np.array([float(self.interpolant.code)]),
                                                      *self.marginals.params),
                   name=f"flow_{self.interpolant.name}_mixture")
