"""The fused torch loop (solver="fused_euler_maruyama" | "fused_heun" on backend="torch").

* Bit equality: a NumPy loop written from the formulas of `sdekit.backends.torch.fused` (Euler–Maruyama; Heun), driven
  by `counter_normals` and calling the SDE's own functions on NumPy arrays, equals the fused torch loop to the bit in
  float64 on the CPU, at every step: the built-in 1-D OU (additive matrix noise), a nonlinear user SDE with diagonal
  noise (written with +, -, *, / only, so that NumPy and torch evaluate it identically), a decreasing grid, and two
  noise substeps.
* Law: the Euler–Maruyama chain of the OU dX = -theta X dt + sigma dW is Gaussian with the moments of
  `OrnsteinUhlenbeck.euler_maruyama_law`, and Heun's chain x' = a x + b dW (a = 1 - theta h + (theta h)^2 / 2,
  b = sigma (1 - theta h / 2)) has variance b^2 h sum_j a^{2j}: the fused loop's final states pass KS against each
  exact law at alpha = 1e-6; the planted bug (every step reuses step 0's normals) fails it.
* A path's numbers do not depend on the batch: rows of a 20-path solve equal a 5-path solve.
* With zero noise the fused Heun step is the ODE's Heun method (torchdiffeq's heun2 to rounding).
* The reverse SDE of a VP diffusion with a torch score (Gaussian data, exact score) runs through the fused loop and
  reaches the data law (KS at 1e-6).
* Errors: non-finite paths are reported at the step the NumPy loop finds them (or masked and counted); a fused
  method refuses the other calculus, and ODEs.
"""

import math

import numpy as np
import pytest
import scipy.stats as st

torch = pytest.importorskip("torch")
pytest.importorskip("torchsde")

from sdekit import ODE, SDE, simulate  # noqa: E402
from sdekit.backends.torch import fused  # noqa: E402
from sdekit.errors import IncompatibleSolverError, NonFiniteError, SDEKitError  # noqa: E402
from sdekit.grid import fixed_grid  # noqa: E402
from sdekit.noise.counter import counter_normals  # noqa: E402
from sdekit.params import cast_params  # noqa: E402
from sdekit.processes.ou import OrnsteinUhlenbeck  # noqa: E402
from sdekit.validate.onesample import ks_test  # noqa: E402

torch.set_num_threads(1)
ALPHA = 1e-6
THETA, SIGMA = 1.5, 0.8


def double_well(x, t, p):
    return p[0] * x - x * x * x + 0.5 * t


def soft_noise(x, t, p):
    return p[1] / (1.0 + x * x)


WELL = SDE(double_well, soft_noise, dim=2, noise="diagonal", params=np.array([1.0, 0.7]), name="well")
WELL_STRAT = SDE(double_well, soft_noise, dim=2, noise="diagonal", calculus="stratonovich",
                 params=np.array([1.0, 0.7]), name="well_strat")
OU = OrnsteinUhlenbeck(THETA, SIGMA)


def noise_term(problem, gx, dw):
    """g dW in the layout of the lowering's g_prod."""
    if problem.matrix_noise:
        return np.einsum("nij,nj->ni", np.broadcast_to(gx, (dw.shape[0], problem.dim, problem.m)), dw)
    if problem.noise == "scalar":
        return gx * dw[:, :1]
    return gx * dw


def numpy_loop(problem, x0, ts, seed, family, substeps=1):
    """The fused loop's formulas in NumPy with counter_normals; returns the states at every grid time."""
    p = cast_params(problem.params, np.float64)
    f, g = problem.drift, problem.diffusion
    n, m = x0.shape[0], problem.m
    y = x0.copy()
    out = [y]
    for k in range(ts.size - 1):
        t, h = float(ts[k]), float(ts[k + 1] - ts[k])
        z = counter_normals(seed, n, substeps * m, draw_offset=k * substeps * m)
        sq = math.sqrt(abs(h) / substeps)
        dw = sq * z[:, :m]
        for j in range(1, substeps):
            dw = dw + sq * z[:, j * m:(j + 1) * m]
        if family == "euler_maruyama":
            y = y + (f(y, t, p) * h + noise_term(problem, g(y, t, p), dw))
        else:
            f0, n0 = f(y, t, p), noise_term(problem, g(y, t, p), dw)
            xt = y + f0 * h + n0
            y = y + (0.5 * (f0 + f(xt, t + h, p)) * h + 0.5 * (n0 + noise_term(problem, g(xt, t + h, p), dw)))
        out.append(y)
    return np.stack(out)


