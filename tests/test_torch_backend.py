"""The torch backend: the same specifications on torchsde / torchdiffeq, with sdekit's Brownian increments.

Agreement on shared noise: for every solver the two backends share (Euler–Maruyama, derivative-free Milstein,
Stratonovich Heun, SRA1 = torchsde's additive SRK; ODE Euler, midpoint, Heun), the torch paths equal the Numba /
NumPy-reference paths to rounding (float64: 1e-12; float32: the stated rounding bound). The NumPy reference draws
the Numba kernels' noise and equals them to rounding for every solver (tests/test_simulate.py), so comparing with it
compiles no kernel; one comparison (OU, Euler–Maruyama) runs against the Numba kernel itself. The torch-only methods
(midpoint, reversible Heun, Euler–Heun, SRID2 SRK, Stratonovich Milstein with its own formula) are checked in law
against the exact GBM solution with a KS test at alpha = 1e-6; the planted bug (noise off by sqrt 2) fails it.
"""

import math

import numpy as np
import pytest
import scipy.stats as st

torch = pytest.importorskip("torch")
pytest.importorskip("torchsde")
pytest.importorskip("torchdiffeq")

import sdekit.math as sm  # noqa: E402
from sdekit import ODE, SDE, simulate  # noqa: E402
from sdekit.backends.torch import register_torch  # noqa: E402
from sdekit.backends.torch.twins import torch_function  # noqa: E402
from sdekit.errors import IncompatibleSolverError, NonFiniteError, SDEKitError  # noqa: E402
from sdekit.noise.streams import path_normals  # noqa: E402
from sdekit.processes.gbm import GeometricBrownianMotion  # noqa: E402
from sdekit.processes.ou import OrnsteinUhlenbeck  # noqa: E402
from sdekit.validate.onesample import ks_test  # noqa: E402

torch.set_num_threads(1)
F64 = torch.float64


def drift(x, t, p):
    return -p[0] * sm.tanh(x) + sm.sin(t)


def diffusion(x, t, p):
    return p[1] * (1.0 + 0.1 * sm.cos(x))


def additive(x, t, p):
    return p[1] + 0.0 * t


def general(x, t, p):
    """(dim, m) = (2, 3) matrix noise 0.3 (1 + 0.1 cos x_0) on every entry (torch version of general_numpy)."""
    return 0.3 * (1 + 0.1 * sm.cos(x[:, :1, None])) * torch.ones(x.shape[0], 2, 3, dtype=x.dtype)


def general_numpy(x, t, p):
    return 0.3 * (1 + 0.1 * np.cos(x[:, :1, None])) * np.ones((x.shape[0], 2, 3))


def _both(sde, solver, *, t=(0.0, 1.0), steps=40, n=6, substeps=1, reference="numpy", dtype=F64, x0=None):
    x0 = np.linspace(-0.5, 0.5, sde.dim) if x0 is None else x0
    a = simulate(sde, x0, t, steps=steps, n_paths=n, seed=11, solver=solver, save_at="steps",
                 noise_substeps=substeps, backend=reference)
    b = simulate(sde, torch.as_tensor(x0, dtype=dtype), t, steps=steps, n_paths=n, seed=11, solver=solver,
                 save_at="steps", noise_substeps=substeps, backend="torch")
    assert isinstance(b.ys, torch.Tensor) and b.ys.dtype == dtype
    return a.ys, b.ys.numpy()


CASES = [  # (noise, calculus, sdekit solver, diffusion)
    ("diagonal", "ito", "euler_maruyama", diffusion),
    ("diagonal", "ito", "milstein", diffusion),
    ("diagonal", "stratonovich", "heun", diffusion),
    ("scalar", "ito", "euler_maruyama", diffusion),
    ("scalar", "ito", "milstein", diffusion),
    ("scalar", "stratonovich", "heun", diffusion),
    ("additive", "ito", "euler_maruyama", additive),
    ("additive", "ito", "sra1", additive),
    ("additive", "stratonovich", "heun", additive),
]


@pytest.mark.parametrize("noise,calculus,solver,g", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_paths_agree_with_the_reference_on_shared_noise(noise, calculus, solver, g):
    sde = SDE(drift, g, dim=3, noise=noise, calculus=calculus, params=[0.7, 0.5])
    a, b = _both(sde, solver)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)
    # reversed grid (t from 1 down to 0), and increments assembled from 4 substeps
    a, b = _both(sde, solver, t=(1.0, 0.0), substeps=4)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)


