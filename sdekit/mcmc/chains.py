"""The Python side of the generic MCMC driver: argument checks, starting points, the compiled run
(`sdekit.mcmc.kernel`, disk-cached per energy by `sdekit.mcmc.disk_cache` when it can be) and the
end-of-run checks (`sdekit.mcmc.diagnostics`).

Before the compiled run the energy is called once at the first chain's start (`probe_energy`), so a
malformed energy raises `SDEKitError` naming it instead of failing inside Numba. Proposals with a
non-finite energy or gradient are rejected and counted per chain (``MCMCResult.n_nonfinite``);
``on_nonfinite`` chooses what else happens: "warn" (default: a warning when their share exceeds
``THRESHOLDS["nonfinite"]``), "reject" (count only: for energies that are +inf outside their support
on purpose) or "raise" (`NonFiniteProposalError` naming the chain and the step of the first). A chain
whose own state turns non-finite (possible only for unadjusted samplers) raises `ChainNonFiniteError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np

from sdekit.diffusion.samplers.checks import check_count, check_real, check_seed
from sdekit.errors import ChainNonFiniteError, NonFiniteProposalError, SDEKitError
from sdekit.mcmc.adaptation import stan_windows
from sdekit.mcmc.diagnostics import finish
from sdekit.mcmc.disk_cache import cached_kernel
from sdekit.mcmc.kernel import NO_FAILURE, WORK_ROWS, run_chains_kernel, run_chains_serial
from sdekit.mcmc.result import MCMCResult
from sdekit.noise.ziggurat import ZIG_F, ZIG_K, ZIG_W
from sdekit.targets.energy import check_energy_target, energy_function, probe_energy

ON_NONFINITE = ("warn", "reject", "raise")


def check_on_nonfinite(on_nonfinite: Any) -> str:
    """``on_nonfinite`` if it is one of ON_NONFINITE, else SDEKitError."""
    if not isinstance(on_nonfinite, str) or on_nonfinite not in ON_NONFINITE:
        raise SDEKitError(f"on_nonfinite must be one of {ON_NONFINITE}; got {on_nonfinite!r}")
    return on_nonfinite


def check_chain_offset(chain_offset: Any) -> int:
    """``chain_offset`` as a Python int in [0, 2**62), else SDEKitError (the global index of a run's first chain)."""
    if isinstance(chain_offset, bool) or not isinstance(chain_offset, int | np.integer) or \
            not 0 <= int(chain_offset) < 2 ** 62:
        raise SDEKitError(f"chain_offset must be an integer >= 0 (the global index of the first chain); "
                          f"got {chain_offset!r}")
    return int(chain_offset)


def initial_positions(target: Any, x0: Any, n_chains: int, seed: int) -> np.ndarray:
    """Starting points, (n_chains, d): x0=None draws N(0, I) (seeded by ``seed``); x0="target" draws exactly
    from the target (``target.sample``: for stationarity checks); an array of shape (d,) is repeated,
    one of shape (n_chains, d) is used as is."""
    d = target.dim
    if x0 is None:
        return np.random.default_rng([seed, 0x1A17]).standard_normal((n_chains, d))
    if isinstance(x0, str):
        if x0 != "target":
            raise SDEKitError(f"x0 must be None, 'target' or an array; got {x0!r}")
        if not hasattr(target, "sample"):
            raise SDEKitError(f"x0='target' needs exact sampling, and {type(target).__name__} has no sample()")
        return np.ascontiguousarray(target.sample(n_chains, seed=np.random.SeedSequence([seed, 0x1A17])),
                                    dtype=np.float64)
    return per_chain_array(x0, n_chains, d, "x0")


def per_chain_array(value: Any, n_chains: int, d: int, name: str) -> np.ndarray:
    """``value`` as a finite C-contiguous (n_chains, d) float64 array: shape (d,) is repeated for every chain
    (a scalar too when d = 1), shape (n_chains, d) is used as is; else SDEKitError naming ``name``."""
    if isinstance(value, bool) or np.iscomplexobj(value):
        raise SDEKitError(f"{name} must be real, of shape ({d},) or (n_chains, {d}) = ({n_chains}, {d}); "
                          f"got {type(value).__name__} {np.asarray(value).dtype}")
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"{name} must be numeric of shape ({d},) or (n_chains, {d}) = ({n_chains}, {d})") from exc
    if arr.ndim == 0 and d == 1:
        arr = arr.reshape(1)
    if arr.shape == (d,):
        arr = np.tile(arr, (n_chains, 1))
    if arr.shape != (n_chains, d):
        raise SDEKitError(f"{name} must have shape ({d},) or (n_chains, d) = ({n_chains}, {d}); got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise SDEKitError(f"{name} must be finite")
    return np.ascontiguousarray(arr)


ADAPT_MASS = {None: 0, "diag": 1, "dense": 2}


def check_adapt_mass(adapt_mass: Any) -> int:
    """The kernel's mass-adaptation mode of ``adapt_mass`` (None 0, "diag" 1, "dense" 2), else SDEKitError."""
    if not (adapt_mass is None or isinstance(adapt_mass, str)) or adapt_mass not in ADAPT_MASS:
        raise SDEKitError(f"adapt_mass must be None, 'diag' or 'dense'; got {adapt_mass!r}")
    return ADAPT_MASS[adapt_mass]


def chain_matrices(mats: np.ndarray, n_copies: int) -> np.ndarray:
    """The (n_copies, 2, d, d) matrices the kernel reads (one copy shared by all chains, or one per chain that
    adapts its own), or an SDEKitError with the memory they would need."""
    mats = np.ascontiguousarray(mats, dtype=np.float64)
    try:
        return np.repeat(mats[None], n_copies, axis=0)
    except (MemoryError, ValueError) as exc:
        gib = n_copies * mats.size * 8 / 2 ** 30
        raise SDEKitError(f"adapt_mass: one mass matrix per chain for n_chains = {n_copies} in dimension "
                          f"{mats.shape[-1]} would need {gib:.3g} GiB; lower n_chains") from exc


def step_sizes(step_size: Any, n_chains: int, name: str = "step_size") -> np.ndarray:
    """A positive step size per chain, (n_chains,), from a scalar or an (n_chains,) array."""
    bad = isinstance(step_size, bool | str) or np.iscomplexobj(step_size)
    try:
        arr = None if bad else np.array(step_size, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or not (arr.ndim == 0 or arr.shape == (n_chains,)):
        raise SDEKitError(f"{name} must be a positive number or an array of shape (n_chains,) = ({n_chains},); "
                          f"got {step_size!r}")
    arr = np.broadcast_to(arr, (n_chains,)).copy()
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise SDEKitError(f"{name} must be positive and finite; got {step_size!r}")
    return arr


def draw_arrays(n_chains: int, n_draws: int, d: int, name: str = "n_draws") -> tuple[np.ndarray, ...]:
    """(draws (chains, draws, d), accept_prob, potential_energy (chains, draws), divergent (int64)), or an
    SDEKitError naming ``name`` with the memory they would need when they cannot be allocated."""
    try:
        return (np.empty((n_chains, n_draws, d)), np.empty((n_chains, n_draws)), np.empty((n_chains, n_draws)),
                np.zeros((n_chains, n_draws), dtype=np.int64))
    except (MemoryError, ValueError) as exc:
        gib = n_chains * n_draws * (d + 3) * 8 / 2 ** 30
        raise SDEKitError(f"{name} = {n_draws} draws of {n_chains} chains in dimension {d} would need {gib:.3g} GiB "
                          f"to store; lower {name} or n_chains, or keep every k-th draw with thin") from exc


def run_chains(step: Callable, target: Any, *, sampler: str, step_size: Any, kernel_params: np.ndarray,
               mats: np.ndarray | None = None, n_chains: int = 4, n_draws: int = 1000, n_warmup: int = 1000,
               thin: int = 1, adapt: bool = False, target_accept: float = 0.8, seed: int = 0, x0: Any = None,
               on_nonfinite: str = "warn", proposes: bool = True, driver: Callable | None = None,
               chain_offset: int = 0, work_rows: int = WORK_ROWS, stats: tuple[str, ...] = (),
               adapt_mass: str | None = None) -> MCMCResult:
    """Run ``n_chains`` chains of ``step`` on ``target`` (an energy target: dim, energy_fn, params).

    Warm-up: ``n_warmup`` steps, adapting each chain's step size by dual averaging to ``target_accept``
    when ``adapt``; sampling: ``n_draws`` draws, each ``thin`` steps apart. Returns an `MCMCResult` whose
    ``diagnostics`` hold the end-of-run checks (each that fires is also issued as a warning).
    ``proposes`` False (ULA) leaves ``n_nonfinite`` None: such a step has no proposal to reject. ``driver``:
    the compiled driver taking (step, energy, ...) (None: the disk-cached one for importable energies, else
    `kernel.run_chains_kernel`; the planted-bug runs of `sdekit.mcmc.defects` pass its serial twin).
    ``chain_offset``: the global index of the first chain; chain c draws from stream (seed, chain_offset + c) and
    errors name that index, so a run of chains [a, b) of a larger run (offset a, the larger run's start points
    rows a..b-1 as x0) reproduces those rows bit for bit (`sdekit.distributed.sample_chains`).
    ``work_rows``: the rows of each chain's scratch array; ``stats``: the names of the per-transition statistics the
    step leaves in its last row (summed over ``thin`` into ``MCMCResult.stats``, and over the warm-up into
    ``extras["warmup_stats"]``, {name: (chains,)}: e.g. NUTS's gradient evaluations during warm-up).
    ``adapt_mass``: "diag" or "dense"
    adapts each chain's mass matrix (``mats`` = (L, M^{-1}), M = L L^T, as HMC and NUTS read it) in Stan's
    windows (`sdekit.mcmc.adaptation.stan_windows`); the adapted M^{-1} of every chain is
    ``extras["inverse_mass"]`` ((chains, d) diagonals or (chains, d, d)).
    """
    check_energy_target(target)
    n_chains = check_count(n_chains, "n_chains")
    n_draws = check_count(n_draws, "n_draws")
    n_warmup = check_count(n_warmup, "n_warmup", minimum=0)
    thin = check_count(thin, "thin")
    seed = check_seed(seed)
    chain_offset = check_chain_offset(chain_offset)
    on_nonfinite = check_on_nonfinite(on_nonfinite)
    if not isinstance(adapt, bool | np.bool_):
        raise SDEKitError(f"adapt must be True or False; got {adapt!r}")
    target_accept = check_real(target_accept, "target_accept", lo=0.0, strict=True)
    if target_accept >= 1.0:
        raise SDEKitError(f"target_accept must be in (0, 1); got {target_accept}")
    h0 = step_sizes(step_size, n_chains)
    d = target.dim
    xs = initial_positions(target, x0, n_chains, seed)
    probe_energy(energy_function(target), target.params, xs[0])
    if mats is None:
        mats = np.broadcast_to(np.eye(d), (2, d, d)).copy()
    mass_mode = check_adapt_mass(adapt_mass)
    windows = stan_windows(n_warmup) if mass_mode else np.zeros((0, 2), dtype=np.int64)
    mats = chain_matrices(mats, n_chains if mass_mode else 1)
    kp = np.ascontiguousarray(kernel_params, dtype=np.float64)
    draws, acc, pot, div = draw_arrays(n_chains, n_draws, d)
    stat_draws = np.zeros((n_chains, n_draws, len(stats)))
    stat_warmup = np.zeros((n_chains, len(stats)))
    h_final = h0.copy()
    status = np.full(n_chains, NO_FAILURE, dtype=np.int64)
    nonfinite = np.zeros(n_chains, dtype=np.int64)
    first_nonfinite = np.zeros(n_chains, dtype=np.int64)
    args = (target.params, xs, h0, kp, mats, n_warmup, n_draws, thin, bool(adapt), target_accept, np.uint64(seed),
            chain_offset, on_nonfinite == "raise", ZIG_K, ZIG_W, ZIG_F, draws, acc, pot, div, h_final, status,
            nonfinite, first_nonfinite, int(work_rows), stat_draws, stat_warmup, mass_mode, windows)
    # chains on Numba's threads when there are several of each; else the serial driver (same numbers, compiles faster)
    parallel = n_chains > 1 and nb.get_num_threads() > 1
    kernel = cached_kernel(step, energy_function(target), parallel) if driver is None else None
    start = time.perf_counter()
    if kernel is not None:
        kernel(*args)
    else:
        (driver or (run_chains_kernel if parallel else run_chains_serial))(step, energy_function(target), *args)
    seconds = time.perf_counter() - start
    bad = np.flatnonzero(status != NO_FAILURE)
    if bad.size:
        c = int(bad[np.argmin(status[bad])])
        raise ChainNonFiniteError(chain_offset + c, int(status[c]), float(h_final[c]),
                                  "energy or gradient at the initial position" if status[c] == 0 else "state")
    if on_nonfinite == "raise" and np.any(first_nonfinite):
        hit = np.flatnonzero(first_nonfinite)
        c = int(hit[np.argmin(first_nonfinite[hit])])
        raise NonFiniteProposalError(chain_offset + c, int(first_nonfinite[c]), float(h_final[c]))
    res = MCMCResult(draws, acc, pot, div, h_final, sampler, n_warmup, thin, seconds, n_nonfinite=nonfinite,
                     stats={name: stat_draws[:, :, i] for i, name in enumerate(stats)})
    if stats:
        res.extras["warmup_stats"] = {name: stat_warmup[:, i] for i, name in enumerate(stats)}
    if mass_mode:
        res.extras["inverse_mass"] = mats[:, 1] if mass_mode == 2 else np.diagonal(mats[:, 1], axis1=1, axis2=2).copy()
    if not proposes:
        res.n_nonfinite = None
    return finish(res, initial_step=h0 if adapt else None, target_accept=target_accept,
                  proposals_per_chain=n_warmup + n_draws * thin, on_nonfinite=on_nonfinite)
