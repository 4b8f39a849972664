"""Lower an sdekit SDE or ODE to the objects torchsde and torchdiffeq integrate.

SDE dX = f(X, t, p) dt + g(X, t, p) dW becomes a module with torchsde's protocol: ``f(s, y)``, ``g(s, y)`` (and
``g_prod(s, y, v)`` = g v where a cheaper form exists), ``noise_type`` and ``sde_type``. ODE dx/dt = v(x, t, p)
becomes a torchdiffeq field ``forward(s, y)``. torchsde only integrates forward in time, so a decreasing sdekit
grid t_0 > t_1 > ... is run in s = -t: with Y_s = X_{-s},

    dY = -f(Y, -s) ds + g(Y, -s) dW_s,

the same discrete map step by step (drift times the signed step h = -ds, noise times sqrt|h|); the ODE field
likewise becomes -v(y, -s). SDE functions are called with x a tensor (n, dim), t a Python float and p the
parameters as tensors on the state's device and dtype (scalars stay floats); an ODE field gets t as a 0-d
tensor (for differentiable adaptive solves). `sdekit.backends.torch.twins`
supplies torch versions of the built-ins written as Numba loops.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sdekit.backends.torch import builtin_twins  # noqa: F401  (registers the built-ins' torch twins)
from sdekit.backends.torch.twins import torch_function
from sdekit.errors import SDEKitError
from sdekit.sde import ODE, SDE


def torch_params(params: Any, dtype: Any, device: Any) -> Any:
    """sdekit runtime parameters (an array or a tuple of arrays and floats) as tensors on device (floats kept)."""
    def conv(v: Any) -> Any:
        if torch.is_tensor(v):
            return v.to(device=device, dtype=dtype)
        if np.ndim(v) == 0:
            return float(v)
        return torch.as_tensor(np.asarray(v), dtype=dtype, device=device)
    if isinstance(params, tuple):
        return tuple(conv(v) for v in params)
    return conv(params)


def modules_of(*fns: Any) -> list[torch.nn.Module]:
    """The nn.Modules a specification's functions carry (the function itself, or its ``torch_modules``)."""
    found: list[torch.nn.Module] = []
    for fn in fns:
        if isinstance(fn, torch.nn.Module):
            found.append(fn)
        for mod in getattr(fn, "torch_modules", ()) or ():
            if isinstance(mod, torch.nn.Module):
                found.append(mod)
    return found


def _as_state_shaped(out: Any, y: torch.Tensor, role: str) -> torch.Tensor:
    if not torch.is_tensor(out):
        out = torch.as_tensor(out, dtype=y.dtype, device=y.device)
    if out.shape != y.shape:
        try:
            out = out.expand(y.shape)
        except RuntimeError as exc:
            raise SDEKitError(f"{role} returned shape {tuple(out.shape)} for x of shape {tuple(y.shape)}; expected "
                              f"{tuple(y.shape)}, ({y.shape[1]},) or a scalar") from exc
    return out


