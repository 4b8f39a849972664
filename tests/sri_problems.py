"""SDEs for the SRA / SRI tests: S1 per component with diagonal noise (g_k depends on x_k only), with its closed
form, and the functions of the stability and torch tests (in a module of their own, always imported as
tests.sri_problems, so that Numba's on-disk cache of them is found under one module name)."""

import numpy as np

from sdekit import SDE
from sdekit.validate.order import ClosedForm

DIAG_A = (1.0, 0.6)


def diag_s1_drift(x, t, p):
    """dX_k = -a_k^2 sin X_k cos^3 X_k dt + a_k cos^2 X_k dW_k: Kloeden & Platen's S1 per component."""
    out = np.empty_like(x)
    for r in range(x.shape[0]):
        for k in range(x.shape[1]):
            out[r, k] = -p[k] * p[k] * np.sin(x[r, k]) * np.cos(x[r, k]) ** 3
    return out


def diag_s1_diffusion(x, t, p):
    out = np.empty_like(x)
    for r in range(x.shape[0]):
        for k in range(x.shape[1]):
            out[r, k] = p[k] * np.cos(x[r, k]) ** 2
    return out


def _exact(x0, w, t):
    return np.arctan(np.asarray(DIAG_A) * w + np.tan(x0))


DIAG = ClosedForm(SDE(diag_s1_drift, diag_s1_diffusion, 2, noise="diagonal", params=list(DIAG_A), name="s1_diag"),
                  _exact)


def ou_drift(x, t, p):
    """-p[0] x."""
    return -p[0] * x


def ou_diffusion(x, t, p):
    """1 (additive noise)."""
    return 1.0


def soft_diffusion(x, t, p):
    """p[1] sqrt(1 + x^2) (multiplicative, nonlinear)."""
    return p[1] * (1.0 + x * x) ** 0.5
