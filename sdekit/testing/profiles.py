"""Hypothesis settings for statistical properties: derandomized, no shrinking, no deadline.

Shrinking is off because shrinking a statistical failure re-runs it on new seeds and reports
"flaky"; derandomize=True makes the examples a function of the test's source, so the suite is
deterministic and a false alarm can appear only when code changes the random stream
(VALIDATION.md §3, hypothesis integration).
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

CI_PROFILE = "sdekit-ci"
DEV_PROFILE = "sdekit-dev"

STATISTICAL = settings(derandomize=True, database=None, deadline=None, max_examples=10,
                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                       phases=[Phase.explicit, Phase.generate])
"""Decorator for statistical property tests: 10 derandomized examples, no shrinking."""


def register_profiles(max_examples: int = 15) -> None:
    """Register the profiles 'sdekit-ci' (derandomized) and 'sdekit-dev' (random, for exploring)."""
    common = dict(database=None, deadline=None, max_examples=max_examples,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                  phases=[Phase.explicit, Phase.generate])
    settings.register_profile(CI_PROFILE, derandomize=True, **common)
    settings.register_profile(DEV_PROFILE, derandomize=False, **common)
