"""Real networks through every sampler: `DiffusionNetwork` reads a trained network's prediction (eps, x0, v, score,
flow velocity) on its own kernel and conditioning (t, log-SNR, sigma, training timestep), with EDM preconditioning,
classifier-free guidance and x0 thresholding, and answers every sampler's model call; `from_diffusers` and
`from_k_diffusion` adapt the two usual conventions."""

from sdekit.diffusion.networks.adapters import from_diffusers, from_k_diffusion, schedule_from_scheduler
from sdekit.diffusion.networks.guidance import Guidance
from sdekit.diffusion.networks.network import DiffusionNetwork
from sdekit.diffusion.networks.thresholding import Threshold

__all__ = ["DiffusionNetwork", "Guidance", "Threshold", "from_diffusers", "from_k_diffusion",
           "schedule_from_scheduler"]
