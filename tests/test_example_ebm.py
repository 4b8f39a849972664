"""The EBM example end to end in its quick mode (examples/ebm_two_moons.py, ``run(quick=True)``: 300 updates, AIS with
500 particles and 60 temperatures).

Checks, each able to fail: both learned models beat the Gaussian fit on held-out data (log-likelihood with log Z by
grid quadrature); AIS's log Z of each model agrees with the quadrature, |z| < 4.89 (false-alarm rate 1e-6, the
grid error ~1e-4 far below AIS's standard error); the plot is written. Planted bug: the model's sign flipped
(f -> -f, the energy read as the log density) scores far below the Gaussian fit.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ebm_two_moons.py"
Z_CRIT = 4.89


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("ebm_two_moons_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    torch.set_num_threads(1)
    return mod


def test_quick_run_learns_both_models_and_ais_matches_the_grid(example, tmp_path):
    out = example.run(quick=True, results=tmp_path)
    for name in ("pcd", "nce"):
        model = out[name]
        assert model["ll"] > out["gaussian_ll"] + 0.1, (name, model["ll"], out["gaussian_ll"])
        assert abs(model["ais"].z_score(model["log_z_grid"])) < Z_CRIT, (name, model["ais"], model["log_z_grid"])
    assert (tmp_path / "ebm_two_moons.png").stat().st_size > 10_000


def test_planted_sign_flip_scores_below_the_gaussian_fit(example):
    class Flipped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return -self.inner(x)

    torch.manual_seed(0)
    model = example.EnergyMLP()
    rng = example.np.random.default_rng(0)
    data = example.two_moons(2000, rng)
    data = (data - data.mean(axis=0)) / data.std(axis=0)
    example.train_ebm_nce(model, torch.as_tensor(data[:1500], dtype=torch.float32), noise_ratio=10, batch_size=256,
                          steps=300, lr=2e-3, seed=2)
    good_z, _, _ = example.grid_log_z(model)
    bad = Flipped(model)
    bad_z, _, _ = example.grid_log_z(bad)
    gauss = example.GaussianReference.fit(data[:1500])
    gauss_ll = float(gauss.log_prob(torch.as_tensor(data[1500:])).mean())
    assert example.held_out_log_likelihood(model, data[1500:], good_z) > gauss_ll
    assert example.held_out_log_likelihood(bad, data[1500:], bad_z) < gauss_ll - 1.0
