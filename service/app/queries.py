"""The read use cases: each checks the request, reads its tables, and calls the rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from service.adapters import views
from service.domain.errors import InvalidGroupLabel, InvalidRankType, task_not_found
from service.domain.events import ScoreKind
from service.domain.ranking import DriverMonth, Month, drivers_of_month, rank_month
from service.domain.rules import Rules
from service.domain.standings import Standings
from service.domain.tasks import Task


@dataclass(frozen=True, slots=True)
class MonthRanking:
    month: Month
    standings: Standings[DriverMonth]


@dataclass(frozen=True, slots=True)
class DriverRanking:
    kind: ScoreKind
    current: MonthRanking
    previous: MonthRanking


def driver_ranking(
    c: Connection, tenant_id: str, kind_value: int, group: str, now: datetime, rules: Rules
) -> DriverRanking:
    try:
        kind = ScoreKind(kind_value)
    except ValueError:
        raise InvalidRankType() from None
    if group and not views.group_exists(c, tenant_id, group):
        raise InvalidGroupLabel(group)
    people = views.profiles(c, tenant_id, group or None)
    current = Month.of(now)

    def ranking_of(month: Month) -> MonthRanking:
        totals = views.month_totals(c, tenant_id, month, group or None)
        drivers = drivers_of_month(people, totals)
        return MonthRanking(month, rank_month(drivers, kind, rules.driver_thresholds))

    return DriverRanking(kind, ranking_of(current), ranking_of(current.previous()))


def get_task(c: Connection, tenant_id: str, task_id: str) -> Task:
    found = views.task(c, tenant_id, task_id) if task_id else None
    if found is None:
        raise task_not_found(task_id)
    return found
