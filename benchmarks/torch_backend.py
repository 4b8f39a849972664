#!/usr/bin/env python
"""Throughput of sdekit's torch backend against plain torchsde / torchdiffeq, sdekit's Numba backend and a torch loop.

SDE problems (as in throughput.py), Euler-Maruyama with h = 1e-3 (1000 steps on [0, 1]), X0 = 0, seed 7:
  ou   1-D Ornstein-Uhlenbeck  dX = -X dt + sqrt(2) dW;
  gmm  16-D overdamped Langevin dX = s(X) dt + sqrt(2) dW, s the score of a 4-component Gaussian mixture.
ODE problem: the probability-flow ODE of the OU from N(0, 0.25), dx/dt = x (1 / v(t) - 1), v(t) = 0.25 e^{-2t} + 1 -
e^{-2t}, on [0, 1]; exact flow x(t) = x0 sqrt(v(t) / v(0)):
  pf_rk4     fixed-step RK4, 1000 steps;
  pf_dopri5  adaptive Dormand-Prince, rtol = atol = 1e-5.
N in {1, 100, 1e4, 1e5} paths (1e6 with --big; up to 1e7 with --device cuda). Each case is the median of k repeats
after a warm-up; slow cases run fewer steps of the same size (the JSON says how many). See benchmarks/README.md.

    python benchmarks/torch_backend.py               # full run (CPU, 1 thread)
    python benchmarks/torch_backend.py --quick       # N <= 1e4, short budget: a smoke test (< 2 min)
    python benchmarks/torch_backend.py --threads 2 --big --out DIR
    python benchmarks/torch_backend.py --device cuda # torch implementations on the GPU, N up to 1e7
"""

from __future__ import annotations

import os
import time

T0 = time.perf_counter()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numba as nb  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchdiffeq  # noqa: E402
import torchsde  # noqa: E402
from bench_problems import gmm_score, gmm_score_torch, make_gmm, ou_drift, pf_field, sqrt2_diffusion  # noqa: E402
from bench_timing import interleaved_repeats  # noqa: E402

import sdekit  # noqa: E402

T_IMPORT = time.perf_counter() - T0  # torch, torchsde, torchdiffeq, numba, sdekit

DT = 1e-3
STEPS = 1000
SEED = 7
SQRT2 = math.sqrt(2.0)
G_SQH = SQRT2 * math.sqrt(DT)  # g sqrt(h): the noise scale of one Euler step
OU_VAR_T1 = 1.0 - math.exp(-2.0)  # Var X_1 of the OU problem from X0 = 0
V0 = 0.25  # variance of the probability-flow ODE's initial law
RTOL = ATOL = 1e-5  # dopri5 tolerances
AGREE_TOL = 1e-10  # float64 sdekit_torch and sdekit_numba share the noise stream: final states agree to this
DEVICE = torch.device("cpu")  # set by main() from --device

SDE_IMPLS = {
    "sdekit_torch_f64": "sdekit.simulate(backend='torch', solver='euler'): torchsde's Euler step on sdekit's grid with "
                        "StreamBrownian (sdekit's per-path streams), float64; stats.run_seconds",
    "sdekit_torch_f32": "the same in float32 (x0 a float32 tensor)",
    "torchsde_f64": "torchsde.sdeint(sde, y0, ts=[0, 1], method='euler', dt=1e-3), default BrownianInterval, a "
                    "user-written SDE class (f, g = sqrt2 * ones, noise_type='diagonal'), float64",
    "torchsde_f32": "the same in float32",
    "sdekit_numba": "sdekit.simulate(sde, np.zeros(d), ..., seed=7), the Numba backend, float64; stats.run_seconds "
                    "(compile excluded)",
    "torch_loop_f64": "hand-written torch Euler loop, torch.randn per step, inference_mode, float64 (the floor of "
                      "what torch does)",
    "torch_loop_f32": "the same in float32",
}
ODE_IMPLS = {
    "sdekit_torch": "sdekit.simulate(ode, x0_tensor, backend='torch', solver='rk4' | 'dopri5'): torchdiffeq on "
                    "sdekit's grid, float64; stats.run_seconds",
    "torchdiffeq": "torchdiffeq.odeint(field, y0, t=[0, 1], method='rk4', options={'step_size': 1e-3}) or "
                   "method='dopri5', a user-written nn.Module field, float64",
    "sdekit_numba": "sdekit.simulate(ode, x0, solver='rk4' | 'dopri5'), the Numba backend (per-path step "
                        "control for dopri5), float64; stats.run_seconds",
}
COLORS = {"sdekit_torch_f64": "C0", "sdekit_torch_f32": "C0", "torchsde_f64": "C3", "torchsde_f32": "C3",
          "sdekit_numba": "C2", "torch_loop_f64": "C7", "torch_loop_f32": "C7",
          "sdekit_torch": "C0", "torchdiffeq": "C3"}


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------------------------------
# Problems


