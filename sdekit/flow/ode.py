"""The flow ODE dx/dt = u(x, t) of a velocity model as an `sdekit.ODE`, for `sdekit.simulate` and its ODE solvers
(rk4, dopri5, ...; Lipman et al. 2023 sample by integrating it from t = 1 to t = 0).

The exact mixture velocity has a compiled field for the Numba backend (`MixtureVelocity.ode`); any velocity(x, t)
written in torch (a network, `MixtureVelocity` on tensors) becomes an ODE for ``backend="torch"`` here, and its
time runs backwards with ``simulate(ode, x1, (1.0, 0.0), ...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sdekit.errors import SDEKitError
from sdekit.sde import ODE

__all__ = ["flow_ode"]


class _Field:
    """field(x, t, p) = velocity(x, t) (picklable; exposes a torch module's parameters to the adjoint)."""

    def __init__(self, velocity: Callable[[Any, Any], Any]) -> None:
        self.velocity = velocity
        owner = velocity if _is_module(velocity) else getattr(velocity, "__self__", None)
        self.torch_modules = (owner,) if _is_module(owner) else ()

    def __call__(self, x: Any, t: Any, p: Any) -> Any:
        return self.velocity(x, t)


def _is_module(obj: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__)


def flow_ode(velocity: Callable[[Any, Any], Any], dim: int, *, name: str = "flow_ode") -> ODE:
    """dx/dt = velocity(x, t) as an `sdekit.ODE` of dimension ``dim`` for ``simulate(..., backend="torch")``
    (velocity takes x (n, dim) tensors and t a 0-d tensor). Integrate from t = 1 to 0 to sample; the exact mixture
    velocity also runs on the Numba backend through `MixtureVelocity.ode()`."""
    if not callable(velocity):
        raise SDEKitError(f"velocity must be callable as velocity(x, t); got {type(velocity).__name__}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise SDEKitError(f"dim must be a positive int; got {dim!r}")
    return ODE(_Field(velocity), dim=dim, name=name)