def fused_solve(problem, x0, t, solver, **kw):
    return simulate(problem, torch.as_tensor(x0), t, backend="torch", solver=solver, save_at="steps", **kw)


CASES = [  # (problem, solver, family, t, steps, substeps)
    (OU.sde, "fused_euler_maruyama", "euler_maruyama", (0.0, 1.0), 30, 1),
    (OU.sde, "fused_heun", "heun", (0.0, 1.0), 30, 2),
    (WELL, "fused_euler_maruyama", "euler_maruyama", (0.0, 1.0), 30, 1),
    (WELL, "fused_euler_maruyama", "euler_maruyama", (1.0, 0.2), 25, 2),
    (WELL_STRAT, "fused_heun", "heun", (0.0, 1.0), 30, 1),
]


@pytest.mark.parametrize("problem,solver,family,t,steps,substeps", CASES,
                         ids=[f"{c[0].name}-{c[2]}-{c[3][0]}-{c[5]}" for c in CASES])
def test_fused_loop_equals_numpy_loop_to_the_bit(problem, solver, family, t, steps, substeps):
    x0 = np.linspace(-0.8, 0.9, 7 * problem.dim).reshape(7, problem.dim)
    sol = fused_solve(problem, x0, t, solver, steps=steps, seed=13, noise_substeps=substeps)
    ref = numpy_loop(problem, x0, sol.ts, 13, family, substeps)  # the grid the solve used (save_at="steps")
    assert sol.stats.solver == f"fused:{family}" and sol.stats.evals == steps * (2 if family == "heun" else 1)
    assert np.array_equal(sol.ys.numpy(), ref)


def test_device_noise_path_gives_the_same_solve(monkeypatch):
    """The fused loop with the torch noise operations (what runs on a GPU), here on the CPU: the same bits."""
    from sdekit.backends.torch import counter_noise

    x0 = np.linspace(-0.8, 0.9, 14).reshape(7, 2)
    ref = fused_solve(WELL_STRAT, x0, (0.0, 1.0), "fused_heun", steps=12, seed=13, noise_substeps=2).ys
    monkeypatch.setattr(counter_noise, "uses_numba", lambda device: False)
    got = fused_solve(WELL_STRAT, x0, (0.0, 1.0), "fused_heun", steps=12, seed=13, noise_substeps=2).ys
    assert torch.equal(got, ref)


def test_rows_do_not_depend_on_the_batch_size():
    x0 = np.linspace(-1.0, 1.0, 40).reshape(20, 2)
    big = fused_solve(WELL, x0, (0.0, 1.0), "fused_euler_maruyama", steps=20, seed=3).ys
    small = fused_solve(WELL, x0[:5], (0.0, 1.0), "fused_euler_maruyama", steps=20, seed=3).ys
    assert torch.equal(big[:, :5], small)
    f32 = simulate(WELL, torch.as_tensor(x0[:5], dtype=torch.float32), (0.0, 1.0), steps=20, seed=3,
                   backend="torch", solver="fused_euler_maruyama").ys
    assert f32.dtype == torch.float32 and float((f32[-1].double() - small[-1]).abs().max()) < 1e-5


def heun_ou_law(x0, h, steps):
    a = 1.0 - THETA * h + 0.5 * (THETA * h) ** 2
    b = SIGMA * (1.0 - 0.5 * THETA * h)
    return x0 * a**steps, b * b * h * sum(a ** (2 * j) for j in range(steps))


def ou_ks_pvalue(solver, n=20_000, steps=40, t1=2.0):
    x0 = 1.5
    final = simulate(OU.sde, torch.full((n, 1), x0, dtype=torch.float64), (0.0, t1), steps=steps, seed=21,
                     backend="torch", solver=solver).ys[-1, :, 0].numpy()
    h = t1 / steps
    if solver == "fused_euler_maruyama":
        mean, cov = OU.euler_maruyama_law([x0], [[0.0]], h, steps)
        mean, var = float(mean[0]), float(cov[0, 0])
    else:
        mean, var = heun_ou_law(x0, h, steps)
    return ks_test(final, st.norm(mean, math.sqrt(var)), alpha=ALPHA).pvalue


@pytest.mark.parametrize("solver", ["fused_euler_maruyama", "fused_heun"])
def test_fused_loop_follows_the_exact_law_of_its_chain(solver):
    assert ou_ks_pvalue(solver) > ALPHA


