"""Per-path forms of user functions (form="path" / "scalar", `sdekit.forms`): the same numbers as the batch form, bit
for bit, on every backend that takes them; bad forms refused by name.

The batch problems are those of tests/problems.py (their kernels are shared with the rest of the suite); the per-path
functions below compute each row with the same operations in the same order.
"""

import numba as nb
import numpy as np
import pytest

import sdekit
from sdekit.errors import SDEKitError
from tests.problems import ADDITIVE, DIAGONAL, DIAGONAL_STRAT, GENERAL, PARAMS, SCALAR, coupled_drift


@nb.njit
def coupled_drift_path(x, t, p, out):
    d = x.shape[0]
    for i in range(d):
        out[i] = -p[0] * x[i] + p[1] * np.sin(x[(i + 1) % d]) + 0.1 * t


@nb.njit
def diag_diffusion_path(x, t, p, out):
    for i in range(x.shape[0]):
        out[i] = p[2] * (1.0 + 0.5 * np.cos(x[i]))


@nb.njit
def general_diffusion_path(x, t, p, out):
    for i in range(x.shape[0]):
        for j in range(2):
            out[i, j] = p[2] * ((1.0 if i == j else 0.0) + 0.3 * np.sin(x[i] + j))


@nb.njit
def additive_matrix_path(x, t, p, out):
    for i in range(3):
        for j in range(2):
            out[i, j] = p[2] * (1.0 + t) * (0.5 if i == j else 0.2)


@nb.njit
def drift_scalar(x, t, p):
    return -p[0] * x + p[1] * np.sin(x) + 0.1 * t


@nb.njit
def diffusion_scalar(x, t, p):
    return p[2] * (1.0 + 0.5 * np.cos(x))


def _path(sde: sdekit.SDE, drift, diffusion, form: str = "path", dim: int | None = None) -> tuple:
    """(batch SDE, the same SDE with per-path functions), at sde's dim or another."""
    dim = sde.dim if dim is None else dim
    kw = dict(noise=sde.noise, calculus=sde.calculus, brownian_dim=sde.brownian_dim, params=PARAMS)
    return (sdekit.SDE(sde.drift, sde.diffusion, dim=dim, **kw),
            sdekit.SDE(drift, diffusion, dim=dim, form=form, **kw))


