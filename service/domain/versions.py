"""Which event an entity was last replaced by: the newest wins, whatever the arrival order
(docs/rules.md#re-sent-events-and-convergence)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True, order=True)
class Version:
    """Ordered by when the event occurred, then by its id (a deterministic tie-break)."""

    at: datetime
    event_id: str
