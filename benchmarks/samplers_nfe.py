#!/usr/bin/env python
"""Work against NFE for every sampler in sdekit: distance to the exact law from NFE 5 to 1000.

    nice python benchmarks/samplers_nfe.py              # full run (2-D and 8-D mixtures, N = 20000; the digits model)
    python benchmarks/samplers_nfe.py --quick           # 2-D only, N = 4000, three NFE, no digits (about a minute)
    python benchmarks/samplers_nfe.py --no-digits       # the mixtures only
    python benchmarks/samplers_nfe.py --replot          # redraw the PNG and Markdown from the JSON
    python benchmarks/samplers_nfe.py --only "flow Euler,flow Heun" --update   # rerun entries into the JSON

**Samplers** are DATA: `REGISTRY` holds one `Entry` per sampler (name, family, the sdekit functions it needs, its
NFE -> steps rule and a function (score, setting, steps) -> SampleResult). Adding a sampler is adding one entry; an
entry whose module is not in this checkout is listed as "not available" and skipped.

**Mixtures.** `DATASETS`: the 2-D three-component mixture of the sampler tests (rotated anisotropic covariances,
eigenvalues 0.05 .. 1.5) and an 8-D four-component mixture (eigenvalues 0.02 .. 3, random rotations from a fixed
seed), both with the exact score at every noise level (`mixture_marginal_score`). Every sampler starts from exact
draws (N = 20000, the same seed for all) of the noise level its grid starts at and is compared with the exact law
of the level its result ends at (`SampleResult.alphas[-1], sigmas[-1]`: the data law for grids ending at sigma = 0,
the exact marginal at t = eps for the VP solvers that stop there), so only the sampler's own error is measured.
Distance D: the mean Kolmogorov-Smirnov distance over d + 12 fixed directions (the d marginals and 12 random unit
projections; each projected law is an exact 1-D mixture), `samplers.ks_distance`. Noise floor: D of exact draws of
the same size (`--floor-draws` independent draws, default 50): mean D_0 and sd; its 99.9 % band is
D <= exp(m + 3.09 s), m and s the mean and sd of log D over the floor draws (a log-normal fit: D's right tail is
longer than a normal's; on the 8-D mixture 300 floor draws gave skewness 0.57, empirical 99 % quantile 7.8e-3, normal
99.9 % fit 8.4e-3, log-normal 8.7e-3, maximum 8.5e-3). Each sampler has its own exact start (and noise) seed,
`entry_seed(seed, name)`: with one shared start, every deterministic sampler converges to the same sample (the
exact flow map of that start) and one unusual start decides all of their passes-at at once (seen with seed 7 on the
8-D mixture: D = 9.3e-3 for that sample; the full `compare_with_law` battery passes it, min p 2.7e-4).
**passes at** = the smallest measured NFE from which D stays within the band at every larger measured NFE
("-" if the largest NFE is still outside). To save time an entry stops once three consecutive budgets were within
the band (``--stop-after 3``; 0 runs every budget): past that point a deterministic sampler only repeats the exact
flow map's D and a stochastic one another floor draw.

NFE grid: `NFE_GRID` (12 log-spaced budgets 5 .. 1000, ratio ~1.62); each entry turns a budget into its step count
(e.g. Heun to sigma = 0: (nfe + 1) // 2 steps, NFE 2 steps - 1), the NFE it really used is read from its result,
and budgets that give the same steps, or an NFE outside [5, 1000], are dropped.

**Digits.** The cached eps model of `examples/digits.py` (trained weights read from ``$SDEKIT_CACHE_DIR/examples``;
it is never trained here: the run stops with a message if the file is missing) through `DiffusionNetwork`, a subset
of the entries (`DIGITS_SAMPLERS`) at `DIGITS_NFE`, all from the same n prior draws z ~ N(0, I) (scaled to each
sampler's first level); Fréchet distance (examples/digits.py's `Judge`: pca16 and mlp64 feature maps) between the
generated digits (rounded to pixels) and the 360 held-out digits, with the floor (held-out vs as many training
digits: mean and sd over 30 draws) and pure noise. No exact law here: this shows where each sampler stops changing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from power import machine  # noqa: E402
from samplers import ks_distance  # noqa: E402

from sdekit.diffusion import DiffusionModel, ForwardSDE, MixtureMarginals, mixture_marginal_score  # noqa: E402
from sdekit.diffusion.samplers.run import SampleResult  # noqa: E402
from sdekit.targets import GaussianMixture  # noqa: E402
from sdekit.validate.onesample import random_directions  # noqa: E402

NFE_GRID = (5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 1000)
NFE_RANGE = (5, 1000)
QUICK_NFE = (8, 21, 55)
BAND_Z = 3.090232306167813  # the standard normal's 99.9 % quantile
PROJECTIONS, DIRECTION_SEED = 12, 20_260_101
VP = ForwardSDE.vp()

Score = Callable[[Any, float, float], Any]


# --------------------------------------------------------------------------------------------
# data: the two mixtures
# --------------------------------------------------------------------------------------------


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _random_rotation(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# 2-D: the mixture of tests/test_diffusion_fixtures.make_data(2): (eigenvalues, rotation angle) per component.
MIXTURE_2D_SPEC = {"weights": [0.2, 0.5, 0.3], "means": [[-2.0, 0.0], [1.5, 1.0], [0.5, -2.0]],
                   "eigenvalues": [(0.05, 1.0), (0.6, 0.2), (1.5, 0.4)], "angles": [0.3, 1.1, -0.7]}
# 8-D: four components, covariance Q_k diag(eigenvalues_k) Q_k^T with Q_k = _random_rotation(8, seed_k).
MIXTURE_8D_SPEC = {
    "weights": [0.2, 0.35, 0.25, 0.2],
    "means": [[-1.2, 0.4, -2.8, 2.1, 1.0, -0.4, -0.5, 0.5], [-0.4, -0.3, 1.1, 0.8, -0.1, -0.1, 0.2, -0.9],
              [-0.6, 0.8, -0.2, -2.1, -0.7, 1.0, -0.3, -0.2], [1.0, 2.7, -1.1, 2.0, -1.8, 0.3, -1.8, 2.0]],
    "eigenvalues": [(0.02, 0.05, 0.1, 0.3, 0.6, 1.0, 2.0, 3.0), (0.05, 2.0, 0.5, 0.1, 1.0, 0.2, 0.03, 1.5),
                    (1.0, 0.03, 0.4, 0.08, 2.5, 0.2, 0.6, 0.04), (0.1, 0.7, 1.5, 0.05, 0.3, 1.2, 0.02, 0.9)],
    "rotation_seeds": [81, 82, 83, 84]}


def mixture_2d() -> GaussianMixture:
    s = MIXTURE_2D_SPEC
    covs = [_rotation(th) @ np.diag(ev) @ _rotation(th).T for ev, th in zip(s["eigenvalues"], s["angles"])]
    return GaussianMixture(s["weights"], s["means"], covs)


def mixture_8d() -> GaussianMixture:
    s = MIXTURE_8D_SPEC
    covs = []
    for ev, seed in zip(s["eigenvalues"], s["rotation_seeds"]):
        q = _random_rotation(8, seed)
        covs.append(q @ np.diag(ev) @ q.T)
    return GaussianMixture(s["weights"], s["means"], covs)


DATASETS: dict[str, Callable[[], GaussianMixture]] = {"mixture 2-D": mixture_2d, "mixture 8-D": mixture_8d}


# --------------------------------------------------------------------------------------------
# what a sampler entry is given, and the registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """What an entry needs from a dataset. draw(alpha, sigma): the start draws at that level (exact draws for the
    mixtures, scaled prior draws for the digits); forward: the VP SDE whose [eps, T] the lambda- and time-grid samplers
    use; sigma_min / sigma_max: the range of the sigma-grid (EDM, alpha = 1) samplers; seed: the samplers' noise
    seed; diffusion_model: the exact njit model for the SDE / ODE solvers of `sdekit.simulate`; velocity: the exact
    velocity(x, t) of the linear flow interpolant for the flow samplers (None: those entries are not run)."""

    draw: Callable[[float, float], Any]
    forward: ForwardSDE
    sigma_min: float
    sigma_max: float
    seed: int
    diffusion_model: DiffusionModel | None = None
    velocity: Callable[[Any, float], Any] | None = None


@dataclass(frozen=True)
class Entry:
    """One sampler: ``steps(nfe)`` turns an NFE budget into its step count and ``sample(score, setting, steps)``
    runs it; ``needs`` lists the "module:function" it calls (the entry is "not available" when one is missing)."""

    name: str
    family: str
    needs: tuple[str, ...]
    steps: Callable[[int], int]
    sample: Callable[[Score, Setting, int], SampleResult]
    note: str = ""

    def available(self) -> bool:
        return all(_find(spec) is not None for spec in self.needs)

    def run(self, score: Score, setting: Setting, nfe: int) -> SampleResult:
        """The sampler at the step count of budget ``nfe``."""
        return self.sample(score, setting, self.steps(nfe))


def _find(spec: str) -> Callable | None:
    """The function named by "module:function", or None when this checkout does not have it."""
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _fn(spec: str) -> Callable:
    fn = _find(spec)
    if fn is None:
        raise RuntimeError(f"{spec} is not available")
    return fn


S = "sdekit.diffusion.samplers."
EDM, DPM, DDIM, DDPM, PC = (S + "edm:edm_sample", S + "dpm_solver:dpm_solver_sample", S + "ddim:ddim_sample",
                            S + "ddpm:ddpm_sample", S + "predictor_corrector:pc_sample")


def _karras(setting: Setting, steps: int) -> np.ndarray:
    from sdekit.diffusion.samplers.edm import karras_sigmas

    return karras_sigmas(steps, setting.sigma_min, setting.sigma_max)


def _vp_start(setting: Setting) -> Any:
    return setting.draw(*setting.forward.kernel(setting.forward.T))


def _edm_start(setting: Setting) -> Any:
    return setting.draw(1.0, setting.sigma_max)


def vp_levels(forward: ForwardSDE, n: int) -> Any:
    """The n-level discrete schedule at times uniform in [eps, T]: alphabar_k = alpha(t_k)^2 (examples/digits.py's
    respaced schedule on the VP SDE's own levels)."""
    from sdekit.diffusion.samplers.discrete import DiscreteSchedule

    ts = np.linspace(forward.eps, forward.T, n)
    return DiscreteSchedule.from_alphas_cumprod([forward.kernel(float(t))[0] ** 2 for t in ts])


def sigma_sampler(spec: str, **options: Any) -> Callable[[Score, Setting, int], SampleResult]:
    """A sigma-grid sampler fn(score, sigmas, x_init, **options) on karras_sigmas(steps, sigma_min, sigma_max) (to
    sigma = 0) from exact draws at sigma_max (alpha = 1)."""
    def sample(score: Score, setting: Setting, steps: int) -> SampleResult:
        return _fn(spec)(score, _karras(setting, steps), _edm_start(setting), seed=setting.seed, **options)
    return sample


def lambda_sampler(spec: str, **options: Any) -> Callable[[Score, Setting, int], SampleResult]:
    """A sampler fn(score, forward, x_T, steps=, skip="logSNR", **options) on the VP SDE's logSNR grid from T to
    eps, from exact draws at T."""
    def sample(score: Score, setting: Setting, steps: int) -> SampleResult:
        return _fn(spec)(score, setting.forward, _vp_start(setting), steps=steps, skip="logSNR", seed=setting.seed,
                         **options)
    return sample


def _ddim(eta: float) -> Callable[[Score, Setting, int], SampleResult]:
    def sample(score: Score, setting: Setting, steps: int) -> SampleResult:
        sched = vp_levels(setting.forward, steps)
        return _fn(DDIM)(score, sched, setting.draw(*sched.level(steps)), steps=steps, eta=eta, seed=setting.seed)
    return sample


def _ddpm(score: Score, setting: Setting, steps: int) -> SampleResult:
    sched = vp_levels(setting.forward, steps)
    return _fn(DDPM)(score, sched, setting.draw(*sched.level(steps)), seed=setting.seed)


def _pc(score: Score, setting: Setting, steps: int) -> SampleResult:
    return _fn(PC)(score, setting.forward, _vp_start(setting), steps=steps, predictor="reverse_diffusion",
                   corrector="langevin", snr=0.16, seed=setting.seed)


def _simulated(setting: Setting, sde: bool, steps: int) -> SampleResult:
    """The reverse SDE (Euler-Maruyama) or the PF-ODE (RK4) of the exact njit model through sdekit.simulate, from
    exact draws at T to eps; NFE = steps (EM) or 4 steps (RK4)."""
    import sdekit

    fwd, model = setting.forward, setting.diffusion_model
    if model is None:
        raise RuntimeError("this setting has no njit diffusion model")
    span = (fwd.T, fwd.eps)
    if sde:
        sol = sdekit.simulate(model.reverse_sde(), _vp_start(setting), span, steps=steps, seed=setting.seed,
                              progress=False)
    else:
        sol = sdekit.simulate(model.probability_flow(), _vp_start(setting), span, steps=steps, solver="rk4",
                              progress=False)
    (a0, s0), (a1, s1) = fwd.kernel(fwd.T), fwd.kernel(fwd.eps)
    return SampleResult(sol.final, steps * (1 if sde else 4), np.array([a0, a1]), np.array([s0, s1]))


def _nfe_steps(per_step: int = 1, extra: int = 0, minimum: int = 1) -> Callable[[int], int]:
    """NFE = per_step x steps + extra  ->  steps = (nfe - extra) // per_step (at least ``minimum``)."""
    return lambda nfe: max(minimum, (nfe - extra) // per_step)


def heun_steps(nfe: int) -> int:
    """Heun on a grid ending at sigma = 0: NFE = 2 steps - 1."""
    return max(1, (nfe + 1) // 2)


CHURN = {"s_churn": 10.0, "s_tmin": 0.05, "s_tmax": 50.0}  # the EDM churn setting of tests/test_samplers_edm_dpm.py

REGISTRY: list[Entry] = [
    Entry("reverse SDE, Euler-Maruyama", "SDE", ("sdekit:simulate",), _nfe_steps(),
          lambda sc, st, n: _simulated(st, True, n), "time-uniform, T -> eps; numba backend, exact njit score"),
    Entry("PF-ODE, RK4", "ODE", ("sdekit:simulate",), _nfe_steps(4), lambda sc, st, n: _simulated(st, False, n),
          "time-uniform, T -> eps"),
    Entry("DDPM ancestral", "SDE", (DDPM,), _nfe_steps(), _ddpm, "posterior variance, levels uniform in t"),
    Entry("DDIM (eta 0)", "ODE", (DDIM,), _nfe_steps(), _ddim(0.0), "levels uniform in t"),
    Entry("DDIM (eta 1)", "SDE", (DDIM,), _nfe_steps(), _ddim(1.0), "levels uniform in t"),
    Entry("EDM Euler", "ODE", (EDM,), _nfe_steps(), sigma_sampler(EDM, method="euler"), "Karras sigmas"),
    Entry("EDM Heun", "ODE", (EDM,), heun_steps, sigma_sampler(EDM, method="heun"), "Karras sigmas"),
    Entry("EDM Heun + churn", "SDE", (EDM,), heun_steps, sigma_sampler(EDM, method="heun", **CHURN),
          "S_churn 10 on [0.05, 50]"),
    Entry("DPM-Solver-2", "ODE", (DPM,), _nfe_steps(2),
          lambda_sampler(DPM, order=2, method="singlestep", algorithm="dpmsolver"), "singlestep, logSNR"),
    Entry("DPM-Solver-3", "ODE", (DPM,), _nfe_steps(3),
          lambda_sampler(DPM, order=3, method="singlestep", algorithm="dpmsolver"), "singlestep, logSNR"),
    Entry("DPM-Solver++(2M)", "ODE", (DPM,), _nfe_steps(),
          lambda_sampler(DPM, order=2, method="multistep", algorithm="dpmsolver++"), "logSNR"),
    Entry("SDE-DPM-Solver++(2M)", "SDE", (DPM,), _nfe_steps(),
          lambda_sampler(DPM, order=2, method="multistep", algorithm="sde-dpmsolver++"), "logSNR"),
    Entry("predictor-corrector", "SDE", (PC,), _nfe_steps(2), _pc,
          "reverse diffusion + 1 Langevin corrector, snr 0.16"),
]

# The samplers of issue 14 (entries skipped as "not available" until their modules are in the checkout).
DEIS, UNIPC, LMS, PNDM, RESTART, ADAPTIVE = (S + "deis:deis_sample", S + "unipc:unipc_sample", S + "lms:lms_sample",
                                             S + "pndm:pndm_sample", S + "restart:restart_sample",
                                             S + "adaptive_dpm_solver:adaptive_dpm_solver_sample")
EULER_A, DPM2_A, DPMPP_2S_A = (S + "ancestral:euler_ancestral_sample", S + "ancestral:dpm2_ancestral_sample",
                               S + "ancestral:dpmpp_2s_ancestral_sample")
DPMPP_SDE = S + "dpmpp_sde:dpmpp_sde_sample"
DPMPP_2M_SDE = S + "dpmpp_multistep_sde:dpmpp_2m_sde_sample"
DPMPP_3M_SDE = S + "dpmpp_multistep_sde:dpmpp_3m_sde_sample"
# One restart interval (t_min, t_max, K) as in tests/test_samplers_lms_pndm_restart.py, with N_restart = max(2, N // 4)
# backward Heun steps for a main grid of N steps: NFE = 2 N - 1 + 2 K N_restart ~ 3 N. (A fixed N_restart keeps a
# fixed restart error: with (0.1, 1.0, K = 2, N_restart = 4) D stayed at 0.0116 on the 2-D mixture from NFE 89 to
# 999, above the band 0.0090.)
RESTART_INTERVAL = (0.1, 2.0, 2)


def _restart(score: Score, setting: Setting, steps: int) -> SampleResult:
    t_min, t_max, k = RESTART_INTERVAL
    return _fn(RESTART)(score, _karras(setting, steps), _edm_start(setting), seed=setting.seed,
                        restart=[(t_min, t_max, k, max(2, steps // 4))])
# budget -> rtol of the adaptive solver, atol = rtol x 0.0078 / 0.05 (Lu et al.'s ratio); its NFE is what it used
# (measured: on the 2-D and 8-D mixtures its NFE runs from ~25-35 at rtol 2 to ~300-1200 at rtol 1e-4)
ADAPTIVE_RTOL = {5: 8.0, 8: 4.0, 13: 2.0, 21: 1.0, 34: 0.5, 55: 0.2, 89: 0.1, 144: 0.02, 233: 4e-3, 377: 1e-3,
                 610: 1e-4, 1000: 1e-5}


def _pndm(method: str) -> Callable[[Score, Setting, int], SampleResult]:
    def sample(score: Score, setting: Setting, steps: int) -> SampleResult:
        sched = vp_levels(setting.forward, steps)
        return _fn(PNDM)(score, sched, setting.draw(*sched.level(steps)), method=method, steps=steps)
    return sample


def _adaptive(order: int) -> Callable[[Score, Setting, int], SampleResult]:
    def sample(score: Score, setting: Setting, rtol_per_mille: int) -> SampleResult:
        rtol = rtol_per_mille / 1e6
        return _fn(ADAPTIVE)(score, setting.forward, _vp_start(setting), order=order, rtol=rtol, atol=0.156 * rtol)
    return sample


def _rtol_ppm(nfe: int) -> int:
    """The adaptive solver's "steps" are its rtol in parts per million (ADAPTIVE_RTOL at the budget)."""
    return max(1, round(ADAPTIVE_RTOL.get(nfe, 0.1) * 1e6))


REGISTRY += [
    Entry("DPM-Solver++(3M)", "ODE", (DPM,), _nfe_steps(),
          lambda_sampler(DPM, order=3, method="multistep", algorithm="dpmsolver++"), "logSNR"),
    Entry("UniPC-2 (bh2)", "ODE", (UNIPC,), _nfe_steps(), lambda_sampler(UNIPC, order=2, variant="bh2"),
          "UniP-2 + UniC, logSNR"),
    Entry("UniPC-3 (bh1)", "ODE", (UNIPC,), _nfe_steps(), lambda_sampler(UNIPC, order=3, variant="bh1"),
          "UniP-3 + UniC, logSNR"),
    Entry("DEIS-3 (tAB)", "ODE", (DEIS,), _nfe_steps(), lambda_sampler(DEIS, order=3), "logSNR"),
    Entry("LMS-4", "ODE", (LMS,), _nfe_steps(), sigma_sampler(LMS, order=4), "Karras sigmas"),
    Entry("PNDM", "ODE", (PNDM,), _nfe_steps(extra=9, minimum=4), _pndm("pndm"), "levels uniform in t; NFE = S + 9"),
    Entry("PLMS", "ODE", (PNDM,), _nfe_steps(extra=1, minimum=2), _pndm("plms"), "levels uniform in t; NFE = S + 1"),
    Entry("restart", "SDE", (RESTART,), _nfe_steps(3, extra=-1, minimum=2), _restart,
          f"Heun on Karras sigmas (N steps) + restart (t_min, t_max, K) = {RESTART_INTERVAL}, N_restart = N // 4"),
    Entry("adaptive DPM-Solver-12", "ODE", (ADAPTIVE,), _rtol_ppm, _adaptive(2),
          "error-controlled; the budget picks rtol (ADAPTIVE_RTOL), the NFE is the solver's"),
    Entry("adaptive DPM-Solver-23", "ODE", (ADAPTIVE,), _rtol_ppm, _adaptive(3),
          "error-controlled; the budget picks rtol (ADAPTIVE_RTOL), the NFE is the solver's"),
    Entry("Euler ancestral", "SDE", (EULER_A,), _nfe_steps(), sigma_sampler(EULER_A, eta=1.0), "Karras sigmas"),
    Entry("DPM-2 ancestral", "SDE", (DPM2_A,), heun_steps, sigma_sampler(DPM2_A, eta=1.0), "Karras sigmas"),
    Entry("DPM++ 2S ancestral", "SDE", (DPMPP_2S_A,), heun_steps, sigma_sampler(DPMPP_2S_A, eta=1.0),
          "Karras sigmas"),
    Entry("DPM++ SDE", "SDE", (DPMPP_SDE,), heun_steps, sigma_sampler(DPMPP_SDE, eta=1.0),
          "Karras sigmas, Brownian-path noise"),
    Entry("DPM++ 2M SDE", "SDE", (DPMPP_2M_SDE,), _nfe_steps(), sigma_sampler(DPMPP_2M_SDE, eta=1.0),
          "Karras sigmas, midpoint"),
    Entry("DPM++ 3M SDE", "SDE", (DPMPP_3M_SDE,), _nfe_steps(), sigma_sampler(DPMPP_3M_SDE, eta=1.0),
          "Karras sigmas"),
]

FLOW = "sdekit.flow:flow_sample"


def _flow(method: str) -> Callable[[Score, Setting, int], SampleResult]:
    """A flow sampler (Euler / Heun / midpoint in t) on the exact velocity of the linear interpolant
    x_t = (1 - t) x_0 + t eps (setting.velocity), uniform times from t = 1 (exact N(0, I) draws) to t = 0."""
    def sample(score: Score, setting: Setting, steps: int) -> SampleResult:
        if setting.velocity is None:
            raise RuntimeError("this setting has no flow velocity")
        return _fn(FLOW)(setting.velocity, setting.draw(0.0, 1.0), method=method, steps=steps)
    return sample


REGISTRY += [
    Entry("flow Euler", "flow ODE", (FLOW,), _nfe_steps(), _flow("euler"),
          "exact velocity, linear interpolant, uniform t"),
    Entry("flow Heun", "flow ODE", (FLOW,), _nfe_steps(2), _flow("heun"),
          "exact velocity, linear interpolant, uniform t"),
    Entry("flow midpoint", "flow ODE", (FLOW,), _nfe_steps(2), _flow("midpoint"),
          "exact velocity, linear interpolant, uniform t"),
]
NOT_RUN = {"annealed Langevin (NCSN)": "no NFE rule reaches an exact law: at any fixed levels and step size its "
                                       "output is biased (annealed_langevin.py), so it has no passes-at to measure"}

# The digits part: entries run on the trained model (no njit model, so not the sdekit.simulate ones).
DIGITS_SAMPLERS = ("DDIM (eta 0)", "DDPM ancestral", "EDM Heun", "DPM-Solver-3", "DPM-Solver++(2M)",
                   "SDE-DPM-Solver++(2M)", "DPM-Solver++(3M)", "UniPC-2 (bh2)", "DEIS-3 (tAB)", "PLMS", "LMS-4",
                   "Euler ancestral", "DPM++ 2M SDE", "restart")
DIGITS_NFE = (5, 8, 13, 21, 34, 55, 89, 144)


# --------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------


@dataclass
class Mixture:
    """A dataset's law, its exact marginals, the fixed directions of the distance and its noise floor."""

    name: str
    law: GaussianMixture
    marginals: MixtureMarginals = field(init=False)
    directions: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.marginals = MixtureMarginals(self.law)
        d = self.law.dim
        self.directions = np.concatenate([np.eye(d), random_directions(d, PROJECTIONS, DIRECTION_SEED)])

    def score(self) -> Score:
        p = self.marginals.params
        return lambda x, a, s: mixture_marginal_score(np.ascontiguousarray(x), float(a), float(s), p)

    def setting(self, n: int, seed: int) -> Setting:
        mm = self.marginals
        velocity = _find("sdekit.flow:MixtureVelocity")
        def draw(alpha: float, sigma: float) -> np.ndarray:
            """Exact draws of alpha x_0 + sigma eps (alpha = 0: sigma N(0, I), the flow's start at t = 1)."""
            if alpha == 0:
                return sigma * np.random.default_rng(seed).standard_normal((n, self.law.dim))
            return mm.sample(n, float(alpha), float(sigma), seed=seed)

        return Setting(draw=draw, forward=VP, sigma_min=0.002,
                       sigma_max=80.0, seed=seed, diffusion_model=DiffusionModel.exact_mixture(VP, self.law),
                       velocity=None if velocity is None else velocity(mm))

    def distance(self, x: np.ndarray, alpha: float, sigma: float) -> float:
        law = self.marginals.marginal(alpha, sigma) if sigma > 0 else self.law
        return ks_distance(np.asarray(x, dtype=np.float64), law, self.directions)

    def floor(self, n: int, draws: int, seed: int) -> dict[str, float]:
        """D of ``draws`` independent exact draws of size n: mean, sd, max and the 99.9 % band
        exp(mean log D + 3.09 sd log D) (log-normal: the KS statistic's right tail is longer than a normal's)."""
        v = np.array([ks_distance(self.law.sample(n, seed=seed + 1000 + k), self.law, self.directions)
                      for k in range(draws)])
        logs = np.log(v)
        band = float(np.exp(logs.mean() + BAND_Z * logs.std(ddof=1)))
        return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)), "max": float(v.max()), "band": band,
                "draws": draws}


def budgets(entry: Entry, nfes: tuple[int, ...]) -> list[int]:
    """The budgets of ``nfes`` that give distinct step counts (the first budget of each)."""
    seen, out = set(), []
    for nfe in nfes:
        steps = entry.steps(nfe)
        if steps not in seen:
            seen.add(steps)
            out.append(nfe)
    return out


def run_entry(entry: Entry, score: Score, setting: Setting, nfes: tuple[int, ...],
              measure: Callable[[SampleResult], dict[str, float]], log: Callable[[str], None] | None = None,
              settled: Callable[[list[dict[str, Any]]], bool] | None = None) -> list[dict[str, Any]]:
    """The entry at every budget of ``nfes`` (in increasing order; it stops early once ``settled(rows)``): one row
    per run whose NFE lies in NFE_RANGE."""
    rows: list[dict[str, Any]] = []
    for nfe in budgets(entry, nfes):
        if settled is not None and settled(rows):
            break
        t0 = time.perf_counter()
        res = entry.run(score, setting, nfe)
        seconds = time.perf_counter() - t0
        if not NFE_RANGE[0] <= res.nfe <= NFE_RANGE[1]:
            continue
        row = {"sampler": entry.name, "family": entry.family, "budget": nfe, "steps": entry.steps(nfe),
               "nfe": int(res.nfe), **measure(res), "seconds": seconds}
        rows.append(row)
        if log is not None:
            log(f"  {entry.name:34s} NFE {row['nfe']:5d}  " + "  ".join(
                f"{k} {v:.4f}" for k, v in row.items() if k in ("distance", "pca16", "mlp64")))
    return rows


def passes_at(rows: list[dict[str, Any]], band: float, key: str = "distance") -> int | None:
    """The smallest NFE from which ``key`` stays <= band at every larger measured NFE (None: never)."""
    best = None
    for r in sorted(rows, key=lambda r: r["nfe"], reverse=True):
        if r[key] > band:
            break
        best = r["nfe"]
    return best


def entry_seed(seed: int, name: str) -> int:
    """Each sampler's own start and noise seed: seed + crc32(name) mod 10^6 (stable when entries are added). With
    one start shared by every sampler, every deterministic one converges to the same exact-flow-map sample, so one
    unusual start would decide all of their passes-at together; own starts make them independent draws."""
    return seed + zlib.crc32(name.encode()) % 1_000_000


def run_mixture(mixture: Mixture, entries: list[Entry], nfes: tuple[int, ...], n: int, seed: int,
                floor_draws: int, log: Callable[[str], None] | None = None, stop_after: int = 0) -> dict[str, Any]:
    """Every available entry on one mixture: its rows, the floor and each entry's passes-at. stop_after > 0: an
    entry stops once its last ``stop_after`` budgets were all within the band (the larger budgets would only
    measure the floor again; passes-at is then read from the budgets measured)."""
    floor = mixture.floor(n, floor_draws, seed)
    if log is not None:
        log(f"{mixture.name}: floor D_0 = {floor['mean']:.4f} (sd {floor['sd']:.4f}), band {floor['band']:.4f}")
    score = mixture.score()

    def settled(rows: list[dict[str, Any]]) -> bool:
        return stop_after > 0 and len(rows) >= stop_after and all(r["distance"] <= floor["band"]
                                                                  for r in rows[-stop_after:])

    def measure(res: SampleResult) -> dict[str, float]:
        return {"distance": mixture.distance(res.x, float(res.alphas[-1]), float(res.sigmas[-1])),
                "end_alpha": float(res.alphas[-1]), "end_sigma": float(res.sigmas[-1])}

    rows, summary = [], {}
    for entry in entries:
        if not entry.available():
            summary[entry.name] = {"family": entry.family, "status": "not available", "note": entry.note}
            continue
        try:
            mine = run_entry(entry, score, mixture.setting(n, entry_seed(seed, entry.name)), nfes, measure, log,
                             settled)
        except Exception as exc:  # a sampler of this checkout that rejects the entry's call: recorded, not fatal
            summary[entry.name] = {"family": entry.family, "status": f"failed: {exc}", "note": entry.note}
            if log is not None:
                log(f"  {entry.name}: FAILED: {exc!r}")
            continue
        rows += mine
        summary[entry.name] = {"family": entry.family, "status": "ok", "note": entry.note,
                               "passes_at": passes_at(mine, floor["band"]),
                               "best": min((r["distance"] for r in mine), default=None)}
    return {"dataset": mixture.name, "dim": mixture.law.dim, "n": n, "seed": seed, "floor": floor, "rows": rows,
            "summary": summary}


# --------------------------------------------------------------------------------------------
# the digits model
# --------------------------------------------------------------------------------------------


def run_digits(entries: list[Entry], nfes: tuple[int, ...], n: int, seed: int, cache: Path | None = None,
               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The subset of entries on the cached digits model (weights read from ``cache``, default examples/digits.py's
    cache directory; never trained here): FD (pca16, mlp64) against the held-out digits."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    import digits as dg

    cfg = dg.FULL
    cache = dg.default_cache_dir() if cache is None else Path(cache)
    path = cache / f"digits_eps_{cfg.training_key()}.pt"
    if not path.exists():
        raise SystemExit(f"the digits model is not cached at {path}: run examples/digits.py first (or --no-digits)")
    data = dg.load_split()
    trained = dg.train(data, cfg, cache)
    judge = dg.Judge(data)
    net = dg.network(trained.model)
    z = dg.prior_draws(n, seed)
    setting = Setting(draw=lambda a, s: z * math.hypot(float(a), float(s)), forward=dg.FORWARD,
                      sigma_min=dg.SIGMA_MIN, sigma_max=dg.SIGMA_MAX, seed=seed)

    def measure(res: SampleResult) -> dict[str, float]:
        x = res.x.detach().cpu().numpy().astype(np.float64).reshape(z.shape)
        return judge.fd(dg.to_pixels(x))

    rows, summary = [], {}
    spread = judge.floor_spread(n)
    for entry in entries:
        if not entry.available():
            summary[entry.name] = {"family": entry.family, "status": "not available", "note": entry.note}
            continue
        try:
            with torch.no_grad():
                mine = run_entry(entry, net, setting, nfes, measure, log)
        except Exception as exc:  # recorded, not fatal (as in run_mixture)
            summary[entry.name] = {"family": entry.family, "status": f"failed: {exc}", "note": entry.note}
            if log is not None:
                log(f"  {entry.name}: FAILED: {exc!r}")
            continue
        rows += mine
        summary[entry.name] = {"family": entry.family, "status": "ok", "note": entry.note,
                               "best_pca16": min(r["pca16"] for r in mine), "best_mlp64": min(r["mlp64"] for r in mine)}
    return {"dataset": "digits", "n": n, "seed": seed, "weights": str(path), "floor": spread,
            "noise": judge.noise(n), "rows": rows, "summary": summary, "torch_threads": torch.get_num_threads()}


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------


def _cell(rows: list[dict[str, Any]], budget: int, key: str, scale: float, band: float | None) -> str:
    r = next((r for r in rows if r["budget"] == budget), None)
    if r is None:
        return ""
    text = f"{r[key] * scale:.3g}" if key == "distance" else f"{r[key]:.3g}"
    if r["nfe"] != budget:
        text += f" ({r['nfe']})"
    return f"**{text}**" if band is not None and r[key] <= band else text


def mixture_table(part: dict[str, Any], nfes: tuple[int, ...]) -> list[str]:
    f = part["floor"]
    lines = [f"### {part['dataset']} (d = {part['dim']}, N = {part['n']})", "",
             f"Noise floor D_0 = {f['mean'] * 1e3:.2f} e-3 (sd {f['sd'] * 1e3:.2f} e-3 over {f['draws']} exact draws, "
             f"max {f['max'] * 1e3:.2f} e-3); 99.9 % band D <= **{f['band'] * 1e3:.2f} e-3**. Cells: D x 1000 at each "
             "NFE budget (the NFE used in parentheses when it differs); bold: within the band; blank after bold "
             "cells: not run (the entry stopped after three budgets within the band).", "",
             "| sampler | family | passes at | " + " | ".join(str(b) for b in nfes) + " |",
             "|---|---|---:|" + "---:|" * len(nfes)]
    for name, s in part["summary"].items():
        if s["status"] != "ok":
            lines.append(f"| {name} | {s['family']} | {s['status']} |" + " |" * len(nfes))
            continue
        mine = [r for r in part["rows"] if r["sampler"] == name]
        passes = "-" if s["passes_at"] is None else str(s["passes_at"])
        lines.append(f"| {name} | {s['family']} | {passes} | "
                     + " | ".join(_cell(mine, b, "distance", 1e3, f["band"]) for b in nfes) + " |")
    return lines + [""]


def settles_at(rows: list[dict[str, Any]], key: str, tolerance: float) -> int | None:
    """The smallest NFE from which ``key`` stays within ``tolerance`` of its value at the largest measured NFE (the
    digits have no exact law: this is where a sampler stops changing at the resolution of the FD's own noise)."""
    ordered = sorted(rows, key=lambda r: r["nfe"], reverse=True)
    if not ordered:
        return None
    last, best = ordered[0][key], None
    for r in ordered:
        if abs(r[key] - last) > tolerance:
            break
        best = r["nfe"]
    return best


def digits_table(part: dict[str, Any], nfes: tuple[int, ...]) -> list[str]:
    fl, noise = part["floor"], part["noise"]
    lines = [f"### digits (examples/digits.py's cached eps model: n = {part['n']} generated vs 360 held-out)", "",
             f"Fréchet distance on pca16 / mlp64. Floor (held-out vs {part['n']} training digits, 30 draws): "
             f"{fl['pca16']['mean']:.3f} (sd {fl['pca16']['sd']:.3f}) / {fl['mlp64']['mean']:.2f} "
             f"(sd {fl['mlp64']['sd']:.2f}); N(0, I) noise: {noise['pca16']:.2f} / {noise['mlp64']:.1f}. "
             "Cells: FD pca16 / mlp64 at each NFE budget (NFE used in parentheses when it differs). **settles at**: "
             "the smallest NFE from which FD pca16 stays within one floor sd of its value at the largest NFE.", "",
             "| sampler | family | settles at | " + " | ".join(str(b) for b in nfes) + " |",
             "|---|---|---:|" + "---:|" * len(nfes)]
    for name, s in part["summary"].items():
        if s["status"] != "ok":
            lines.append(f"| {name} | {s['family']} | {s['status']} |" + " |" * len(nfes))
            continue
        mine = [r for r in part["rows"] if r["sampler"] == name]
        settled = settles_at(mine, "pca16", fl["pca16"]["sd"])
        cells = ["-" if settled is None else str(settled)]
        for b in nfes:
            r = next((r for r in mine if r["budget"] == b), None)
            cells.append("" if r is None else f"{r['pca16']:.3g} / {r['mlp64']:.3g}"
                         + (f" ({r['nfe']})" if r["nfe"] != b else ""))
        lines.append(f"| {name} | {s['family']} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(result: dict[str, Any]) -> str:
    info, cfg = result["machine"], result["config"]
    md = ["# Every sampler: distance to the exact law against NFE", "",
          f"`{cfg['command']}` on {info['cpu_model']} ({info['affinity']} cores; load average "
          f"{info['load_before']:.2f} before, {info['load_after']:.2f} after; {result['seconds']:.0f} s in all). "
          "Method: benchmarks/samplers_nfe.py's docstring. Mixtures: exact score, exact start of each sampler's "
          "first level, D = mean KS distance over d + 12 directions to the exact law of its last level. "
          "**passes at**: the smallest NFE from which D stays within the noise floor's 99.9 % band at every "
          "larger measured NFE ('-': not reached by NFE 1000).", ""]
    for part in result["mixtures"]:
        md += mixture_table(part, tuple(cfg["nfes"]))
    if result.get("digits"):
        md += digits_table(result["digits"], tuple(cfg["digits_nfes"]))
    notes = {name: s["note"] for part in result["mixtures"] for name, s in part["summary"].items() if s["note"]}
    md += ["Samplers (grids):", ""] + [f"- {k}: {v}" for k, v in notes.items()] + [""]
    md += ["Not run:", ""] + [f"- {k}: {v}" for k, v in result.get("not_run", {}).items()] + [""]
    if cfg.get("note"):
        md += [f"Note: {cfg['note']}", ""]
    for u in cfg.get("updates", []):
        md += [f"Updated by `{u['command']}` (load average {u['machine']['load_before']:.2f} -> "
               f"{u['machine']['load_after']:.2f}, {u['seconds']:.0f} s): those entries' rows are from that run.", ""]
    return "\n".join(md)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = list(result["mixtures"]) + ([result["digits"]] if result.get("digits") else [])
    names = list(dict.fromkeys(r["sampler"] for p in parts for r in p["rows"]))
    colours = plt.get_cmap("tab20")
    style = {name: (colours(i % 20), "-" if i < 20 else "--") for i, name in enumerate(names)}
    fig, axes = plt.subplots(1, len(parts), figsize=(6.2 * len(parts), 5.2), squeeze=False)
    for ax, part in zip(axes[0], parts):
        key = "distance" if part["dataset"] != "digits" else "pca16"
        for name in names:
            pts = sorted((r["nfe"], r[key]) for r in part["rows"] if r["sampler"] == name)
            if pts:
                c, ls = style[name]
                family = next(r["family"] for r in part["rows"] if r["sampler"] == name)
                marker = {"ODE": "o", "SDE": "s"}.get(family, "^")
                ax.loglog(*zip(*pts), ls, marker=marker, ms=3, color=c, lw=1.1, label=name)
        fl = part["floor"]
        if key == "distance":
            ax.axhspan(fl["mean"], fl["band"], color="k", alpha=0.12, lw=0)
            ax.axhline(fl["mean"], color="k", lw=0.8, ls=":")
            ax.set_ylabel("mean sliced KS distance to the exact law")
            ax.set_title(f"{part['dataset']} (N = {part['n']}); grey: floor .. 99.9 % band", fontsize=9)
        else:
            ax.axhspan(fl["pca16"]["mean"] - fl["pca16"]["sd"], fl["pca16"]["mean"] + fl["pca16"]["sd"], color="k",
                       alpha=0.12, lw=0)
            ax.axhline(fl["pca16"]["mean"], color="k", lw=0.8, ls=":")
            ax.set_ylabel("Fréchet distance (pca16) to held-out digits")
            ax.set_title(f"digits model (n = {part['n']}); grey: real-vs-real floor +- 1 sd", fontsize=9)
        ax.set_xlabel("model evaluations (NFE)")
        ax.grid(True, which="both", alpha=0.25)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), ncol=1 if len(labels) <= 22 else 2,
               fontsize=7, frameon=False, title="o ODE, s SDE, ^ flow", title_fontsize=7)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def write(result: dict[str, Any], out: Path, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (out / f"{stem}.md").write_text(markdown(result))
    try:
        plot(result, out / f"{stem}.png")
    except ImportError:
        pass


def updated(result: dict[str, Any], mixtures: list[dict[str, Any]], digits: dict[str, Any] | None,
            names: list[str]) -> dict[str, Any]:
    """``result`` with the rows and summaries of the entries ``names`` replaced by a new run's (same datasets, N,
    seeds: the floors are recomputed identically); summaries in registry order."""
    order = {e.name: i for i, e in enumerate(REGISTRY)}

    def merge(old: dict[str, Any], new: dict[str, Any]) -> None:
        old["rows"] = [r for r in old["rows"] if r["sampler"] not in names] + new["rows"]
        summary = {**old["summary"], **new["summary"]}
        old["summary"] = dict(sorted(summary.items(), key=lambda kv: order.get(kv[0], len(order))))

    parts = {p["dataset"]: p for p in result["mixtures"]}
    for new in mixtures:
        if new["dataset"] not in parts or new["n"] != parts[new["dataset"]]["n"]:
            raise SystemExit(f"--update: {new['dataset']} at N = {new['n']} is not in the JSON")
        merge(parts[new["dataset"]], new)
    if digits is not None and result.get("digits"):
        merge(result["digits"], digits)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2-D mixture, N = 4000, NFE 8, 21, 55, no digits")
    parser.add_argument("--paths", type=int, default=None, help="N per mixture run (default 20000; quick 4000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--floor-draws", type=int, default=None, help="exact draws for the floor (default 50)")
    parser.add_argument("--no-digits", action="store_true")
    parser.add_argument("--digits-n", type=int, default=360)
    parser.add_argument("--digits-cache", default=None,
                        help="folder of the digits weights (default: examples/digits.py's, $SDEKIT_CACHE_DIR/examples)")
    parser.add_argument("--only", default=None, help="comma-separated sampler names (default: every entry)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--replot", action="store_true", help="redraw the PNG and Markdown from the JSON")
    parser.add_argument("--stop-after", type=int, default=3,
                        help="stop an entry after this many consecutive budgets within the band (0: run them all)")
    parser.add_argument("--note", default="", help="a line for the Markdown (e.g. which checkout ran)")
    parser.add_argument("--update", action="store_true",
                        help="with --only: rerun those entries and replace their rows in the existing JSON")
    args = parser.parse_args(argv)
    if args.update and args.only is None:
        parser.error("--update needs --only (the entries to rerun)")
    stem = "samplers_nfe_quick" if args.quick else "samplers_nfe"
    out = Path(args.out)
    if args.replot:
        write(json.loads((out / f"{stem}.json").read_text()), out, stem)
        return 0
    n = args.paths or (4000 if args.quick else 20_000)
    floor_draws = args.floor_draws or (10 if args.quick else 50)
    nfes = QUICK_NFE if args.quick else NFE_GRID
    entries = REGISTRY if args.only is None else [e for e in REGISTRY if e.name in args.only.split(",")]
    datasets = ["mixture 2-D"] if args.quick else list(DATASETS)
    start, info = time.perf_counter(), machine()
    info["load_before"] = os.getloadavg()[0]
    mixtures = [run_mixture(Mixture(name, DATASETS[name]()), entries, nfes, n, args.seed, floor_draws, print,
                            args.stop_after) for name in datasets]
    digits = None
    if not (args.quick or args.no_digits):
        subset = [e for e in entries if e.name in DIGITS_SAMPLERS]
        digits = run_digits(subset, DIGITS_NFE, args.digits_n, args.seed, args.digits_cache, print)
    info["load_after"] = os.getloadavg()[0]
    command = " ".join(["python benchmarks/samplers_nfe.py", *(sys.argv[1:] if argv is None else argv)])
    if args.update:
        result = updated(json.loads((out / f"{stem}.json").read_text()), mixtures, digits, [e.name for e in entries])
        result["config"].setdefault("updates", []).append({"command": command, "machine": info,
                                                           "seconds": time.perf_counter() - start})
        write(result, out, stem)
        print(markdown(result))
        return 0
    result = {"machine": info, "seconds": time.perf_counter() - start, "mixtures": mixtures, "digits": digits,
              "not_run": NOT_RUN,
              "config": {"command": command, "note": args.note, "nfes": list(nfes), "digits_nfes": list(DIGITS_NFE),
                         "paths": n, "floor_draws": floor_draws, "stop_after": args.stop_after, "band_z": BAND_Z,
                         "projections": PROJECTIONS,
                         "digits_samplers": list(DIGITS_SAMPLERS)}}
    write(result, out, stem)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