@dataclass
class Problem:
    key: str
    title: str
    kind: str  # "sde" or "ode"
    dim: int
    params: Any
    solver: str | None = None  # ODE: "rk4" or "dopri5"
    spec: Any = None
    _torch: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind == "sde":
            drift = ou_drift if self.key == "ou" else gmm_score
            self.spec = sdekit.SDE(drift=drift, diffusion=sqrt2_diffusion, noise="additive", dim=self.dim,
                                   params=self.params, name=self.key)
        else:
            self.spec = sdekit.ODE(field=pf_field, dim=1, params=self.params, name="pf")

    @property
    def adaptive(self) -> bool:
        return self.solver == "dopri5"

    def torch_params(self, dtype: Any) -> Any:
        """The parameters for the hand-written torch code: OU's theta (a float), the GMM's arrays as tensors."""
        key = str(dtype)
        if key not in self._torch:
            if self.key == "ou":
                self._torch[key] = float(self.params[0])
            else:
                self._torch[key] = tuple(torch.as_tensor(a, dtype=dtype, device=DEVICE) for a in self.params)
        return self._torch[key]


def make_problems() -> list[Problem]:
    return [Problem("ou", "1-D Ornstein-Uhlenbeck dX = -X dt + sqrt(2) dW, Euler-Maruyama", "sde", 1, np.array([1.0])),
            Problem("gmm", "16-D Langevin on a 4-component GMM score, Euler-Maruyama", "sde", 16, make_gmm()),
            Problem("pf_rk4", "probability-flow ODE of the OU from N(0, 0.25), RK4 h = 1e-3", "ode", 1,
                    np.array([V0]), "rk4"),
            Problem("pf_dopri5", "probability-flow ODE of the OU from N(0, 0.25), dopri5 rtol = atol = 1e-5", "ode",
                    1, np.array([V0]), "dopri5")]


_PF_X0: dict[int, np.ndarray] = {}


def pf_x0(n: int) -> np.ndarray:
    """The ODE's initial states, (n, 1) ~ N(0, V0), the same for every implementation."""
    if n not in _PF_X0:
        _PF_X0[n] = math.sqrt(V0) * np.random.default_rng(SEED).standard_normal((n, 1))
    return _PF_X0[n]


def pf_exact(x0: np.ndarray, t: float) -> np.ndarray:
    e = math.exp(-2.0 * t)
    return x0 * math.sqrt((V0 * e + 1.0 - e) / V0)


# ---------------------------------------------------------------------------------------------------------------------
# Runners: runner(prob, n, steps) -> Run; steps is None for the adaptive ODE solver. kernel_s is the time the
# throughput comes from (stats.run_seconds for sdekit, the timed call otherwise); wall_s the whole call.


@dataclass
class Run:
    kernel_s: float
    wall_s: float
    final: np.ndarray | None = None
    steps_taken: int | None = None  # steps actually run, where the library may differ from the request
    extra: dict = field(default_factory=dict)


def _np(y: torch.Tensor) -> np.ndarray:
    return y.detach().to(device="cpu", dtype=torch.float64).numpy()


def _sdekit_torch(prob: Problem, n: int, steps: int, dtype: Any) -> Run:
    x0 = torch.zeros(prob.dim, dtype=dtype, device=DEVICE)
    with torch.no_grad():
        w0 = time.perf_counter()
        sol = sdekit.simulate(prob.spec, x0, (0.0, steps * DT), steps=steps, n_paths=n, seed=SEED, solver="euler",
                              backend="torch")
        sync()
        wall = time.perf_counter() - w0
    return Run(sol.stats.run_seconds, wall, _np(sol.ys[-1]), extra={"evals": sol.stats.evals})


def _torchsde(prob: Problem, n: int, steps: int, dtype: Any) -> Run:
    params = prob.torch_params(dtype)
    calls = [0]

    class UserSDE(torch.nn.Module):  # what a torchsde user writes
        noise_type = "diagonal"
        sde_type = "ito"

        def f(self, t, y):
            calls[0] += 1
            return -params * y if prob.key == "ou" else gmm_score_torch(y, t, params)

        def g(self, t, y):
            return SQRT2 * torch.ones_like(y)

    torch.manual_seed(SEED)
    sde = UserSDE()
    with torch.no_grad():
        w0 = time.perf_counter()
        y0 = torch.zeros(n, prob.dim, dtype=dtype, device=DEVICE)
        ts = torch.tensor([0.0, steps * DT], dtype=dtype, device=DEVICE)
        ys = torchsde.sdeint(sde, y0, ts, method="euler", dt=DT)
        sync()
        wall = time.perf_counter() - w0
    return Run(wall, wall, _np(ys[-1]), steps_taken=calls[0])  # torchsde may add a final sliver step


