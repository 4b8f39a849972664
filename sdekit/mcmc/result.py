"""`MCMCResult`: the draws of many chains with their per-draw info, and the ArviZ conversion.

Diagnostics (effective sample size, split R-hat, Monte Carlo standard errors, trace and rank plots)
come from ArviZ (Vehtari et al. 2021, "Rank-normalization, folding, and localization: an improved
R-hat", Bayesian Analysis 16(2)), not from hand-written estimators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.mcmc.diagnostics import Diagnostics, arviz_module, diagnose, quiet


@dataclass
class MCMCResult:
    """Draws and info of ``n_chains`` independent chains.

    samples: (chains, draws, d) positions after warm-up, every ``thin``-th step.
    accept_prob: (chains, draws) the Metropolis acceptance probability min(1, r), averaged over the
      ``thin`` steps behind each draw (1 for unadjusted samplers).
    potential_energy: (chains, draws) U at each draw.
    divergent: (chains, draws) how many of the ``thin`` steps behind each draw diverged.
    step_size: (chains,) the step size used after warm-up (adapted per chain, or as given).
    extras: sampler-specific statistics (e.g. swap rates of replica exchange, adapted inverse mass matrices).
    stats: per-draw statistics of the sampler, {name: (chains, draws)} summed over the ``thin`` steps behind
      each draw (NUTS: "tree_depth", "n_leapfrog", "max_depth_hit").
    n_nonfinite: (chains,) how many proposals of each chain (warm-up included) had a non-finite energy or
      gradient and were rejected (None where the sampler makes no proposals: ULA, underdamped Langevin,
      whose non-finite states raise instead).
    diagnostics: the end-of-run checks (`sdekit.mcmc.diagnostics`: divergences, non-finite proposals,
      R-hat, ESS, step-size collapse, acceptance), set by every sampler; ``warnings`` lists the lines issued.
    """

    samples: np.ndarray
    accept_prob: np.ndarray
    potential_energy: np.ndarray
    divergent: np.ndarray
    step_size: np.ndarray
    sampler: str
    n_warmup: int
    thin: int
    seconds: float
    extras: dict[str, Any] = field(default_factory=dict)
    n_nonfinite: np.ndarray | None = None
    diagnostics: Diagnostics | None = None
    stats: dict[str, np.ndarray] = field(default_factory=dict)

    def __repr__(self) -> str:
        c, n, d = self.samples.shape
        flags = f", flags {list(self.diagnostics.fired)}" if self.diagnostics and self.diagnostics.flags else ""
        nonfinite = "" if self.n_nonfinite is None else f", non-finite proposals {int(np.sum(self.n_nonfinite))}"
        return (f"MCMCResult({self.sampler}: {c} chains x {n} draws, d={d}, acceptance "
                f"{self.acceptance_rate:.3f}, divergences {self.n_divergent}{nonfinite}{flags})")

    @property
    def warnings(self) -> tuple[str, ...]:
        """The one-line warnings issued at the end of the run (empty when every check passed)."""
        return () if self.diagnostics is None else tuple(f.message for f in self.diagnostics.flags)

    @property
    def n_chains(self) -> int:
        """Number of chains."""
        return int(self.samples.shape[0])

    @property
    def final(self) -> np.ndarray:
        """The last draw of every chain, (chains, d): i.i.d. across chains when the chains started i.i.d."""
        return self.samples[:, -1, :]

    @property
    def flat(self) -> np.ndarray:
        """All draws of all chains, (chains * draws, d)."""
        return self.samples.reshape(-1, self.samples.shape[2])

    @property
    def acceptance_rate(self) -> float:
        """Mean acceptance probability over all chains and draws."""
        return float(np.mean(self.accept_prob))

    @property
    def n_divergent(self) -> int:
        """Total number of divergent transitions after warm-up."""
        return int(np.sum(self.divergent))

    def to_arviz(self, var_name: str = "x") -> Any:
        """An ``arviz.InferenceData``: posterior[var_name] with dims (chain, draw, <var_name>_dim_0) and
        sample_stats acceptance_rate, diverging, lp (= -U), potential_energy, step_size and the sampler's
        ``stats`` (NUTS: tree_depth, n_leapfrog, max_depth_hit)."""
        az = arviz_module()
        c, n, _ = self.samples.shape
        stats = {
            "acceptance_rate": self.accept_prob,
            "diverging": self.divergent > 0,
            "lp": -self.potential_energy,
            "potential_energy": self.potential_energy,
            "step_size": np.broadcast_to(self.step_size[:, None], (c, n)).copy(),
            **self.stats,
        }
        return az.from_dict(posterior={var_name: self.samples}, sample_stats=stats)

    def _per_dim(self, fn: Any, **kwargs: Any) -> np.ndarray:
        with quiet():
            return np.asarray(fn(self.to_arviz(), **kwargs)["x"].values, dtype=float)

    def ess(self, method: str = "bulk") -> np.ndarray:
        """Effective sample size per coordinate (ArviZ ``ess``; method "bulk", "tail", "mean", ...), shape (d,)."""
        return self._per_dim(arviz_module().ess, method=method)

    def rhat(self) -> np.ndarray:
        """Rank-normalised split R-hat per coordinate (ArviZ ``rhat``), shape (d,)."""
        return self._per_dim(arviz_module().rhat)

    def mcse_mean(self) -> np.ndarray:
        """Monte Carlo standard error of each coordinate's mean, sd / sqrt(ESS_mean) (ArviZ ``mcse``), (d,)."""
        return self._per_dim(arviz_module().mcse, method="mean")

    def plot_trace(self, **kwargs: Any) -> Any:
        """ArviZ trace plot (per-coordinate density and trace per chain); returns the matplotlib axes."""
        with quiet():
            return arviz_module().plot_trace(self.to_arviz(), **kwargs)

    def plot_rank(self, **kwargs: Any) -> Any:
        """ArviZ rank plot (histograms of the ranks of each chain's draws among all draws: uniform when the
        chains mix; Vehtari et al. 2021); returns the matplotlib axes."""
        with quiet():
            return arviz_module().plot_rank(self.to_arviz(), **kwargs)

    def summary(self) -> Any:
        """ArviZ's summary table (mean, sd, HDI, MCSE, ESS bulk/tail, R-hat) as a pandas DataFrame, with a
        ``flags`` column: per coordinate, the end-of-run checks that fired (`sdekit.mcmc.diagnostics`;
        run-wide ones such as divergences on every row) and the checks skipped, with why."""
        with quiet():
            table = arviz_module().summary(self.to_arviz())
        diag = self.diagnostics if self.diagnostics is not None else diagnose(self)
        table["flags"] = diag.column(self.samples.shape[2])
        return table

    def mean_z(self, exact_mean: Any) -> np.ndarray:
        """z_i = (mean_i - E_pi x_i) / MCSE_i per coordinate: approximately N(0, 1) for a correct,
        well-mixed sampler (Markov-chain CLT with the ArviZ ESS)."""
        return self.expectation_z(self.samples, exact_mean)

    def expectation_z(self, values: Any, exact: Any) -> np.ndarray:
        """z_j = (mean of f_j over all chains and draws - E_pi f_j) / MCSE_j for feature values
        ``values`` = f(samples) of shape (chains, draws, k) (or (chains, draws)), MCSE_j = sd_j / sqrt(ESS_j)
        from ArviZ. |z| > 4.89 has probability about 1e-6 under a correct sampler (normal approximation)."""
        v = np.asarray(values, dtype=float)
        if v.ndim == 2:
            v = v[:, :, None]
        if v.ndim != 3 or v.shape[:2] != self.samples.shape[:2]:
            raise SDEKitError(f"values must have shape (chains, draws, k) with (chains, draws) = "
                              f"{self.samples.shape[:2]}; got {v.shape}")
        ex = np.asarray(exact, dtype=float).reshape(-1)
        if ex.shape != (v.shape[2],):
            raise SDEKitError(f"exact must have shape ({v.shape[2]},) to match values; got {ex.shape}")
        az = arviz_module()
        with quiet():
            mcse = np.asarray(az.mcse(az.convert_to_dataset({"f": v}), method="mean")["f"].values, dtype=float)
        return (v.reshape(-1, v.shape[2]).mean(axis=0) - ex) / mcse
