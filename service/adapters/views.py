"""Read-side queries over tables shaped for the answers (no replay, no recomputation)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from service.adapters.stores.challenges import ChallengeStore, entry_from_row
from service.adapters.stores.paths import session_from_row
from service.adapters.stores.tasks import task_from_row
from service.adapters.tables import (
    SCORE_COLUMNS,
    driver_months,
    ignored_events,
    path_learners,
    path_sessions,
    service_state,
    tasks,
    tenant_versions,
    user_groups,
    users,
)
from service.adapters.tables import challenge_entries as challenge_entries_table
from service.domain.challenges import Challenge, Entry
from service.domain.events import PathSessionPublished, ScoreKind
from service.domain.ranking import Month, Profile
from service.domain.standings import Tally
from service.domain.tasks import Task


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


def month_tallies(
    c: Connection, tenant_id: str, month: Month, kind: ScoreKind, group: str | None
) -> dict[str, Tally]:
    """Each driver's month for one ranking type: trips, metres, and that score's sums.

    A group's query starts from its members and looks their months up by key, so its cost
    follows the group's size, not the tenant's (a left join fixes that order on SQLite).
    """
    name = SCORE_COLUMNS[kind.value - 1]
    m, g = driver_months, user_groups
    columns = (m.c.trips, m.c.metres, m.c[f"{name}_weighted"], m.c[f"{name}_weight"])
    of_month = (m.c.tenant_id == tenant_id) & (m.c.year == month.year)
    of_month &= m.c.month == month.number
    if group:
        query = (
            select(g.c.user_id, *columns)
            .select_from(g.outerjoin(m, of_month & (m.c.user_id == g.c.user_id)))
            .where(g.c.tenant_id == tenant_id, g.c.group_label == group)
        )
    else:
        query = select(m.c.user_id, *columns).where(of_month)
    return {
        user: Tally(trips, metres, weighted, weight)
        for user, trips, metres, weighted, weight in c.execute(query)
        if trips  # no month, or one whose trips were all deleted: it never happened
    }


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


def path_session(c: Connection, tenant_id: str, session_id: str) -> PathSessionPublished | None:
    row = c.execute(
        select(path_sessions).where(
            path_sessions.c.tenant_id == tenant_id, path_sessions.c.session_id == session_id
        )
    ).first()
    return None if row is None else session_from_row(row)


def resolve_user(c: Connection, tenant_id: str, email_or_id: str) -> str | None:
    """A user id from an id or an email (case-insensitive); learners known only from their
    enrollments are found by id."""
    by_profile = c.execute(
        select(users.c.user_id)
        .where(
            users.c.tenant_id == tenant_id,
            (users.c.user_id == email_or_id) | (users.c.email_lower == email_or_id.lower()),
        )
        .order_by((users.c.user_id != email_or_id), users.c.user_id)
    ).first()
    if by_profile is not None:
        return str(by_profile.user_id)
    by_enrollment = c.execute(
        select(path_learners.c.user_id)
        .where(path_learners.c.tenant_id == tenant_id, path_learners.c.user_id == email_or_id)
        .limit(1)
    ).first()
    return None if by_enrollment is None else str(by_enrollment.user_id)


def ignored_events_list(
    c: Connection, tenant_id: str | None, kind: str | None, limit: int | None
) -> list[dict[str, object]]:
    """Valid events a rule ignored, newest first, for operators."""
    query = select(ignored_events).order_by(ignored_events.c.id.desc())
    if tenant_id:
        query = query.where(ignored_events.c.tenant_id == tenant_id)
    if kind:
        query = query.where(ignored_events.c.kind == kind)
    if limit:
        query = query.limit(limit)
    return [
        {
            "id": row.id,
            "topic": row.topic,
            "partition": row.partition,
            "offset": row.offset,
            "tenantId": row.tenant_id,
            "eventId": row.event_id,
            "kind": row.kind,
            "reason": row.reason,
            "ignoredAt": row.ignored_at.isoformat(),
        }
        for row in c.execute(query)
    ]
