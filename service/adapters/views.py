"""Read-side queries over tables shaped for the answers (no replay, no recomputation)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, exists, select

from service.adapters.stores.challenges import ChallengeStore, entry_from_row
from service.adapters.stores.tasks import task_from_row
from service.adapters.stores.trips import totals_from_row
from service.adapters.tables import challenge_entries as challenge_entries_table
from service.adapters.tables import (
    driver_months,
    service_state,
    tasks,
    tenant_versions,
    user_groups,
    users,
)
from service.domain.challenges import Challenge, Entry
from service.domain.ranking import Month, MonthTotals, Profile
from service.domain.tasks import Task


def group_exists(c: Connection, tenant_id: str, group: str) -> bool:
    query = select(
        exists().where(user_groups.c.tenant_id == tenant_id, user_groups.c.group_label == group)
    )
    return bool(c.execute(query).scalar())


def profiles(c: Connection, tenant_id: str, group: str | None) -> list[Profile]:
    query = select(users.c.user_id, users.c.firstname, users.c.lastname, users.c.pseudo).where(
        users.c.tenant_id == tenant_id
    )
    if group:
        query = query.join(
            user_groups,
            (user_groups.c.tenant_id == users.c.tenant_id)
            & (user_groups.c.user_id == users.c.user_id),
        ).where(user_groups.c.group_label == group)
    return [Profile(*row) for row in c.execute(query)]


def month_totals(
    c: Connection, tenant_id: str, month: Month, group: str | None
) -> dict[str, MonthTotals]:
    query = select(driver_months).where(
        driver_months.c.tenant_id == tenant_id,
        driver_months.c.year == month.year,
        driver_months.c.month == month.number,
        driver_months.c.trips > 0,  # a month whose trips were all deleted never happened
    )
    if group:
        query = query.join(
            user_groups,
            (user_groups.c.tenant_id == driver_months.c.tenant_id)
            & (user_groups.c.user_id == driver_months.c.user_id),
        ).where(user_groups.c.group_label == group)
    return {row.user_id: totals_from_row(row) for row in c.execute(query)}


def tenant_versions_now(c: Connection) -> dict[str, int]:
    return {
        t: v for t, v in c.execute(select(tenant_versions.c.tenant_id, tenant_versions.c.version))
    }


CAUGHT_UP = "caught_up:{group}"


def has_caught_up(c: Connection, group: str) -> bool:
    """Whether a consumer of the group has finished a first catch-up (API-only instances)."""
    query = select(service_state.c.value).where(
        service_state.c.name == CAUGHT_UP.format(group=group)
    )
    return c.execute(query).first() is not None


def task(c: Connection, tenant_id: str, task_id: str) -> Task | None:
    row = c.execute(
        select(tasks).where(tasks.c.tenant_id == tenant_id, tasks.c.task_id == task_id)
    ).first()
    return None if row is None else task_from_row(row)


def known_groups(c: Connection, tenant_id: str) -> frozenset[str]:
    query = select(user_groups.c.group_label).where(user_groups.c.tenant_id == tenant_id).distinct()
    return frozenset(c.execute(query).scalars())


def challenge(c: Connection, tenant_id: str, challenge_id: str) -> Challenge | None:
    found = ChallengeStore(c).load([(tenant_id, challenge_id)])
    return found[(tenant_id, challenge_id)][0] if found else None


def challenge_entries(
    c: Connection, tenant_id: str, challenge_id: str, registered_before: datetime, group: str | None
) -> list[tuple[Entry, Profile]]:
    """Registrations that arrived before the challenge froze, with the users' profiles."""
    e, u = challenge_entries_table, users
    query = (
        select(e, u.c.firstname, u.c.lastname, u.c.pseudo)
        .outerjoin(u, (u.c.tenant_id == e.c.tenant_id) & (u.c.user_id == e.c.user_id))
        .where(
            e.c.tenant_id == tenant_id,
            e.c.challenge_id == challenge_id,
            e.c.arrived_at < registered_before,
        )
    )
    if group:
        query = query.join(
            user_groups,
            (user_groups.c.tenant_id == e.c.tenant_id) & (user_groups.c.user_id == e.c.user_id),
        ).where(user_groups.c.group_label == group)
    return [
        (
            entry_from_row(row),
            Profile(row.user_id, row.firstname or "", row.lastname or "", row.pseudo or ""),
        )
        for row in c.execute(query)
    ]
