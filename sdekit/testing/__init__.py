"""Hypothesis strategies and ready-made statistical property checks for users' own test suites.

    from hypothesis import given
    from sdekit.testing import STATISTICAL, gaussian_mixtures, seeds, step_fractions, assert_stationary

    @STATISTICAL
    @given(target=gaussian_mixtures(max_dim=3), frac=step_fractions(), seed=seeds())
    def test_my_sampler(target, frac, seed): ...

Needs hypothesis (the ``test`` extra). Every check spends its alpha on the false-alarm ledger
(`sdekit.validate.budget.BUDGET`); the pytest plugin prints the total at the end of a run.
"""

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sdekit.testing needs hypothesis: pip install 'sdekit[test]'") from exc

from sdekit.testing.profiles import CI_PROFILE, DEV_PROFILE, STATISTICAL, register_profiles
from sdekit.testing.properties import (
    StatisticalAssertionError,
    assert_law,
    assert_moment_evolution,
    assert_order,
    assert_stationary,
)
from sdekit.testing.strategies import (
    gaussian_mixtures,
    gaussian_targets,
    ou_parameters,
    seeds,
    spd_matrices,
    stable_step,
    step_fractions,
)

__all__ = ["CI_PROFILE", "DEV_PROFILE", "STATISTICAL", "register_profiles", "StatisticalAssertionError", "assert_law",
           "assert_moment_evolution", "assert_order", "assert_stationary", "gaussian_mixtures", "gaussian_targets",
           "ou_parameters", "seeds", "spd_matrices", "stable_step", "step_fractions"]
