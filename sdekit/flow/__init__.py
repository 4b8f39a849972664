"""Flow matching / rectified flow: interpolants x_t = alpha_t x_0 + sigma_t eps (linear by default), the exact
velocity of Gaussian-mixture data, velocity <-> score / eps / x0 conversions (every diffusion sampler runs a flow
model), Euler / Heun / midpoint flow samplers, the flow ODE for `sdekit.simulate`, and likelihoods through the flow
ODE. The training loss is `sdekit.learn.flow_matching_loss` (torch). Nothing here imports torch at import time."""

from sdekit.flow.conversions import (
    ScoreAsVelocity,
    VelocityAsScore,
    velocity_from_score,
    velocity_from_x0_eps,
    velocity_to_score,
    velocity_to_x0_eps,
    x0_eps_from_score,
)
from sdekit.flow.interpolants import INTERPOLANTS, LINEAR, TRIGONOMETRIC, Interpolant, get_interpolant
from sdekit.flow.likelihood import flow_log_likelihood
from sdekit.flow.mixture_velocity import MixtureVelocity
from sdekit.flow.ode import flow_ode
from sdekit.flow.samplers import FLOW_METHODS, FlowSampleResult, flow_sample, flow_times

__all__ = [
    "FLOW_METHODS",
    "INTERPOLANTS",
    "LINEAR",
    "TRIGONOMETRIC",
    "FlowSampleResult",
    "Interpolant",
    "MixtureVelocity",
    "ScoreAsVelocity",
    "VelocityAsScore",
    "flow_log_likelihood",
    "flow_ode",
    "flow_sample",
    "flow_times",
    "get_interpolant",
    "velocity_from_score",
    "velocity_from_x0_eps",
    "velocity_to_score",
    "velocity_to_x0_eps",
    "x0_eps_from_score",
]
