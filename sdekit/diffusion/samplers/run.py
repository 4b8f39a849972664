"""What every sampler run shares: one result type, one seed rule, an injectable noise source, a per-step callback and
an optional trajectory.

**Seed rule (one rule for every sampler).** Every sampler takes ``seed`` (an integer in [0, 2**64), default 0) and
``path_offset`` (the index of the batch's first path). A stochastic sampler draws its normals from sdekit's per-path
streams keyed by (seed, path_offset + row, sampler step), so a path's numbers never depend on the batch size or on
how the paths are split; a deterministic sampler (DDIM with eta = 0, DPM-Solver, EDM without churn) accepts the seed
and ignores it. ``noise=`` replaces the streams by any callable ``noise(step, like) -> normals of like's shape``
(e.g. a list of pre-drawn arrays to compare with another library); it is called for exactly the steps that add
noise, with ``step`` the sampler's stream index for that draw.

**Callback.** ``callback(info)`` is called after every sampler step with a `StepInfo` (step, alpha, sigma of the
level reached, the new state x and the denoised estimate x0hat the step used), on the host, without copying x.

**Result.** Every sampler returns a `SampleResult`: x (n, *shape) (a tensor for a torch run), nfe (model calls),
alphas / sigmas (the levels visited, from the start to the end), and, with ``return_trajectory=True``, the states
after each step stacked as (steps + 1, n, *shape) (the start first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.diffusion.model import FIRST_SAMPLER_STREAM, step_normals
from sdekit.diffusion.samplers.arrays import State, as_like, dims, is_torch
from sdekit.diffusion.samplers.checks import check_path_offset, check_seed
from sdekit.diffusion.samplers.score_calls import ScoreCalls
from sdekit.errors import SDEKitError

__all__ = ["NoiseFn", "SampleResult", "SamplerRun", "StepInfo", "StreamNoise", "sampler_normals"]

NoiseFn = Callable[[int, State], Any]


@dataclass(frozen=True)
class SampleResult:
    """The output of every sampler: final samples x (n, *shape), the number of model evaluations nfe, the levels
    visited (alphas, sigmas, float64 arrays from the start to the end) and the optional trajectory
    (steps + 1, n, *shape)."""

    x: State
    nfe: int
    alphas: np.ndarray
    sigmas: np.ndarray
    trajectory: State | None = None

    @property
    def lambdas(self) -> np.ndarray:
        """lambda = log(alpha / sigma) at the levels visited (+inf at sigma = 0)."""
        with np.errstate(divide="ignore"):
            return np.log(self.alphas) - np.log(self.sigmas)

    @property
    def sigmas_edm(self) -> np.ndarray:
        """sigma / alpha at the levels visited: the noise level of Karras et al. 2022 (k-diffusion's sigma)."""
        return self.sigmas / self.alphas


@dataclass(frozen=True)
class StepInfo:
    """What a sampler's ``callback`` sees after step ``step``: the level (alpha, sigma) reached, the new state x and
    the denoised estimate x0hat = E[x_0 | x] the step used (None where the step made no model call)."""

    step: int
    alpha: float
    sigma: float
    x: State
    denoised: State | None


def sampler_normals(seed: int, step: int, like: State, path_offset: int = 0) -> State:
    """Standard normals of like's shape, kind, dtype and device for sampler step ``step``: row p is path
    path_offset + p of stream 2 + step of sdekit's counter-based streams keyed by seed; the trailing dimensions are
    the draws in C order (`sdekit.noise.counter`). A torch state gets them drawn on its own device
    (`sdekit.backends.torch.counter_noise`: the same numbers, bit-equal in float64; float32 is the float64 value
    rounded), so no noise is copied from the host."""
    n, d = int(like.shape[0]), dims(like)
    stream = FIRST_SAMPLER_STREAM + int(step)
    if is_torch(like):
        from sdekit.backends.torch.counter_noise import torch_counter_normals

        return torch_counter_normals(seed, n, d, path_offset=path_offset, stream=stream, dtype=like.dtype,
                                     device=like.device).reshape(like.shape)
    return step_normals(seed, n, d, int(step), path_offset=path_offset).reshape(like.shape)


class StreamNoise:
    """The default noise source: `sampler_normals` for (seed, path_offset)."""

    def __init__(self, seed: int, path_offset: int = 0) -> None:
        self.seed, self.path_offset = seed, path_offset

    def __call__(self, step: int, like: State) -> State:
        return sampler_normals(self.seed, step, like, self.path_offset)


def _check_flag(v: Any, name: str) -> bool:
    if not isinstance(v, bool | np.bool_):
        raise SDEKitError(f"{name} must be a bool; got {v!r}")
    return bool(v)


class SamplerRun:
    """The bookkeeping of one sampler run (module docstring): checked and counted model calls (`ScoreCalls`), the
    noise source, the callback and the trajectory."""

    def __init__(self, score: Callable, *, seed: Any = 0, path_offset: Any = 0, noise: Any = None,
                 callback: Any = None, return_trajectory: Any = False, name: str = "score") -> None:
        if not callable(score):
            raise SDEKitError(f"{name} must be callable as {name}(x, alpha, sigma); got {type(score).__name__}")
        self.seed = check_seed(seed)
        self.path_offset = check_path_offset(path_offset)
        if noise is not None and not callable(noise):
            raise SDEKitError(f"noise must be None or callable as noise(step, like) -> normals of like's shape; "
                              f"got {type(noise).__name__}")
        if callback is not None and not callable(callback):
            raise SDEKitError(f"callback must be None or callable as callback(info); got {type(callback).__name__}")
        self.noise_source = StreamNoise(self.seed, self.path_offset) if noise is None else noise
        self.callback = callback
        self.keep = _check_flag(return_trajectory, "return_trajectory")
        self.calls = ScoreCalls(score, name)
        self.states: list[State] = []
        self.alphas: list[float] = []
        self.sigmas: list[float] = []

    @property
    def nfe(self) -> int:
        return self.calls.nfe

    @property
    def wants_denoised(self) -> bool:
        """Whether a step's denoised estimate is read (by the callback); samplers that compute it only for the
        callback skip it otherwise."""
        return self.callback is not None

    def score(self, x: State, alpha: float, sigma: float, step: int, t: float | None = None) -> State:
        """The checked model output at x for the level (alpha, sigma)."""
        return self.calls(x, alpha, sigma, step, t)

    def noise(self, step: int, like: State) -> State:
        """Standard normals of like's shape for the draw ``step`` (the noise source's output, checked)."""
        z = as_like(self.noise_source(step, like), like, "noise")
        if tuple(z.shape) != tuple(like.shape):
            raise SDEKitError(f"noise(step, like) returned shape {tuple(z.shape)}; expected like's shape "
                              f"{tuple(like.shape)}")
        return z

    def start(self, x: State, alpha: float, sigma: float) -> None:
        """Record the initial state at the first level."""
        self.alphas.append(float(alpha))
        self.sigmas.append(float(sigma))
        if self.keep:
            self.states.append(x)

    def step_done(self, step: int, x: State, alpha: float, sigma: float, denoised: State | None) -> None:
        """Record the state after ``step`` at the level (alpha, sigma) and call the callback."""
        self.alphas.append(float(alpha))
        self.sigmas.append(float(sigma))
        if self.keep:
            self.states.append(x)
        if self.callback is not None:
            self.callback(StepInfo(step, float(alpha), float(sigma), x, denoised))

    def finish(self, x: State, result_type: type = SampleResult, **extra: Any) -> Any:
        """The run's result, once every model call is known to have returned finite values."""
        trajectory = None
        if self.keep:
            if is_torch(x):
                import torch

                trajectory = torch.stack(self.states)
            else:
                trajectory = np.stack(self.states)
        result = result_type(x, self.calls.nfe, np.array(self.alphas, dtype=np.float64),
                             np.array(self.sigmas, dtype=np.float64), trajectory, **extra)
        return self.calls.finish(result)