def _torch_loop(prob: Problem, n: int, steps: int, dtype: Any) -> Run:
    params = prob.torch_params(dtype)
    gen = torch.Generator(device=DEVICE).manual_seed(SEED)
    with torch.inference_mode():
        w0 = time.perf_counter()
        x = torch.zeros(n, prob.dim, dtype=dtype, device=DEVICE)
        if prob.key == "ou":
            z = torch.empty_like(x)
            a = 1.0 - params * DT
            for _ in range(steps):
                torch.randn(n, prob.dim, generator=gen, dtype=dtype, device=DEVICE, out=z)
                x.mul_(a).add_(z, alpha=G_SQH)
        else:
            for _ in range(steps):
                z = torch.randn(n, prob.dim, generator=gen, dtype=dtype, device=DEVICE)
                x = x + gmm_score_torch(x, 0.0, params) * DT + G_SQH * z
        sync()
        wall = time.perf_counter() - w0
        final = _np(x)
    return Run(wall, wall, final)


def run_sdekit_numba(prob: Problem, n: int, steps: int) -> Run:
    w0 = time.perf_counter()
    sol = sdekit.simulate(prob.spec, np.zeros(prob.dim), (0.0, steps * DT), steps=steps, n_paths=n, seed=SEED,
                          threads=THREADS)
    wall = time.perf_counter() - w0
    return Run(sol.stats.run_seconds, wall, sol.final,
               extra={"compile_seconds": sol.stats.compile_seconds, "threads_used": sol.stats.threads})


class PFField(torch.nn.Module):
    """What a torchdiffeq user writes for the probability-flow ODE."""

    def __init__(self):
        super().__init__()
        self.calls = [0]

    def forward(self, t, y):
        self.calls[0] += 1
        e = torch.exp(-2.0 * t)
        v = V0 * e + 1.0 - e
        return y * (1.0 / v - 1.0)


def _ode_t1(prob: Problem, steps: int | None) -> float:
    return 1.0 if prob.adaptive else steps * DT


def run_pf_sdekit_torch(prob: Problem, n: int, steps: int | None) -> Run:
    x0 = torch.as_tensor(pf_x0(n), device=DEVICE)
    with torch.no_grad():
        w0 = time.perf_counter()
        if prob.adaptive:
            sol = sdekit.simulate(prob.spec, x0, (0.0, 1.0), solver="dopri5", rtol=RTOL, atol=ATOL, backend="torch")
        else:
            sol = sdekit.simulate(prob.spec, x0, (0.0, steps * DT), steps=steps, solver="rk4", backend="torch")
        sync()
        wall = time.perf_counter() - w0
    st = sol.stats
    return Run(st.run_seconds, wall, _np(sol.ys[-1]), steps_taken=st.steps if st.steps > 0 else None,
               extra={"evals": st.evals})