def test_general_noise_agrees_with_the_reference():
    sde_np = SDE(drift, general_numpy, dim=2, noise="general", brownian_dim=3, params=[0.7, 0.5])
    sde_t = SDE(drift, general, dim=2, noise="general", brownian_dim=3, params=[0.7, 0.5])
    x0 = np.array([0.2, -0.1])
    a = simulate(sde_np, x0, (0, 1), steps=30, n_paths=5, seed=2, backend="numpy", save_at="steps")
    b = simulate(sde_t, torch.as_tensor(x0), (0, 1), steps=30, n_paths=5, seed=2, backend="torch", save_at="steps")
    np.testing.assert_allclose(b.ys.numpy(), a.ys, rtol=0, atol=1e-12)


def test_builtin_ou_agrees_with_the_numba_kernel_in_float64_and_float32():
    """OU's Numba drift is a loop; its torch twin runs instead. Matrix additive noise (m = 3 > d = 2), SRA1."""
    ou = OrnsteinUhlenbeck(np.array([[1.0, 0.3], [0.0, 2.0]]), np.array([[0.5, 0.1, 0.0], [0.2, 0.4, 0.3]]))
    for solver, reference in (("euler_maruyama", "numba"), ("sra1", "numpy")):  # numpy == numba: test_simulate
        a = simulate(ou.sde, np.ones(2), (0, 1), steps=40, n_paths=5, seed=1, solver=solver, save_at="steps",
                     backend=reference)
        b = simulate(ou.sde, torch.ones(2, dtype=F64), (0, 1), steps=40, n_paths=5, seed=1, solver=solver,
                     backend="torch", save_at="steps")
        np.testing.assert_allclose(b.ys.numpy(), a.ys, rtol=0, atol=1e-12)
        c = simulate(ou.sde, torch.ones(2, dtype=torch.float32), (0, 1), steps=40, n_paths=5, seed=1,
                     solver=solver, backend="torch", save_at="steps")
        # float32 rounding: 40 steps of O(1) updates, each rounded at 6e-8 relative -> well below 1e-5
        assert c.ys.dtype == torch.float32
        np.testing.assert_allclose(c.ys.numpy(), a.ys, rtol=0, atol=1e-5)


def test_gbm_agrees_with_the_reference():
    gbm = GeometricBrownianMotion(0.3, 0.6, calculus="stratonovich", dim=2)
    a = simulate(gbm.sde, np.ones(2), (0, 1), steps=64, n_paths=8, seed=5, solver="heun", save_at="steps",
                 backend="numpy")
    b = simulate(gbm.sde, torch.ones(2, dtype=F64), (0, 1), steps=64, n_paths=8, seed=5, solver="heun",
                 backend="torch", save_at="steps")
    np.testing.assert_allclose(b.ys.numpy(), a.ys, rtol=1e-12, atol=1e-13)


def test_results_do_not_depend_on_batch_size():
    sde = SDE(drift, diffusion, dim=2, params=[0.7, 0.5])
    big = simulate(sde, torch.zeros(2, dtype=F64), (0, 1), steps=30, n_paths=20, seed=4, backend="torch")
    small = simulate(sde, torch.zeros(2, dtype=F64), (0, 1), steps=30, n_paths=5, seed=4, backend="torch")
    assert torch.equal(big.ys[:, :5], small.ys)


def test_brownian_increments_are_the_stream_normals():
    from sdekit.backends.torch.brownian import StreamBrownian

    times = np.linspace(0.0, 2.0, 5)
    bm = StreamBrownian(times, 3, 2, seed=9, dtype=F64, device="cpu")
    z = path_normals(9, 3, 8)  # per path: (step, component) in draw order
    for k in range(4):
        dw = bm(torch.tensor(times[k]), torch.tensor(times[k + 1]))
        np.testing.assert_allclose(dw.numpy(), math.sqrt(0.5) * z[:, 2 * k:2 * k + 2], rtol=1e-15)
    with pytest.raises(SDEKitError, match="in order"):
        bm(torch.tensor(times[0]), torch.tensor(times[1]))
    with pytest.raises(SDEKitError, match="on its grid"):
        bm(torch.tensor(0.1), torch.tensor(times[1]))


