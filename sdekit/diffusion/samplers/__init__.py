"""Diffusion samplers, one module each."""
