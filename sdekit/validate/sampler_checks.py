"""The diffusion samplers of the literature in `sdekit validate`, as data: one row per sampler.

Every row runs its sampler with the exact score of the 2-D anisotropic mixture ``MIXTURE_2D`` from an exact draw of
its first level and compares the output with the exact law of its last level (`compare_with_law`, the full battery):

    start "vp"        exact p_T of ForwardSDE.vp() (T = 1), compared with the exact marginal at t = eps = 1e-3;
    start "ve"        exact p(x; sigma) at sigma = 80 (alpha = 1, the k-diffusion / EDM convention; InDI's
                      y = x + sigma_y n at sigma = sigma_y), compared with the data law;
    start "discrete"  exact level K of DiscreteSchedule.linear() (K = 1000), compared with the data law.

The settings are above the smallest NFE each sampler was measured to pass at N = 20,000 on the 1-, 2- and 4-D test
mixtures (the samplers' module docstrings), so a failure here is a defect, not the sampler's known bias.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sdekit.targets import GaussianMixture
from sdekit.validate.closed_form import MIXTURE_2D
from sdekit.validate.compare import compare_with_law
from sdekit.validate.registry import Check
from sdekit.validate.report import Report

__all__ = ["SAMPLER_CASES", "SAMPLER_CHECKS", "SamplerCase"]

SIGMA_MAX = 80.0
RunFn = Callable[[Callable, np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class SamplerCase:
    """One sampler check: key, the sampler's label, its start ("vp", "ve" or "discrete"), run(score, x_start, seed)
    -> samples, the one-line description (``--list``) and whether it is part of ``--quick`` (two cheap ones are;
    the quick subset stays under a minute)."""

    name: str
    sampler: str
    start: str
    run: RunFn
    description: str
    quick: bool = False
    sigma_start: float = SIGMA_MAX


def _vp():
    from sdekit.diffusion import ForwardSDE

    return ForwardSDE.vp()


def _karras(n: int) -> np.ndarray:
    from sdekit.diffusion.samplers.sigma_grids import karras_sigmas

    return karras_sigmas(n, 0.002, SIGMA_MAX)


def _unipc(score, x, seed):
    from sdekit.diffusion.samplers.unipc import unipc_sample

    return unipc_sample(score, _vp(), x, order=2, steps=25).x


def _deis(score, x, seed):
    from sdekit.diffusion.samplers.deis import deis_sample

    return deis_sample(score, _vp(), x, order=3, steps=20).x


def _dpm_pp_3m(score, x, seed):
    from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample

    return dpm_solver_sample(score, _vp(), x, order=3, steps=25, method="multistep", algorithm="dpmsolver++",
                             skip="logSNR").x


def _adaptive(score, x, seed):
    from sdekit.diffusion.samplers.adaptive_dpm_solver import adaptive_dpm_solver_sample

    return adaptive_dpm_solver_sample(score, _vp(), x, order=3, rtol=0.05).x


def _euler_ancestral(score, x, seed):
    from sdekit.diffusion.samplers.ancestral import euler_ancestral_sample

    return euler_ancestral_sample(score, _karras(512), x, seed=seed).x


def _dpm2_ancestral(score, x, seed):
    from sdekit.diffusion.samplers.ancestral import dpm2_ancestral_sample

    return dpm2_ancestral_sample(score, _karras(64), x, seed=seed).x


def _dpmpp_2s_ancestral(score, x, seed):
    from sdekit.diffusion.samplers.ancestral import dpmpp_2s_ancestral_sample

    return dpmpp_2s_ancestral_sample(score, _karras(64), x, seed=seed).x


def _dpmpp_sde(score, x, seed):
    from sdekit.diffusion.samplers.dpmpp_sde import dpmpp_sde_sample

    return dpmpp_sde_sample(score, _karras(48), x, seed=seed).x


def _dpmpp_2m_sde(score, x, seed):
    from sdekit.diffusion.samplers.dpmpp_multistep_sde import dpmpp_2m_sde_sample

    return dpmpp_2m_sde_sample(score, _karras(64), x, seed=seed).x


def _dpmpp_3m_sde(score, x, seed):
    from sdekit.diffusion.samplers.dpmpp_multistep_sde import dpmpp_3m_sde_sample

    return dpmpp_3m_sde_sample(score, _karras(64), x, seed=seed).x


def _lms(score, x, seed):
    from sdekit.diffusion.samplers.lms import lms_sample

    return lms_sample(score, _karras(50), x, order=4).x


def _restart(score, x, seed):
    from sdekit.diffusion.samplers.restart import restart_sample

    return restart_sample(score, _karras(32), x, restart=[(0.1, 2.0, 2, 8)], seed=seed).x


INDI_SIGMA_Y = 2.0


def _indi(score, x, seed):
    from sdekit.restoration import MixtureDenoiser, indi_sample

    return indi_sample(MixtureDenoiser(GaussianMixture(**MIXTURE_2D), INDI_SIGMA_Y), x, steps=100).x


def _indi_noise(t):
    return INDI_SIGMA_Y * np.sqrt(1.0 - t)


def _indi_stochastic(score, x, seed):
    from sdekit.restoration import MixtureDenoiser, indi_sample

    denoiser = MixtureDenoiser(GaussianMixture(**MIXTURE_2D), INDI_SIGMA_Y, noise_schedule=_indi_noise)
    return indi_sample(denoiser, x, steps=160, noise_schedule=_indi_noise, seed=seed).x


def _linear_schedule():
    from sdekit.diffusion.samplers.discrete import DiscreteSchedule

    return DiscreteSchedule.linear()


def _pndm(score, x, seed):
    from sdekit.diffusion.samplers.pndm import pndm_sample

    return pndm_sample(score, _linear_schedule(), x, method="pndm", steps=50).x


def _plms(score, x, seed):
    from sdekit.diffusion.samplers.pndm import pndm_sample

    return pndm_sample(score, _linear_schedule(), x, method="plms", steps=50).x


SAMPLER_CASES: tuple[SamplerCase, ...] = (
    SamplerCase("diffusion_unipc", "unipc-2 (bh2)", "vp", _unipc,
                "UniPC-2 (bh2, data prediction, UniC corrector), 25 NFE on the VP logSNR grid, vs p_eps.", quick=True),
    SamplerCase("diffusion_deis", "deis tab-3", "vp", _deis,
                "DEIS tAB-3, 20 NFE on the VP logSNR grid, vs p_eps."),
    SamplerCase("diffusion_dpm_solver_pp_3m", "dpm-solver++(3M)", "vp", _dpm_pp_3m,
                "DPM-Solver++(3M) (third-order weights), 25 NFE on the VP logSNR grid, vs p_eps.", quick=True),
    SamplerCase("diffusion_adaptive_dpm_solver", "adaptive dpm-solver-23", "vp", _adaptive,
                "Adaptive DPM-Solver-23, rtol 0.05, VP, vs p_eps."),
    SamplerCase("diffusion_euler_ancestral", "euler ancestral", "ve", _euler_ancestral,
                "Euler ancestral (eta = 1), 512 Karras levels from sigma = 80 to 0, vs the data law."),
    SamplerCase("diffusion_dpm2_ancestral", "dpm-2 ancestral", "ve", _dpm2_ancestral,
                "DPM-2 ancestral (eta = 1), 64 Karras levels (127 NFE), vs the data law."),
    SamplerCase("diffusion_dpmpp_2s_ancestral", "dpm++ 2s ancestral", "ve", _dpmpp_2s_ancestral,
                "DPM++ 2S ancestral (eta = 1), 64 Karras levels (127 NFE), vs the data law."),
    SamplerCase("diffusion_dpmpp_sde", "dpm++ sde", "ve", _dpmpp_sde,
                "DPM++ SDE (eta = 1, r = 1/2, Brownian-path noise), 48 Karras levels (95 NFE), vs the data law."),
    SamplerCase("diffusion_dpmpp_2m_sde", "sde-dpm-solver++(2M)", "ve", _dpmpp_2m_sde,
                "SDE-DPM-Solver++(2M) (eta = 1, midpoint), 64 Karras levels, vs the data law."),
    SamplerCase("diffusion_dpmpp_3m_sde", "sde-dpm-solver++(3M)", "ve", _dpmpp_3m_sde,
                "SDE-DPM-Solver++(3M) (eta = 1), 64 Karras levels, vs the data law."),
    SamplerCase("diffusion_lms", "lms order 4", "ve", _lms,
                "LMS order 4 (exact Lagrange weights in sigma), 50 Karras levels, vs the data law."),
    SamplerCase("diffusion_restart", "restart (edm heun)", "ve", _restart,
                "Restart sampling: EDM Heun on 32 Karras levels + restart interval (0.1, 2.0, K = 2, N = 8), vs the "
                "data law."),
    SamplerCase("diffusion_pndm", "pndm", "discrete", _pndm,
                "PNDM (pseudo Runge-Kutta warm-up), 50 steps of the linear schedule (59 NFE), vs the data law."),
    SamplerCase("diffusion_plms", "plms", "discrete", _plms,
                "PLMS (pseudo linear multistep), 50 steps of the linear schedule (51 NFE), vs the data law."),
    SamplerCase("diffusion_indi", "indi", "ve", _indi,
                "InDI restoration, deterministic, 100 uniform steps from the exact y = x + 2 n, vs the law of x.",
                sigma_start=INDI_SIGMA_Y),
    SamplerCase("diffusion_indi_stochastic", "indi (noise-injected)", "ve", _indi_stochastic,
                "InDI restoration, noise-injected (eps_t = 2 sqrt(1 - t)), 160 steps from the exact y = x + 2 n, vs "
                "the law of x.", sigma_start=INDI_SIGMA_Y),
)


def _start_and_law(case: SamplerCase, mm, n_paths: int, seed: int) -> tuple[np.ndarray, GaussianMixture]:
    """The exact start of the sampler's first level and the exact law of its last."""
    start = case.start
    if start == "vp":
        vp = _vp()
        return mm.sample(n_paths, *vp.kernel(vp.T), seed=seed), mm.marginal(*vp.kernel(vp.eps))
    if start == "ve":
        return mm.sample(n_paths, 1.0, case.sigma_start, seed=seed), mm.data
    sched = _linear_schedule()
    return mm.sample(n_paths, *sched.level(sched.n_steps), seed=seed), mm.data


def _check_fn(case: SamplerCase) -> Callable[[int, int, float], Report]:
    def check(n_paths: int, seed: int, alpha: float) -> Report:
        from sdekit.diffusion import MixtureMarginals, mixture_marginal_score

        mm = MixtureMarginals(GaussianMixture(**MIXTURE_2D))

        def score(x, a, s):
            return mixture_marginal_score(np.ascontiguousarray(x), float(a), float(s), mm.params)

        x, law = _start_and_law(case, mm, n_paths, seed + 11)
        return compare_with_law(case.run(score, x, seed), law, alpha=alpha, name=case.name)

    check.__doc__ = case.description
    check.__name__ = check.__qualname__ = f"check_{case.name}"
    return check


SAMPLER_CHECKS: dict[str, Check] = {c.name: Check(c.name, c.sampler, _check_fn(c), c.quick) for c in SAMPLER_CASES}
