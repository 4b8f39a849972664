"""Score-based generative SDEs: forward noising SDEs (VE, VP, sub-VP, cosine, custom linear), exact
Gaussian-mixture fixtures at every t, parametrization conversions, and the reverse-time SDE and
probability-flow ODE built from any forward SDE and any score (Song et al. 2021)."""
