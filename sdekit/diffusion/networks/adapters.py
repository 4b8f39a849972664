"""Adapters for the two conventions networks are held in.

- diffusers: a UNet called as ``unet(x, timestep, **cond).sample`` that predicts eps ("epsilon"), x0 ("sample") or
  v ("v_prediction") on the discrete schedule of its scheduler (``scheduler.alphas_cumprod``, 0-based training
  timesteps t = k - 1 for sdekit's level k). `from_diffusers` reads the schedule and the prediction type from the
  scheduler (or takes them), and conditions the network on the fractional timestep of each level.
- k-diffusion: a denoiser ``model(x, sigma, **cond)`` returning x0hat = D(x; sigma) for x = x_0 + sigma eps
  (Karras et al. 2022; k-diffusion's ``Denoiser`` / ``DiscreteEpsDDPMDenoiser`` wrappers): the VE kernel, conditioned
  on sigma, predicting x0.

Both return a `DiffusionNetwork`, which every sdekit sampler, the reverse SDE and the PF-ODE take.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sdekit.diffusion.networks.guidance import Guidance
from sdekit.diffusion.networks.network import DiffusionNetwork
from sdekit.diffusion.networks.thresholding import Threshold
from sdekit.diffusion.samplers.discrete import DiscreteSchedule
from sdekit.errors import SDEKitError

__all__ = ["DIFFUSERS_PREDICTIONS", "from_diffusers", "from_k_diffusion", "schedule_from_scheduler"]

DIFFUSERS_PREDICTIONS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}


def schedule_from_scheduler(scheduler: Any) -> DiscreteSchedule:
    """The `DiscreteSchedule` of a diffusers scheduler, from its ``alphas_cumprod`` in float64 (diffusers keeps it in
    float32: the float32 values are taken as exact)."""
    abar = getattr(scheduler, "alphas_cumprod", None)
    if abar is None:
        raise SDEKitError(f"scheduler must have alphas_cumprod (a diffusers scheduler); got {type(scheduler).__name__}")
    ab = np.asarray(abar.double().cpu().numpy() if hasattr(abar, "double") else abar, dtype=np.float64)
    prev = np.concatenate([[1.0], ab[:-1]])
    return DiscreteSchedule(-np.expm1(np.log(ab) - np.log(prev)))


def from_diffusers(unet: Any, scheduler: Any = None, *, schedule: DiscreteSchedule | None = None,
                   prediction: str | None = None, timestep_rounding: str = "interpolate",
                   timestep_interpolation: str = "log",
                   guidance: Guidance | None = None, threshold: Threshold | None = None,
                   shape: tuple[int, ...] | None = None, output: Any = "sample",
                   net_kwargs: dict[str, Any] | None = None) -> DiffusionNetwork:
    """A diffusers-style network ``unet(x, timestep, **cond)`` (returning an object with ``.sample``, or a tensor
    when output=None) as a `DiffusionNetwork` on its discrete schedule.

    schedule: a `DiscreteSchedule`, or taken from ``scheduler.alphas_cumprod`` (`schedule_from_scheduler`).
    prediction: "eps", "x0", "v", or taken from ``scheduler.config.prediction_type`` ("epsilon", "sample",
    "v_prediction"). The timestep of a level between training levels is fractional (timestep_rounding
    "interpolate", k-diffusion's convention, in log sigma, or in sigma with timestep_interpolation="linear", the
    inverse of diffusers' Euler / Heun 'linspace' timesteps) or the nearest level ("nearest", as diffusers'
    multistep DPM-Solver with Karras sigmas rounds them).
    """
    if schedule is None:
        if scheduler is None:
            raise SDEKitError("give scheduler (a diffusers scheduler) or schedule (a DiscreteSchedule)")
        schedule = schedule_from_scheduler(scheduler)
    if prediction is None:
        kind = getattr(getattr(scheduler, "config", None), "prediction_type", None) if scheduler is not None else None
        if kind not in DIFFUSERS_PREDICTIONS:
            raise SDEKitError(f"prediction must be given (eps, x0, v) or read from scheduler.config.prediction_type "
                              f"in {tuple(DIFFUSERS_PREDICTIONS)}; got {kind!r}")
        prediction = DIFFUSERS_PREDICTIONS[kind]
    return DiffusionNetwork(unet, prediction=prediction, kernel=schedule, conditioning="timestep",
                            timestep_rounding=timestep_rounding, timestep_interpolation=timestep_interpolation,
                            guidance=guidance, threshold=threshold, shape=shape,
                            output=output, net_kwargs=net_kwargs)


def from_k_diffusion(denoiser: Any, *, guidance: Guidance | None = None, threshold: Threshold | None = None,
                     shape: tuple[int, ...] | None = None,
                     net_kwargs: dict[str, Any] | None = None) -> DiffusionNetwork:
    """A k-diffusion-style denoiser ``denoiser(x, sigma, **cond) -> x0hat`` (x = x_0 + sigma eps, sigma a tensor of
    shape (n,)) as a `DiffusionNetwork`: kernel "ve", conditioning "sigma", prediction "x0"."""
    return DiffusionNetwork(denoiser, prediction="x0", kernel="ve", conditioning="sigma", guidance=guidance,
                            threshold=threshold, shape=shape, net_kwargs=net_kwargs)