@pytest.mark.parametrize("method", ["midpoint", "reversible_heun", "euler_heun", "milstein", "heun"])
def test_stratonovich_methods_match_the_exact_gbm_law(method):
    """log X_1 = log x0 + mu + sigma W_1 exactly (Stratonovich GBM). 20000 paths, 200 steps: the weak error of
    these order-1 methods moves the CDF by ~1e-3, far below the KS critical distance at alpha = 1e-6 (0.019).
    Planted bug: sigma scaled by sqrt 2 (the noise off by sqrt 2) must be rejected."""
    gbm = GeometricBrownianMotion(0.2, 0.5, calculus="stratonovich")
    law = st.norm(0.2, 0.5)
    for sigma, should_pass in ((0.5, True), (0.5 * math.sqrt(2.0), False)):
        sde = gbm.sde.with_params([0.2, sigma])
        sol = simulate(sde, torch.ones(1, dtype=F64), (0, 1), steps=200, n_paths=20000, seed=3, solver=method,
                       backend="torch")
        res = ks_test(np.log(sol.final.numpy()), law, alpha=1e-6)
        assert res.passed is should_pass, (method, sigma, res)


def test_srk_on_diagonal_ito_noise_matches_the_exact_gbm_law():
    """torchsde's SRID2 SRK (no sdekit twin) in law: log X_1 ~ N(mu - sigma^2/2, sigma^2) for Itô GBM."""
    gbm = GeometricBrownianMotion(0.2, 0.5)
    sol = simulate(gbm.sde, torch.ones(1, dtype=F64), (0, 1), steps=100, n_paths=20000, seed=8, solver="srk",
                   backend="torch")
    assert ks_test(np.log(sol.final.numpy()), st.norm(0.2 - 0.125, 0.5), alpha=1e-6).passed
    wrong_sign = simulate(gbm.sde.with_params([-0.2, 0.5]), torch.ones(1, dtype=F64), (0, 1), steps=100,
                          n_paths=20000, seed=8, solver="srk", backend="torch")
    assert not ks_test(np.log(wrong_sign.final.numpy()), st.norm(0.2 - 0.125, 0.5), alpha=1e-6).passed


def test_mismatched_method_and_noise_type_is_refused_naming_both():
    sde = SDE(drift, general, dim=2, noise="general", brownian_dim=3, params=[0.7, 0.5])
    with pytest.raises(IncompatibleSolverError, match=r"'srk' supports noise types .* noise='general'"):
        simulate(sde, torch.zeros(2, dtype=F64), (0, 1), steps=4, n_paths=2, solver="srk", backend="torch")
    ito = SDE(drift, diffusion, dim=2, params=[0.7, 0.5])
    with pytest.raises(IncompatibleSolverError, match=r"'midpoint' integrates \['stratonovich'\].*calculus='ito'"):
        simulate(ito, torch.zeros(2, dtype=F64), (0, 1), steps=4, n_paths=2, solver="midpoint", backend="torch")
    with pytest.raises(SDEKitError, match="log_ode needs the space-space"):
        simulate(ito, torch.zeros(2, dtype=F64), (0, 1), steps=4, solver="log_ode", backend="torch")
    with pytest.raises(SDEKitError, match="adjoint=True is for ODEs"):
        simulate(ito, torch.zeros(2, dtype=F64), (0, 1), steps=4, backend="torch", adjoint=True)
    with pytest.raises(SDEKitError, match="dtype must be"):
        simulate(ito, torch.zeros(2, dtype=F64), (0, 1), steps=4, backend="torch", dtype="float16")
    with pytest.raises(SDEKitError, match="threads is an option of backend='numba'"):
        simulate(ito, torch.zeros(2, dtype=F64), (0, 1), steps=4, backend="torch", threads=1)
    with pytest.raises(SDEKitError, match="chunk_size is an option of backend='numba'"):
        simulate(ito, torch.zeros(2, dtype=F64), (0, 1), steps=4, backend="torch", chunk_size=8)
    with pytest.raises(SDEKitError, match="max_save_bytes"):
        simulate(ito, torch.zeros(2, dtype=F64), (0, 1), steps=4, n_paths=10, backend="torch", save_at="steps",
                 max_save_bytes=100)


def test_method_table_matches_the_installed_torchsde():
    from torchsde._core import methods

    from sdekit.backends.torch.methods import TORCHSDE_METHODS

    for name, m in TORCHSDE_METHODS.items():
        for calculus in m.calculus:
            cls = methods.select(method=name, sde_type=calculus)
            assert cls.sde_type == calculus
            assert set(cls.noise_types) == set(m.noise_types), name