def run_pf_torchdiffeq(prob: Problem, n: int, steps: int | None) -> Run:
    fld = PFField()
    with torch.no_grad():
        w0 = time.perf_counter()
        y0 = torch.as_tensor(pf_x0(n), device=DEVICE)
        t = torch.tensor([0.0, _ode_t1(prob, steps)], dtype=torch.float64, device=DEVICE)
        if prob.adaptive:
            ys = torchdiffeq.odeint(fld, y0, t, method="dopri5", rtol=RTOL, atol=ATOL)
        else:
            ys = torchdiffeq.odeint(fld, y0, t, method="rk4", options={"step_size": DT})
        sync()
        wall = time.perf_counter() - w0
    evals = fld.calls[0]
    return Run(wall, wall, _np(ys[-1]), steps_taken=None if prob.adaptive else evals // 4, extra={"evals": evals})


def run_pf_sdekit_numba(prob: Problem, n: int, steps: int | None) -> Run:
    x0 = pf_x0(n)
    w0 = time.perf_counter()
    if prob.adaptive:
        sol = sdekit.simulate(prob.spec, x0, (0.0, 1.0), solver="dopri5", rtol=RTOL, atol=ATOL, threads=THREADS)
    else:
        sol = sdekit.simulate(prob.spec, x0, (0.0, steps * DT), steps=steps, solver="rk4", threads=THREADS)
    wall = time.perf_counter() - w0
    st = sol.stats
    return Run(st.run_seconds, wall, sol.final, steps_taken=st.steps,
               extra={"evals": st.evals, "rejected": st.rejected, "compile_seconds": st.compile_seconds})


RUNNERS: dict[str, dict[str, Callable[[Problem, int, Any], Run]]] = {"sde": {
    "sdekit_torch_f64": lambda p, n, s: _sdekit_torch(p, n, s, torch.float64),
    "sdekit_torch_f32": lambda p, n, s: _sdekit_torch(p, n, s, torch.float32),
    "torchsde_f64": lambda p, n, s: _torchsde(p, n, s, torch.float64),
    "torchsde_f32": lambda p, n, s: _torchsde(p, n, s, torch.float32),
    "sdekit_numba": run_sdekit_numba,
    "torch_loop_f64": lambda p, n, s: _torch_loop(p, n, s, torch.float64),
    "torch_loop_f32": lambda p, n, s: _torch_loop(p, n, s, torch.float32),
}, "ode": {
    "sdekit_torch": run_pf_sdekit_torch,
    "torchdiffeq": run_pf_torchdiffeq,
    "sdekit_numba": run_pf_sdekit_numba,
}}
THREADS = 1  # set by main() from --threads


# ---------------------------------------------------------------------------------------------------------------------
# Timing. Per (problem, N) group each implementation is warmed up and piloted to choose its steps and repeats within
# the budget; then the repeats of all implementations are interleaved (round-robin), so that the ratios compare runs
# made under the same background load. Each run also records this process's CPU time and the CPU time of others.


def plan_case(impl: str, prob: Problem, n: int, cfg: argparse.Namespace) -> dict:
    """Warm up, pilot, and choose (steps, repeats): 1000 steps if 2 repeats fit the budget, else 100, else 10."""
    runner = RUNNERS[prob.kind][impl]
    rec: dict[str, Any] = {"problem": prob.key, "kind": prob.kind, "impl": impl, "n_paths": n, "threads": THREADS,
                           "device": "cpu" if impl == "sdekit_numba" else str(DEVICE), "status": "ok"}
    if prob.adaptive:  # one whole solve is the unit: it cannot be shortened
        runner(prob, n, None)
        est = runner(prob, n, None).wall_s
        rec["pilot_seconds"] = est
        if est > cfg.max_single:
            rec.update(status="skipped", reason=f"one solve took {est:.0f} s, above the {cfg.max_single:.0f} s cap")
            return rec
        rec.update(steps_run=None, reduced_steps=False, repeats=max(1, min(cfg.repeats, int(cfg.budget // est))))
    else:
        sp = int(min(50, max(2, 10**6 // (n * prob.dim))))
        runner(prob, n, 2)  # warm-up: compile / load kernels, first-touch allocations, dispatch caches
        per_step = runner(prob, n, sp).wall_s / sp
        rec["pilot_seconds_per_step"] = per_step
        for steps in (STEPS, 100, 10):
            est = per_step * steps
            k = min(cfg.repeats, int(cfg.budget // max(est, 1e-9)))
            if k >= 2 or (steps == 10 and est <= cfg.max_single):
                rec.update(steps_run=steps, reduced_steps=steps < STEPS, repeats=max(1, k))
                break
        else:
            rec.update(status="skipped", reason=f"estimated {per_step * 10:.0f} s for 10 steps, above the "
                                                f"{cfg.max_single:.0f} s cap")
            return rec
        est = per_step * rec["steps_run"]
    if est * 7 < 0.5:
        rec["repeats"] = max(rec["repeats"], 7)  # short runs: more repeats for a steadier median
    return rec


def run_group(prob: Problem, n: int, impls: list[str], cfg: argparse.Namespace) -> list[dict]:
    recs = []
    for impl in impls:
        try:
            recs.append(plan_case(impl, prob, n, cfg))
        except Exception as exc:  # one broken implementation must not lose the run
            recs.append({"problem": prob.key, "impl": impl, "n_paths": n, "threads": THREADS, "status": "error",
                         "reason": f"{type(exc).__name__}: {exc}"})
    def call(rec: dict) -> Any:
        return RUNNERS[prob.kind][rec["impl"]](prob, n, rec["steps_run"])

    runs, finals = interleaved_repeats(recs, call, 2 * cfg.budget)
    for rec in recs:
        if rec["status"] != "ok":
            continue
        rs = runs[rec["impl"]]
        last = rs[-1].run
        kern = [t.run.kernel_s for t in rs]
        med = statistics.median(kern)
        steps = rec["steps_run"] if last.steps_taken is None else last.steps_taken
        others = [t.other_cores for t in rs if t.other_cores is not None]
        rec.update(seconds=kern, median_s=med, wall_s=[t.wall_s for t in rs],
                   median_wall_s=statistics.median(t.wall_s for t in rs), cpu_s=[t.cpu_s for t in rs],
                   cpu_per_wall=statistics.median([t.cpu_s / t.wall_s for t in rs]),
                   other_cores_busy=max(others) if others else None, paths_per_s=n / med, **last.extra)
        if last.steps_taken is not None:
            rec["steps_taken"] = last.steps_taken
        if steps is not None:
            rec["path_steps_per_s"] = n * steps / med
            rec["path_steps_per_s_wall"] = n * steps / rec["median_wall_s"]
        rec["rate"] = rec["paths_per_s"] if prob.adaptive else rec["path_steps_per_s"]
        rec["check"] = final_check(prob, n, finals[rec["impl"]], rec["steps_run"])
    ref = next((r for r in recs if r["impl"] == "sdekit_numba" and r["status"] == "ok"), None)
    for rec in recs:  # same seed, same grid: sdekit_torch draws sdekit_numba's noise
        if ref and prob.kind == "sde" and rec["impl"].startswith("sdekit_torch_") and rec["status"] == "ok" \
                and rec["steps_run"] == ref["steps_run"]:
            diff = float(np.max(np.abs(finals[rec["impl"]] - finals["sdekit_numba"])))
            rec["check"]["max_abs_diff_vs_sdekit_numba"] = diff
            if rec["impl"].endswith("f64"):
                rec["check"]["agrees_with_sdekit_numba"] = diff <= AGREE_TOL
    return recs


def final_check(prob: Problem, n: int, final: np.ndarray, steps: int | None) -> dict:
    """Sanity statistics of the final states; OU: Var X_1 against 1 - e^-2; ODE: max error against the exact flow."""
    out: dict[str, Any] = {"finite": bool(np.all(np.isfinite(final)))}
    if prob.kind == "ode":
        out["max_abs_err_vs_exact"] = float(np.max(np.abs(final - pf_exact(pf_x0(n), _ode_t1(prob, steps)))))
        return out
    out.update(mean_x0=float(final[:, 0].mean()), var_x0=float(final[:, 0].var()))
    if prob.key == "ou" and steps == STEPS and n >= 10**4:
        se = OU_VAR_T1 * math.sqrt(2.0 / n)
        out["ou_var_expected"] = OU_VAR_T1
        out["ou_var_z"] = (out["var_x0"] - OU_VAR_T1) / se
        out["ou_var_ok"] = bool(abs(out["var_x0"] - OU_VAR_T1) < 5 * se)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# One-off measurements: cold start, agreement of the two backends, fixed and per-step costs at N = 1.


def cold_start(probs: dict[str, Problem]) -> dict:
    """Wall time of the first torch-backend calls in this process (torch imports, StreamBrownian's Numba kernels)."""
    out = {}
    for key, n in (("ou", 4), ("ou", 8192), ("gmm", 4)):
        w0 = time.perf_counter()
        RUNNERS["sde"]["sdekit_torch_f64"](probs[key], n, 2)
        out[f"{key}_n{n}_first_call_wall_s"] = time.perf_counter() - w0
    w0 = time.perf_counter()
    RUNNERS["ode"]["sdekit_torch"](probs["pf_rk4"], 4, 2)
    out["pf_rk4_n4_first_call_wall_s"] = time.perf_counter() - w0
    return out


def cross_checks(probs: dict[str, Problem]) -> dict:
    """Final states of sdekit_torch against sdekit_numba (same seed, same grid, 1000 steps unless noted)."""
    out: dict[str, Any] = {}
    for key, n, steps in (("ou", 300, STEPS), ("gmm", 300, STEPS), ("ou", 10**4, 200)):
        ref = run_sdekit_numba(probs[key], n, steps).final
        for impl in ("sdekit_torch_f64", "sdekit_torch_f32"):
            diff = float(np.max(np.abs(RUNNERS["sde"][impl](probs[key], n, steps).final - ref)))
            out[f"{key}_n{n}_steps{steps}_{impl}_vs_numba_max_abs_diff"] = diff
    out["float64_agree_within"] = AGREE_TOL
    out["float64_all_agree"] = all(v <= AGREE_TOL for k, v in out.items() if k.endswith("f64_vs_numba_max_abs_diff"))
    return out


def call_overheads(prob: Problem, reps: int, long: int = 200) -> dict:
    """OU, N = 1: median time of a 1-step and a `long`-step call; per step = the difference / (long - 1)."""
    out: dict[str, Any] = {"long_steps": long}
    for impl in ("sdekit_torch_f64", "torchsde_f64", "torch_loop_f64", "sdekit_numba"):
        med = {}
        for steps in (1, long):
            rs = [RUNNERS["sde"][impl](prob, 1, steps) for _ in range(reps)]
            med[steps] = (statistics.median(r.kernel_s for r in rs), statistics.median(r.wall_s for r in rs))
        out[impl] = {"call_1_step_s": med[1][0], "call_1_step_wall_s": med[1][1],
                     "per_step_s": (med[long][0] - med[1][0]) / (long - 1)}
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Reporting


RATIOS = [  # (column, numerator, denominator): rate ratios at the same (problem, N); > 1: sdekit_torch faster
    ("st/torchsde f64", "sdekit_torch_f64", "torchsde_f64"),
    ("st/torchsde f32", "sdekit_torch_f32", "torchsde_f32"),
    ("st/numba", "sdekit_torch_f64", "sdekit_numba"),
    ("st/loop f64", "sdekit_torch_f64", "torch_loop_f64"),
    ("st/loop f32", "sdekit_torch_f32", "torch_loop_f32"),
    ("st/torchdiffeq", "sdekit_torch", "torchdiffeq"),
    ("st/numba", "sdekit_torch", "sdekit_numba"),
]


def ratios(results: list[dict]) -> list[dict]:
    rate = {(r["problem"], r["n_paths"], r["impl"]): r["rate"] for r in results if r["status"] == "ok"}
    out = []
    for key, n in sorted({(r["problem"], r["n_paths"]) for r in results}, key=_row_order):
        row: dict[str, Any] = {"problem": key, "n_paths": n}
        for col, a, b in RATIOS:
            if (key, n, a) in rate and (key, n, b) in rate:
                row[col] = rate[(key, n, a)] / rate[(key, n, b)]
        out.append(row)
    return out


def _row_order(k: tuple) -> tuple:
    return (["ou", "gmm", "pf_rk4", "pf_dopri5"].index(k[0]) if k[0] in ("ou", "gmm", "pf_rk4", "pf_dopri5")
            else 9, k[1])


def contended(r: dict) -> bool:
    other = r.get("other_cores_busy")
    return (other is not None and other > 0.3) or (r["threads"] == 1 and r.get("cpu_per_wall", 1.0) < 0.9)


def fmt_rate(r: dict | None) -> str:
    if r is None:
        return "-"
    if r["status"] != "ok":
        return r["status"]
    v = r["rate"]
    s = f"{v / 1e6:.3g}M" if v >= 1e5 else f"{v / 1e3:.3g}k" if v >= 1e3 else f"{v:.3g}"
    return s + (f"[{r['steps_run']}]" if r.get("reduced_steps") else "") + ("*" if contended(r) else "")


def tables(results: list[dict], rat: list[dict], md: bool = False) -> str:
    """The SDE, ODE and ratio tables as text (md=False) or Markdown."""
    by = {(r["problem"], r["n_paths"], r["impl"]): r for r in results}
    lines: list[str] = []

    def table(header: list[str], rows: list[list[str]], widths: list[int]) -> None:
        if md:
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            lines.extend("| " + " | ".join(row) + " |" for row in rows)
        else:
            lines.append("".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
            lines.extend("".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True)) for row in rows)
        lines.append("")

    keys = sorted({(r["problem"], r["n_paths"]) for r in results}, key=_row_order)
    sde_impls = [i for i in SDE_IMPLS if any(r["impl"] == i for r in results)]
    if sde_impls:
        lines.append("SDE, Euler-Maruyama h = 1e-3: path-steps/s (M = 1e6, k = 1e3; [s]: only s steps run; "
                     "*: other processes busy meanwhile)")
        lines.append("")
        table(["problem", "N", *sde_impls],
              [[k, str(n), *(fmt_rate(by.get((k, n, i))) for i in sde_impls)] for k, n in keys
               if k in ("ou", "gmm")], [8, 9, *(18 for _ in sde_impls)])
    ode_impls = [i for i in ODE_IMPLS if any(r["impl"] == i for r in results)]
    if ode_impls:
        lines.append("ODE (probability flow of the OU): pf_rk4 in path-steps/s, pf_dopri5 in paths/s; "
                     "err: max |x_1 - exact|; dopri5 steps: accepted steps (sdekit_numba: max over paths), or evals")
        lines.append("")
        head = ["problem", "N"]
        for i in ode_impls:
            head += [i, "err"]
        head.append("dopri5 steps/evals")
        rows = []
        for k, n in keys:
            if k not in ("pf_rk4", "pf_dopri5"):
                continue
            row = [k, str(n)]
            for i in ode_impls:
                r = by.get((k, n, i))
                err = r["check"]["max_abs_err_vs_exact"] if r and r["status"] == "ok" else None
                row += [fmt_rate(r), f"{err:.1e}" if err is not None else "-"]
            if k == "pf_dopri5":
                row.append(", ".join(f"{by[(k, n, i)].get('steps_taken', '-')}/{by[(k, n, i)].get('evals', '-')}"
                                     for i in ode_impls if (k, n, i) in by and by[(k, n, i)]["status"] == "ok"))
            else:
                row.append("")
            rows.append(row)
        table(head, rows, [10, 9, *([16, 9] * len(ode_impls)), 22])
    cols = [c for c in dict.fromkeys(c for c, _, _ in RATIOS) if any(c in r for r in rat)]
    lines.append("ratios of throughput measured in this run (> 1: sdekit_torch faster; st = sdekit_torch)")
    lines.append("")
    table(["problem", "N", *cols], [[r["problem"], str(r["n_paths"]), *(f"{r[c]:.3g}" if c in r else "-"
                                                                         for c in cols)] for r in rat],
          [10, 9, *(17 for _ in cols)])
    return "\n".join(lines)


def plot(results: list[dict], path: Path, caption: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("ou", "gmm", "pf_rk4", "pf_dopri5") if any(r["problem"] == k for r in results)]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.6), squeeze=False)
    titles = {"ou": "1-D OU, Euler h = 1e-3", "gmm": "16-D GMM Langevin, Euler h = 1e-3",
              "pf_rk4": "PF-ODE, RK4 h = 1e-3", "pf_dopri5": "PF-ODE, dopri5 tol 1e-5"}
    for ax, key in zip(axes[0], panels, strict=True):
        for impl in dict.fromkeys([*SDE_IMPLS, *ODE_IMPLS]):
            pts = sorted((r["n_paths"], r["rate"]) for r in results
                         if r["problem"] == key and r["impl"] == impl and r["status"] == "ok")
            if pts:
                f32 = impl.endswith("f32")
                ax.plot(*zip(*pts, strict=True), "--" if f32 else "-", marker="s" if f32 else "o",
                        mfc="none" if f32 else None, color=COLORS[impl], label=impl)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("paths N")
        ax.set_ylabel("paths / s" if key == "pf_dopri5" else "path-steps / s")
        ax.set_title(titles[key], fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.text(0.01, 0.005, caption + "; median of k repeats; float32 dashed; some points ran 10 or 100 steps "
             "(steps_run in the JSON)", fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine_info() -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu_model": model, "cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
        "platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
        "numba": nb.__version__, "torch": torch.__version__, "torchsde": torchsde.__version__,
        "torchdiffeq": torchdiffeq.__version__, "sdekit": getattr(sdekit, "__version__", "?"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    if DEVICE.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(DEVICE)
    return info


def _caption(info: dict) -> str:
    return (f"{info.get('cpu_model', '?')}, {info.get('cpu_count', '?')} cores, {info.get('threads', '?')} thread(s), "
            f"device {info.get('device', 'cpu')}, torch {info.get('torch')}, torchsde {info.get('torchsde')}, "
            f"torchdiffeq {info.get('torchdiffeq')}, numba {info.get('numba')}, {info.get('date_utc', '')[:10]}")


def markdown(doc: dict) -> str:
    info = doc["machine"]
    la, lb = info.get("loadavg_before"), info.get("loadavg_after")
    out = ["# torch backend throughput" + (" (--quick)" if doc["config"]["quick"] else ""), "",
           "Written by `benchmarks/torch_backend.py`; see the torch backend section of `benchmarks/README.md`.", "",
           f"* CPU: {info['cpu_model']}, {info['cpu_count']} cores ({info['affinity']} usable)"
           + (f"; GPU: {info['gpu']}" if "gpu" in info else ""),
           f"* device for the torch implementations: {info['device']}; threads: torch {info['torch_threads']}, "
           f"numba {info['numba_threads']} (NUMBA_NUM_THREADS {info['numba_num_threads_max']}), OMP_NUM_THREADS "
           f"{info['omp_num_threads']}",
           f"* load average before {la}, after {lb}",
           f"* torch {info['torch']}, torchsde {info['torchsde']}, torchdiffeq {info['torchdiffeq']}, numba "
           f"{info['numba']}, numpy {info['numpy']}, Python {info['python']}, {info['platform']}",
           f"* date (UTC) {info['date_utc']}; total {info.get('total_seconds', 0):.0f} s; budget "
           f"{doc['config']['budget_s']} s per case, up to {doc['config']['repeats']} repeats", ""]
    out += [f"* note: {n}" for n in doc["notes"]]
    out += ["", tables(doc["results"], doc["ratios"], md=True), "## Checks", ""]
    for k, v in doc["checks"].items():
        out.append(f"* `{k}`: {v:.3g}" if isinstance(v, float) else f"* `{k}`: {v}")
    for r in doc["results"]:
        c = r.get("check", {})
        bits = [f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}" for k, v in c.items()
                if k in ("ou_var_ok", "ou_var_z", "max_abs_diff_vs_sdekit_numba", "agrees_with_sdekit_numba")
                or (k == "finite" and not v)]
        if bits:
            out.append(f"* {r['problem']} N={r['n_paths']} {r['impl']}: " + ", ".join(bits))
    out += ["", "## Fixed and per-step cost at N = 1 (OU)", ""]
    ov = doc["overheads"]
    for impl, v in ov.items():
        if isinstance(v, dict):
            out.append(f"* {impl}: 1-step call {v['call_1_step_s'] * 1e6:.0f} us (wall "
                       f"{v['call_1_step_wall_s'] * 1e6:.0f} us), per step {v['per_step_s'] * 1e6:.1f} us")
    out += ["", "## First calls in the process (cold start)", ""]
    out += [f"* {k}: {v:.2f} s" for k, v in doc["cold_start"].items()]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------------------------
# Driver


def plan(cfg: argparse.Namespace) -> list[tuple[str, int, list[str]]]:
    if cfg.quick:
        ns = [1, 100, 10**4]
    elif DEVICE.type == "cuda":
        ns = [1, 100, 10**4, 10**5, 10**6, 10**7]
    else:
        ns = [1, 100, 10**4, 10**5] + ([10**6] if cfg.big else [])
    groups = []
    for key, impls in (("ou", SDE_IMPLS), ("gmm", SDE_IMPLS), ("pf_rk4", ODE_IMPLS), ("pf_dopri5", ODE_IMPLS)):
        # the Numba backend stays on the CPU: with a GPU it is the reference up to 1e6 paths only
        groups += [(key, n, [i for i in impls if i != "sdekit_numba" or n <= 10**6]) for n in ns]
    return groups


def main(argv: list[str] | None = None) -> int:
    global DEVICE, THREADS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N up to 1e4, short budget: a smoke test (< 2 min)")
    ap.add_argument("--big", action="store_true", help="add N = 1e6 (CPU; with --device cuda N goes to 1e7 anyway)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--device", default="cpu", help="device of the torch implementations (cpu, cuda, cuda:1)")
    ap.add_argument("--threads", type=int, default=1, help="torch and Numba threads (default 1)")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timed runs per case (default 20, quick 1)")
    ap.add_argument("--repeats", type=int, default=None, help="repeats per case (default 5, quick 3)")
    ap.add_argument("--max-single", type=float, default=60.0, help="skip a case whose 10-step run exceeds this")
    ap.add_argument("--replot", action="store_true", help="only redraw the PNG and Markdown from the JSON in --out")
    cfg = ap.parse_args(argv)
    stem = "torch_backend_quick" if cfg.quick else "torch_backend"
    if cfg.replot:
        doc = json.loads((cfg.out / f"{stem}.json").read_text())
        plot(doc["results"], cfg.out / f"{stem}.png", _caption(doc["machine"]))
        (cfg.out / f"{stem}.md").write_text(markdown(doc))
        return 0
    cfg.budget = cfg.budget if cfg.budget is not None else (1.0 if cfg.quick else 20.0)
    cfg.repeats = cfg.repeats if cfg.repeats is not None else (3 if cfg.quick else 5)
    notes = []
    dev = torch.device(cfg.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        notes.append(f"--device {cfg.device} asked for but CUDA is not available: the torch implementations ran on "
                     "the CPU")
        print(f"warning: {notes[-1]}", file=sys.stderr)
        dev = torch.device("cpu")
    DEVICE = dev
    THREADS = max(1, cfg.threads)
    torch.set_num_threads(THREADS)
    nb.set_num_threads(min(THREADS, nb.config.NUMBA_NUM_THREADS))
    if nb.get_num_threads() != THREADS:
        notes.append(f"numba runs {nb.get_num_threads()} threads (NUMBA_NUM_THREADS caps it), torch {THREADS}")
    cfg.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    info = machine_info()
    info.update(device=str(DEVICE), threads=THREADS, torch_threads=torch.get_num_threads(),
                numba_threads=nb.get_num_threads(), numba_num_threads_max=nb.config.NUMBA_NUM_THREADS,
                loadavg_before=os.getloadavg())
    print(f"machine: {info['cpu_model']}, {info['cpu_count']} cores, load {info['loadavg_before']}; device {DEVICE}, "
          f"threads torch {info['torch_threads']} numba {info['numba_threads']}", flush=True)
    probs = {p.key: p for p in make_problems()}
    phases = {"imports_s": T_IMPORT}
    w0 = time.perf_counter()
    cold = cold_start(probs)
    phases["cold_start_s"] = time.perf_counter() - w0
    print("cold start: " + ", ".join(f"{k} {v:.2f} s" for k, v in cold.items()), flush=True)
    w0 = time.perf_counter()
    checks = cross_checks(probs)
    phases["cross_checks_s"] = time.perf_counter() - w0
    print(f"checks: {checks}", flush=True)
    w0 = time.perf_counter()
    overheads = call_overheads(probs["ou"], reps=3 if cfg.quick else 7)
    phases["overheads_s"] = time.perf_counter() - w0
    print("N = 1, OU: " + "; ".join(f"{k} call {v['call_1_step_s'] * 1e6:.0f} us + {v['per_step_s'] * 1e6:.1f} us/step"
                                     for k, v in overheads.items() if isinstance(v, dict)), flush=True)

    results: list[dict] = []

    def save() -> dict:
        doc = {"machine": info,
               "config": {"dt": DT, "steps": STEPS, "seed": SEED, "quick": cfg.quick, "big": cfg.big,
                          "budget_s": cfg.budget, "repeats": cfg.repeats, "max_single_s": cfg.max_single,
                          "rtol": RTOL, "atol": ATOL, "pf_v0": V0, "agree_tol": AGREE_TOL},
               "implementations": {**SDE_IMPLS, **ODE_IMPLS},
               "problems": {p.key: p.title for p in probs.values()}, "notes": notes, "phases": phases,
               "cold_start": cold,
               "checks": checks, "overheads": overheads, "results": results, "ratios": ratios(results)}
        (cfg.out / f"{stem}.json").write_text(json.dumps(doc, indent=1, default=float))
        return doc

    groups = plan(cfg)
    for i, (key, n, impls) in enumerate(groups):
        t0 = time.perf_counter()
        recs = run_group(probs[key], n, impls, cfg)
        results.extend(recs)
        phases[f"group_{key}_{n}_s"] = time.perf_counter() - t0
        print(f"[group {i + 1}/{len(groups)}, {time.perf_counter() - t_start:5.0f} s] {key} N={n}: "
              f"{time.perf_counter() - t0:.1f} s  " + "  ".join(f"{r['impl']} {fmt_rate(r)}" for r in recs),
              flush=True)
        for r in recs:
            if r["status"] != "ok":
                print(f"    {r['impl']}: {r['status']} ({r['reason']})", flush=True)
        save()

    info["loadavg_after"] = os.getloadavg()
    info["total_seconds"] = time.perf_counter() - t_start
    doc = save()
    print("\n" + tables(doc["results"], doc["ratios"]))
    (cfg.out / f"{stem}.md").write_text(markdown(doc))
    try:
        plot(doc["results"], cfg.out / f"{stem}.png", _caption(info))
    except ImportError as exc:
        print(f"no plot: {exc}")
    print(f"load average before {info['loadavg_before']}, after {info['loadavg_after']}; "
          f"{info['total_seconds']:.0f} s; wrote {cfg.out / (stem + '.json')}, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
