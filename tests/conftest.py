"""Shared settings: a derandomized hypothesis profile for CI (statistical properties never shrink)."""

import os

from hypothesis import HealthCheck, Phase, settings

settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, max_examples=15,
    suppress_health_check=[HealthCheck.too_slow], phases=[Phase.explicit, Phase.generate])
settings.register_profile(
    "dev", deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