def _blows_up(x, t, p):
    return x * x * x


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_nonfinite_path_names_step_and_time_or_is_masked():
    sde = SDE(_blows_up, additive, dim=1, noise="additive", params=[0.0, 0.1])
    x0 = torch.tensor([[0.1], [3.0], [0.2]], dtype=F64)
    with pytest.raises(NonFiniteError) as info:
        simulate(sde, x0, (0, 1), steps=100, backend="torch")
    ref = simulate(sde, x0.numpy(), (0, 1), steps=100, backend="numpy", on_nonfinite="mask", save_at="steps")
    first = int(np.argmax(~np.isfinite(ref.ys[:, 1, 0])))
    assert info.value.path == 1 and info.value.step == first
    assert info.value.t == pytest.approx(first / 100)
    masked = simulate(sde, x0, (0, 1), steps=100, backend="torch", on_nonfinite="mask")
    assert masked.stats.masked_paths == 1
    assert torch.isnan(masked.final[1]).all() and torch.isfinite(masked.final[[0, 2]]).all()
    # an ODE: x' = x^2 leaves every bound at t = 1 / x0 = 0.5 for x0 = 2 (path 1), never for x0 = 0.5
    ode = ODE(lambda x, t, p: x * x, dim=1)
    x0 = torch.tensor([[0.5], [2.0], [0.25]], dtype=F64)
    with pytest.raises(NonFiniteError) as info:  # 1600 evaluations: the failure (~800) is past the first record chunk
        simulate(ode, x0, (0, 1), steps=400, solver="rk4", backend="torch")
    assert info.value.path == 1 and 0.5 <= info.value.t <= 0.6
    masked = simulate(ode, x0, (0, 1), steps=200, solver="rk4", backend="torch", on_nonfinite="mask")
    assert masked.stats.masked_paths == 1 and torch.isnan(masked.final[1]).all()


def _loop_drift(x, t, p):
    out = np.empty(x.shape)
    for i in range(x.shape[0]):
        out[i] = -x[i]
    return out


def test_numba_only_function_is_explained_then_runs_once_a_twin_is_registered():
    sde = SDE(_loop_drift, additive, dim=2, noise="additive", params=[0.0, 0.3])
    with pytest.raises(SDEKitError, match="drift returned a NumPy array for torch tensors.*register_torch"):
        simulate(sde, torch.zeros(2, dtype=F64), (0, 1), steps=4, backend="torch")
    register_torch(_loop_drift, lambda x, t, p: -x)
    assert torch_function(_loop_drift) is not _loop_drift
    a = simulate(sde, np.zeros(2), (0, 1), steps=20, n_paths=3, seed=1, backend="numpy")
    b = simulate(sde, torch.zeros(2, dtype=F64), (0, 1), steps=20, n_paths=3, seed=1, backend="torch")
    np.testing.assert_allclose(b.ys.numpy(), a.ys, atol=1e-13)


def test_builtin_twins_equal_their_numba_originals():
    from sdekit.targets import Gaussian, GaussianMixture

    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3))
    g = Gaussian(np.array([0.1, -0.2, 0.3]), np.array([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 0.5]]))
    mix = GaussianMixture([0.3, 0.7], [[0.0, 1.0, -1.0], [1.0, 0.0, 0.5]],
                          [np.eye(3), np.array([[1.0, 0.4, 0.0], [0.4, 2.0, 0.1], [0.0, 0.1, 0.7]])])
    for target, fns in ((g, (g.score_fn, g.log_prob_fn)), (mix, (mix.score_fn, mix.log_prob_fn))):
        p = tuple(torch.as_tensor(a) for a in target.params)
        for fn in fns:
            np.testing.assert_allclose(torch_function(fn)(torch.as_tensor(x), 0.0, p).numpy(),
                                       fn(x, 0.0, target.params), rtol=1e-12, atol=1e-12)


