"""Image restoration by incremental denoising: InDI (Delbracio & Milanfar 2023, "Inversion by direct iteration"),
its interpolant and noise schedules, and the exact denoiser for Gaussian-mixture data. NumPy only at import; torch
is used for torch states (imported on first use). The training loss is `sdekit.learn.indi_loss`."""

from sdekit.restoration.indi import InDIResult, indi_sample
from sdekit.restoration.interpolant import denoising_level, indi_times
from sdekit.restoration.mixture_denoiser import MixtureDenoiser

__all__ = ["InDIResult", "MixtureDenoiser", "denoising_level", "indi_sample", "indi_times"]
