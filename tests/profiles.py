"""How hard the property tests try, by hypothesis profile.

Each property names the examples it runs in full, under `make soak` (the profile `soak`);
`make test` and a bare `pytest` (the profile `ci`, the default) run a quarter of them, so
the suite keeps its minutes. The strategies, the explicit `@example`s, the shrinking and the
database of failing examples are the same in both: a failure found in a soak is tried again
first by every run after it. Neither profile has a deadline: a test's speed is measured by
`make bench`, never asserted (a deadline fails a slow example on a busy machine).
"""

from __future__ import annotations

from hypothesis import settings

SHARES = {"ci": 0.25, "soak": 1.0}
"""The share of each property's full count that a profile runs."""
DEFAULT = "ci"
HYPOTHESIS_DEFAULT = 100
"""What a property naming no count runs in full (hypothesis's own default)."""


def examples(full: int) -> int:
    """The examples to run of a property that runs `full` in a soak, under the profile
    loaded (`pytest --hypothesis-profile soak`)."""
    share = SHARES.get(settings.get_current_profile_name(), 1.0)
    return max(1, round(full * share))


def register() -> None:
    """The profiles, `ci` loaded (`--hypothesis-profile` loads another after this)."""
    for name, share in SHARES.items():
        settings.register_profile(
            name, max_examples=max(1, round(HYPOTHESIS_DEFAULT * share)), deadline=None
        )
    settings.load_profile(DEFAULT)