def test_planted_bug_reused_noise_fails_the_law(monkeypatch):
    real = fused.brownian_increment

    def reused(noise, step, *args):
        return real(noise, 0, *args)  # every step draws step 0's normals

    monkeypatch.setattr(fused, "brownian_increment", reused)
    assert ou_ks_pvalue("fused_euler_maruyama") <= ALPHA


def test_reverse_sde_with_a_torch_score_reaches_the_data_law():
    from sdekit.diffusion import ForwardSDE, reverse_sde

    fwd = ForwardSDE.vp()
    s0 = 0.6  # data N(0, s0^2): p_t = N(0, alpha_t^2 s0^2 + sigma_t^2), score -x / var_t

    def score(x, t):
        from sdekit.diffusion.torch_schedule import torch_kernel

        alpha, sigma = torch_kernel(fwd, t, like=x)
        return -x / (alpha * alpha * s0 * s0 + sigma * sigma)

    rsde = reverse_sde(fwd, score, dim=1)
    n = 4000
    x_t = torch.as_tensor(counter_normals(99, n, 1))  # p_T ~ N(0, 1) for the VP schedule
    sol = simulate(rsde, x_t, (fwd.T, fwd.eps), steps=200, seed=5, backend="torch", solver="fused_euler_maruyama")
    alpha, sigma = (float(v) for v in fwd.kernel(fwd.eps))
    sd = math.sqrt(alpha**2 * s0**2 + sigma**2)
    assert ks_test(sol.ys[-1, :, 0].numpy(), st.norm(0.0, sd), alpha=ALPHA).passed


def no_noise(x, t, p):
    return 0.0 * x


def test_fused_heun_without_noise_is_the_ode_heun_method():
    x0 = torch.as_tensor(np.linspace(-0.8, 0.9, 14).reshape(7, 2))
    sde = SDE(double_well, no_noise, dim=2, params=np.array([1.0, 0.7]), calculus="stratonovich")
    fused_ys = simulate(sde, x0, (0.0, 1.0), steps=20, backend="torch", solver="fused_heun", save_at="steps").ys
    ode = ODE(double_well, dim=2, params=np.array([1.0, 0.7]))
    heun_ys = simulate(ode, x0, (0.0, 1.0), steps=20, backend="torch", solver="heun", save_at="steps").ys
    assert float((fused_ys - heun_ys).abs().max()) < 1e-13 * float(heun_ys.abs().max())


def blow_up(x, t, p):
    return x * x * x * 40.0 - x  # stable for |x| < 1 / sqrt(40), explodes beyond


def test_nonfinite_paths_are_reported_at_the_numpy_loops_step():
    sde = SDE(blow_up, soft_noise, dim=1, params=np.array([0.0, 0.02]), name="blow_up")
    x0 = np.array([[0.1], [-0.1], [1.5]])
    with np.errstate(all="ignore"):
        ref = numpy_loop(sde, x0, fixed_grid((0.0, 1.0), 100).ts, 4, "euler_maruyama")
    first = int(np.argmax(~np.isfinite(ref).all(axis=(1, 2))))
    with pytest.raises(NonFiniteError) as info:
        fused_solve(sde, x0, (0.0, 1.0), "fused_euler_maruyama", steps=100, seed=4)
    assert 0 < first < 100 and info.value.step == first and info.value.path == 2
    sol = fused_solve(sde, x0, (0.0, 1.0), "fused_euler_maruyama", steps=100, seed=4, on_nonfinite="mask")
    assert sol.stats.masked_paths == 1 and torch.isnan(sol.ys[-1, 2]).all() and torch.isfinite(sol.ys[-1, :2]).all()


def test_fused_methods_refuse_what_they_cannot_integrate():
    with pytest.raises(IncompatibleSolverError, match="fused_heun.*stratonovich.*calculus='ito'"):
        fused_solve(WELL, np.zeros((2, 2)), (0.0, 1.0), "fused_heun", steps=4)
    with pytest.raises(IncompatibleSolverError, match="fused_euler_maruyama.*ito.*calculus='stratonovich'"):
        fused_solve(WELL_STRAT, np.zeros((2, 2)), (0.0, 1.0), "fused_euler_maruyama", steps=4)
    with pytest.raises(SDEKitError, match="solver must be one of"):
        simulate(ODE(double_well, dim=2, params=np.array([1.0, 0.7])), torch.zeros(2, 2), (0.0, 1.0), steps=4,
                 backend="torch", solver="fused_heun")
