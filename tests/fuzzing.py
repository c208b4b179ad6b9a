"""How many cases a property-based test runs: its own count in the normal run, ten times as many
with HYPOTHESIS_PROFILE=thorough. No deadline (these machines are shared and noisy) and no
example database (every run starts from the same state)."""

import os

from hypothesis import HealthCheck, settings

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE", "") == "thorough"


def cases(n: int) -> settings:
    """Settings for a property that tries `n` cases (10n in a thorough run)."""
    return settings(max_examples=10 * n if THOROUGH else n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
