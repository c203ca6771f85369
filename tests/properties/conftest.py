"""Hypothesis profiles of the property suite, chosen with the environment variable
HYPOTHESIS_PROFILE:

- "ci" (the default): derandomized, so every run (and CI) tries the same examples, with a few
  examples per property (every new shape or dtype compiles new programs);
- "long": 100 times as many examples, freshly random on every run (`make test-properties-long`).

Neither keeps an example database: a failure prints its `@reproduce_failure` blob instead.
"""

import os

from hypothesis import HealthCheck, Phase, settings

CI_EXAMPLES = 10

_COMMON = dict(
    deadline=None,
    print_blob=True,
    database=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", max_examples=CI_EXAMPLES, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=100 * CI_EXAMPLES, derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
