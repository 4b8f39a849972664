"""Roofline of the compute-bound problems: flops per path-step over one core's measured float64 GEMM rate.

Flop counts (adds and multiplies 1 each, exp 1, a division 1), K components in d dimensions:
  Langevin on the mixture score, per Euler-Maruyama step:
    per component: r = x - mu (d), u = P r (2 d^2), r.u (2 d), logit (3), its softmax weight (3: sub, exp, add),
    w u accumulated (2 d)                                           -> K (2 d^2 + 5 d + 6)
    s = -acc / total (2 d), x += s h + (g sqrt h) z (4 d)           -> 6 d
  the probability-flow ODE of the VP SDE on exact mixture data, per RK4 step (4 field evaluations), as the fused
  drift computes it (`sdekit.diffusion.mixture_flow`: the marginal precisions P_k(t) formed once per call, a cost
  shared by the whole batch and left out):
    per component per evaluation: r = x - alpha mu (2 d), u = P_k(t) r (2 d^2), quad r.u (2 d), logit and
    weight (6), w u (2 d)                                           -> K (2 d^2 + 6 d + 6)
    field f x - g^2 s / 2 (4 d); RK4 stage points and update (10 d) -> 4 (K (2 d^2 + 6 d + 6) + 4 d) + 10 d
  (The eigenbasis form, r -> Q^T r -> scaled -> Q z, costs 4 d^2 per component: the count used before issue 18's
  fused drift.)
The ceiling in path-steps/s is rate / flops: the throughput if every flop ran at the speed of a dense matrix product.
"""

from __future__ import annotations

import os
import time

import numpy as np


def gmm_langevin_flops(d: int, k: int) -> int:
    """Flops of one Euler-Maruyama step of overdamped Langevin on a K-component mixture score in d dimensions."""
    return k * (2 * d * d + 5 * d + 6) + 6 * d


def mixture_pf_rk4_flops(d: int, k: int) -> int:
    """Flops of one RK4 step of the exact-mixture probability-flow ODE (4 field evaluations)."""
    return 4 * (k * (2 * d * d + 6 * d + 6) + 4 * d) + 10 * d


def gemm_rate(d: int, rows: int = 4096, min_seconds: float = 0.3, rounds: int = 5) -> dict:
    """Measured float64 rate of ``np.dot`` on a (rows x d) @ (d x d) block, single-threaded OpenBLAS (the caller sets
    OPENBLAS_NUM_THREADS=1 before NumPy loads): flops 2 rows d^2 per product; the median of ``rounds`` rounds, each
    timing enough products to last ``min_seconds``. Returns {"flops_per_s", "rounds_flops_per_s", "rows", "d"}."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, d))
    b = rng.standard_normal((d, d))
    out = np.empty((rows, d))
    np.dot(a, b, out=out)
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            np.dot(a, b, out=out)
        if time.perf_counter() - t0 >= min_seconds / 4:
            break
        reps *= 2
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < min_seconds:
            for _ in range(reps):
                np.dot(a, b, out=out)
            n += reps
        rates.append(2.0 * rows * d * d * n / (time.perf_counter() - t0))
    return {"flops_per_s": float(np.median(rates)), "rounds_flops_per_s": rates, "rows": rows, "d": d,
            "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
