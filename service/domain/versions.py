"""Which event an entity was last replaced by: the newest wins, whatever the arrival order
(docs/rules.md#re-sent-events-and-convergence)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TypeVar

from service.domain.frozen import frozen

K = TypeVar("K", bound=tuple[str, ...])
T = TypeVar("T")


@frozen(order=True)
class Version:
    """Ordered by when the event occurred, then by its id (a deterministic tie-break)."""

    at: datetime
    event_id: str


def newest(items: Iterable[tuple[K, Version, T]]) -> dict[K, tuple[Version, T]]:
    """Each key's newest value among `items`, whatever order they come in."""
    found: dict[K, tuple[Version, T]] = {}
    for key, version, value in items:
        if key not in found or version > found[key][0]:
            found[key] = (version, value)
    return found


def replacing(
    candidates: Mapping[K, tuple[Version, T]], stored: Mapping[K, Version]
) -> list[tuple[K, Version, T]]:
    """The candidates newer than what is stored (or with nothing stored), in key order."""
    return [
        (key, version, value)
        for key, (version, value) in sorted(candidates.items(), key=lambda item: item[0])
        if key not in stored or version > stored[key]
    ]
