"""`EvidenceResult`: a log normalising constant with its standard error, and what produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class EvidenceResult:
    """An estimate of log Z, Z = int exp(-U(x)) dx, from AIS, SMC or replica exchange.

    log_z: the estimate (log of an unbiased estimate of Z for AIS and SMC, hence biased low by about
      log_z_se^2 / 2). log_z_se: its standard error (how it is computed is in ``method``'s docstring).
    log_weights: AIS: the particles' final log weights (n,); SMC: each run's final normalised log weights (m, n).
    ess: AIS: the effective sample size of the final weights, (sum w)^2 / sum w^2; SMC: per run (m,).
    particles: the final particles, (n, d) (AIS) or (m, n, d) (SMC); None for replica exchange.
    betas: the inverse temperatures used (AIS (K,); SMC: one array per run; replica exchange: the ladder).
    acceptance: mean acceptance probability of the moves at each temperature (AIS (K - 1,); SMC: one array per
      run), or the ladder's swap acceptance (replica exchange).
    n_evaluations: energy-and-gradient evaluations per particle (AIS, SMC; mean over runs for SMC) or per run.
    seconds: wall time of the run. method: "ais[mala]", "smc[hmc]", "stepping_stone", ...
    extras: method-specific arrays (e.g. SMC's per-run log Z, "log_z_runs").
    """

    log_z: float
    log_z_se: float
    log_weights: np.ndarray | None
    ess: np.ndarray | float | None
    particles: np.ndarray | None
    betas: Any
    acceptance: Any
    n_evaluations: float
    seconds: float
    method: str
    extras: dict[str, Any] = field(default_factory=dict)

    def z_score(self, log_z_true: float) -> float:
        """(log_z + log_z_se^2 / 2 - log_z_true) / log_z_se: the estimate's error in standard errors, with the
        Jensen bias -se^2 / 2 of a log of an unbiased estimate removed (for replica exchange the same
        correction; it is small whenever se is)."""
        return float((self.log_z + 0.5 * self.log_z_se ** 2 - log_z_true) / self.log_z_se)

    def __repr__(self) -> str:
        return f"EvidenceResult({self.method}: log Z = {self.log_z:.6g} ± {self.log_z_se:.3g})"
