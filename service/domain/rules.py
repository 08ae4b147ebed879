"""The rule settings (docs/rules.md#settings), as the rules receive them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from service.domain.standings import Thresholds


@dataclass(frozen=True, slots=True)
class Rules:
    driver_thresholds: Thresholds
    late_event_grace: timedelta