def test_ode_fixed_methods_agree_and_rk4_dopri5_match_the_exact_flow():
    ode = ODE(drift, dim=2, params=[0.7])
    x0 = np.array([1.0, -0.5])
    for solver in ("euler", "midpoint", "heun"):
        a = simulate(ode, x0, (0, 1), steps=20, n_paths=3, solver=solver, save_at="steps", backend="numpy")
        b = simulate(ode, torch.as_tensor(x0), (0, 1), steps=20, n_paths=3, solver=solver, save_at="steps",
                     backend="torch")
        np.testing.assert_allclose(b.ys.numpy(), a.ys, rtol=0, atol=1e-13)
    lin = ODE(lambda x, t, p: -p[0] * x, dim=2, params=[1.3])
    exact = x0 * math.exp(1.3)  # integrated backwards from t = 1 to t = 0
    rk4 = simulate(lin, torch.as_tensor(x0), (1, 0), steps=50, solver="rk4", backend="torch")
    assert np.abs(rk4.final.numpy() - exact).max() < 1e-7  # 3/8-rule RK4: error ~ (0.02)^4 * e^1.3
    dp = simulate(lin, torch.as_tensor(x0), (1, 0), rtol=1e-10, atol=1e-12, backend="torch", save_at=[0.5, 0.0])
    np.testing.assert_allclose(dp.ys.numpy()[:, 0], x0 * np.exp(1.3 * np.array([[0.5], [1.0]])), rtol=1e-8)
    assert dp.stats.evals > 0 and dp.stats.solver == "torchdiffeq:dopri5"


class _Field(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()

    def forward(self, x, t, p):
        return self.net(x) * (1.0 + t)


def test_gradients_through_an_adjoint_ode_solve_equal_backprop():
    field = _Field()
    ode = ODE(field, dim=2)
    x0 = torch.tensor([[0.3, -0.2], [1.0, 0.5]], dtype=F64)
    grads = []
    for adjoint in (False, True):
        field.zero_grad()
        sol = simulate(ode, x0, (0, 1), rtol=1e-10, atol=1e-12, backend="torch", adjoint=adjoint)
        (sol.final ** 2).sum().backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in field.parameters()]))
    assert grads[0].abs().max() > 1e-3
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-6, atol=1e-8)


def _grad_energy(x, t, p):
    """grad U for U(x) = sum_i (x_i^2 / 2 + x_i^4 / 4): array operations only, so it runs under Numba and torch."""
    return x + x * x * x


def test_every_builtin_specification_runs_on_torch_and_agrees():
    """Each built-in process, Langevin form and forward / reverse diffusion SDE: torch == the NumPy reference."""
    from sdekit.diffusion import DiffusionModel, ForwardSDE
    from sdekit.processes import BrownianMotion, overdamped_langevin
    from sdekit.targets import Gaussian, GaussianMixture

    mix = GaussianMixture([0.4, 0.6], [[-1.0, 0.0], [1.0, 0.5]], [np.eye(2) * 0.5, np.eye(2)])
    specs = {
        "brownian": (BrownianMotion(2, 0.7).sde, "euler_maruyama"),
        "gbm_ito": (GeometricBrownianMotion(0.2, 0.4, dim=2).sde, "milstein"),
        "ou": (OrnsteinUhlenbeck(np.eye(2), np.eye(2) * 0.5).sde, "sra1"),
        "langevin_gaussian": (overdamped_langevin(2, target=Gaussian(np.zeros(2), np.eye(2) * 2.0)), "euler_maruyama"),
        "langevin_mixture": (overdamped_langevin(2, target=mix), "euler_maruyama"),
        "langevin_energy": (overdamped_langevin(2, grad_energy=_grad_energy), "euler_maruyama"),
    }
    for fw in (ForwardSDE.ve(), ForwardSDE.vp(), ForwardSDE.subvp(), ForwardSDE.cosine()):
        specs[f"{fw.name}_forward"] = (fw.sde(2), "sra1")
    model = DiffusionModel.exact_mixture(ForwardSDE.subvp(), mix)
    specs["subvp_reverse"] = (model.reverse_sde(lam=0.5), "euler_maruyama")
    x0 = np.array([0.3, -0.2])
    for name, (sde, solver) in specs.items():
        a = simulate(sde, x0, (0.0, 0.5), steps=20, n_paths=3, seed=1, solver=solver, backend="numpy")
        b = simulate(sde, torch.as_tensor(x0), (0.0, 0.5), steps=20, n_paths=3, seed=1, solver=solver,
                     backend="torch")
        np.testing.assert_allclose(b.ys.numpy(), a.ys, rtol=1e-11, atol=1e-12, err_msg=name)
