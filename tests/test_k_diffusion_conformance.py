"""Conformance of sdekit's samplers with k-diffusion's (0.1.1.post1) ``sampling.py``, read from its wheel (not
installed, not in CI: the module is skipped when the wheel is absent; path from the environment variable
SDEKIT_K_DIFFUSION_WHEEL, default /tmp/dl/k_diffusion-0.1.1.post1-py3-none-any.whl; loaded by
benchmarks/samplers_torch.load_k_diffusion_sampling).

Both sides get the same float64 denoiser D(x; sigma) = x + sigma^2 s(x, 1, sigma) with s the exact score of the 2-D
anisotropic mixture (tests/test_diffusion_fixtures.make_data(2)), the same grid ``karras_sigmas(12, 0.002, 80)``
(12 levels, then 0), the same initial state (200 exact draws of p(x; 80)) and the same normals: k-diffusion's
noise_sampler(sigma, sigma_next) is replaced by one returning given normals in call order, which sdekit reads as
noise(i) (call i is sdekit's draw i: one per noisy step, two per DPM++ SDE step, 2 i and 2 i + 1); the samplers that
call torch.randn_like (sample_euler / sample_heun with churn) get the normals of a seeded global generator, which
sdekit reads as its draw i = step i. eta, s_noise (and churn) are set away from their defaults. Agreement: max |diff|
<= 1e-12 max(1, max |x|) (the final states are O(3)).

    k-diffusion function (options)          sdekit twin (options)                                   max |diff|
    sample_euler (s_churn 2, s_tmin 0.05,   edm_sample(method="euler", the same churn options)      1.2e-14
      s_tmax 50, s_noise 1.007)
    sample_heun (the same)                  edm_sample(method="heun", the same churn options)       4.7e-15
    sample_dpm_2 (no churn)                 dpm2_ancestral_sample(eta=0)                            1.2e-14
    sample_euler_ancestral (eta 0.7,        euler_ancestral_sample                                  7.1e-15
      s_noise 0.9; the same below)
    sample_dpm_2_ancestral                  dpm2_ancestral_sample                                   5.8e-15
    sample_lms (order 4 / 3)                lms_sample(order=4 / 3)                                 8.8e-15 / 3.8e-15
    sample_dpmpp_2s_ancestral               dpmpp_2s_ancestral_sample                               3.3e-15
    sample_dpmpp_sde (r 0.4)                dpmpp_sde_sample(r=0.4, noise=...)                      1.2e-14
    sample_dpmpp_2m                         dpm_solver_sample(vp_pairs(sigmas), alpha_0 x,          8.0e-15
                                              method="multistep", order=2, algorithm="dpmsolver++")
    sample_dpmpp_2m                         dpmpp_2m_sde_sample(eta=0)                              1.2e-14
    sample_dpmpp_2m_sde (midpoint / heun)   dpmpp_2m_sde_sample(solver_type=...)                    5.0e-15 / 8.9e-15
    sample_dpmpp_3m_sde                     dpmpp_3m_sde_sample, _D2_WEIGHT = K_DIFFUSION_D2_WEIGHT 2.6e-14
    sample_dpm_fast (eta 0, NFE 12 / 13)    dpm_solver_sample(algorithm="dpmsolver",                2.1e-14 / 2.2e-14
                                              method="singlestep", orders=[3, ..., 3, 2, 1] / [3, ..., 3, 1])
                                              on (1, sigma) pairs holding the intermediate points (uniform in
                                              t = -log sigma; k-diffusion run with torch's default dtype float64)

sample_dpmpp_3m_sde with sdekit's default d2 weight (2, the exact Taylor weight: third order at eta = 0) differs from
k-diffusion's (published weight 1) by 1.6 (> 1e3 x the bound); a planted eta (0.69 for 0.7) differs by 0.35.
Not mapped: sample_dpm_2 with churn (sdekit's DPM-2 has none), sample_dpm_fast with eta > 0 (ancestral noise inside
DPM-Solver steps), sample_dpm_adaptive (k-diffusion's PID controller on the batch RMS error; sdekit's
adaptive_dpm_solver_sample is Lu et al.'s rule on the max over the batch of per-sample RMS errors), log_likelihood.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

KD_WHEEL = Path(os.environ.get("SDEKIT_K_DIFFUSION_WHEEL", "/tmp/dl/k_diffusion-0.1.1.post1-py3-none-any.whl"))
if not KD_WHEEL.is_file():
    pytest.skip(f"k-diffusion wheel not found at {KD_WHEEL} (optional check; set SDEKIT_K_DIFFUSION_WHEEL)",
                allow_module_level=True)
for _needed in ("scipy", "torchdiffeq", "torchsde", "tqdm"):  # k-diffusion's sampling.py imports them
    pytest.importorskip(_needed)

import sdekit.diffusion.samplers.dpmpp_multistep_sde as msde  # noqa: E402
from sdekit.diffusion.mixture_marginals import MixtureMarginals, mixture_marginal_score  # noqa: E402
from sdekit.diffusion.samplers.ancestral import (  # noqa: E402
    dpm2_ancestral_sample,
    dpmpp_2s_ancestral_sample,
    euler_ancestral_sample,
)
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample  # noqa: E402
from sdekit.diffusion.samplers.dpmpp_multistep_sde import dpmpp_2m_sde_sample, dpmpp_3m_sde_sample  # noqa: E402
from sdekit.diffusion.samplers.dpmpp_sde import dpmpp_sde_sample  # noqa: E402
from sdekit.diffusion.samplers.edm import edm_sample, karras_sigmas  # noqa: E402
from sdekit.diffusion.samplers.lms import lms_sample  # noqa: E402
from sdekit.diffusion.samplers.sigma_grids import vp_pairs  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from samplers_torch import load_k_diffusion_sampling  # noqa: E402
from test_diffusion_fixtures import make_data  # noqa: E402

KD = load_k_diffusion_sampling(KD_WHEEL)
MM = MixtureMarginals(make_data(2))
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
SIGMAS = karras_sigmas(12, SIGMA_MIN, SIGMA_MAX)
X_INIT = MM.sample(200, 1.0, SIGMA_MAX, seed=2)
ETA, S_NOISE = 0.7, 0.9
CHURN = {"s_churn": 2.0, "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.007}
NORMALS = [torch.from_numpy(z) for z in np.random.default_rng(17).standard_normal((2 * SIGMAS.size,) + X_INIT.shape)]


def score(x, alpha, sigma):
    return mixture_marginal_score(np.ascontiguousarray(x), alpha, sigma, MM.params)


def denoiser(x, sigma):
    """k-diffusion's model(x, sigma * s_in) -> D(x; sigma), float64."""
    s = float(sigma.reshape(-1)[0])
    xn = x.numpy()
    return torch.from_numpy(xn + (s * s) * score(xn, 1.0, s))