class LoweredSDE(torch.nn.Module):
    """torchsde's view of an sdekit SDE on the time axis s = sign * t (sign = -1 for a decreasing grid)."""

    def __init__(self, problem: SDE, params: Any, sign: float, sde_type: str | None = None):
        super().__init__()
        self.noise_type = "general" if problem.noise == "commutative" else problem.noise
        self.sde_type = sde_type or problem.calculus
        self.sign = float(sign)
        self.params = params
        self.dim, self.m = problem.dim, problem.m
        self.matrix = problem.matrix_noise
        self.diag_additive = problem.noise == "additive" and not problem.matrix_noise
        self._f = torch_function(problem.drift)
        self._g = torch_function(problem.diffusion)
        self.user_modules = torch.nn.ModuleList(modules_of(problem.drift, problem.diffusion))
        self.counts = [0]  # drift evaluations (a list: no nn.Module attribute bookkeeping per call)

    @property
    def evals(self) -> int:
        return self.counts[0]

    def f(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """-f(y, -s) or f(y, s): the drift on the s axis."""
        self.counts[0] += 1
        out = _as_state_shaped(self._f(y, self.sign * float(s), self.params), y, "drift")
        return out if self.sign > 0 else -out

    def _g_vector(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _as_state_shaped(self._g(y, self.sign * float(s), self.params), y, "diffusion")

    def _g_matrix(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self._g(y, self.sign * float(s), self.params)
        if not torch.is_tensor(out):
            out = torch.as_tensor(out, dtype=y.dtype, device=y.device)
        want = (y.shape[0], self.dim, self.m)
        if out.shape != want:
            try:
                out = out.expand(want)
            except RuntimeError as exc:
                raise SDEKitError(f"diffusion returned shape {tuple(out.shape)}; a matrix diffusion must be "
                                  f"({self.dim}, {self.m}) or {want}") from exc
        return out

    def g(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The diffusion in torchsde's layout: (n, d) diagonal, (n, d, 1) scalar, (n, d, m) otherwise."""
        if self.matrix:
            return self._g_matrix(s, y)
        vec = self._g_vector(s, y)
        if self.noise_type == "diagonal":
            return vec
        if self.noise_type == "scalar":
            return vec.unsqueeze(-1)
        return torch.diag_embed(vec)  # additive with a diagonal g: torchsde wants the (n, d, d) matrix

    def g_prod(self, s: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """g dW without forming a matrix where g is diagonal: g * v (diagonal, diagonal additive), g v_0 (scalar)."""
        if self.matrix:
            return torch.einsum("nij,nj->ni", self._g_matrix(s, y), v)
        vec = self._g_vector(s, y)
        if self.noise_type == "scalar":
            return vec * v[:, :1]
        return vec * v


RECORD_CHUNK = 512


class LoweredODE(torch.nn.Module):
    """torchdiffeq's view of an sdekit ODE on s = sign * t. Each evaluation keeps the state's batch sum and its s
    on the device (no host synchronisation); after the solve the first non-finite sum says when a path failed."""

    def __init__(self, problem: ODE, params: Any, sign: float):
        super().__init__()
        self.sign = float(sign)
        self.params = params
        self._v = torch_function(problem.field)
        self.user_modules = torch.nn.ModuleList(modules_of(problem.field))
        self.counts = [0]
        self._pending: tuple[list, list] = ([], [])  # batch sums and times of the latest evaluations
        self._chunks: tuple[list, list] = ([], [])  # older ones, stacked every RECORD_CHUNK evaluations

    @property
    def evals(self) -> int:
        return self.counts[0]

    def _flush(self) -> None:
        for pending, chunks in zip(self._pending, self._chunks):
            if pending:
                chunks.append(torch.stack(pending).to(torch.float64))
                pending.clear()

    def record(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch sum of the state, s) at every evaluation so far, as two float64 device tensors."""
        self._flush()
        if not self._chunks[0]:
            empty = torch.zeros(0, dtype=torch.float64)
            return empty, empty
        return torch.cat(self._chunks[0]), torch.cat(self._chunks[1])

    def forward(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """dy/ds = sign * v(y, sign * s)."""
        self.counts[0] += 1
        self._pending[0].append(y.detach().sum())
        self._pending[1].append(s.detach())
        if len(self._pending[0]) >= RECORD_CHUNK:  # bounded bookkeeping for long adaptive solves
            self._flush()
        # t stays a tensor: an adaptive solver's stage times depend on the parameters through the step-size
        # controller, and backpropagation through the solve must see that dependence (a float t would drop it)
        out = _as_state_shaped(self._v(y, s if self.sign > 0 else -s, self.params), y, "field")
        return out if self.sign > 0 else -out


def probe(functions: tuple, roles: tuple, problem: Any, x: torch.Tensor, t0: float, params: Any) -> None:
    """Call each function once on the first rows of x at t0: errors name the role and say what runs on torch."""
    n = min(problem.dim + 2, x.shape[0])
    rows = x[:n]
    for fn, role in zip(functions, roles):
        try:
            out = fn(rows, t0, params)
        except SDEKitError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SDEKitError(
                f"{role} could not be evaluated on torch tensors (x of shape ({n}, {problem.dim}), a float t and "
                f"tensor parameters): {first}\nWrite it with array operations and sdekit.math (which dispatches "
                "to torch), or register a torch version with sdekit.backends.torch.register_torch(fn, torch_fn)"
            ) from exc
        if isinstance(out, np.ndarray) and out.ndim > 0:
            raise SDEKitError(
                f"{role} returned a NumPy array for torch tensors (it would leave the device and the autograd "
                "graph); write it with array operations and sdekit.math, or register a torch version with "
                "sdekit.backends.torch.register_torch(fn, torch_fn)")
        if torch.is_tensor(out) and not bool(torch.isfinite(out).all()):
            raise SDEKitError(f"{role}(x0, t0) is not finite on the torch backend")
