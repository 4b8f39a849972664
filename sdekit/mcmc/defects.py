"""The one entry point to the MCMC samplers' planted bugs, for power studies and tests.

Each sampler module registers its planted bugs in its ``DEFECTS`` table (name -> `Defect`: a description
and the sampler's compiled step or kernel with one helper replaced, see `sdekit.mcmc.variants`). The
public samplers have no switch for them; `planted(sampler, defect)` returns the sampler with the bug,
taking the public sampler's keyword arguments (same defaults, same random numbers), so that a check can be
shown to reject it:

    from sdekit.mcmc.defects import planted
    bad = planted("mala", "no_proposal_correction")(target, step_size=0.6, n_chains=20_000, ...)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from sdekit.errors import SDEKitError
from sdekit.mcmc.hmc import DEFECTS as HMC_DEFECTS
from sdekit.mcmc.hmc import hmc, hmc_with
from sdekit.mcmc.kernel import run_chains_serial
from sdekit.mcmc.mala import DEFECTS as MALA_DEFECTS
from sdekit.mcmc.mala import mala, mala_with
from sdekit.mcmc.nuts import DEFECTS as NUTS_DEFECTS
from sdekit.mcmc.nuts import nuts, nuts_with
from sdekit.mcmc.result import MCMCResult
from sdekit.mcmc.rwm import DEFECTS as RWM_DEFECTS
from sdekit.mcmc.rwm import rwm, rwm_with
from sdekit.mcmc.tempering import DEFECTS as TEMPERING_DEFECTS
from sdekit.mcmc.tempering import replica_exchange, replica_exchange_with
from sdekit.mcmc.ula import DEFECTS as ULA_DEFECTS
from sdekit.mcmc.ula import ula, ula_with
from sdekit.mcmc.underdamped import DEFECTS as UNDERDAMPED_DEFECTS
from sdekit.mcmc.underdamped import underdamped_langevin, underdamped_langevin_with
from sdekit.mcmc.underdamped_high_order import HIGH_ORDER_DEFECTS
from sdekit.mcmc.variants import Defect

# The generic MCMC driver compiled without threads, for the step variants: a planted bug runs to be rejected,
# not to be fast, and every chain's numbers depend only on (seed, chain), so the results are the same; the
# kernel variants of tempering and underdamped Langevin are serial already (`with_helpers`).
SERIAL_DRIVER = run_chains_serial
_SERIAL = {"driver": SERIAL_DRIVER}

# sampler name -> (public sampler, its driver taking the step or kernel first, its module's DEFECTS table,
# extra keywords for that driver)
SAMPLERS: dict[str, tuple[Callable[..., MCMCResult], Callable[..., MCMCResult], dict[str, Defect], dict]] = {
    "ula": (ula, ula_with, ULA_DEFECTS, _SERIAL),
    "mala": (mala, mala_with, MALA_DEFECTS, _SERIAL),
    "rwm": (rwm, rwm_with, RWM_DEFECTS, _SERIAL),
    "hmc": (hmc, hmc_with, HMC_DEFECTS, _SERIAL),
    "nuts": (nuts, nuts_with, NUTS_DEFECTS, _SERIAL),
    "underdamped_langevin": (underdamped_langevin, underdamped_langevin_with, UNDERDAMPED_DEFECTS, {}),
    # UBU / ShOULD's planted bugs: call with scheme="ubu" or "should" (the defect's name says which)
    "underdamped_langevin_high_order": (underdamped_langevin, underdamped_langevin_with, HIGH_ORDER_DEFECTS, {}),
    "replica_exchange": (replica_exchange, replica_exchange_with, TEMPERING_DEFECTS, {}),
}


def defects(sampler: str) -> dict[str, str]:
    """{defect name: description} of the planted bugs of ``sampler`` (a key of SAMPLERS)."""
    return {name: d.description for name, d in _table(sampler).items()}


def _table(sampler: str) -> dict[str, Defect]:
    if sampler not in SAMPLERS:
        raise SDEKitError(f"sampler must be one of {sorted(SAMPLERS)}; got {sampler!r}")
    return SAMPLERS[sampler][2]


def planted(sampler: str, defect: str) -> Callable[..., MCMCResult]:
    """``sampler`` (e.g. "mala") with the planted bug ``defect`` from its module's DEFECTS: a function taking
    the public sampler's arguments (its defaults apply) and running the bugged step or kernel."""
    table = _table(sampler)
    if defect not in table:
        raise SDEKitError(f"defect must be one of {sorted(table)} for {sampler}; got {defect!r}")
    public, driver, _, extra = SAMPLERS[sampler]
    signature = inspect.signature(public)
    variant = table[defect].variant

    def run(target: Any, **kwargs: Any) -> MCMCResult:
        try:
            bound = signature.bind(target, **kwargs)
        except TypeError as exc:
            raise SDEKitError(f"{sampler} takes {list(signature.parameters)[1:]}: {exc}") from exc
        bound.apply_defaults()
        options = dict(bound.arguments)
        return driver(variant, options.pop("target"), **options, **extra)

    run.__name__ = f"{sampler}[{defect}]"
    run.__doc__ = f"{public.__name__} with the planted bug {defect!r}: {table[defect].description}."
    return run