class FedNoise:
    """k-diffusion's noise_sampler(sigma, sigma_next) returning NORMALS in call order."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, sigma, sigma_next):
        self.calls += 1
        return NORMALS[self.calls - 1]


def fed(i: int, like) -> np.ndarray:
    """sdekit's noise(i, like): the same normals."""
    return NORMALS[i].numpy()


def run_kd(name: str, noise: str | None, **kw) -> torch.Tensor:
    fn = getattr(KD, f"sample_{name}")
    x = torch.from_numpy(X_INIT.copy())
    sig = torch.from_numpy(SIGMAS)
    if noise == "sampler":
        kw["noise_sampler"] = FedNoise()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(23)  # sample_euler / sample_heun / sample_dpm_2 call torch.randn_like(x) every step
        out = fn(denoiser, x, sig, disable=True, **kw)
    if noise == "sampler":
        assert kw["noise_sampler"].calls > 0
    return out


@functools.cache
def global_normals() -> list[np.ndarray]:
    """The normals torch.randn_like(x) draws after torch.manual_seed(23), in order (k-diffusion's churn noise)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(23)
        like = torch.from_numpy(X_INIT)
        return [torch.randn_like(like).numpy() for _ in range(SIGMAS.size)]


def churn_noise(i: int, like) -> np.ndarray:
    """sdekit's noise(i, like) for the churn: k-diffusion's draw of step i."""
    return global_normals()[i]


def bound(ref: torch.Tensor) -> float:
    return 1e-12 * max(1.0, float(ref.abs().max()))


def maxdiff(a, ref: torch.Tensor) -> float:
    return float(np.max(np.abs(np.asarray(a) - ref.numpy())))


CASES = {  # id: (k-diffusion name, its options, noise kind, the sdekit run)
    "euler": ("euler", CHURN, "global",
              lambda: edm_sample(score, SIGMAS, X_INIT, method="euler", noise=churn_noise, **CHURN)),
    "heun": ("heun", CHURN, "global",
             lambda: edm_sample(score, SIGMAS, X_INIT, method="heun", noise=churn_noise, **CHURN)),
    "dpm_2": ("dpm_2", {}, "global", lambda: dpm2_ancestral_sample(score, SIGMAS, X_INIT, eta=0.0)),
    "euler_ancestral": ("euler_ancestral", {"eta": ETA, "s_noise": S_NOISE}, "sampler",
                        lambda: euler_ancestral_sample(score, SIGMAS, X_INIT, eta=ETA, s_noise=S_NOISE, noise=fed)),
    "dpm_2_ancestral": ("dpm_2_ancestral", {"eta": ETA, "s_noise": S_NOISE}, "sampler",
                        lambda: dpm2_ancestral_sample(score, SIGMAS, X_INIT, eta=ETA, s_noise=S_NOISE, noise=fed)),
    "lms4": ("lms", {"order": 4}, None, lambda: lms_sample(score, SIGMAS, X_INIT, order=4)),
    "lms3": ("lms", {"order": 3}, None, lambda: lms_sample(score, SIGMAS, X_INIT, order=3)),
    "dpmpp_2s_ancestral": ("dpmpp_2s_ancestral", {"eta": ETA, "s_noise": S_NOISE}, "sampler",
                           lambda: dpmpp_2s_ancestral_sample(score, SIGMAS, X_INIT, eta=ETA, s_noise=S_NOISE,
                                                             noise=fed)),
    "dpmpp_sde": ("dpmpp_sde", {"eta": ETA, "s_noise": S_NOISE, "r": 0.4}, "sampler",
                  lambda: dpmpp_sde_sample(score, SIGMAS, X_INIT, eta=ETA, s_noise=S_NOISE, r=0.4, noise=fed)),
    "dpmpp_2m_as_dpm_solver": ("dpmpp_2m", {}, None,
                               lambda: dpm_solver_sample(score, vp_pairs(SIGMAS), X_INIT / math.hypot(1.0, SIGMAS[0]),
                                                         method="multistep", order=2, algorithm="dpmsolver++")),
    "dpmpp_2m_as_2m_sde_eta0": ("dpmpp_2m", {}, None, lambda: dpmpp_2m_sde_sample(score, SIGMAS, X_INIT, eta=0.0)),
    "dpmpp_2m_sde_midpoint": ("dpmpp_2m_sde", {"eta": ETA, "s_noise": S_NOISE, "solver_type": "midpoint"}, "sampler",
                              lambda: dpmpp_2m_sde_sample(score, SIGMAS, X_INIT, eta=ETA, s_noise=S_NOISE,
                                                          solver_type="midpoint", noise=fed)),
    "dpmpp_2m_sde_heun": ("dpmpp_2m_sde", {"eta": ETA, "s_noise": S_NOISE, "solver_type": "heun"}, "sampler",
                          lambda: dpmpp_2m_sde_sample(score, SIGMAS, X_INIT, eta=ETA, s_noise=S_NOISE,
                                                      solver_type="heun", noise=fed)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sampler_equals_k_diffusion(case):
    name, options, noise, ours = CASES[case]
    ref = run_kd(name, noise, **options)
    x = ours().x
    assert maxdiff(x, ref) <= bound(ref), f"{case}: max |sdekit - k-diffusion| = {maxdiff(x, ref):.3g}"


def run_3m(weight: float | None, monkeypatch) -> tuple[np.ndarray, torch.Tensor]:
    if weight is not None:
        monkeypatch.setattr(msde, "_D2_WEIGHT", weight)
    ref = run_kd("dpmpp_3m_sde", "sampler", eta=ETA, s_noise=S_NOISE)
    return dpmpp_3m_sde_sample(score, SIGMAS, X_INIT, eta=ETA, s_noise=S_NOISE, noise=fed).x, ref


def test_3m_sde_with_the_published_weight_equals_k_diffusion(monkeypatch):
    x, ref = run_3m(msde.K_DIFFUSION_D2_WEIGHT, monkeypatch)
    assert maxdiff(x, ref) <= bound(ref), f"max |sdekit - k-diffusion| = {maxdiff(x, ref):.3g}"


def test_3m_sde_default_weight_differs_from_k_diffusion(monkeypatch):
    """sdekit's default d2 weight (the exact Taylor weight, twice k-diffusion's) is a different algorithm."""
    x, ref = run_3m(None, monkeypatch)
    assert msde._D2_WEIGHT == 2.0 * msde.K_DIFFUSION_D2_WEIGHT
    assert maxdiff(x, ref) > 1e3 * bound(ref), f"max |sdekit - k-diffusion| = {maxdiff(x, ref):.3g}"


def dpm_fast_grid(nfe: int) -> tuple[np.ndarray, list[int]]:
    """k-diffusion's dpm_solver_fast schedule (m = floor(nfe / 3) + 1 steps uniform in t = -log sigma, orders
    [3, ..., 3, 2, 1] or [3, ..., 3, nfe % 3]) as an sdekit grid of (1, sigma) pairs whose points include each
    step's intermediate points t + h / 3, t + 2 h / 3 (order 3) or t + h / 2 (order 2), and the step orders."""
    m = nfe // 3 + 1
    ts = np.linspace(-math.log(SIGMA_MAX), -math.log(SIGMA_MIN), m + 1)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    points = [ts[0]]
    for i, k in enumerate(orders):
        points += [ts[i] + (ts[i + 1] - ts[i]) * j / k for j in range(1, k)] + [ts[i + 1]]
    sig = np.exp(-np.array(points))
    return np.stack([np.ones_like(sig), sig], axis=1), orders


