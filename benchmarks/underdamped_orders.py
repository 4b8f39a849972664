#!/usr/bin/env python
"""Measured orders of the underdamped-Langevin splittings BAOAB, OBABO, UBU and ShOULD (README table).

    python benchmarks/underdamped_orders.py [--paths 2000] [--cells 4096] [--out benchmarks/results]

Strong order: U(x) = x^4/4 + x^2/2, gamma = 1, T = 1, x0 = 1, p0 = 0, every step size on ONE Brownian path per
sample (W, the OU-weighted increments and the Levy areas H, K merged exactly from ``cells`` finest cells,
`sdekit.mcmc.underdamped_paths`); errors |x_h - x_ref|^2 + |p_h - p_ref|^2 at T for h = 1/8 .. 1/128, against
(a) the same scheme at h = 2/cells and (b) ShOULD at h = 2/cells; order and 99% bootstrap CI by `fit_order`.
Stationary bias: |Var_h x - 1/omega^2| on U = x^2/2 (closed form: the exact linear recursion's discrete
Lyapunov solution, `splitting_stationary_law`) at h = 0.4, 0.2, 0.1, 0.05, slope by `fit_order_deterministic`.
Weak error on the quartic: E[x_h(T)^2] - E[x_ref(T)^2] at T = 8 (about four relaxation times) from x0 = 1,
p0 = 0, reference ShOULD at h = 1/64 on the same path (the coupling makes the per-path differences small, so
the mean difference is resolved to its standard error), h = 1/2, 1/4, 1/8.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sdekit.mcmc.underdamped import splitting_stationary_law
from sdekit.mcmc.underdamped_paths import PATH_SCHEMES, brownian_levels, solve_on_path, strong_sq_errors
from sdekit.validate.order import fit_order, fit_order_deterministic

GAMMA = 1.0


def grad(x: np.ndarray) -> np.ndarray:
    return x**3 + x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=2000)
    ap.add_argument("--cells", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--weak-batches", type=int, default=4, help="batches of 4,000 coupled paths for the weak error")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    levels = brownian_levels(args.seed, args.paths, args.cells, 1.0 / args.cells, GAMMA)
    x0, p0 = np.ones(args.paths), np.zeros(args.paths)
    ks = [k for k in range(len(levels)) if 1 / 128 <= levels[k]["len"] <= 1 / 8][::-1]
    common = solve_on_path("should", grad, x0, p0, GAMMA, levels, 1)
    rows = []
    hs_bias = np.array([0.4, 0.2, 0.1, 0.05])
    print("| scheme | strong order (own ref) [99% CI] | strong order (ShOULD ref) [99% CI] | RMS error at h = 1/8, "
          "1/128 | Gaussian stationary-bias slope |")
    print("|---|---|---|---|---|")
    for scheme in PATH_SCHEMES:
        own = solve_on_path(scheme, grad, x0, p0, GAMMA, levels, 1)
        fit = fit_order(*strong_sq_errors(scheme, grad, x0, p0, GAMMA, levels, ks, own), seed=args.seed)
        fit_c = fit_order(*strong_sq_errors(scheme, grad, x0, p0, GAMMA, levels, ks, common), seed=args.seed)
        bias = np.array([splitting_stationary_law(scheme, 1.0, GAMMA, h)[0, 0] - 1.0 for h in hs_bias])
        slope = fit_order_deterministic(hs_bias, bias).order if np.all(np.abs(bias) > 1e-13) else None
        rows.append({"scheme": scheme, "order": fit.order, "ci": [fit.ci_low, fit.ci_high], "order_common": fit_c.order,
                     "ci_common": [fit_c.ci_low, fit_c.ci_high], "errors": fit.errors.tolist(),
                     "hs": fit.hs.tolist(), "bias": bias.tolist(), "bias_slope": slope})
        slope_txt = "exact (bias 0)" if slope is None else f"{slope:.2f}"
        print(f"| {scheme} | {fit.order:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}] | {fit_c.order:.2f} "
              f"[{fit_c.ci_low:.2f}, {fit_c.ci_high:.2f}] | {fit.errors[0]:.2e}, {fit.errors[-1]:.2e} | {slope_txt} |")
    weak = weak_errors(args.weak_batches, args.seed)
    print("\n| scheme | E[x_h(8)^2] - E[x_ref(8)^2] at h = 1/2, 1/4, 1/8 (± 1 standard error) | slope |")
    print("|---|---|---|")
    for scheme, (hs, mean, se) in weak.items():
        resolved = np.all(np.abs(mean) > 4 * se)
        slope = f"{fit_order_deterministic(hs, mean).order:.2f}" if resolved else "not resolved"
        cells = ", ".join(f"{m:.2e} ± {e:.0e}" for m, e in zip(mean, se, strict=True))
        print(f"| {scheme} | {cells} | {slope} |")
        for row in rows:
            if row["scheme"] == scheme:
                row["weak_quartic"] = {"hs": hs.tolist(), "mean": mean.tolist(), "se": se.tolist()}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "underdamped_orders.json").write_text(json.dumps({"paths": args.paths, "cells": args.cells,
                                                                      "rows": rows}, indent=1))


def weak_errors(batches: int, seed: int, paths: int = 4000, t_end: float = 8.0,
                cells: int = 1024) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{scheme: (hs, mean, standard error)} of E[x_h(T)^2] - E[x_ref(T)^2] (module doc), over ``batches``
    independent batches of ``paths`` coupled paths."""
    diffs: dict[str, list] = {s: [] for s in PATH_SCHEMES}
    ks = [6, 5, 4]  # h = t_end / cells * 2^k = 1/2, 1/4, 1/8
    for b in range(batches):
        levels = brownian_levels(seed + 1 + b, paths, cells, t_end / cells, GAMMA)
        x0, p0 = np.ones(paths), np.zeros(paths)
        ref = solve_on_path("should", grad, x0, p0, GAMMA, levels, 1)[0] ** 2
        for scheme in PATH_SCHEMES:
            diffs[scheme].append([solve_on_path(scheme, grad, x0, p0, GAMMA, levels, k)[0] ** 2 - ref for k in ks])
    hs = np.array([levels[k]["len"] for k in ks])
    out = {}
    for scheme, batch in diffs.items():
        d = np.concatenate(batch, axis=1)
        out[scheme] = (hs, d.mean(axis=1), d.std(axis=1, ddof=1) / np.sqrt(d.shape[1]))
    return out


if __name__ == "__main__":
    main()
