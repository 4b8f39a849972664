#!/usr/bin/env python
"""Euler–Maruyama throughput of sdekit against a hand-written Numba kernel, NumPy, torch, torchsde, JAX, diffrax
and the noise floor.

Problems, h = 1e-3 (1000 steps on [0, 1]), N in {1, 100, 1e4, 1e5, 1e6} paths:
  ou     1-D Ornstein–Uhlenbeck  dX = -X dt + sqrt(2) dW, X0 = 0 (also in float32: sdekit_f32);
  gmm    16-D overdamped Langevin dX = s(X) dt + sqrt(2) dW, s the score of a 4-component Gaussian mixture, X0 = 0;
  gmm64  the same in 64 dimensions;
  pf16   the probability-flow ODE of the VP SDE on exact 16-D mixture data (sdekit.diffusion's exact mixture
         fixture), RK4, 200 steps from t = 1 to 1e-3, from exact draws of p_1.
Throughput is path-steps per second (n_paths x steps / seconds); each case is the median of k repeats. Slow cases
run fewer steps of the same size (the JSON says how many) or are skipped with a reason. The JAX and diffrax peers
run in their own environment (--jax-python), in a worker process whose runs are interleaved with the others
(benchmarks/jax_throughput.py). Also recorded: the per-call overhead of a 10-step solve at N = 1, the roofline of
the mixture problems (benchmarks/roofline.py), and the cost and memory scaling with N and dim
(benchmarks/throughput_scaling.py -> throughput_scaling.png). See benchmarks/README.md.

    python benchmarks/throughput.py --jax-python /path/to/jaxenv/bin/python   # full run, about an hour on 2 cores
    python benchmarks/throughput.py --quick    # N <= 1e4, short budget: a smoke test (< 3 min)
    python benchmarks/throughput.py --out DIR  # where throughput.json / throughput.png go
"""

from __future__ import annotations

import os

# The NumPy baseline is single-threaded: pin OpenBLAS (used by np.matmul) before NumPy loads it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numba as nb  # noqa: E402
import numpy as np  # noqa: E402
from bench_problems import (  # noqa: E402
    gmm_score,
    make_gmm,
    ou_drift,
    ou_drift_scalar,
    sqrt2_diffusion,
    sqrt2_scalar,
)
from bench_timing import busy_jiffies, interleaved_repeats  # noqa: E402
from jax_peer import JaxPeers  # noqa: E402
from roofline import gemm_rate, gmm_langevin_flops, mixture_pf_rk4_flops  # noqa: E402
from throughput_scaling import plot_scaling, run_scaling  # noqa: E402

import sdekit  # noqa: E402
from sdekit.noise.streams import next_normal_row, noise_tables, seed_stream  # noqa: E402

try:
    import torch
except ImportError:  # torch is optional
    torch = None
try:
    import torchsde
except ImportError:
    torchsde = None

DT = 1e-3
STEPS = 1000
SEED = 7
SQRT2 = math.sqrt(2.0)
SQH = math.sqrt(DT)
G_SQH = SQRT2 * SQH  # g sqrt(h): the noise scale of one step
SERIAL_BELOW = 2048  # the hand-written kernel runs its plain loop below this many paths
OU_VAR_T1 = 1.0 - math.exp(-2.0)  # Var X_1 for the OU problem from X0 = 0
TABLES = noise_tables()

IMPLS = {
    "sdekit": "sdekit.simulate, Numba backend, float64 (stats.run_seconds)",
    "sdekit_f32": "sdekit.simulate, Numba backend, dtype='float32' (stats.run_seconds)",
    "sdekit_f32n": "sdekit.simulate, Numba backend, dtype='float32' and noise_dtype='float32' (float32 normals)",
    "sdekit_builtin": "sdekit.simulate on the built-in GaussianMixture score (matrix products by row blocks), float64",
    "sdekit_path": "sdekit.simulate, OU written in the per-path scalar form (form='scalar': f(x, t, p) -> float)",
    "hand": "hand-written Numba kernel, float64, sdekit's per-path generator (prange / plain loop)",
    "floor": "noise floor: only the normals, sdekit's generator, same threads",
    "numpy": "NumPy vectorised loop, float64, Generator.standard_normal per step (1 thread)",
    "torch_f32": "torch vectorised loop, float32, torch.randn per step",
    "torch_f64": "torch vectorised loop, float64, torch.randn per step",
    "torchsde_f64": "torchsde.sdeint(method='euler', dt=1e-3), default BrownianInterval, float64",
    "jax_scan": "JAX: jax.lax.scan over steps, jax.vmap over paths, jitted, float64, threefry key per path",
    "diffrax_unsafe": "diffrax.diffeqsolve, Euler, UnsafeBrownianPath, fixed dt, vmapped, jitted, float64",
    "diffrax_vbt": "diffrax.diffeqsolve, Euler, VirtualBrownianTree(tol=dt), fixed dt, vmapped, jitted, float64",
}
PEER_IMPLS = ("jax_scan", "diffrax_unsafe", "diffrax_vbt")
COLORS = {"sdekit": "C0", "sdekit_builtin": "navy", "sdekit_f32n": "teal", "sdekit_path": "tab:olive",
          "sdekit_f32": "C9", "hand": "C1", "floor": "C7", "numpy": "C2",
          "torch_f32": "C3", "torch_f64": "C4", "torchsde_f64": "C5", "jax_scan": "C6", "diffrax_unsafe": "C8",
          "diffrax_vbt": "k"}
PEERS: JaxPeers | None = None  # set by main()


# ---------------------------------------------------------------------------------------------------------------------
# The problems, written for sdekit the way a user would (bench_problems.py): batch functions f(x, t, p), x of shape
# (n, d), in a module of their own, so that sdekit can cache their kernels on disk across processes.


# ---------------------------------------------------------------------------------------------------------------------
# The hand-written kernels: one path at a time, state in registers / a local array, normals drawn in the loop.


def _hand_ou(n_steps, h, g, theta, seed, out, k_tab, w_tab, f_tab):
    n_paths = out.shape[0]
    sqh = math.sqrt(h)
    states = np.empty((n_paths, 4), dtype=np.uint64)
    for p in nb.prange(n_paths):
        seed_stream(states[p], seed, p, 0)
        x = out[p, 0]
        for _ in range(n_steps):
            x += (-theta * x) * h + g * (sqh * next_normal_row(states, p, k_tab, w_tab, f_tab))
        out[p, 0] = x


def _hand_gmm(n_steps, h, g, means, precs, log_norm, log_w, seed, out, k_tab, w_tab, f_tab):
    n_paths, d = out.shape
    n_comp = means.shape[0]
    sqh = math.sqrt(h)
    states = np.empty((n_paths, 4), dtype=np.uint64)
    for p in nb.prange(n_paths):
        seed_stream(states[p], seed, p, 0)
        x = out[p].copy()
        diff = np.empty(d)
        pdiff = np.empty((n_comp, d))
        logp = np.empty(n_comp)
        for _ in range(n_steps):
            for k in range(n_comp):
                for i in range(d):
                    diff[i] = x[i] - means[k, i]
                q = 0.0
                for i in range(d):
                    s = 0.0
                    for j in range(d):
                        s += precs[k, i, j] * diff[j]
                    pdiff[k, i] = s
                    q += diff[i] * s
                logp[k] = log_w[k] + log_norm[k] - 0.5 * q
            mx = logp[0]
            for k in range(1, n_comp):
                mx = max(mx, logp[k])
            tot = 0.0
            for k in range(n_comp):
                logp[k] = math.exp(logp[k] - mx)
                tot += logp[k]
            for i in range(d):
                s = 0.0
                for k in range(n_comp):
                    s += logp[k] * pdiff[k, i]
                x[i] += (-s / tot) * h + g * (sqh * next_normal_row(states, p, k_tab, w_tab, f_tab))
        for i in range(d):
            out[p, i] = x[i]


