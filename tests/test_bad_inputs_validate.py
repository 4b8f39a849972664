"""Bad input across the validation toolkit (`sdekit.validate`, `sdekit.testing`), tried as a new user would.

Each case in BAD_INPUTS is (id, call, exception type, regex): the call must raise that exception with a message
naming the argument (the regex holds its name). HANDLED cases are inputs that are unusual but unambiguous: they must
give the right answer, checked against the plain form of the same input.

Everything here is cheap: errors are raised before any solve, and the few solves use built-in problems whose
kernels the suite already compiles (GBM and Brownian motion under Euler–Maruyama, a handful of paths).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.stats

import sdekit.testing as sdtest
from sdekit.errors import SDEKitError
from sdekit.targets import DoubleWell, Gaussian
from sdekit.validate import (
    brownian_problem,
    check_fokker_planck_identity,
    classify_bias,
    classify_stationarity,
    compare_with_law,
    cvm_sf,
    cvm_test,
    deterministic_check,
    dynkin_test,
    em_weak_errors_linear,
    fit_order,
    fit_order_deterministic,
    fit_weak_order,
    fokker_planck_chi2_test,
    fokker_planck_reference,
    gaussian_law_tests,
    gbm_problem,
    generator,
    generator_scan,
    generator_test,
    ks_law_test,
    ks_test,
    law_1d,
    linear_moment_test,
    linear_scheme_law,
    loglog_slope,
    mmd_test,
    moment_chi2,
    moment_test,
    random_directions,
    stationarity_check,
    stein_test,
    strong_errors,
    ula_law,
    weak_errors,
    work_precision,
)
from sdekit.validate.generator import coordinate, cosine, derivative_errors
from sdekit.validate.order import OrderFit, brownian_terminal
from sdekit.validate.work_precision import WorkPrecision

RNG = np.random.default_rng(7)
G1 = Gaussian([0.0], [[1.0]])
G2 = Gaussian([0.0, 1.0], [[1.0, 0.2], [0.2, 2.0]])
S1 = RNG.standard_normal(200)
S2 = G2.sample(300, seed=1)
PI = (G2.mean, G2.cov)
GBM = gbm_problem(0.5, 1.0)
BM2 = brownian_problem(2)
HS = 0.5 ** np.arange(3)
REPORT = compare_with_law(S1, G1, tests=("ks",))
WP = dict(base_steps=4, levels=2, n_paths=8, repeats=1)
SE = dict(base_steps=4, levels=2, n_paths=8, seed=0)


def _x(x: np.ndarray) -> np.ndarray:
    return x[:, 0]


def _draws(h: float, seed: int) -> np.ndarray:
    return G2.sample(400, seed=seed)


def _biased_draws(h: float, seed: int) -> np.ndarray:
    return 3.0 * G2.sample(400, seed=seed)


def _wp(problem: Any, x0: Any = 1.0, **kw: Any) -> Any:
    return work_precision(problem, ["euler_maruyama"], x0, 1.0, **{**WP, **kw})


def _cb(run: Callable, h: float = 0.1, **kw: Any) -> Any:
    return classify_bias(run, h, **{"exact_law": PI, **kw})


def _st(sde: Any = GBM.sde, target: Any = G1, **kw: Any) -> Any:
    return stationarity_check(sde, target, **{"h": 0.1, "steps": 2, **kw})


def _gbm_exact(x0: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x0 * np.exp(w)


def _gbm_exact_flat(x0: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (x0 * np.exp(w))[:, 0]


def _bm_exact(x0: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x0 + w


def _ou_drift(x: np.ndarray, t: float) -> np.ndarray:
    return -x


def _unit_diffusion(x: np.ndarray, t: float) -> np.ndarray:
    return np.ones_like(x)


def _normal_log_prob(x: np.ndarray, t: float) -> np.ndarray:
    return -0.5 * np.sum(x**2, axis=1)


BAD_INPUTS: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    # compare_with_law and the one-sample tests
    ("compare-complex-1d", lambda: compare_with_law(S1 + 1j, G1), SDEKitError, r"^sample must be real; got complex"),
    ("compare-complex-2d", lambda: compare_with_law(S2 + 0.5j, G2), SDEKitError, r"^sample must be real"),
    ("compare-nan-row", lambda: compare_with_law(np.r_[S1, np.nan], G1), SDEKitError, r"sample has 1 non-finite row"),
    ("compare-inf-row", lambda: compare_with_law(np.vstack([S2, [np.inf, 0.0]]), G2), SDEKitError,
     r"sample has 1 non-finite rows \(first: row 300\)"),
    ("compare-wrong-dim", lambda: compare_with_law(np.c_[S2, S2[:, :1]], G2), SDEKitError,
     r"sample must have shape \(N, 2\)"),
    ("compare-zero-rows", lambda: compare_with_law(np.zeros((0, 2)), G2), SDEKitError, r"sample must hold at least 20"),
    ("compare-3d-array-wrong-size", lambda: compare_with_law(np.zeros((30, 3, 1)), G2), SDEKitError,
     r"sample must have shape \(N, 2\), or \(N, \*shape\) with prod\(shape\) = 2, .*got shape \(30, 3, 1\)"),
    ("compare-scalar", lambda: compare_with_law(1.0, G1), SDEKitError, r"sample must have shape .* got a scalar"),
    ("compare-empty-draws", lambda: compare_with_law(np.zeros((30, 0, 2)), G2), SDEKitError,
     r"sample must have at least one coordinate per draw; got shape \(30, 0, 2\)"),
    ("compare-strings", lambda: compare_with_law(np.array(["a"] * 30), G1), SDEKitError,
     r"sample must be an array of real numbers"),
    ("compare-ragged", lambda: compare_with_law([[1.0, 2.0], [1.0]] * 20, G2), SDEKitError,
     r"sample must be an array of real numbers"),
    ("compare-booleans", lambda: compare_with_law(np.ones(50, bool), G1), SDEKitError, r"sample must be real numbers"),
    ("compare-projections-float", lambda: compare_with_law(S2, G2, projections=2.5), SDEKitError, r"projections"),
    ("compare-projections-negative", lambda: compare_with_law(S2, G2, projections=-1), SDEKitError,
     r"projections must be an integer >= 0"),
    ("compare-tests-unknown", lambda: compare_with_law(S1, G1, tests=("ks", "ad")), SDEKitError,
     r"tests must be drawn from .* unknown \['ad'\]"),
    ("compare-tests-none", lambda: compare_with_law(S1, G1, tests=None), SDEKitError, r"tests must be a sequence"),
    ("compare-score-not-callable", lambda: compare_with_law(S2, G2, score=3.0), SDEKitError, r"score must be callable"),
    ("compare-score-wrong-shape", lambda: compare_with_law(S2, G2, score=_x), SDEKitError,
     r"score returned shape \(300,\); expected \(300, 2\)"),
    ("compare-alpha-zero", lambda: compare_with_law(S1, G1, alpha=0.0), SDEKitError, r"alpha must be in \(0, 1\)"),
    ("compare-target-string", lambda: compare_with_law(S1, "normal"), SDEKitError, r"law must be a Law1D"),
    ("ks-complex", lambda: ks_test(S1 + 1j, G1), SDEKitError, r"^sample must be real"),
    ("ks-2d-sample", lambda: ks_test(S2, G1), SDEKitError, r"sample must be 1-D"),
    ("ks-cdf-is-a-density-times-2", lambda: ks_test(S1, lambda z: 2.0 * scipy.stats.norm.cdf(z)), SDEKitError,
     r"law's cdf must return probabilities in \[0, 1\]"),
    ("ks-cdf-scalar", lambda: ks_test(S1, lambda z: 0.5), SDEKitError, r"law's cdf returned shape \(\); expected"),
    ("cvm-complex", lambda: cvm_test(S1 + 1j, G1), SDEKitError, r"^sample must be real"),
    ("cvm-cdf-nan", lambda: cvm_test(S1, lambda z: np.where(z > 2, np.nan, 0.5)), SDEKitError,
     r"law's cdf returned \d+ non-finite"),
    ("moment-complex", lambda: moment_test(S2 + 1j, G2), SDEKitError, r"^sample must be real"),
    ("moment-target-not-gaussian", lambda: moment_test(S2, DoubleWell()), SDEKitError, r"target must be a Gaussian"),
    ("moment-wrong-dim", lambda: moment_test(S1, G2), SDEKitError, r"sample must have shape \(N, 2\)"),
    ("stein-complex", lambda: stein_test(S2 + 1j, G2.score), SDEKitError, r"^sample must be real"),
    ("stein-score-none", lambda: stein_test(S2, None), SDEKitError, r"score must be callable"),
    ("stein-score-complex", lambda: stein_test(S2, lambda x: G2.score(x) + 1j), SDEKitError,
     r"score's output must be real"),
    ("stein-score-nan", lambda: stein_test(S2, lambda x: np.where(x > 1.0, np.nan, -x)), SDEKitError,
     r"score returned \d+ non-finite"),
    ("mmd-complex", lambda: mmd_test(S2 + 1j, G2), SDEKitError, r"^sample must be real"),
    ("mmd-max-points-zero", lambda: mmd_test(S2, G2, max_points=0), SDEKitError, r"max_points must be an integer >= 2"),
    ("mmd-lengthscale-string", lambda: mmd_test(S2, G2, lengthscale="a"), SDEKitError, r"lengthscale must be a real"),
    ("mmd-lengthscale-negative", lambda: mmd_test(S2, G2, lengthscale=-1.0), SDEKitError, r"lengthscale must be > 0"),
    ("law-1d-from-2d-gaussian", lambda: law_1d(G2), SDEKitError, r"law must be 1-D"),
    # classify_bias
    ("bias-run-one-column", lambda: _cb(lambda h, s: _draws(h, s)[:, :1]), SDEKitError,
     r"run\(h, seed\) returned samples of shape \(400, 1\) for h = 0.1; expected \(n, 2\) to match exact_law"),
    ("bias-run-three-columns", lambda: _cb(lambda h, s: np.c_[_draws(h, s), _draws(h, s)[:, :1]]), SDEKitError,
     r"run\(h, seed\) returned samples of shape \(400, 3\)"),
    ("bias-run-complex", lambda: _cb(lambda h, s: _draws(h, s) + 0j), SDEKitError,
     r"run\(h, seed\)'s output at h = 0.1 must be real"),
    ("bias-run-3d-wrong-size", lambda: _cb(lambda h, s: np.repeat(_draws(h, s)[:, :, None], 3, axis=2)), SDEKitError,
     r"run\(h, seed\) returned samples of shape \(400, 2, 3\) .*prod\(shape\) = 2"),
    ("bias-run-not-callable", lambda: _cb("sampler"), SDEKitError, r"run must be callable"),
    ("bias-run-shape-changes-with-h", lambda: _cb(lambda h, s: _draws(h, s)[: 200 if h < 0.1 else 400]), SDEKitError,
     r"run must return the same shape at h and h/2"),
    ("bias-exact-law-one-element", lambda: _cb(_draws, exact_law=(G2.mean,)), SDEKitError,
     r"exact_law must be a pair \(mean, cov\)"),
    ("bias-exact-law-not-positive-definite", lambda: _cb(_draws, exact_law=(G2.mean, -np.eye(2))), SDEKitError,
     r"exact_law's cov must be positive definite"),
    ("bias-exact-law-shapes-disagree", lambda: _cb(_draws, exact_law=(G2.mean, np.eye(3))), SDEKitError,
     r"exact_law must be \(mean of shape \(2,\), cov of shape \(2, 2\)\)"),
    ("bias-h-bool", lambda: _cb(_draws, h=True), SDEKitError, r"h must be a real number"),
    ("bias-h-zero", lambda: _cb(_draws, h=0.0), SDEKitError, r"h must be > 0"),
    ("bias-scheme-law-bad-pair", lambda: _cb(_biased_draws, h=0.5, scheme_law=lambda h: (0.0,)), SDEKitError,
     r"scheme_law\(0.5\) must be a pair"),
    ("bias-features-complex", lambda: classify_bias(_draws, 0.1, features=lambda x: x + 1j, exact_values=[0.0, 1.0]),
     SDEKitError, r"features's output must be real"),
    ("bias-exact-values-nan", lambda: classify_bias(_draws, 0.1, features=lambda x: x, exact_values=[0.0, np.nan]),
     SDEKitError, r"exact_values must be a finite 1-D array"),
    # strong_errors / weak_errors / work_precision / fits
    ("wp-exact-fn-outer-broadcast", lambda: _wp(GBM.sde, exact_fn=lambda x0, w: x0 * np.exp(w[:, 0])), SDEKitError,
     r"exact_fn returned shape \(8, 8\); expected \(8, 1\) = \(n_paths, dim\)"),
    ("wp-exact-fn-transposed", lambda: _wp(BM2, np.zeros(2), exact_fn=lambda x0, w: (x0 + w).T), SDEKitError,
     r"exact_fn returned shape \(2, 8\); expected \(8, 2\)"),
    ("wp-exact-fn-nan", lambda: _wp(GBM.sde, exact_fn=lambda x0, w: x0 * np.nan), SDEKitError,
     r"exact_fn returned 8 non-finite values"),
    ("wp-exact-fn-complex", lambda: _wp(GBM.sde, exact_fn=lambda x0, w: x0 * np.exp(w) + 0j), SDEKitError,
     r"exact_fn's output must be real"),
    ("wp-exact-fn-not-callable", lambda: _wp(GBM.sde, exact_fn=3), SDEKitError, r"exact_fn must be callable"),
    ("wp-x0-wrong-size", lambda: _wp(GBM, [1.0, 2.0, 3.0]), SDEKitError,
     r"x0 must be one state of shape \(1,\) or one per path of shape \(8, 1\)"),
    ("wp-x0-complex", lambda: _wp(GBM, 1.0 + 1j), SDEKitError, r"x0 must be real"),
    ("wp-t0-after-t1", lambda: _wp(GBM, t0=2.0), SDEKitError, r"t1 must be > t0"),
    ("wp-phi-complex", lambda: _wp(GBM, error="weak", phi=lambda x: x[:, 0] + 1j), SDEKitError,
     r"phi's output must be real"),
    ("wp-phi-wrong-shape", lambda: _wp(GBM, error="weak", phi=lambda x: x.T), SDEKitError,
     r"phi must map states \(n, dim\) to values \(n,\); got shape \(1, 8\)"),
    ("strong-base-steps-zero", lambda: strong_errors(GBM.sde, "euler_maruyama", 1.0, 1.0, _gbm_exact, 0, 2, 8, 0),
     SDEKitError, r"base_steps must be an integer >= 1"),
    ("strong-levels-float", lambda: strong_errors(GBM.sde, "euler_maruyama", 1.0, 1.0, _gbm_exact, 4, 2.5, 8, 0),
     SDEKitError, r"levels must be an integer >= 2"),
    ("strong-reference-levels-negative",
     lambda: strong_errors(GBM.sde, "euler_maruyama", 1.0, 1.0, None, 4, 2, 8, 0, reference_levels=-1),
     SDEKitError, r"reference_levels must be an integer >= 0"),
    ("strong-problem-string", lambda: strong_errors("gbm", "euler_maruyama", 1.0, 1.0, _gbm_exact, 4, 2, 8, 0),
     SDEKitError, r"problem must be an sdekit.SDE or a ClosedForm"),
    ("weak-seed-negative", lambda: weak_errors(GBM, "euler_maruyama", 1.0, 1.0, _x, **{**SE, "seed": -1}), SDEKitError,
     r"seed must be an integer >= 0"),
    ("weak-exact-expectation-nan",
     lambda: weak_errors(GBM, "euler_maruyama", 1.0, 1.0, _x, exact_expectation=np.nan, coupled=False, **SE),
     SDEKitError, r"exact_expectation must be finite"),
    ("weak-exact-fn-outer-broadcast",
     lambda: weak_errors(GBM.sde, "euler_maruyama", 1.0, 1.0, _x, exact_fn=lambda x0, w: x0 * np.exp(w[:, 0]), **SE),
     SDEKitError, r"exact_fn returned shape \(8, 8\)"),
    ("fit-order-n-boot-zero", lambda: fit_order(HS, np.ones((3, 10)), n_boot=0), SDEKitError,
     r"n_boot must be an integer >= 10"),
    ("fit-order-level-above-one", lambda: fit_order(HS, np.ones((3, 10)), level=1.5), SDEKitError,
     r"level must be in \(0, 1\)"),
    ("fit-order-complex", lambda: fit_order(HS, np.ones((3, 10)) + 1j), SDEKitError, r"sq_errors must be real"),
    ("fit-order-one-path", lambda: fit_order(HS, np.ones((3, 1))), SDEKitError,
     r"sq_errors must hold at least 2 paths"),
    ("fit-weak-order-three-tuple", lambda: fit_weak_order((1, 2, 3)), SDEKitError,
     r"weak must be a WeakErrors or a pair \(hs, diffs\)"),
    ("loglog-lengths-differ", lambda: loglog_slope([0.5, 0.25], [1.0, 2.0, 3.0]), SDEKitError,
     r"hs and errors must be 1-D of one common length"),
    ("fit-deterministic-hs-strings", lambda: fit_order_deterministic("abc", [1.0, 0.5, 0.25]), SDEKitError,
     r"hs must be an array of real numbers"),
    ("em-weak-linear-x0-wrong-size", lambda: em_weak_errors_linear(np.eye(2), np.eye(2), [1.0, 2.0, 3.0], 1.0, 4, 3),
     SDEKitError, r"x0 must be a finite state of shape \(2,\)"),
    # stationarity
    ("stationarity-sde-string", lambda: _st("sde"), SDEKitError, r"sde must be an sdekit.SDE"),
    ("stationarity-target-string", lambda: _st(target="N(0, 1)"), SDEKitError, r"target must be a Gaussian"),
    ("stationarity-h-string", lambda: _st(h="0.1"), SDEKitError, r"h must be a real number"),
    ("stationarity-too-few-paths", lambda: _st(n_paths=5), SDEKitError, r"n_paths must be an integer >= 20"),
    ("stationarity-scheme-law-wrong-dim", lambda: _st(scheme_law=G2), SDEKitError,
     r"scheme_law must be a law of the same dim as the target \(1\)"),
    ("stationarity-tests-unknown", lambda: _st(tests=("ks", "anderson")), SDEKitError, r"tests must be drawn from"),
    ("stationarity-seed-negative", lambda: _st(seed=-3), SDEKitError, r"seed must be an integer >= 0"),
    ("ula-law-h-string", lambda: ula_law(G2, "0.1"), SDEKitError, r"h must be a real number"),
    ("linear-scheme-law-m-wrong-shape", lambda: linear_scheme_law(np.eye(3), np.eye(2), np.zeros(2), np.eye(2), 3),
     SDEKitError, r"m must be finite of shape \(2, 2\)"),
    # generator checks
    ("generator-x-complex", lambda: generator(GBM.sde, coordinate(0), np.array([1.0 + 1j])), SDEKitError,
     r"^x must be real"),
    ("generator-scan-states-complex", lambda: generator_scan(GBM.sde, np.array([[1.0 + 1j]])), SDEKitError,
     r"^states must be real"),
    ("generator-test-sampler-complex",
     lambda: generator_test(GBM.sde, [1.0], n=10, sampler=lambda x, t, h, dw: x + 0j), SDEKitError,
     r"sampler step's output must be real"),
    ("dynkin-x0-complex", lambda: dynkin_test(GBM.sde, [1.0 + 1j], (0.0, 1.0), steps=2, n_paths=4), SDEKitError,
     r"^x0 must be real"),
    ("linear-moment-sample-complex", lambda: linear_moment_test(S2 + 1j, np.eye(2), np.eye(2), np.zeros(2), 1.0),
     SDEKitError, r"^sample must be real"),
    ("cosine-direction-complex", lambda: cosine([1.0 + 1j, 0.0]), SDEKitError, r"^u must be real"),
    ("derivative-errors-x-3d", lambda: derivative_errors(coordinate(0), np.zeros((2, 1, 1))), SDEKitError,
     r"x must be a state \(d,\) or states \(n, d\)"),
    # Fokker-Planck
    ("fp-reference-p0-complex-masses",
     lambda: fokker_planck_reference(GBM.sde, np.ones(50) + 1j, (0.0, 1.0), 0.1, 5.0, 50, 10), SDEKitError,
     r"p0 \(cell masses\) must be real"),
    ("fp-chi2-samples-complex",
     lambda: fokker_planck_chi2_test(S1 + 1j, GBM.sde, 1.0, (0.0, 1.0), 0.1, 5.0), SDEKitError,
     r"^samples must be real"),
    ("fp-identity-x-complex",
     lambda: check_fokker_planck_identity(_ou_drift, _unit_diffusion, _normal_log_prob, [1.0 + 1j], 0.5),
     SDEKitError, r"^x must be real"),
    ("fp-identity-eps-wrong-shape",
     lambda: check_fokker_planck_identity(_ou_drift, _unit_diffusion, _normal_log_prob, [[1.0, 0.0]], 0.5,
                                          eps=[1e-3, 1e-3, 1e-3]),
     SDEKitError, r"eps must be a number or one step per coordinate, shape \(2,\)"),
    # building blocks: law tests, fits, reports
    ("gaussian-law-tests-complex", lambda: gaussian_law_tests("x", S2 + 1j, *PI), SDEKitError, r"^sample must be real"),
    ("gaussian-law-tests-cov-not-positive-definite", lambda: gaussian_law_tests("x", S2, G2.mean, -np.eye(2)),
     SDEKitError, r"^cov must be positive definite"),
    ("gaussian-law-tests-mean-wrong-size", lambda: gaussian_law_tests("x", S2, [0.0, 1.0, 2.0], G2.cov), SDEKitError,
     r"mean of shape \(2,\).*got mean \(3,\)"),
    ("gaussian-law-tests-alpha-two", lambda: gaussian_law_tests("x", S2, *PI, alpha=2.0), SDEKitError,
     r"alpha must be in \(0, 1\)"),
    ("ks-law-test-complex", lambda: ks_law_test("x", S1 + 1j, scipy.stats.norm.cdf), SDEKitError,
     r"^sample must be real"),
    ("moment-chi2-one-dimensional", lambda: moment_chi2(S1), SDEKitError, r"z must be whitened samples of shape"),
    ("deterministic-check-error-string", lambda: deterministic_check("ode", "max error", "x", 1e-6), SDEKitError,
     r"error must be a real number"),
    ("cvm-sf-string", lambda: cvm_sf("a"), SDEKitError, r"w must be a real number"),
    ("random-directions-float-dim", lambda: random_directions(2.5, 3), SDEKitError, r"d must be an integer >= 1"),
    ("em-weak-linear-recursion-wrong-shape",
     lambda: em_weak_errors_linear(np.eye(2), np.eye(2), np.ones(2), 1.0, 4, 3,
                                   recursion=lambda m, s, h, n: (m[:, None], s)),
     SDEKitError, r"recursion's mean returned shape \(2, 1\); expected \(2,\)"),
    ("brownian-terminal-zero-steps", lambda: brownian_terminal(0, 4, 1, 0.0, 1.0, 0), SDEKitError,
     r"fine_steps must be an integer >= 1"),
    ("linear-moment-test-negative-time", lambda: linear_moment_test(S2, np.eye(2), np.eye(2), np.zeros(2), -1.0),
     SDEKitError, r"t must be >= 0"),
    ("classify-stationarity-not-a-report", lambda: classify_stationarity("passed", None), SDEKitError,
     r"against_target must be a Report"),
    ("report-figure-missing-folder", lambda: REPORT.figure("/nonexistent-sdekit-folder/qq.png"), SDEKitError,
     r"path: the folder '/nonexistent-sdekit-folder' does not exist"),
    ("report-figure-path-int", lambda: REPORT.figure(3), SDEKitError, r"path must be a file path"),
    ("work-precision-plot-missing-folder",
     lambda: WorkPrecision({}, "strong", 8, "gbm").plot("/nonexistent-sdekit-folder/wp.png"), SDEKitError,
     r"path: the folder '/nonexistent-sdekit-folder' does not exist"),
    # sdekit.testing
    ("testing-stable-step-negative-fraction", lambda: sdtest.stable_step(G1, -0.5), SDEKitError,
     r"fraction must be in \(0, 1\)"),
    ("testing-stable-step-target-string", lambda: sdtest.stable_step("N(0, 1)", 0.5), SDEKitError,
     r"target must be a Gaussian"),
    ("testing-spd-eigenvalues-swapped", lambda: sdtest.spd_matrices(2, eig_min=2.0, eig_max=0.2), SDEKitError,
     r"eig_min must be <= eig_max"),
    ("testing-spd-dim-zero", lambda: sdtest.spd_matrices(0), SDEKitError, r"dim must be an integer >= 1"),
    ("testing-gaussian-targets-dims-swapped", lambda: sdtest.gaussian_targets(min_dim=3, max_dim=2), SDEKitError,
     r"min_dim must be <= max_dim"),
    ("testing-mixtures-min-weight-negative", lambda: sdtest.gaussian_mixtures(min_weight=-0.1), SDEKitError,
     r"min_weight must be > 0"),
    ("testing-ou-decay-negative", lambda: sdtest.ou_parameters(decay_min=-1.0), SDEKitError, r"decay_min must be > 0"),
    ("testing-step-fractions-hi-one", lambda: sdtest.step_fractions(0.1, 1.0), SDEKitError, r"lo <= hi < 1"),
    ("testing-assert-order-not-a-fit", lambda: sdtest.assert_order("fit", 1.0), SDEKitError,
     r"fit must be an OrderFit"),
    ("testing-assert-order-expected-nan",
     lambda: sdtest.assert_order(OrderFit(1.0, 0.9, 1.1, np.ones(2), HS[:2]), np.nan), SDEKitError,
     r"expected must be finite"),
    ("testing-assert-stationary-allow-bias-without-scheme-law",
     lambda: sdtest.assert_stationary(GBM.sde, G1, h=0.1, steps=2, allow_bias=True), SDEKitError,
     r"allow_bias=True needs scheme_law"),
    ("testing-assert-law-complex", lambda: sdtest.assert_law(S1 + 1j, G1), SDEKitError, r"^sample must be real"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(call: Callable[[], Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        call()


def test_bad_input_cases_are_distinct() -> None:
    ids = [c[0] for c in BAD_INPUTS]
    assert len(set(ids)) == len(ids) >= 40


# --------------------------------------------------------------------------------------------- handled correctly


def _strong(exact_fn: Callable, problem: Any = GBM.sde, x0: Any = 1.0) -> np.ndarray:
    return strong_errors(problem, "euler_maruyama", x0, 1.0, exact_fn, 4, 2, 8, 0)[1]


def _bias_features(exact_law: Any) -> list[tuple[float, ...]]:
    report = classify_bias(_draws, 0.1, exact_law=exact_law)
    return [(f.name, f.exact, f.d_h, f.se_h) for f in report.features] + [(report.verdict,)]


def _scheme_ks(scheme_law: Any) -> list[float]:
    report = _st(scheme_law=scheme_law, n_paths=40, tests=("ks",))
    return [r.statistic for r in report.against_scheme.results]


HANDLED: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
    # exact_fn returning (n,) for a one-dimensional problem is read as the single column
    ("exact-fn-flat-for-dim-1", lambda: _strong(_gbm_exact_flat), lambda: _strong(_gbm_exact)),
    # a ClosedForm problem supplies its own exact solution
    ("strong-errors-closed-form", lambda: strong_errors(GBM, "euler_maruyama", 1.0, 1.0, None, 4, 2, 8, 0)[1],
     lambda: _strong(GBM.exact_at(1.0))),
    # x0 given per path as (n_paths,) for dim 1
    ("x0-per-path-flat", lambda: _strong(_gbm_exact, x0=np.ones(8)), lambda: _strong(_gbm_exact, x0=[[1.0]])),
    # x0 one state of shape (1, dim)
    ("x0-one-row", lambda: _strong(_bm_exact, BM2, [[0.5, -0.5]]), lambda: _strong(_bm_exact, BM2, [0.5, -0.5])),
    # a single test name as a string
    ("compare-tests-as-string", lambda: [r.test for r in compare_with_law(S1, G1, tests="ks").results],
     lambda: [r.test for r in compare_with_law(S1, G1, tests=("ks",)).results]),
    # a Gaussian as classify_bias's exact_law
    ("bias-exact-law-gaussian", lambda: _bias_features(G2), lambda: _bias_features(PI)),
    # in 1-D a scheme law may be anything law_1d takes, e.g. a frozen scipy distribution
    ("stationarity-scheme-law-scipy-1d", lambda: _scheme_ks(scipy.stats.norm(0.0, 1.0)), lambda: _scheme_ks(G1)),
    # a sample (N, *shape) is flattened row-wise: (300, 2, 1) is the (300, 2) sample
    ("compare-sample-n-by-shape", lambda: [r.statistic for r in compare_with_law(S2.reshape(300, 2, 1), G2).results],
     lambda: [r.statistic for r in compare_with_law(S2, G2).results]),
    # a 1-D score returning (n,)
    ("stein-score-flat-1d", lambda: stein_test(S1, lambda x: -x[:, 0]).statistic,
     lambda: stein_test(S1, lambda x: -x).statistic),
]


@pytest.mark.parametrize("got, expected", [c[1:] for c in HANDLED], ids=[c[0] for c in HANDLED])
def test_unusual_but_unambiguous_input_gives_the_right_answer(got: Callable[[], Any],
                                                              expected: Callable[[], Any]) -> None:
    a, b = got(), expected()
    if isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b
