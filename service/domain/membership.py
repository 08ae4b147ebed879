"""Which groups a user is in for a frozen window, a month or a challenge
(docs/rules.md#arrival-time-and-freezes).

A frozen window keeps the groups of the profile as Podium held it when the window froze, so a
user who moves later stays where they were. A user Podium had not heard of by then (a catalog
backfilled after the freeze) takes the profile as Podium first held it: leaving them out would
empty the window's groups of every driver whose profile came late. Names are not decided here:
they are always today's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from service.domain.versions import Version


@dataclass(frozen=True, slots=True)
class ProfileVersion:
    """One `user_upserted` of a user as kept: its version, when it (first) arrived, its
    groups."""

    version: Version
    arrived_at: datetime
    groups: frozenset[str]


def version_at_freeze(
    versions: Iterable[ProfileVersion], freezes_at: datetime
) -> ProfileVersion | None:
    """The version that places a user in a window frozen at `freezes_at`: the newest (by
    `occurred_at`, then event id) of those that arrived before the freeze; without any, the
    newest of those that arrived first (what Podium held once the user's first profile
    arrived). None for a user without versions."""
    kept = list(versions)
    if not kept:
        return None
    candidates = [v for v in kept if v.arrived_at < freezes_at]
    if not candidates:
        first = min(v.arrived_at for v in kept)
        candidates = [v for v in kept if v.arrived_at == first]
    return max(candidates, key=lambda v: v.version)