def _floor(n_draws, seed, acc, k_tab, w_tab, f_tab):
    n_paths = acc.shape[0]
    states = np.empty((n_paths, 4), dtype=np.uint64)
    for p in nb.prange(n_paths):
        seed_stream(states[p], seed, p, 0)
        s = 0.0
        for _ in range(n_draws):
            s += next_normal_row(states, p, k_tab, w_tab, f_tab)
        acc[p] = s


HAND = {name: (nb.njit(fn), nb.njit(parallel=True)(fn))
        for name, fn in (("ou", _hand_ou), ("gmm", _hand_gmm), ("floor", _floor))}

# The interleaved floor: the same normals drawn LANES paths at a time (sdekit.noise.interleaved, issue 18), where
# that module exists; otherwise only the one-path-at-a-time floor above is measured.
try:
    from sdekit.noise.interleaved import LANES, draw_rows_interleaved
except ImportError:
    draw_rows_interleaved = None
    LANES = 4
FLOOR_CHUNK = 64  # draws per lane between sums (a 4 x 64 buffer stays in L1)


def _floor_interleaved(n_draws, seed, acc, k_tab, w_tab, f_tab):
    n_paths = acc.shape[0]
    states = np.empty((n_paths, 4), dtype=np.uint64)
    for g in nb.prange((n_paths + LANES - 1) // LANES):
        start = g * LANES
        nc = min(LANES, n_paths - start)
        zbuf = np.empty((LANES, FLOOR_CHUNK))
        sums = np.zeros(LANES)
        for r in range(nc):
            seed_stream(states[start + r], seed, start + r, 0)
        done = 0
        while done < n_draws:
            m = min(FLOOR_CHUNK, n_draws - done)
            draw_rows_interleaved(states, start, nc, m, zbuf, k_tab, w_tab, f_tab)
            for r in range(nc):
                for j in range(m):
                    sums[r] += zbuf[r, j]
            done += m
        for r in range(nc):
            acc[start + r] = sums[r]


if draw_rows_interleaved is not None:
    IMPLS["floor_interleaved"] = ("noise floor, interleaved: the same normals drawn LANES paths at a time "
                                  "(sdekit.noise.interleaved.draw_rows_interleaved), same threads")
    COLORS["floor_interleaved"] = "0.5"
    HAND["floor_interleaved"] = (nb.njit(_floor_interleaved), nb.njit(parallel=True)(_floor_interleaved))


def _hand_variant(name: str, n: int, threads: int) -> tuple[Any, str]:
    serial, parallel = HAND[name]
    if threads > 1 and n >= SERIAL_BELOW:
        nb.set_num_threads(threads)
        return parallel, "prange"
    return serial, "serial"


# ---------------------------------------------------------------------------------------------------------------------
# Runners: run(problem, n, steps, threads) -> Run. kernel_s is the time the throughput is computed from.


@dataclass
class Run:
    kernel_s: float
    wall_s: float
    final: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Problem:
    """A benchmark problem: an SDE (Langevin problems, EM from X0 = 0) or an ODE (pf16: RK4 from the rows of x0).
    steps / t0 / h: the full solve is `steps` steps of h from t0; flops: per path-step, for the roofline."""

    key: str
    title: str
    dim: int
    params: Any
    sde: Any = None
    steps: int = STEPS
    t0: float = 0.0
    h: float = DT
    solver: str | None = None
    x0: np.ndarray | None = None
    flops: int | None = None
    peer_arrays: dict = field(default_factory=dict)
    torch_params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sde is None:
            drift = ou_drift if self.key == "ou" else gmm_score
            self.sde = sdekit.SDE(drift=drift, diffusion=sqrt2_diffusion, noise="additive", dim=self.dim,
                                  params=self.params, name=self.key)
        if not self.peer_arrays:
            arrays: dict[str, Any] = {"dim": self.dim, "h": self.h}
            if self.key == "ou":
                arrays["theta"] = float(self.params[0])
            else:
                means, precs, log_norm, log_w = self.params
                arrays.update(means=means, precs=precs, c=log_norm + log_w)
            self.peer_arrays = arrays

    def start(self, n: int) -> np.ndarray:
        return np.zeros(self.dim) if self.x0 is None else self.x0[:n]

    @property
    def path_sde(self) -> Any:
        """OU written in the per-path scalar form (the same equation and numbers as ``sde``), for the ou key."""
        if not hasattr(self, "_path"):
            self._path = sdekit.SDE(drift=ou_drift_scalar, diffusion=sqrt2_scalar, noise="additive", dim=1,
                                    params=self.params, name="ou_path", form="scalar")
        return self._path

    @property
    def builtin_sde(self) -> Any:
        """The Langevin problem on sdekit's own GaussianMixture score (same mixture, same law), for the gmm keys."""
        if not hasattr(self, "_builtin"):
            from sdekit.processes.langevin import overdamped_langevin
            from sdekit.targets import GaussianMixture

            means, precs, _, log_w = self.params
            covs = np.linalg.inv(precs)
            target = GaussianMixture(np.exp(log_w), means, 0.5 * (covs + covs.transpose(0, 2, 1)))
            self._builtin = overdamped_langevin(self.dim, target=target, name=f"{self.key}_builtin")
        return self._builtin


def run_sdekit(prob: Problem, n: int, steps: int, threads: int, dtype: str | None = None,
               noise_dtype: str = "float64") -> Run:
    t0 = time.perf_counter()
    sol = sdekit.simulate(prob.sde, x0=prob.start(n), t=(prob.t0, prob.t0 + steps * prob.h), steps=steps,
                          n_paths=n, seed=SEED, threads=threads, dtype=dtype, solver=prob.solver,
                          noise_dtype=noise_dtype)
    wall = time.perf_counter() - t0
    st = sol.stats
    return Run(st.run_seconds, wall, sol.final,
               {"compile_seconds": st.compile_seconds, "threads_used": st.threads})


def run_sdekit_f32(prob: Problem, n: int, steps: int, threads: int) -> Run:
    return run_sdekit(prob, n, steps, threads, dtype="float32")


def run_sdekit_f32n(prob: Problem, n: int, steps: int, threads: int) -> Run:
    return run_sdekit(prob, n, steps, threads, dtype="float32", noise_dtype="float32")


def _run_variant(sde: Any, prob: Problem, n: int, steps: int, threads: int) -> Run:
    """sdekit.simulate of another SDE for the same problem (same start, grid, seed and threads)."""
    t0 = time.perf_counter()
    sol = sdekit.simulate(sde, x0=prob.start(n), t=(prob.t0, prob.t0 + steps * prob.h), steps=steps,
                          n_paths=n, seed=SEED, threads=threads)
    wall = time.perf_counter() - t0
    return Run(sol.stats.run_seconds, wall, sol.final,
               {"compile_seconds": sol.stats.compile_seconds, "threads_used": sol.stats.threads})


def run_sdekit_path(prob: Problem, n: int, steps: int, threads: int) -> Run:
    return _run_variant(prob.path_sde, prob, n, steps, threads)


def run_sdekit_builtin(prob: Problem, n: int, steps: int, threads: int) -> Run:
    return _run_variant(prob.builtin_sde, prob, n, steps, threads)


def _peer_runner(impl: str) -> Callable[..., Run]:
    def run(prob: Problem, n: int, steps: int, threads: int) -> Run:
        ans = PEERS.request(threads, {"cmd": "run", "impl": impl, "problem": prob.key, "n": n, "steps": steps,
                                      "seed": SEED})
        if "error" in ans:
            raise RuntimeError(ans["error"])
        return Run(ans["kernel_s"], ans["kernel_s"], None,
                   {"peer_cpu_s": ans["cpu_s"], "compile_seconds": ans["compile_s"], "final_stats": ans["final"]})

    run.__name__ = f"run_{impl}"
    return run


def run_hand(prob: Problem, n: int, steps: int, threads: int) -> Run:
    kern, variant = _hand_variant("ou" if prob.key == "ou" else "gmm", n, threads)  # gmm64: the gmm kernel
    out = np.zeros((n, prob.dim))
    t0 = time.perf_counter()
    if prob.key == "ou":
        kern(steps, DT, SQRT2, float(prob.params[0]), np.uint64(SEED), out, *TABLES)
    else:
        kern(steps, DT, SQRT2, *prob.params, np.uint64(SEED), out, *TABLES)
    dt = time.perf_counter() - t0
    return Run(dt, dt, out, {"variant": variant})


def run_floor(prob: Problem, n: int, steps: int, threads: int, name: str = "floor") -> Run:
    kern, variant = _hand_variant(name, n, threads)
    acc = np.empty(n)
    t0 = time.perf_counter()
    kern(steps * prob.dim, np.uint64(SEED), acc, *TABLES)
    dt = time.perf_counter() - t0
    return Run(dt, dt, None, {"variant": variant, "normals": n * steps * prob.dim})


def run_floor_interleaved(prob: Problem, n: int, steps: int, threads: int) -> Run:
    return run_floor(prob, n, steps, threads, "floor_interleaved")


def numpy_score(x: np.ndarray, means, precs, c) -> np.ndarray:
    diff = x[None, :, :] - means[:, None, :]  # (K, n, d)
    pd = np.matmul(diff, precs)  # precisions are symmetric
    logp = c[:, None] - 0.5 * np.einsum("knd,knd->kn", diff, pd)
    logp -= logp.max(axis=0)
    w = np.exp(logp)
    w /= w.sum(axis=0)
    return -np.einsum("kn,knd->nd", w, pd)


def run_numpy(prob: Problem, n: int, steps: int, threads: int) -> Run:
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    x = np.zeros((n, prob.dim))
    if prob.key == "ou":
        z = np.empty_like(x)
        a = 1.0 - float(prob.params[0]) * DT
        for _ in range(steps):
            rng.standard_normal(out=z)
            z *= G_SQH
            x *= a
            x += z
    else:
        means, precs, log_norm, log_w = prob.params
        c = log_norm + log_w
        for _ in range(steps):
            x += numpy_score(x, means, precs, c) * DT + G_SQH * rng.standard_normal(x.shape)
    dt = time.perf_counter() - t0
    return Run(dt, dt, x)


def torch_score(y, means, precs, c):
    diff = y.unsqueeze(0) - means[:, None, :]
    pd = torch.bmm(diff, precs)
    w = torch.softmax(c[:, None] - 0.5 * (diff * pd).sum(-1), dim=0)
    return -(w.unsqueeze(-1) * pd).sum(0)


def _torch_params(prob: Problem, dtype) -> tuple:
    key = str(dtype)
    if key not in prob.torch_params:
        if prob.key == "ou":
            prob.torch_params[key] = (float(prob.params[0]),)
        else:
            means, precs, log_norm, log_w = prob.params
            prob.torch_params[key] = tuple(torch.as_tensor(a, dtype=dtype) for a in (means, precs, log_norm + log_w))
    return prob.torch_params[key]


def _run_torch(prob: Problem, n: int, steps: int, threads: int, dtype) -> Run:
    torch.set_num_threads(threads)
    params = _torch_params(prob, dtype)
    gen = torch.Generator().manual_seed(SEED)
    with torch.inference_mode():
        t0 = time.perf_counter()
        x = torch.zeros(n, prob.dim, dtype=dtype)
        if prob.key == "ou":
            z = torch.empty_like(x)
            a = 1.0 - params[0] * DT
            for _ in range(steps):
                torch.randn(n, prob.dim, generator=gen, dtype=dtype, out=z)
                x.mul_(a).add_(z, alpha=G_SQH)
        else:
            for _ in range(steps):
                x = x + torch_score(x, *params) * DT + G_SQH * torch.randn(n, prob.dim, generator=gen, dtype=dtype)
        dt = time.perf_counter() - t0
    return Run(dt, dt, x.double().numpy(), {"torch_threads": torch.get_num_threads()})


def run_torch_f32(prob: Problem, n: int, steps: int, threads: int) -> Run:
    return _run_torch(prob, n, steps, threads, torch.float32)


def run_torch_f64(prob: Problem, n: int, steps: int, threads: int) -> Run:
    return _run_torch(prob, n, steps, threads, torch.float64)


def run_torchsde(prob: Problem, n: int, steps: int, threads: int) -> Run:
    torch.set_num_threads(threads)
    dtype = torch.float64
    params = _torch_params(prob, dtype)
    calls = [0]

    class LangevinSDE(torch.nn.Module):
        noise_type = "diagonal"
        sde_type = "ito"

        def f(self, t, y):
            calls[0] += 1
            return -params[0] * y if prob.key == "ou" else torch_score(y, *params)

        def g(self, t, y):
            return torch.full_like(y, SQRT2)

    torch.manual_seed(SEED)
    sde = LangevinSDE()
    with torch.no_grad():
        t0 = time.perf_counter()
        y0 = torch.zeros(n, prob.dim, dtype=dtype)
        ys = torchsde.sdeint(sde, y0, torch.tensor([0.0, steps * DT], dtype=dtype), method="euler", dt=DT)
        dt = time.perf_counter() - t0
    return Run(dt, dt, ys[-1].numpy(), {"drift_calls": calls[0]})


RUNNERS: dict[str, Callable[..., Run]] = {"sdekit": run_sdekit, "sdekit_f32": run_sdekit_f32,
                                          "sdekit_f32n": run_sdekit_f32n, "sdekit_builtin": run_sdekit_builtin,
                                          "sdekit_path": run_sdekit_path,
                                          "hand": run_hand,
                                          "floor": run_floor, "numpy": run_numpy, "torch_f32": run_torch_f32,
                                          "torch_f64": run_torch_f64, "torchsde_f64": run_torchsde,
                                          "floor_interleaved": run_floor_interleaved,
                                          **{impl: _peer_runner(impl) for impl in PEER_IMPLS}}


# ---------------------------------------------------------------------------------------------------------------------
# Timing. Per (problem, N, threads) group: each implementation is warmed up and piloted to choose its steps and repeats
# within the budget; then the repeats of all implementations are interleaved (round-robin), so that the ratios compare
# runs made under the same background load. Each run also records this process's CPU time and the CPU used by other
# processes, because the benchmark machine may be shared.


def other_load(seconds: float = 1.0) -> float | None:
    """Cores kept busy by other processes over the next `seconds` (this one is idle meanwhile)."""
    j0 = busy_jiffies()
    time.sleep(seconds)
    j1 = busy_jiffies()
    return None if j0 is None or j1 is None else (j1 - j0) / os.sysconf("SC_CLK_TCK") / seconds


def pilot_steps(n: int, dim: int) -> int:
    return int(min(50, max(2, 10**6 // (n * dim))))


def plan_case(impl: str, prob: Problem, n: int, threads: int, cfg: argparse.Namespace) -> dict:
    """Warm up, pilot, and choose (steps, repeats): full steps if 2 repeats fit the budget, else 100, else 10."""
    runner = RUNNERS[impl]
    rec: dict[str, Any] = {"problem": prob.key, "impl": impl, "n_paths": n, "threads": threads, "status": "ok"}
    if impl in PEER_IMPLS:  # each steps value is a jax compile: the pilot is the warm-up, at 10 steps
        sp = 10
        runner(prob, n, sp, threads)
    else:
        sp = min(prob.steps, pilot_steps(n, prob.dim))
        runner(prob, n, 2, threads)  # warm-up: first-touch allocations, torch / numba dispatch caches
    per_step = runner(prob, n, sp, threads).kernel_s / sp
    rec["pilot_seconds_per_step"] = per_step
    for steps in sorted({prob.steps, min(prob.steps, 100), 10}, reverse=True):
        est = per_step * steps
        k = min(cfg.repeats, int(cfg.budget // max(est, 1e-9)))
        if k >= 2 or (steps == 10 and est <= cfg.max_single):
            rec.update(steps_run=steps, reduced_steps=steps < prob.steps, repeats=max(1, k))
            if est * 7 < 0.5:
                rec["repeats"] = max(rec["repeats"], 7)  # short runs: more repeats for a steadier median
            return rec
    rec.update(status="skipped", reason=f"estimated {per_step * 10:.0f} s for 10 steps, above the "
                                        f"{cfg.max_single:.0f} s cap")
    return rec


def run_group(prob: Problem, n: int, threads: int, impls: list[str], cfg: argparse.Namespace) -> list[dict]:
    recs = []
    for impl in impls:
        try:
            recs.append(plan_case(impl, prob, n, threads, cfg))
        except Exception as exc:  # one broken baseline must not lose the run
            recs.append({"problem": prob.key, "impl": impl, "n_paths": n, "threads": threads, "status": "error",
                         "reason": f"{type(exc).__name__}: {exc}"})
    def call(rec: dict) -> Any:
        return RUNNERS[rec["impl"]](prob, n, rec["steps_run"], threads)

    runs, finals = interleaved_repeats(recs, call, max(cfg.budget, cfg.max_single))
    for rec in recs:
        if rec["status"] != "ok":
            continue
        rs = runs[rec["impl"]]
        last = rs[-1].run
        kern = [t.run.kernel_s for t in rs]
        med = statistics.median(kern)
        steps = rec["steps_run"]
        if rec["impl"] == "torchsde_f64":
            steps = last.extra.pop("drift_calls")  # torchsde may add a final sliver step
            rec["steps_taken"] = steps
        # a peer's work is in its worker process: add its CPU time, and take it out of the "other" load
        cpu_all = [t.cpu_s + t.run.extra.get("peer_cpu_s", 0.0) for t in rs]
        others = [max(0.0, t.other_cores - t.run.extra.get("peer_cpu_s", 0.0) / t.wall_s) for t in rs
                  if t.other_cores is not None]
        cpu = statistics.median(cpu_all)
        last.extra.pop("peer_cpu_s", None)
        if "final_stats" in last.extra:
            rec["check"] = last.extra.pop("final_stats")
        rec.update(seconds=kern, median_s=med, wall_s=[t.wall_s for t in rs], cpu_s=cpu_all,
                   path_steps=n * steps, path_steps_per_s=n * steps / med, path_steps_per_cpu_s=n * steps / cpu,
                   cpu_per_wall=statistics.median([c / t.wall_s for c, t in zip(cpu_all, rs, strict=True)]),
                   other_cores_busy=max(others) if others else None, **last.extra)
        if rec["impl"] in finals:
            rec["check"] = final_check(prob, finals[rec["impl"]], rec["steps_run"])
    hand = next((r for r in recs if r["impl"] == "hand" and r["status"] == "ok"), None)
    sd = next((r for r in recs if r["impl"] == "sdekit" and r["status"] == "ok"), None)
    if hand and sd and hand["steps_run"] == sd["steps_run"]:  # same noise, same steps: they must agree
        hand["max_abs_diff_vs_sdekit"] = float(np.max(np.abs(finals["hand"] - finals["sdekit"])))
    return recs


def final_check(prob: Problem, final: np.ndarray, steps: int) -> dict:
    """Cheap sanity statistics of X at the final time."""
    out = {"mean_x0": float(final[:, 0].mean()), "var_x0": float(final[:, 0].var()),
           "finite": bool(np.all(np.isfinite(final)))}
    if prob.key == "ou" and steps == STEPS and final.shape[0] >= 10**4:
        se = OU_VAR_T1 * math.sqrt(2.0 / final.shape[0])
        out["ou_var_expected"] = OU_VAR_T1
        out["ou_var_ok"] = bool(abs(out["var_x0"] - OU_VAR_T1) < 5 * se)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Compile-time probe: run in a fresh process (python throughput.py --compile-probe) and print JSON.


def compile_probe() -> dict:
    from sdekit.backends.numba import kernels

    res: dict[str, Any] = {}
    for prob in make_problems(quick=True)[:2]:  # ou, gmm
        sde = prob.sde
        x0 = np.zeros(prob.dim)

        def solve(s, n=100, threads=1):
            t0 = time.perf_counter()
            sol = sdekit.simulate(s, x0=x0, t=(0.0, 10 * DT), steps=10, n_paths=n, seed=SEED, threads=threads)
            return time.perf_counter() - t0, sol.stats

        sig0 = len(kernels.fixed_step.signatures)
        w1, st1 = solve(sde)
        sig1 = len(kernels.fixed_step.signatures)
        w2, st2 = solve(sde)
        if prob.key == "ou":
            new, other_shape = np.array([2.5]), np.array([0.5])
        else:
            new, other_shape = make_gmm(seed=1), make_gmm(n_comp=3, seed=2)
        w3, st3 = solve(sde.with_params(new))
        w4, st4 = solve(sde.with_params(other_shape))
        w5, st5 = solve(sde.with_params(new), n=10**4, threads=2)
        sig2 = len(kernels.fixed_step.signatures)
        fresh = sdekit.SDE(drift=sde.drift, diffusion=lambda x, t, p: 2**0.5, noise="additive", dim=prob.dim,
                           params=prob.params)
        w6, st6 = solve(fresh)
        sig3 = len(kernels.fixed_step.signatures)
        drift_sigs = len(sde.compiled()[0].signatures)
        res[prob.key] = {
            "first_call": {"wall_s": w1, "compile_seconds": st1.compile_seconds, "run_seconds": st1.run_seconds,
                           "wall_minus_compile_minus_run_s": w1 - st1.compile_seconds - st1.run_seconds},
            "second_call_same_sde": {"wall_s": w2, "compile_seconds": st2.compile_seconds},
            "with_params_new_values": {"wall_s": w3, "compile_seconds": st3.compile_seconds},
            "with_params_other_shapes": {"wall_s": w4, "compile_seconds": st4.compile_seconds},
            "threads2_n1e4": {"wall_s": w5, "compile_seconds": st5.compile_seconds, "threads_used": st5.threads},
            "new_sde_fresh_lambda_diffusion": {"wall_s": w6, "compile_seconds": st6.compile_seconds},
            "fixed_step_signatures": {"before": sig0, "after_first": sig1, "after_with_params": sig2,
                                      "after_fresh_lambda": sig3},
            "drift_dispatcher_signatures": drift_sigs,
        }
    from sdekit.backends.numba import disk_cache

    folder = disk_cache.cache_dir()
    res["disk_cache_dir"] = str(folder)
    res["disk_cached_kernel_files"] = sorted(p.name for p in folder.glob("__pycache__/sdekit_fixed_*.nbi")) \
        if folder is not None else []
    return res


def run_compile_probes(n: int = 2) -> dict:
    out: dict[str, Any] = {"processes": []}
    for _ in range(n):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--compile-probe"],
                              capture_output=True, text=True, timeout=600)
        total = time.perf_counter() - t0
        if proc.returncode != 0:
            out["processes"].append({"error": proc.stderr[-2000:], "process_wall_s": total})
            continue
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        rec["process_wall_s"] = total
        out["processes"].append(rec)
    code = "import time; t = time.perf_counter(); import sdekit; print(time.perf_counter() - t)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    out["import_sdekit_s"] = float(proc.stdout.strip()) if proc.returncode == 0 else None
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Driver.


PF_T0, PF_T1, PF_STEPS = 1.0, 1e-3, 200


def make_pf_problem(n_max: int) -> Problem:
    """pf16: sdekit.diffusion's exact mixture model (the 16-D, 4-component mixture of make_gmm as data, VP SDE),
    its probability-flow ODE by RK4 from n_max exact draws of p_1."""
    from sdekit.diffusion import DiffusionModel, ForwardSDE
    from sdekit.targets import GaussianMixture

    means, precs, _, log_w = make_gmm()
    covs = np.linalg.inv(precs)
    model = DiffusionModel.exact_mixture(ForwardSDE.vp(), GaussianMixture(np.exp(log_w), means,
                                                                          0.5 * (covs + covs.transpose(0, 2, 1))))
    x_t = model.sample_marginal(n_max, PF_T0, seed=SEED)
    h = (PF_T1 - PF_T0) / PF_STEPS
    lw, mu, q, lam = model.exact.params
    sp = model.forward.sp
    k, d = mu.shape
    return Problem("pf16", "16-D exact-mixture probability-flow ODE (VP), RK4", d, model.njit_params,
                   sde=model.probability_flow(), steps=PF_STEPS, t0=PF_T0, h=h, solver="rk4", x0=x_t,
                   flops=mixture_pf_rk4_flops(d, k),
                   peer_arrays={"dim": d, "h": h, "t0": PF_T0, "beta_min": sp[1], "beta_max": sp[2], "log_w": lw,
                                "mu": mu, "q": q, "lam": lam, "x0": x_t})


def make_problems(quick: bool = False) -> list[Problem]:
    g16, g64 = make_gmm(), make_gmm(dim=64)
    return [Problem("ou", "1-D Ornstein-Uhlenbeck dX = -X dt + sqrt(2) dW", 1, np.array([1.0])),
            Problem("gmm", "16-D Langevin on a 4-component GMM score", 16, g16, flops=gmm_langevin_flops(16, 4)),
            Problem("gmm64", "64-D Langevin on a 4-component GMM score", 64, g64, flops=gmm_langevin_flops(64, 4)),
            *([] if quick else [make_pf_problem(PF_N)])]  # its composed field compiles for ~30 s: not in --quick


def machine_info() -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu_model": model, "cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
            "numba": nb.__version__, "numba_num_threads": nb.config.NUMBA_NUM_THREADS,
            "sdekit": getattr(sdekit, "__version__", "?"),
            "torch": torch.__version__ if torch is not None else None,
            "torchsde": getattr(torchsde, "__version__", "?") if torchsde is not None else None,
            "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    return info


PF_N = 10**4


def plan(quick: bool, peers: list[str]) -> list[tuple[str, int, int, list[str]]]:
    """(problem, N, threads, implementations) groups, in run order. peers: the JAX / diffrax implementations
    available. --quick keeps N <= 1e4 and runs the peers only where they are cheap (their compiles dominate)."""
    ns = [1, 100, 10**4] if quick else [1, 100, 10**4, 10**5, 10**6]
    impls = ["sdekit", "hand", "floor"] + (["floor_interleaved"] if "floor_interleaved" in HAND else []) + ["numpy"]
    if torch is not None:
        impls += ["torch_f32", "torch_f64"]
        if torchsde is not None:
            impls.append("torchsde_f64")
    groups = []
    for key in ("ou", "gmm"):
        for n in ns:
            extra = (["sdekit_f32", "sdekit_f32n"] if key == "ou" and n >= 10**4 else []) + \
                (["sdekit_path"] if key == "ou" else []) + \
                (["sdekit_builtin"] if key == "gmm" else [])
            with_peers = peers if not quick or (key == "ou" and n == 100) else []
            groups.append((key, n, 1, impls + extra + with_peers))
            if n >= 10**4:
                groups.append((key, n, 2, [i for i in impls + extra if i != "numpy"]
                               + ([p for p in with_peers if p != "diffrax_vbt"] if n <= 10**5 else [])))
    for n in ([100] if quick else [100, 10**4]):
        groups.append(("gmm64", n, 1, ["sdekit", "sdekit_builtin", "hand", "numpy"]
                       + (["torch_f64"] if torch is not None else [])
                       + [p for p in peers if p == "jax_scan" or not quick]))
    if not quick:
        groups.append(("pf16", PF_N, 1, ["sdekit"] + [p for p in peers if p == "jax_scan"]))
    return groups


RATIO_COLUMNS = (("hand", "sdekit/hand"), ("floor", "sdekit/floor"), ("floor_interleaved", "sdekit/floor_interleaved"),
                 ("torchsde_f64", "sdekit/torchsde"), ("torch_f32", "sdekit/torch_f32"),
                 ("torch_f64", "sdekit/torch_f64"), ("jax_scan", "sdekit/jax"),
                 ("diffrax_unsafe", "sdekit/diffrax_unsafe"), ("diffrax_vbt", "sdekit/diffrax_vbt"))


def ratios(results: list[dict], metric: str = "path_steps_per_s") -> list[dict]:
    """sdekit's throughput over each other implementation's, same (problem, N, threads); and T=2 over T=1."""
    thr = {(r["problem"], r["n_paths"], r["impl"], r["threads"]): r[metric] for r in results if r["status"] == "ok"}
    out = []
    for (key, n, impl, t), v in sorted(thr.items()):
        if impl not in ("sdekit", "sdekit_builtin", "sdekit_path"):
            continue
        row: dict[str, Any] = {"problem": key if impl == "sdekit" else f"{key}*", "n_paths": n, "threads": t,
                               "of": impl}
        for other, name in RATIO_COLUMNS:
            if (key, n, other, t) in thr:
                row[name] = v / thr[(key, n, other, t)]
        if (key, n, "numpy", 1) in thr:
            row["sdekit/numpy(T=1)"] = v / thr[(key, n, "numpy", 1)]
        if impl == "sdekit" and (key, n, "sdekit_f32", t) in thr:
            row["f32/f64"] = thr[(key, n, "sdekit_f32", t)] / v
        if impl == "sdekit" and (key, n, "sdekit_f32n", t) in thr:
            row["f32 noise/f64"] = thr[(key, n, "sdekit_f32n", t)] / v
        out.append(row)
    for (key, n, impl, t), v in sorted(thr.items()):
        if t == 2 and (key, n, impl, 1) in thr:
            out.append({"problem": key, "n_paths": n, "impl": impl, "T2/T1": v / thr[(key, n, impl, 1)]})
    return out


def contended(r: dict) -> bool:
    """Other processes used > 0.3 cores during the runs, or a 1-thread run got < 90% of a core."""
    other = r.get("other_cores_busy")
    return (other is not None and other > 0.3) or (r["threads"] == 1 and r.get("cpu_per_wall", 1.0) < 0.9)


def fmt_rate(r: dict | None) -> str:
    if r is None:
        return "-"
    if r["status"] != "ok":
        return r["status"]
    s = f"{r['path_steps_per_s'] / 1e6:.3g}M"
    return s + (f"[{r['steps_run']}]" if r["reduced_steps"] else "") + ("*" if contended(r) else "")


def print_tables(results: list[dict], rat: list[dict], rat_cpu: list[dict]) -> None:
    impls = [i for i in IMPLS if any(r["impl"] == i for r in results)]
    rows = sorted({(r["problem"], r["n_paths"], r["threads"]) for r in results}, key=lambda k: (k[0] != "ou", k[1:]))
    by = {(r["problem"], r["n_paths"], r["threads"], r["impl"]): r for r in results}
    print("\npath-steps/s (M = 1e6; [s]: only s steps of h = 1e-3 run; *: other processes busy meanwhile)")
    print(f"{'problem':8}{'N':>9}{'T':>3} " + "".join(f"{i:>15}" for i in impls))
    for key, n, t in rows:
        print(f"{key:8}{n:>9}{t:>3} " + "".join(f"{fmt_rate(by.get((key, n, t, i))):>15}" for i in impls))
    cols = [c for c in [name for _, name in RATIO_COLUMNS] + ["sdekit/numpy(T=1)", "f32/f64", "f32 noise/f64"]
            if any(c in r for r in rat)]
    for title, rr in (("ratios of path-steps/s (wall clock; > 1: sdekit faster)", rat),
                      ("ratios of path-steps per CPU-second, 1 thread only (less sensitive to other load)",
                       [r for r in rat_cpu if r.get("threads") == 1])):
        print(f"\n{title}")
        print(f"{'problem':8}{'N':>9}{'T':>3} " + "".join(f"{c:>24}" for c in cols))
        for r in rr:
            if "T2/T1" in r:
                continue
            vals = "".join(f"{r[c]:>24.3g}" if c in r else f"{'-':>24}" for c in cols)
            print(f"{r['problem']:8}{r['n_paths']:>9}{r['threads']:>3} {vals}")
    print("\n2 threads / 1 thread (wall clock)")
    for r in rat:
        if "T2/T1" in r:
            print(f"  {r['problem']:5} N={r['n_paths']:<8} {r['impl']:13} {r['T2/T1']:.2f}")


def plot(results: list[dict], path: Path, caption: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(18, 5), sharey=True)
    for ax, key in zip(axes, ("ou", "gmm", "gmm64"), strict=True):
        for impl in IMPLS:
            for t, style, mark in ((1, "-", "o"), (2, "--", "s")):
                pts = sorted((r["n_paths"], r["path_steps_per_s"]) for r in results
                             if r["problem"] == key and r["impl"] == impl and r["threads"] == t and r["status"] == "ok")
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, marker=mark, color=COLORS[impl], label=f"{impl} T={t}",
                            mfc="none" if t == 2 else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("paths N")
        ax.set_title({"ou": "(a) 1-D OU", "gmm": "(b) 16-D GMM Langevin", "gmm64": "(c) 64-D GMM Langevin"}[key]
                     + ", Euler-Maruyama, h = 1e-3")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("path-steps / s")
    axes[1].legend(fontsize=7, ncol=2, loc="lower right")
    fig.text(0.01, 0.005, caption + "median of k repeats; some points ran 10 or 100 steps of h = 1e-3 "
             "(steps_run in the JSON); figures marked contended there had other processes on the CPUs",
             fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _caption(info: dict) -> str:
    return (f"{info.get('cpu_model', '?')}, {info.get('cpu_count', '?')} cores, numba {info.get('numba', '?')}, "
            f"torch {info.get('torch', '-')}, {info.get('date_utc', '')[:10]}; ")


def cross_checks(probs: list[Problem]) -> dict:
    """Same generator, same order: sdekit and the hand kernel must agree; the floor kernel draws sdekit's numbers."""
    out: dict[str, Any] = {}
    for prob in probs:
        if prob.key not in HAND:
            continue
        a = run_sdekit(prob, 300, 50, 1).final
        b = run_hand(prob, 300, 50, 1).final
        c = run_hand(prob, 4096, 20, 2).final
        d = run_sdekit(prob, 4096, 20, 2).final
        out[f"{prob.key}_sdekit_vs_hand_max_abs_diff"] = float(np.max(np.abs(a - b)))
        out[f"{prob.key}_sdekit_vs_hand_prange_max_abs_diff"] = float(np.max(np.abs(c - d)))
    acc = np.empty(67)  # not a multiple of LANES: the leftover rows too
    ref = sdekit.noise.path_normals(SEED, 67, 150, parallel=False).sum(axis=1)
    for name in ("floor", "floor_interleaved"):
        for variant in HAND.get(name, ()):
            variant(150, np.uint64(SEED), acc, *TABLES)
            key = f"{name}_vs_path_normals_max_abs_diff"
            out[key] = max(out.get(key, 0.0), float(np.max(np.abs(acc - ref))))
    return out


def pf_check(prob: Problem, n: int = 64) -> dict:
    """The probability-flow problem solved by sdekit and by the JAX peer from the same start: the largest
    difference of the final states (both RK4 on the same grid; only rounding differs)."""
    if PEERS is None or not PEERS.available:
        return {}
    a = run_sdekit(prob, n, prob.steps, 1).final
    path = PEERS.tmp / "pf_check.npy"
    ans = PEERS.request(1, {"cmd": "run", "impl": "jax_scan", "problem": prob.key, "n": n, "steps": prob.steps,
                            "seed": SEED, "save": str(path)})
    if "error" in ans:
        return {"pf16_sdekit_vs_jax_error": ans["error"]}
    b = np.load(path)
    return {"pf16_sdekit_vs_jax_max_abs_diff": float(np.max(np.abs(a - b))),
            "pf16_final_max_abs": float(np.max(np.abs(a)))}


def call_overheads(probs: list[Problem], reps: int = 21) -> dict:
    """Fixed cost of one call with N = 1: sdekit's simulate() (wall, stats.run_seconds) against the hand kernel."""
    out: dict[str, Any] = {}
    for prob in probs:
        if prob.key not in ("ou", "gmm"):
            continue
        for steps in (1, STEPS):
            sd, hd, pd = [], [], []
            for _ in range(reps):  # interleaved
                sd.append(run_sdekit(prob, 1, steps, 1))
                hd.append(run_hand(prob, 1, steps, 1))
                if prob.key == "ou":
                    pd.append(run_sdekit_path(prob, 1, steps, 1))
            out[f"{prob.key}_steps{steps}"] = {
                "sdekit_simulate_wall_s": statistics.median(r.wall_s for r in sd),
                "sdekit_run_seconds": statistics.median(r.kernel_s for r in sd),
                "sdekit_compile_seconds_warm": statistics.median(r.extra["compile_seconds"] for r in sd),
                "hand_s": statistics.median(r.kernel_s for r in hd)}
            if pd:
                out[f"{prob.key}_steps{steps}"]["sdekit_path_run_seconds"] = statistics.median(r.kernel_s for r in pd)
        one, full = out[f"{prob.key}_steps1"], out[f"{prob.key}_steps{STEPS}"]
        out[f"{prob.key}_per_step_N1"] = {
            "sdekit_s": (full["sdekit_run_seconds"] - one["sdekit_run_seconds"]) / (STEPS - 1),
            "hand_s": (full["hand_s"] - one["hand_s"]) / (STEPS - 1)}
        if "sdekit_path_run_seconds" in full:
            out[f"{prob.key}_path_per_step_N1"] = {
                "sdekit_s": (full["sdekit_path_run_seconds"] - one["sdekit_path_run_seconds"]) / (STEPS - 1),
                "hand_s": out[f"{prob.key}_per_step_N1"]["hand_s"], "form": "scalar"}
    return out


def small_run_overheads(probs: list[Problem], calls: int, steps: int = 10) -> dict:
    """Wall time of one `steps`-step solve at N = 1, microseconds per call, median (and min) of `calls` calls, each
    with a new seed and a new x0: sdekit.simulate (threads=1), a `sdekit.plan` of the same solve, the hand kernel
    (its start state written, then the kernel), and the JAX / diffrax peers (jitted; a new x0 and key per call,
    result ready on return)."""
    out: dict[str, Any] = {}
    rng = np.random.default_rng(1)
    for prob in probs:
        if prob.key not in ("ou", "gmm"):
            continue
        x0s = rng.standard_normal((calls, prob.dim))
        sd, pd, hd, sk, pk, qd, qk = [], [], [], [], [], [], []
        kern, _ = _hand_variant(prob.key, 1, 1)
        planned = sdekit.plan(prob.sde, x0s[0], (0.0, steps * DT), steps=steps, n_paths=1, threads=1)
        # OU: a plan of the same solve with the functions in the per-path scalar form
        planned_path = sdekit.plan(prob.path_sde, x0s[0], (0.0, steps * DT), steps=steps, n_paths=1,
                                   threads=1) if prob.key == "ou" else None
        extra = (float(prob.params[0]),) if prob.key == "ou" else tuple(prob.params)
        for i in range(calls + 5):  # interleaved; the first 5 calls warm up
            t0 = time.perf_counter()
            sol = sdekit.simulate(prob.sde, x0=x0s[i % calls], t=(0.0, steps * DT), steps=steps, n_paths=1,
                                  seed=SEED + i, threads=1)
            t1 = time.perf_counter()
            buf = x0s[i % calls].reshape(1, -1).copy()
            kern(steps, DT, SQRT2, *extra, np.uint64(SEED + i), buf, *TABLES)
            t2 = time.perf_counter()
            psol = planned(x0s[i % calls], seed=SEED + i)
            t3 = time.perf_counter()
            qsol = planned_path(x0s[i % calls], seed=SEED + i) if planned_path is not None else None
            t4 = time.perf_counter()
            if qsol is not None and i >= 5:
                qd.append(t4 - t3)
                qk.append(qsol.stats.run_seconds)
            if i >= 5:
                sd.append(t1 - t0)
                hd.append(t2 - t1)
                pd.append(t3 - t2)
                sk.append(sol.stats.run_seconds)
                pk.append(psol.stats.run_seconds)
        # the Python share of a call: its wall time minus the kernel call's own (stats.run_seconds)
        rec = {"sdekit_us": 1e6 * statistics.median(sd), "sdekit_min_us": 1e6 * min(sd),
               "sdekit_plan_us": 1e6 * statistics.median(pd), "sdekit_plan_min_us": 1e6 * min(pd),
               "sdekit_kernel_us": 1e6 * statistics.median(sk), "sdekit_plan_kernel_us": 1e6 * statistics.median(pk),
               "sdekit_python_us": 1e6 * statistics.median(a - b for a, b in zip(sd, sk)),
               "sdekit_plan_python_us": 1e6 * statistics.median(a - b for a, b in zip(pd, pk)),
               "hand_us": 1e6 * statistics.median(hd), "hand_min_us": 1e6 * min(hd)}
        if qd:
            rec.update(sdekit_plan_path_us=1e6 * statistics.median(qd),
                       sdekit_plan_path_kernel_us=1e6 * statistics.median(qk))
        for impl in PEER_IMPLS if PEERS is not None and PEERS.available else ():
            if impl != "jax_scan" and not PEERS.has_diffrax:
                continue
            ans = PEERS.request(1, {"cmd": "overhead", "impl": impl, "problem": prob.key, "steps": steps,
                                    "calls": calls})
            if "error" in ans:
                rec[f"{impl}_error"] = ans["error"]
            else:
                rec[f"{impl}_us"], rec[f"{impl}_min_us"] = ans["median_us"], ans["min_us"]
        rec["sdekit/hand"] = rec["sdekit_us"] / rec["hand_us"]
        rec["sdekit_plan/hand"] = rec["sdekit_plan_us"] / rec["hand_us"]
        for impl in PEER_IMPLS:
            if f"{impl}_us" in rec:
                rec[f"sdekit/{impl}"] = rec["sdekit_us"] / rec[f"{impl}_us"]
                rec[f"sdekit_plan/{impl}"] = rec["sdekit_plan_us"] / rec[f"{impl}_us"]
        out[f"{prob.key}_steps{steps}_N1"] = dict(rec, calls=calls, steps=steps)
    return out


def rerun_overheads(cfg: argparse.Namespace, probs: list[Problem], stem: str) -> int:
    """Measure the N = 1 overhead rows again (after a change to the small-run path) and put them in the JSON of the
    last full run, recording when and under what load."""
    path = cfg.out / f"{stem}.json"
    doc = json.loads(path.read_text())
    for prob in probs:  # compile outside the timings
        run_sdekit(prob, 1, 2, 1)
    load = os.getloadavg()
    overheads = call_overheads([p for p in probs if p.key in ("ou", "gmm")])
    overheads.update(small_run_overheads(probs, cfg.overhead_calls or 1000))
    doc["overheads"] = overheads
    doc["machine"]["overheads_rerun"] = {"date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                                         "loadavg_before": load, "loadavg_after": os.getloadavg()}
    path.write_text(json.dumps(doc, indent=1, default=float))
    for k, v in overheads.items():
        if k.endswith("_N1"):
            print(f"{k}: " + ", ".join(f"{name[:-3]} {v[name]:.1f} us" for name in v if name.endswith("_us")
                                       and not name.endswith("min_us")), flush=True)
    return 0


def roofline(results: list[dict], probs: list[Problem], rates: dict[int, dict]) -> list[dict]:
    """Per compute-bound problem: flops per path-step, the single-core GEMM rate at its d, the ceiling rate / flops
    in path-steps/s, and each 1-thread result's fraction of it."""
    out = []
    for prob in probs:
        if prob.flops is None or prob.dim not in rates:
            continue
        ceiling = rates[prob.dim]["flops_per_s"] / prob.flops
        row: dict[str, Any] = {"problem": prob.key, "dim": prob.dim, "flops_per_path_step": prob.flops,
                               "gemm_flops_per_s": rates[prob.dim]["flops_per_s"],
                               "ceiling_path_steps_per_s": ceiling, "fraction": {}}
        for r in results:
            if r["problem"] == prob.key and r["threads"] == 1 and r["status"] == "ok" and "floor" not in r["impl"]:
                row["fraction"][f"{r['impl']} N={r['n_paths']}"] = r["path_steps_per_s"] / ceiling
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N up to 1e4, short budget: a smoke test")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timed runs per case (default 25, quick 2)")
    ap.add_argument("--max-single", type=float, default=60.0, help="skip a case whose 10-step run exceeds this")
    ap.add_argument("--repeats", type=int, default=None, help="repeats per case (default 3, quick 2)")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="before each N >= 1e4 group, wait up to this many seconds for other processes to go quiet")
    ap.add_argument("--replot", action="store_true", help="only redraw the PNG from the JSON already in --out")
    ap.add_argument("--compile-probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--jax-python", default=os.environ.get("SDEKIT_BENCH_JAX_PYTHON"),
                    help="python of an environment with jax (and diffrax) for the JAX / diffrax peers "
                         "(default: $SDEKIT_BENCH_JAX_PYTHON; without it the peers are skipped)")
    ap.add_argument("--no-scaling", action="store_true", help="skip the N / dim / memory scaling cases")
    ap.add_argument("--only-overheads", action="store_true",
                    help="rerun only the N = 1 overhead rows and replace them in the JSON already in --out")
    ap.add_argument("--overhead-calls", type=int, default=None, help="calls per small-run overhead row "
                                                                     "(default 1000, quick 100)")
    cfg = ap.parse_args(argv)
    stem = "throughput_quick" if cfg.quick else "throughput"
    if cfg.replot:
        doc = json.loads((cfg.out / f"{stem}.json").read_text())
        plot(doc["results"], cfg.out / f"{stem}.png", _caption(doc["machine"]))
        return 0
    if cfg.compile_probe:
        print(json.dumps(compile_probe()))
        return 0
    cfg.budget = cfg.budget if cfg.budget is not None else (2.0 if cfg.quick else 25.0)
    cfg.repeats = cfg.repeats if cfg.repeats is not None else (2 if cfg.quick else 3)
    cfg.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    global PEERS
    PEERS = JaxPeers(cfg.jax_python)
    info = machine_info()
    info["loadavg_before"] = os.getloadavg()
    info["jax_env"] = PEERS.versions
    notes = [] if PEERS.available else [PEERS.reason]
    if PEERS.available and not PEERS.has_diffrax:
        notes.append("diffrax not importable in the JAX environment: diffrax cases skipped")
    if "floor_interleaved" not in HAND:
        notes.append("sdekit.noise.interleaved not importable: only the one-path-at-a-time floor is measured")
    if torch is None:
        notes.append("torch not importable: torch, torchsde cases skipped")
    elif torchsde is None:
        notes.append("torchsde not importable: torchsde cases skipped")
    print(f"machine: {info['cpu_model']}, {info['cpu_count']} cores, load {info['loadavg_before']}", flush=True)

    print("compile probes (fresh processes) ...", flush=True)
    compile_info = run_compile_probes(1 if cfg.quick else 2)
    for i, p in enumerate(compile_info["processes"]):
        if "error" in p:
            print(f"  process {i + 1}: failed\n{p['error']}")
            continue
        for key in ("ou", "gmm"):
            fc = p[key]["first_call"]
            print(f"  process {i + 1} {key}: first call {fc['wall_s']:.2f} s wall, compile_seconds "
                  f"{fc['compile_seconds']:.2f}; with_params compile_seconds "
                  f"{p[key]['with_params_new_values']['compile_seconds']:.4f}; fixed_step signatures "
                  f"{p[key]['fixed_step_signatures']}")

    probs = make_problems(cfg.quick)
    by_key = {p.key: p for p in probs}
    for prob in probs:
        PEERS.add_problem(prob.key, prob.peer_arrays)
    if cfg.only_overheads:
        return rerun_overheads(cfg, probs, stem)
    warm = {}
    for prob in probs:  # compile everything once, outside the timings
        t0 = time.perf_counter()
        r = run_sdekit(prob, 4, 2, 1)
        warm[f"{prob.key}_sdekit_first_call_wall_s"] = time.perf_counter() - t0
        warm[f"{prob.key}_sdekit_first_call_compile_seconds"] = r.extra["compile_seconds"]
        if prob.key == "ou":
            warm["ou_sdekit_f32_first_call_compile_seconds"] = run_sdekit_f32(prob, 4, 2, 1).extra["compile_seconds"]
            warm["ou_sdekit_f32n_first_call_compile_seconds"] = \
                run_sdekit_f32n(prob, 4, 2, 1).extra["compile_seconds"]
        if prob.key not in ("ou", "gmm"):
            continue
        for threads, n in ((1, 4), (2, SERIAL_BELOW)):
            t0 = time.perf_counter()
            run_hand(prob, n, 2, threads)
            run_floor(prob, n, 2, threads)
            if "floor_interleaved" in HAND:
                run_floor_interleaved(prob, n, 2, threads)
            warm[f"{prob.key}_hand_and_floor_compile_{'prange' if threads > 1 else 'serial'}_s"] = \
                time.perf_counter() - t0
    checks = cross_checks(probs)
    if "pf16" in by_key:
        checks.update(pf_check(by_key["pf16"]))
    info["numba_threading_layer"] = nb.threading_layer()
    print(f"checks: {checks}", flush=True)

    overheads = call_overheads(probs)
    print("per-call overhead, N = 1: " + ", ".join(
        f"{k} sdekit wall {v['sdekit_simulate_wall_s'] * 1e6:.0f} us / run {v['sdekit_run_seconds'] * 1e6:.0f} us, "
        f"hand {v['hand_s'] * 1e6:.1f} us" for k, v in overheads.items() if "steps" in k), flush=True)

    calls = cfg.overhead_calls or (100 if cfg.quick else 1000)
    small = small_run_overheads(probs, calls)
    overheads.update(small)
    for k, v in small.items():
        print(f"{k}: " + ", ".join(f"{name[:-3]} {v[name]:.1f} us" for name in v if name.endswith("_us")
                                   and not name.endswith("min_us")), flush=True)

    rates = {d: gemm_rate(d) for d in sorted({p.dim for p in probs if p.flops is not None})}
    print("single-core GEMM: " + ", ".join(f"d={d} {r['flops_per_s'] / 1e9:.1f} GFLOP/s" for d, r in rates.items()),
          flush=True)

    results: list[dict] = []
    peers = [p for p in PEER_IMPLS if PEERS.available and (p == "jax_scan" or PEERS.has_diffrax)]
    groups = plan(cfg.quick, peers)
    scaling: list[dict] = []

    def save() -> dict:
        rat, rat_cpu = ratios(results), ratios(results, "path_steps_per_cpu_s")
        doc = {"machine": info, "config": {"dt": DT, "steps": STEPS, "seed": SEED, "quick": cfg.quick,
                                           "budget_s": cfg.budget, "max_single_s": cfg.max_single,
                                           "repeats": cfg.repeats, "serial_below_paths": SERIAL_BELOW,
                                           "wait_idle_s": cfg.wait_idle},
               "implementations": IMPLS, "problems": {p.key: p.title for p in probs}, "notes": notes,
               "compile": compile_info, "warmup": warm, "checks": checks, "overheads": overheads,
               "gemm": {str(d): r for d, r in rates.items()}, "roofline": roofline(results, probs, rates),
               "results": results, "ratios": rat, "ratios_cpu": rat_cpu, "scaling": scaling}
        (cfg.out / f"{stem}.json").write_text(json.dumps(doc, indent=1, default=float))
        return doc

    for i, (key, n, t, impls) in enumerate(groups):
        t0 = time.perf_counter()
        waited = 0.0
        while waited < cfg.wait_idle and n >= 10**4:
            load = other_load()
            waited += 1.0
            if load is not None and load < 0.3:
                break
        recs = run_group(by_key[key], n, t, impls, cfg)
        results.extend(recs)
        print(f"[group {i + 1}/{len(groups)}, {time.perf_counter() - t_start:5.0f} s] {key} N={n} T={t}: "
              f"{time.perf_counter() - t0:.1f} s" + (f" (waited {waited:.0f} s for quiet)" if waited else ""),
              flush=True)
        for r in recs:
            extra = (f", other load {r['other_cores_busy']:.2f} cores" if r.get("other_cores_busy") is not None
                     else "") + (f", cpu/wall {r['cpu_per_wall']:.2f}" if "cpu_per_wall" in r else "")
            print(f"    {r['impl']:13} {fmt_rate(r):>14}" + (f"  ({r['reason']})" if r["status"] != "ok" else "")
                  + extra, flush=True)
        save()

    PEERS.close()
    if not cfg.no_scaling:
        print("scaling (a process per case) ...", flush=True)
        scaling.extend(run_scaling(cfg.quick))
    info["loadavg_after"] = os.getloadavg()
    info["total_seconds"] = time.perf_counter() - t_start
    doc = save()
    print_tables(doc["results"], doc["ratios"], doc["ratios_cpu"])
    for row in doc["roofline"]:
        print(f"roofline {row['problem']}: {row['flops_per_path_step']} flops/path-step, GEMM "
              f"{row['gemm_flops_per_s'] / 1e9:.1f} GFLOP/s -> ceiling {row['ceiling_path_steps_per_s'] / 1e6:.2f}M "
              "path-steps/s; fractions " + ", ".join(f"{k} {v:.3f}" for k, v in row["fraction"].items()))
    if scaling:
        try:
            plot_scaling(scaling, cfg.out / f"{stem}_scaling.png", _caption(info))
        except ImportError as exc:
            print(f"no scaling plot: {exc}")
    try:
        plot(doc["results"], cfg.out / f"{stem}.png", _caption(info))
    except ImportError as exc:
        print(f"no plot: {exc}")
    print(f"\nload average before {info['loadavg_before']}, after {info['loadavg_after']}; "
          f"{info['total_seconds']:.0f} s; wrote {cfg.out / (stem + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