@pytest.mark.parametrize("nfe", [12, 13])
def test_dpm_fast_equals_dpm_solver_singlestep(nfe):
    pairs, orders = dpm_fast_grid(nfe)
    x = torch.from_numpy(X_INIT.copy())
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # it builds its t grid with torch.tensor(sigma): float64, not float32
    try:
        ref = KD.sample_dpm_fast(denoiser, x, SIGMA_MIN, SIGMA_MAX, nfe, disable=True)
    finally:
        torch.set_default_dtype(default)
    ours = dpm_solver_sample(score, pairs, X_INIT, method="singlestep", algorithm="dpmsolver", orders=orders)
    assert ours.nfe == nfe
    assert maxdiff(ours.x, ref) <= bound(ref), f"max |sdekit - k-diffusion| = {maxdiff(ours.x, ref):.3g}"


def test_a_planted_difference_exceeds_the_bound():
    """The comparison can fail: sdekit's Euler ancestral at eta = 0.69 where k-diffusion ran 0.7."""
    ref = run_kd("euler_ancestral", "sampler", eta=ETA, s_noise=S_NOISE)
    x = euler_ancestral_sample(score, SIGMAS, X_INIT, eta=ETA - 0.01, s_noise=S_NOISE, noise=fed).x
    assert maxdiff(x, ref) > 1e3 * bound(ref)
