"""MCMC samplers for Gibbs densities pi = exp(-U) / Z, many chains in parallel in Numba.

Samplers (each a module with a pure compiled step and a driver returning an `MCMCResult`): `ula`,
`mala`, `rwm` (random-walk Metropolis), `hmc`, `nuts`, `underdamped_langevin` (BAOAB / OBABO / UBU / ShOULD),
`replica_exchange` (parallel tempering) and `simulated_annealing`. Every
chain's random numbers depend only on (seed, chain), so results do not change with the thread
count. Diagnostics come from ArviZ via `MCMCResult.to_arviz`, `ess`, `rhat`, `mcse_mean`, `summary`;
every run ends with the checks of `sdekit.mcmc.diagnostics` (one warning line per check that fires,
``result.diagnostics``). Planted bugs for power studies: `sdekit.mcmc.defects.planted`.
"""

from sdekit.mcmc.hmc import hmc
from sdekit.mcmc.mala import mala
from sdekit.mcmc.nuts import nuts
from sdekit.mcmc.result import MCMCResult
from sdekit.mcmc.rwm import rwm
from sdekit.mcmc.tempering import replica_exchange, simulated_annealing
from sdekit.mcmc.ula import ula
from sdekit.mcmc.underdamped import splitting_gaussian_law, underdamped_langevin

__all__ = ["MCMCResult", "hmc", "mala", "nuts", "replica_exchange", "rwm", "simulated_annealing",
           "splitting_gaussian_law", "ula", "underdamped_langevin"]
