"""`plan`: check, probe and compile a fixed-step solve once, then run it again and again for new x0, seed and
parameters at a few microseconds of Python per call (small solves: many short runs, a sampler inside a loop)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdekit.backends.numba.fixed_solve import FixedSolve, prepare_fixed
from sdekit.errors import NonFiniteError, SDEKitError, StepSizeError
from sdekit.memory import save_cap
from sdekit.params import cast_params, normalize_params
from sdekit.sde import ODE, SDE
from sdekit.simulate import (
    PATH_INDEX_LIMIT,
    _checked_options,
    _initial_state,
    _int_arg,
    checked_fixed_grid,
    checked_noise_dtype,
)
from sdekit.solution import Solution


def _signature(params: Any) -> tuple:
    """What a new parameter value must share with the planned one: structure, shapes and dtypes (the kernel was
    compiled for the types, and the functions were probed for the shapes)."""
    if isinstance(params, tuple):
        return tuple((np.shape(v), np.asarray(v).dtype) for v in params)
    return (params.shape, params.dtype)


class SolvePlan:
    """A checked, probed and compiled fixed-step solve (made by `plan`); call it to solve.

    plan(x0=None, *, seed=0, params=None, path_offset=0) -> Solution, the same numbers as `sdekit.simulate` with the
    planned options and these values. The plan holds the problem's functions as compiled when it was made (like
    ``jax.jit``): a later edit of a global array they read is not seen; plan again.
    """

    def __init__(self, problem: SDE | ODE, prepared: FixedSolve, x0: np.ndarray, params: Any) -> None:
        self.problem = problem
        self.prepared = prepared
        self.n_paths = prepared.n_paths
        self.dim = prepared.dim
        self.dtype = prepared.dtype
        self.save_ts = prepared.grid.save_ts.copy()
        self._x0 = x0
        self._params = params
        self._signature = _signature(params)
        self._shape = (self.n_paths, self.dim)
        self._ws = prepared.save_brownian
        self._one_path = (self.dim,) if self.n_paths == 1 else None  # a (dim,) x0 is one path's state

    def __repr__(self) -> str:
        return (f"SolvePlan(solver={self.prepared.solver.name!r}, n_paths={self.n_paths}, dim={self.dim}, "
                f"steps={self.prepared.grid.ts.size - 1}, saves={self.save_ts.size}, dtype={self.dtype.name})")

    def __call__(self, x0: Any = None, *, seed: int = 0, params: Any = None, path_offset: int = 0) -> Solution:
        """Solve from x0 (None: the planned x0; else a scalar, (dim,), (n_paths, dim) or (n_paths, *shape), as for
        `simulate`) with this seed and parameters (None: the problem's; else the same structure, shapes and dtypes);
        row p is path path_offset + p of the ensemble of `seed`."""
        x = self._x0 if x0 is None else self._state(x0)
        p = self._params if params is None else self._checked_params(params)
        if type(seed) is not int or not 0 <= seed < 2**64:
            seed = _int_arg(seed, "seed", 0, 2**64 - 1)
        if path_offset:
            path_offset = _int_arg(path_offset, "path_offset", 0, PATH_INDEX_LIMIT)
        try:
            ys, stats = self.prepared.run(x, p, seed, path_offset)
        except (NonFiniteError, StepSizeError) as exc:
            if path_offset == 0:
                raise
            raise exc.with_path_offset(path_offset) from None
        return Solution(self.save_ts.copy(), ys, stats, stats.extra.pop("ws", None) if self._ws else None)

    def _state(self, x0: Any) -> np.ndarray:
        """x0 as a C-contiguous (n_paths, dim) array of the plan's dtype (its finiteness is checked by the run)."""
        if type(x0) is np.ndarray and x0.dtype is self.dtype and x0.flags.c_contiguous:
            if x0.shape == self._shape:
                return x0
            if x0.shape == self._one_path:  # one path's state (dim,): a view
                return x0.reshape(self._shape)
        return np.ascontiguousarray(_initial_state(x0, self.dim, self.n_paths, self.dtype.type))

    def _checked_params(self, params: Any) -> Any:
        p = cast_params(normalize_params(params), self.dtype.type)
        if _signature(p) != self._signature:
            raise SDEKitError(f"params must have the planned structure, shapes and dtypes {self._signature}; got "
                              f"{_signature(p)} (plan again for parameters of another shape)")
        return p


def plan(problem: SDE | ODE, x0: Any, t: Any, *, steps: int | None = None, dt: float | None = None,
         n_paths: int | None = None, solver: str | None = None, save_at: Any = None, dtype: Any = None,
         noise_substeps: int = 1, threads: int | None = None, progress: bool | None = None,
         on_nonfinite: str = "raise", max_save_bytes: int | None = None, chunk_size: int | None = None,
         save_brownian: bool = False, noise_dtype: str = "float64") -> SolvePlan:
    """A fixed-step solve on the Numba backend, checked, probed and compiled once: ``plan(...)(x0, seed=s)`` gives the
    numbers of ``simulate(problem, x0, t, ..., seed=s)`` with these options, at a few microseconds of Python per call.

    The arguments are `simulate`'s (fixed-step solvers; x0 fixes n_paths and is the default initial state). The SDE
    step is X_{t+h} = Phi(X_t, t, h, dW) of the chosen solver with dW from the (seed, path) streams, as in
    `simulate` (noise_dtype too: "float32" draws float32 normals, needs dtype="float32"); the plan only moves the
    argument checks, the probe of the user functions (`sdekit.probe`), the choice and compilation of the kernel and
    the grid out of the repeated call.
    """
    if not isinstance(problem, (SDE, ODE)):
        raise SDEKitError(f"problem must be an sdekit.SDE or sdekit.ODE; got {type(problem).__name__}")
    kind = "sde" if isinstance(problem, SDE) else "ode"
    if progress is not None and not isinstance(progress, bool):
        raise SDEKitError(f"progress must be None (automatic), True or False; got {progress!r}")
    if not isinstance(save_brownian, bool):
        raise SDEKitError(f"save_brownian must be True or False; got {save_brownian!r}")
    if save_brownian and kind != "sde":
        raise SDEKitError("save_brownian=True returns the Brownian path of an SDE solve; the problem is an ODE")
    max_save_bytes = save_cap(max_save_bytes)
    noise_dtype = checked_noise_dtype(noise_dtype, dtype, "numba")
    solver_obj, _, _, noise_substeps, threads, chunk_size, x, params = _checked_options(
        problem, kind, x0, n_paths, solver=solver, backend="numba", dtype=dtype, seed=0,
        noise_substeps=noise_substeps, on_nonfinite=on_nonfinite, threads=threads, chunk_size=chunk_size)
    if solver_obj.adaptive:
        raise SDEKitError(f"plan runs fixed-step solvers; solver {solver_obj.name!r} is adaptive: call "
                          "sdekit.simulate, or pick a fixed-step solver with steps or dt")
    grid, x = checked_fixed_grid(problem, solver_obj, x, params, t, steps=steps, dt=dt, save_at=save_at,
                                 max_save_bytes=max_save_bytes)
    prepared = prepare_fixed(problem, solver_obj, params, x, grid, substeps=noise_substeps, threads=threads,
                             progress=progress, mask=on_nonfinite == "mask", chunk=chunk_size,
                             save_brownian=save_brownian, noise_dtype=noise_dtype)
    return SolvePlan(problem, prepared, x, params)
