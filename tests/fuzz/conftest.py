"""The fuzz tests' hypothesis settings, one profile for every file here.

``CLIPMAT_FUZZ_EXAMPLES`` sets the examples per test (40 by default; bench/fuzz.py runs many
more). The examples are the same on every run (``derandomize``), so a failure reproduces.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "clipmat-fuzz",
    max_examples=int(os.environ.get("CLIPMAT_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)
settings.load_profile("clipmat-fuzz")
