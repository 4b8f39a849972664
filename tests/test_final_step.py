"""The final step of DPM-Solver++(2M) decides whether a 25-step run is right (Lu et al. 2022b, section 5).

2-D anisotropic mixture of `sdekit validate` with its exact score, DDPM linear schedule (K = 1000), N = 20000 exact
draws at level K, ``compare_with_law`` at 1e-6 (30 gating tests). Measured on this problem (min p over the tests):

    steps   K..1 evenly, no final-step handling   diffusers' grid + final denoise   K..1 + lower-order final
      20            0 (fail)                             2.0e-06 (pass)                   1.1e-06 (pass)
      25        7.6e-210 (fail)                          0.040 (pass)                     0.055 (pass)
      30        2.9e-111 (fail)                          0.23 (pass)                      0.22 (pass)

The test pins 25 steps: without the final-step options the run fails, with either of them it passes.
"""

from __future__ import annotations

from sdekit.diffusion.samplers.discrete import DiscreteSchedule
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample
from sdekit.diffusion.samplers.sigma_grids import pairs_from_schedule
from sdekit.diffusion.samplers.timestep_spacing import timestep_levels
from sdekit.validate import compare_with_law
from sdekit.validate.suite import _mixture_score


def test_dpm_solver_pp_2m_needs_its_final_step_at_25_steps():
    mm, score = _mixture_score()
    sched = DiscreteSchedule.linear(1000)
    x = mm.sample(20000, *sched.level(1000), seed=11)
    even = pairs_from_schedule(sched, sched.spaced_levels(25))
    plain = dpm_solver_sample(score, even, x, method="multistep", algorithm="dpmsolver++", lower_order_final=False)
    assert not compare_with_law(plain.x, mm.marginal(*sched.level(1)), name="no final step").passed
    lower = dpm_solver_sample(score, even, x, method="multistep", algorithm="dpmsolver++", lower_order_final=True)
    assert compare_with_law(lower.x, mm.marginal(*sched.level(1)), name="lower-order final").passed
    grid = pairs_from_schedule(sched, timestep_levels(sched, 25, spacing="linspace", convention="dpmsolver"))
    to_zero = dpm_solver_sample(score, grid, x, method="multistep", algorithm="dpmsolver++", to_zero=True)
    assert to_zero.nfe == 25 and to_zero.sigmas[-1] == 0
    assert compare_with_law(to_zero.x, mm.data, name="final denoise to sigma = 0").passed
