"""Normalising constants of Gibbs densities pi = exp(-U) / Z: log Z with a standard error.

`ais` (annealed importance sampling, Neal 2001) and `smc` (an SMC sampler with adaptive tempering by conditional
ESS, Del Moral, Doucet & Jasra 2006; Zhou, Johansen & Aston 2016) anneal from a normalised Gaussian reference q
(beta = 0) to the target (beta = 1) along pi_beta ∝ exp(-beta U) q^(1 - beta), with MALA or HMC moves;
`replica_exchange_log_z` gives log Z from a `sdekit.mcmc.replica_exchange` run by stepping-stone sampling
(Xie et al. 2011) or thermodynamic integration. Modules: `energies` (batch U and the reference), `moves`,
`weights` (incremental weights, ESS, CESS, resampling), `schedule`, the drivers `ais`, `smc`, `replica`, and
`result` (`EvidenceResult`).
"""

from sdekit.evidence.ais import ais
from sdekit.evidence.replica import replica_exchange_log_z
from sdekit.evidence.result import EvidenceResult
from sdekit.evidence.smc import smc

__all__ = ["EvidenceResult", "ais", "replica_exchange_log_z", "smc"]