CASES = {
    "euler_maruyama diagonal": (_path(DIAGONAL, coupled_drift_path, diag_diffusion_path), "euler_maruyama"),
    "euler_maruyama diagonal dim 1": (_path(DIAGONAL, coupled_drift_path, diag_diffusion_path, dim=1),
                                      "euler_maruyama"),
    "euler_maruyama scalar noise": (_path(SCALAR, coupled_drift_path, diag_diffusion_path), "euler_maruyama"),
    "euler_maruyama general": (_path(GENERAL, coupled_drift_path, general_diffusion_path), "euler_maruyama"),
    "milstein scalar form dim 1": (_path(DIAGONAL, drift_scalar, diffusion_scalar, form="scalar", dim=1),
                                   "milstein"),
    "heun diagonal": (_path(DIAGONAL_STRAT, coupled_drift_path, diag_diffusion_path), "heun"),
    "sra1 additive matrix": (_path(ADDITIVE, coupled_drift_path, additive_matrix_path), "sra1"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_path_form_gives_the_batch_numbers(case):
    """simulate on the per-path functions equals simulate on the batch ones, bit for bit (saves, final state)."""
    (batch, path), solver = CASES[case]
    x0 = np.linspace(-0.4, 0.6, batch.dim)
    kw = dict(t=(0.0, 1.0), steps=9, n_paths=5, seed=11, solver=solver, save_at=[0.3, 0.5, 1.0])
    want = sdekit.simulate(batch, x0, **kw)
    got = sdekit.simulate(path, x0, **kw)
    assert np.array_equal(got.ys, want.ys)
    assert np.isfinite(want.ys).all() and not np.array_equal(want.ys[0], want.ys[-1])


def test_path_form_ode_fixed_and_adaptive():
    """An ODE field per path: RK4 (fixed-step kernel, per-path buffers) and dopri5 (adaptive kernel, row by row)
    give the batch field's numbers."""
    batch = sdekit.ODE(coupled_drift, dim=3, params=PARAMS)
    path = sdekit.ODE(coupled_drift_path, dim=3, params=PARAMS, form="path")
    x0 = np.array([0.3, -0.2, 0.5])
    for kw in (dict(steps=7, solver="rk4"), dict(solver="dopri5", rtol=1e-6, atol=1e-8)):
        want = sdekit.simulate(batch, x0, (0.0, 1.0), n_paths=2, save_at=[0.5, 1.0], **kw)
        got = sdekit.simulate(path, x0, (0.0, 1.0), n_paths=2, save_at=[0.5, 1.0], **kw)
        assert np.array_equal(got.ys, want.ys), kw


def test_numpy_reference_takes_the_path_form():
    """The NumPy reference evaluates per-path functions row by row: its numbers equal its batch numbers and, for
    Euler–Maruyama, the Numba kernel's."""
    batch, path = _path(DIAGONAL, coupled_drift_path, diag_diffusion_path)
    x0 = np.array([0.3, -0.2, 0.5])
    kw = dict(t=(0.0, 1.0), steps=9, n_paths=4, seed=3, solver="euler_maruyama")
    ref_path = sdekit.simulate(path, x0, backend="numpy", **kw)
    assert np.array_equal(ref_path.ys, sdekit.simulate(batch, x0, backend="numpy", **kw).ys)
    assert np.array_equal(ref_path.ys, sdekit.simulate(path, x0, **kw).ys)
    scalar_batch, scalar = _path(DIAGONAL, drift_scalar, diffusion_scalar, form="scalar", dim=1)
    assert np.array_equal(sdekit.simulate(scalar, 0.2, backend="numpy", **kw).ys,
                          sdekit.simulate(scalar_batch, 0.2, backend="numpy", **kw).ys)


def test_plan_takes_the_path_form():
    """plan() on per-path functions gives simulate's numbers for new x0, seed and parameters."""
    _, path = _path(DIAGONAL, coupled_drift_path, diag_diffusion_path)
    x0 = np.array([0.3, -0.2, 0.5])
    planned = sdekit.plan(path, x0, (0.0, 1.0), steps=9, n_paths=5, solver="euler_maruyama")
    params = [1.5, 0.5, 0.3]
    got = planned(x0 + 0.1, seed=4, params=params)
    want = sdekit.simulate(path.with_params(params), x0 + 0.1, (0.0, 1.0), steps=9, n_paths=5, seed=4,
                           solver="euler_maruyama")
    assert np.array_equal(got.ys, want.ys)


def _bad_arity(x, t, p):
    return -x


def _returns_value(x, t, p, out):
    out[0] = -x[0]
    return out


def _half_written(x, t, p, out):
    out[0] = -x[0]


def _writes_x(x, t, p, out):
    x[0] = 1.0
    out[0] = 0.0


def _array_scalar(x, t, p):
    return np.array([x, x])


def _one(x, t, p, out):
    out[0] = 1.0


@pytest.mark.parametrize("make, pattern", [
    (lambda: sdekit.SDE(_one, _one, dim=1, form="rows"), r"form must be one of \('batch', 'path', 'scalar'\).*'rows'"),
    (lambda: sdekit.ODE(_one, dim=1, form=None), r"form must be one of"),
    (lambda: sdekit.SDE(drift_scalar, diffusion_scalar, dim=2, form="scalar"),
     r"form='scalar'.*needs dim = 1; got dim=2"),
    (lambda: sdekit.SDE(drift_scalar, diffusion_scalar, dim=1, noise="general", brownian_dim=2, form="scalar"),
     r"form='scalar' needs a diffusion with one value per component"),
])
def test_bad_form_refused(make, pattern):
    with pytest.raises(SDEKitError, match=pattern):
        make()


@pytest.mark.parametrize("drift, dim, form, pattern", [
    (_bad_arity, 1, "path", r"drift has form='path': expected f\(x, t, p, out\) writing out; got a function of 3 "),
    (_returns_value, 1, "path", r"drift has form='path': it must write its value into out .* return None"),
    (_half_written, 2, "path", r"drift \(form='path'\) left out\[1\] unwritten"),
    (_writes_x, 1, "path", r"drift \(form='path'\) writes into its input x"),
    (_array_scalar, 1, "scalar", r"drift has form='scalar': it must return one real number"),
    (_one, 1, "scalar", r"drift has form='scalar': expected f\(x, t, p\) -> float; got a function of 4 "),
])
def test_bad_path_function_caught_by_the_probe(drift, dim, form, pattern):
    """Each mistake is named before any kernel compiles (the probe runs the functions' Python source)."""
    diffusion = _one if form == "path" else diffusion_scalar
    sde = sdekit.SDE(drift, diffusion, dim=dim, form=form, params=PARAMS)
    with pytest.raises(SDEKitError, match=pattern):
        sdekit.simulate(sde, np.zeros(dim), (0.0, 1.0), steps=2, n_paths=2)


def test_torch_backend_refuses_the_path_form():
    pytest.importorskip("torch")
    sde = sdekit.SDE(_one, _one, dim=1, form="path")
    with pytest.raises(SDEKitError, match=r"form='path' .* runs on backend='numba' or 'numpy'"):
        sdekit.simulate(sde, np.zeros(1), (0.0, 1.0), steps=2, n_paths=2, backend="torch")
