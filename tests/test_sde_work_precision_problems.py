"""The SDE work-precision benchmark's problems are right, and its --quick run works end to end.

1. Closed forms solve their SDE: with X = F(W, t), Itô's formula gives f(F) = F_t + F_ww / 2 and g(F) = F_w (the
   Stratonovich chain rule: f(F) = F_t, g(F) = F_w), checked at 20 points (W, t) by central differences (steps 1e-4
   and 1e-3: truncation and rounding below 1e-7, tolerance 1e-5 relative). A planted closed form, GBM without the
   Itô correction -b^2 / 2, misses the drift by b^2 X / 2 and fails.
2. The torch twins of the Numba-loop coefficients equal them (float64, 1e-12), and the systems have the structure
   their docstrings state: Robertson's drift conserves mass, Heston's g g^T is the covariance of (dS, dv), the
   Langevin drift is (p, -U'(q) - gamma p), the heat drift is the tridiagonal Laplacian.
3. The reference solves where a too coarse one is plausible (the stiff robertson and heat100, and heston, whose
   reference is Euler–Maruyama of order 1/2) are accurate enough to judge the ladder: the reference's error (against
   the same solver with half the steps on the same Brownian path, 16 paths) is below half the reference solver's own
   error at the ladder's finest step count (measured 0.052, 0.050, 0.106; lorenz 0.021 and langevin 0.041 are not
   run here, to keep the file cheap: each costs a kernel compile, and every benchmark run prints each reference's
   own error). A planted reference only one halving finer than the ladder fails (the ratio is then 1).
4. `--quick` runs end to end (kp_linear with its closed form and heston with its reference, euler_maruyama, 32
   paths, 3 step counts): results and plots written, errors decrease with the step count, and torchsde's rows
   reproduce sdekit's errors to 1e-9 relative (same update, same Brownian increments), with a wall-time ratio at
   equal error at every point.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import sde_problems as sp  # noqa: E402
import sde_work_precision as wp  # noqa: E402

PROBLEMS = sp.problems()
CLOSED = [k for k, p in PROBLEMS.items() if p.exact is not None]
REFERENCE_CHECKED = ["robertson", "heat100", "heston"]


def sde_residual(prob: sp.BenchProblem, exact) -> float:
    """max over 20 points of the relative mismatch between (f, g)(F(W, t)) and Itô's (or Stratonovich's) formula."""
    rng = np.random.default_rng(3)
    x0 = np.broadcast_to(prob.x0, (20, 1)).copy()
    w = rng.uniform(-1.5, 1.5, (20, 1))
    t = rng.uniform(0.1, 1.0, 20)
    worst = 0.0
    for i in range(20):
        def F(ww, tt, i=i):
            return exact(x0[i:i + 1], np.array([[ww]]), tt)[0, 0]
        d1, d2 = 1e-4, 1e-3
        f_t = (F(w[i, 0], t[i] + d1) - F(w[i, 0], t[i] - d1)) / (2 * d1)
        f_w = (F(w[i, 0] + d1, t[i]) - F(w[i, 0] - d1, t[i])) / (2 * d1)
        f_ww = (F(w[i, 0] + d2, t[i]) - 2 * F(w[i, 0], t[i]) + F(w[i, 0] - d2, t[i])) / d2**2
        x = np.array([[F(w[i, 0], t[i])]])
        drift = f_t + (0.5 * f_ww if prob.sde.calculus == "ito" else 0.0)
        p = prob.sde.params
        got_f = float(np.asarray(prob.sde.drift(x, t[i], p)).ravel()[0])
        got_g = float(np.asarray(prob.sde.diffusion(x, t[i], p)).ravel()[0])
        worst = max(worst, abs(got_f - drift) / (1 + abs(drift)), abs(got_g - f_w) / (1 + abs(f_w)))
    return worst


@pytest.mark.parametrize("name", CLOSED)
def test_closed_form_solves_the_sde(name):
    prob = PROBLEMS[name]
    assert sde_residual(prob, prob.exact) < 1e-5


def test_planted_closed_form_fails():
    prob = PROBLEMS["kp_linear"]
    a, b = prob.sde.params
    planted = lambda x0, w, t: x0 * np.exp(a * t + b * w)  # noqa: E731 - no Itô correction
    assert sde_residual(prob, planted) > 0.05


def test_torch_twins_equal_numba_functions():
    torch = pytest.importorskip("torch")
    from sdekit.backends.torch.twins import torch_function

    rng = np.random.default_rng(5)
    for prob in PROBLEMS.values():
        x = np.abs(rng.standard_normal((6, prob.sde.dim))) + 0.1
        p = prob.sde.params
        tp = torch.as_tensor(np.asarray(p, dtype=float))
        for fn in (prob.sde.drift, prob.sde.diffusion):
            want = np.broadcast_to(fn(x, 0.3, p), np.shape(fn(x, 0.3, p)))
            got = torch_function(fn)(torch.as_tensor(x), 0.3, tp)
            got = np.broadcast_to(np.asarray(got), want.shape)
            assert np.allclose(got, want, rtol=1e-12, atol=1e-12), (prob.name, fn.__name__)


def test_system_structure():
    rng = np.random.default_rng(6)
    rob = PROBLEMS["robertson"].sde
    x = np.abs(rng.standard_normal((5, 3))) * np.array([1.0, 1e-4, 1.0])
    assert np.allclose(rob.drift(x, 0.0, rob.params).sum(axis=1), 0.0, atol=1e-9)  # mass conservation
    hes = PROBLEMS["heston"].sde
    mu, kappa, theta, xi, rho = hes.params
    x = np.column_stack([rng.uniform(0.5, 2, 5), rng.uniform(0.01, 0.2, 5)])
    g = hes.diffusion(x, 0.0, hes.params)
    cov = np.einsum("nij,nkj->nik", g, g)
    s, v = x[:, 0], x[:, 1]
    want = np.stack([np.stack([v * s * s, rho * xi * v * s], 1), np.stack([rho * xi * v * s, xi * xi * v], 1)], 1)
    assert np.allclose(cov, want, rtol=1e-12)
    lan = PROBLEMS["langevin"].sde
    x = rng.standard_normal((5, 2))
    u = lambda q: (q * q - 1.0) ** 2  # noqa: E731
    du = (u(x[:, 0] + 1e-6) - u(x[:, 0] - 1e-6)) / 2e-6
    want = np.column_stack([x[:, 1], -du - lan.params[0] * x[:, 1]])
    assert np.allclose(lan.drift(x, 0.0, lan.params), want, atol=1e-6)
    heat = PROBLEMS["heat100"].sde
    d = heat.dim
    lap = (np.diag(-2.0 * np.ones(d)) + np.diag(np.ones(d - 1), 1) + np.diag(np.ones(d - 1), -1)) / sp.HEAT_DXI**2
    x = rng.standard_normal((3, d))
    assert np.allclose(heat.drift(x, 0.0, heat.params), heat.params[0] * x @ lap.T, rtol=1e-12, atol=1e-8)


def reference_ratio(prob: sp.BenchProblem) -> float:
    """(reference error, N vs N/2) / (reference solver's error at the ladder's finest n against the reference)."""
    prob = replace(prob, paths=16)
    ref, ref_err = wp.reference(prob, seed=7)
    finest, _ = wp.solve(prob, prob.reference[0], 7, steps=max(prob.steps))
    return ref_err / wp.rms(finest, ref)


@pytest.mark.parametrize("name", REFERENCE_CHECKED)
def test_reference_is_finer_than_the_ladder(name):
    assert reference_ratio(PROBLEMS[name]) < 0.5


def test_planted_coarse_reference_fails():
    prob = PROBLEMS["heston"]
    planted = replace(prob, reference=(prob.reference[0], 2 * max(prob.steps)))
    assert reference_ratio(planted) > 0.5


def test_quick_run_end_to_end(tmp_path):
    # euler_maruyama on heston shares its kernel with heston's reference test: one new kernel (kp_linear) only
    assert wp.main(["--quick", "--only", "kp_linear", "heston", "--solvers", "euler_maruyama",
                    "--out", str(tmp_path)]) == 0
    rec = json.loads((tmp_path / "sde_work_precision_quick.json").read_text())
    md = (tmp_path / "sde_work_precision_quick.md").read_text()
    assert "diffrax" in md and rec["diffrax"]
    for name in ("kp_linear", "heston"):
        assert (tmp_path / f"sde_wp_quick_{name}.png").stat().st_size > 0
        assert f"## {name}" in md and f"| {name} | euler_maruyama |" in md
        res = rec["problems"][name]
        assert res["solvers"] == ["euler_maruyama"]
        mine = res["curves"]["euler_maruyama"]
        theirs = res["curves"]["torchsde:euler(euler_maruyama)"]
        assert [r["status"] for r in mine] == ["ok"] * 3
        errs = [r["error"] for r in mine]
        assert errs[0] > errs[1] > errs[2] > 0
        assert np.allclose([r["error"] for r in theirs], errs, rtol=1e-9)
        assert len(res["equal_error_ratios"]["euler_maruyama"]) == 3
        assert [r["evals"] for r in mine] == [r["steps"] for r in mine]  # one drift evaluation per step
