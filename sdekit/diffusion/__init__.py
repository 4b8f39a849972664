"""Score-based generative SDEs: forward noising SDEs (VE, VP, sub-VP, cosine, custom linear), exact
Gaussian-mixture fixtures at every t, parametrization conversions, the reverse-time SDE and
probability-flow ODE built from any forward SDE and any score (Song et al. 2021), likelihoods, and
the samplers of the literature (`sdekit.diffusion.samplers`, one module each)."""

from sdekit.diffusion.forward import ForwardSDE, schedule_coefficients, schedule_kernel, schedule_residuals
from sdekit.diffusion.likelihood import Likelihood, bits_per_dim, log_likelihood
from sdekit.diffusion.mixture_marginals import MixtureMarginals, mixture_marginal_score
from sdekit.diffusion.model import DiffusionModel, exact_mixture_score, step_normals
from sdekit.diffusion.reverse import probability_flow_ode, reverse_sde

__all__ = ["ForwardSDE", "schedule_coefficients", "schedule_kernel", "schedule_residuals", "Likelihood",
           "bits_per_dim", "log_likelihood", "MixtureMarginals", "mixture_marginal_score", "DiffusionModel",
           "exact_mixture_score", "step_normals", "probability_flow_ode", "reverse_sde"]
