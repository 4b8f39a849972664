"""sdekit's reversible Heun is torchsde's "reversible_heun" (Kidger et al. 2021): on sdekit's Brownian increments the
torch backend's paths equal the NumPy reference's (equal to the Numba kernel: tests/test_simulate.py,
tests/test_reversible_heun.py) to 1e-12, on every noise type, forward and on a reversed grid with 4 substeps.
Planted bug: the plain stochastic Heun on the same increments differs from torchsde's reversible Heun by > 1e-4."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchsde")

from sdekit import SDE, simulate  # noqa: E402
from sdekit.backends.torch.methods import SDEKIT_TO_TORCHSDE  # noqa: E402
from sdekit.errors import SDEKitError  # noqa: E402
from tests.test_torch_backend import _both, additive, diffusion, drift, general, general_numpy  # noqa: E402

torch.set_num_threads(1)


@pytest.mark.parametrize("noise, g", [("diagonal", diffusion), ("scalar", diffusion), ("additive", additive)])
def test_paths_equal_torchsde_reversible_heun(noise, g):
    assert SDEKIT_TO_TORCHSDE["reversible_heun"] == "reversible_heun"
    sde = SDE(drift, g, dim=3, noise=noise, calculus="stratonovich", params=[0.7, 0.5])
    a, b = _both(sde, "reversible_heun")
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)
    a, b = _both(sde, "reversible_heun", t=(1.0, 0.0), substeps=4)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)
    heun, _ = _both(sde, "heun")
    assert np.abs(heun - b).max() > 1e-4


def test_general_noise_equals_torchsde_reversible_heun():
    kw = dict(steps=30, n_paths=5, seed=2, solver="reversible_heun", save_at="steps")
    sde_np = SDE(drift, general_numpy, dim=2, noise="general", brownian_dim=3, calculus="stratonovich",
                 params=[0.7, 0.5])
    sde_t = SDE(drift, general, dim=2, noise="general", brownian_dim=3, calculus="stratonovich", params=[0.7, 0.5])
    x0 = np.array([0.2, -0.1])
    a = simulate(sde_np, x0, (0, 1), backend="numpy", **kw)
    b = simulate(sde_t, torch.as_tensor(x0), (0, 1), backend="torch", **kw)
    np.testing.assert_allclose(b.ys.numpy(), a.ys, rtol=0, atol=1e-12)


def test_platen_weak2_is_refused_on_torch_naming_solver_and_backend():
    sde = SDE(drift, diffusion, dim=3, params=[0.7, 0.5])
    with pytest.raises(SDEKitError, match=r"solver 'platen_weak2' has no torchsde counterpart, so backend='torch' "
                                          r"cannot run it; run it with backend='numba' or backend='numpy'"):
        simulate(sde, torch.zeros(3, dtype=torch.float64), (0, 1), steps=4, n_paths=2, solver="platen_weak2",
                 backend="torch")
