"""Built-in processes with their closed forms."""

from sdekit.processes.gbm import GeometricBrownianMotion
from sdekit.processes.langevin import overdamped_langevin, ula_gaussian_variance
from sdekit.processes.ou import BrownianMotion, OrnsteinUhlenbeck

__all__ = ["BrownianMotion", "GeometricBrownianMotion", "OrnsteinUhlenbeck", "overdamped_langevin",
           "ula_gaussian_variance"]
