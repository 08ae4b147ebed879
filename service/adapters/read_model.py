"""The read model over SQL: queries on tables shaped for the answers (no replay, no
recomputation), on one connection."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, Select, and_, func, select

from service.adapters.database import storage_failures_as_unavailable
from service.adapters.sql import InList
from service.adapters.stores.challenges import challenge_from_row, entry_from_row
from service.adapters.stores.dead_letters import decode_headers
from service.adapters.stores.paths import attempt_from_row, session_from_row
from service.adapters.stores.service_state import CAUGHT_UP
from service.adapters.stores.tasks import facts_from_row, progress_of
from service.adapters.tables import (
    SCORE_COLUMNS,
    challenge_entries,
    challenge_groups,
    challenges,
    consumer_offsets,
    dead_letters,
    driver_months,
    ignored_events,
    path_learners,
    path_sessions,
    profile_version_groups,
    profile_versions,
    service_state,
    state_versions,
    step_attempts,
    step_corrections,
    task_pauses,
    tasks,
    user_groups,
    users,
)
from service.app.ports import (
    IgnoredEntry,
    Letter,
    LetterFilter,
    ReadModel,
    StateVersion,
    TopicPartition,
)
from service.app.records import Record
from service.domain.challenges import Challenge, Entry
from service.domain.events import PathSessionPublished, ScoreKind, TaskType
from service.domain.paths import Correction, LearnerState
from service.domain.ranking import Month, Profile
from service.domain.standings import Tally
from service.domain.tasks import TaskFacts


@contextlib.contextmanager
def read_model(engine: Engine, statement_timeout: float | None = None) -> Iterator[ReadModel]:
    """The read model on one connection, in one transaction that reads one snapshot (SQLite's
    own; REPEATABLE READ on PostgreSQL): an answer's reads, and the state versions read with
    them, agree with each other whatever commits meanwhile.

    Given `statement_timeout` seconds, PostgreSQL cancels each statement that runs longer;
    SQLite interrupts the statement running when that much time has passed since the read
    model opened (SQLite has no timeout of its own: a progress handler checks the clock every
    few thousand steps). Whatever the database fails on its own (see `is_storage_failure`) is
    raised as `StorageUnavailable`."""
    with storage_failures_as_unavailable(), engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="REPEATABLE READ")
            if statement_timeout is not None:
                milliseconds = max(1, round(statement_timeout * 1000))
                # SET LOCAL lasts until the transaction ends, so the pooled connection goes
                # back to the pool without it.
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
            yield SqlReadModel(connection)
        elif statement_timeout is not None:
            with _interrupted_after(connection, statement_timeout):
                yield SqlReadModel(connection)
        else:
            yield SqlReadModel(connection)


SQLITE_STEPS_PER_CHECK = 10_000
"""How many SQLite virtual-machine steps run between two looks at the clock (a few hundred
microseconds of work)."""


@contextlib.contextmanager
def _interrupted_after(connection: Connection, seconds: float) -> Iterator[None]:
    driver: Any = connection.connection.driver_connection
    deadline = time.monotonic() + seconds
    driver.set_progress_handler(lambda: time.monotonic() > deadline, SQLITE_STEPS_PER_CHECK)
    try:
        yield
    finally:
        driver.set_progress_handler(None, 0)


class SqlReadModel:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def profiles(
        self, tenant_id: str, group: str | None, as_of: datetime | None = None
    ) -> list[Profile]:
        query = select(users.c.user_id, users.c.firstname, users.c.lastname, users.c.pseudo)
        query = query.where(users.c.tenant_id == tenant_id)
        if as_of is not None:
            members = _members_as_of(tenant_id, as_of, group or None).subquery()
            query = query.join(members, members.c.user_id == users.c.user_id)
        elif group:
            query = query.join(
                user_groups,
                (user_groups.c.tenant_id == users.c.tenant_id)
                & (user_groups.c.user_id == users.c.user_id),
            ).where(user_groups.c.group_label == group)
        return [Profile(*row) for row in _plain_rows(self._c, query)]

    def month_tallies(
        self,
        tenant_id: str,
        month: Month,
        kind: ScoreKind,
        group: str | None,
        as_of: datetime | None = None,
    ) -> dict[str, Tally]:
        """A group's query starts from its members and looks their months up by key, so its
        cost follows the group's size, not the tenant's (a left join fixes that order on
        SQLite)."""
        name = SCORE_COLUMNS[kind]
        m, g = driver_months, user_groups
        columns = (m.c.trips, m.c.km, m.c[f"{name}_weighted"], m.c[f"{name}_weight"])
        of_month = (m.c.tenant_id == tenant_id) & (m.c.year == month.year)
        of_month &= m.c.month == month.number
        if group and as_of is not None:
            members = _members_as_of(tenant_id, as_of, group).subquery()
            query = select(members.c.user_id, *columns).select_from(
                members.outerjoin(m, of_month & (m.c.user_id == members.c.user_id))
            )
        elif group:
            query = (
                select(g.c.user_id, *columns)
                .select_from(g.outerjoin(m, of_month & (m.c.user_id == g.c.user_id)))
                .where(g.c.tenant_id == tenant_id, g.c.group_label == group)
            )
        else:
            query = select(m.c.user_id, *columns).where(of_month)
        # Exact figures come as the driver gives them (text on SQLite, Decimal on PostgreSQL).
        return {
            user: Tally(trips, Decimal(km), Decimal(weighted), Decimal(weight))
            for user, trips, km, weighted, weight in _plain_rows(self._c, query)
            if trips  # no month, or one whose trips were all deleted: it never happened
        }

    def task_facts(self, tenant_id: str, task_id: str) -> TaskFacts | None:
        row = self._c.execute(
            select(tasks).where(tasks.c.tenant_id == tenant_id, tasks.c.task_id == task_id)
        ).first()
        if row is None:
            return None
        progress = progress_of(self._c, [(tenant_id, task_id)])
        return facts_from_row(row, progress.get((tenant_id, task_id), ()))

    def task_pauses(self, tenant_id: str, task_type: TaskType) -> list[datetime]:
        p = task_pauses
        query = select(p.c.paused_at).where(p.c.tenant_id == tenant_id, p.c.type == task_type.value)
        return list(self._c.execute(query.order_by(p.c.paused_at)).scalars())

    def known_groups(self, tenant_id: str) -> frozenset[str]:
        vg = profile_version_groups
        query = select(vg.c.group_label).where(vg.c.tenant_id == tenant_id).distinct()
        return frozenset(self._c.execute(query).scalars())

    def challenge(self, tenant_id: str, challenge_id: str) -> Challenge | None:
        key = (challenges.c.tenant_id == tenant_id) & (challenges.c.challenge_id == challenge_id)
        row = self._c.execute(select(challenges).where(key)).first()
        if row is None:
            return None
        groups = self._c.execute(
            select(challenge_groups.c.group_label).where(
                challenge_groups.c.tenant_id == tenant_id,
                challenge_groups.c.challenge_id == challenge_id,
            )
        ).scalars()
        return challenge_from_row(row, list(groups))

    def challenge_entries(
        self,
        tenant_id: str,
        challenge_id: str,
        arrived_before: datetime,
        group: str | None,
        as_of: datetime | None = None,
    ) -> list[tuple[Entry, Profile]]:
        e, u = challenge_entries, users
        query = (
            select(e, u.c.firstname, u.c.lastname, u.c.pseudo)
            .outerjoin(u, (u.c.tenant_id == e.c.tenant_id) & (u.c.user_id == e.c.user_id))
            .where(
                e.c.tenant_id == tenant_id,
                e.c.challenge_id == challenge_id,
                e.c.arrived_at < arrived_before,
            )
        )
        if group and as_of is not None:
            members = _members_as_of(tenant_id, as_of, group).subquery()
            query = query.join(members, members.c.user_id == e.c.user_id)
        elif group:
            query = query.join(
                user_groups,
                (user_groups.c.tenant_id == e.c.tenant_id) & (user_groups.c.user_id == e.c.user_id),
            ).where(user_groups.c.group_label == group)
        return [
            (
                entry_from_row(row),
                Profile(row.user_id, row.firstname or "", row.lastname or "", row.pseudo or ""),
            )
            for row in self._c.execute(query)
        ]

    def path_session(self, tenant_id: str, session_id: str) -> PathSessionPublished | None:
        row = self._c.execute(
            select(path_sessions).where(
                path_sessions.c.tenant_id == tenant_id, path_sessions.c.session_id == session_id
            )
        ).first()
        return None if row is None else session_from_row(row)

    def resolve_user(self, tenant_id: str, email_or_id: str) -> str | None:
        by_profile = self._c.execute(
            select(users.c.user_id)
            .where(
                users.c.tenant_id == tenant_id,
                (users.c.user_id == email_or_id) | (users.c.email_lower == email_or_id.lower()),
            )
            .order_by((users.c.user_id != email_or_id), users.c.user_id)
        ).first()
        if by_profile is not None:
            return str(by_profile.user_id)
        by_enrollment = self._c.execute(
            select(path_learners.c.user_id)
            .where(path_learners.c.tenant_id == tenant_id, path_learners.c.user_id == email_or_id)
            .limit(1)
        ).first()
        return None if by_enrollment is None else str(by_enrollment.user_id)

    def learner_state(self, tenant_id: str, session_id: str, user_id: str) -> LearnerState | None:
        enrolment = self._c.execute(
            select(path_learners.c.enrolled_at, path_learners.c.unenrolled_at).where(
                path_learners.c.tenant_id == tenant_id,
                path_learners.c.session_id == session_id,
                path_learners.c.user_id == user_id,
            )
        ).first()
        if enrolment is None:
            return None

        def mine(table: Any) -> Any:
            return (
                select(table)
                .where(
                    table.c.tenant_id == tenant_id,
                    table.c.session_id == session_id,
                    table.c.user_id == user_id,
                )
                .order_by(table.c.attempt_id)
            )

        attempts = tuple(attempt_from_row(r) for r in self._c.execute(mine(step_attempts)))
        corrections = tuple(
            Correction(r.step_id, r.attempt_id, r.score, r.corrected_at)
            for r in self._c.execute(mine(step_corrections))
        )
        return LearnerState(enrolment.enrolled_at, enrolment.unenrolled_at, attempts, corrections)

    def state_versions(self, keys: Iterable[str] | None = None) -> dict[str, StateVersion]:
        query = select(state_versions.c.key, state_versions.c.version, state_versions.c.as_of)
        if keys is not None:
            query = query.where(InList(state_versions.c.key, keys))
        return {key: StateVersion(number, as_of) for key, number, as_of in self._c.execute(query)}

    def has_caught_up(self, group: str) -> bool:
        query = select(service_state.c.value).where(
            service_state.c.name == CAUGHT_UP.format(group=group)
        )
        return self._c.execute(query).first() is not None

    def dead_letters(self, which: LetterFilter) -> list[Letter]:
        query = select(dead_letters).order_by(dead_letters.c.id)
        if which.ids:
            query = query.where(dead_letters.c.id.in_(which.ids))
        if which.topic:
            query = query.where(dead_letters.c.topic == which.topic)
        if which.tenant_id:
            query = query.where(dead_letters.c.tenant_id == which.tenant_id)
        letters = [_letter(row) for row in self._c.execute(query)]
        if which.reason:
            wanted = which.reason.lower()
            letters = [x for x in letters if wanted in x.reason.lower()]
        return letters[: which.limit] if which.limit else letters

    def ignored_events(
        self, tenant_id: str | None, kind: str | None, limit: int | None
    ) -> list[IgnoredEntry]:
        query = select(ignored_events).order_by(ignored_events.c.id.desc())
        if tenant_id:
            query = query.where(ignored_events.c.tenant_id == tenant_id)
        if kind:
            query = query.where(ignored_events.c.kind == kind)
        if limit:
            query = query.limit(limit)
        return [
            IgnoredEntry(
                row.id,
                Record(row.topic, row.partition, row.offset, 0, None, b""),
                row.tenant_id,
                row.event_id,
                row.kind,
                row.reason,
                row.ignored_at,
            )
            for row in self._c.execute(query)
        ]

    def stored_offsets(self, group: str) -> dict[TopicPartition, int]:
        o = consumer_offsets
        query = select(o.c.topic, o.c.partition, o.c.next_offset).where(o.c.consumer_group == group)
        return {(topic, partition): offset for topic, partition, offset in self._c.execute(query)}


def _letter(row: Row[Any]) -> Letter:
    record = Record(
        topic=row.topic,
        partition=row.partition,
        offset=row.offset,
        timestamp_ms=row.record_timestamp_ms,
        key=row.key,
        value=row.value,
        headers=decode_headers(row.headers),
    )
    return Letter(
        row.id,
        record,
        row.reason,
        row.tenant_id,
        row.event_id,
        row.first_failed_at,
        row.last_failed_at,
        row.attempts,
    )


def _plain_rows(connection: Connection, query: Select[Any]) -> Sequence[Any]:
    """The rows of a query of plain columns (strings, integers, exact figures) as the driver
    gives them: for the thousands of rows of a big ranking, SQLAlchemy's row objects cost more
    than the query."""
    result = connection.execute(query)
    rows: Sequence[Any] = result.cursor.fetchall()
    result.close()
    return rows


def _newest_versions(
    tenant_id: str, as_of: datetime, among: Select[Any] | None = None
) -> Select[Any]:
    """Each user's newest profile version among those that arrived before `as_of` (of the
    users `among` selects, when given)."""
    v = profile_versions
    arrived = and_(v.c.tenant_id == tenant_id, v.c.arrived_at < as_of)
    if among is not None:
        arrived = and_(arrived, v.c.user_id.in_(among))
    ranked = (
        select(
            v.c.user_id,
            v.c.version_at,
            v.c.version_event,
            func.row_number()
            .over(
                partition_by=v.c.user_id,
                order_by=(v.c.version_at.desc(), v.c.version_event.desc()),
            )
            .label("newest_first"),
        )
        .where(arrived)
        .subquery()
    )
    return select(ranked.c.user_id, ranked.c.version_at, ranked.c.version_event).where(
        ranked.c.newest_first == 1
    )


def _same_version(groups: Any, newest: Any, tenant_id: str) -> ColumnElement[bool]:
    return and_(
        groups.c.tenant_id == tenant_id,
        groups.c.user_id == newest.c.user_id,
        groups.c.version_at == newest.c.version_at,
        groups.c.version_event == newest.c.version_event,
    )


def _members_as_of(tenant_id: str, as_of: datetime, group: str | None) -> Select[Any]:
    """The users known as of `as_of` (their newest version that arrived before it); with a
    group, those whose version lists it: the newest versions are looked for only among the
    users some version of whom ever listed the group."""
    if group is None:
        return select(_newest_versions(tenant_id, as_of).subquery().c.user_id)
    vg = profile_version_groups
    ever_listed = select(vg.c.user_id).where(vg.c.tenant_id == tenant_id, vg.c.group_label == group)
    newest = _newest_versions(tenant_id, as_of, ever_listed).subquery()
    return (
        select(newest.c.user_id)
        .join(vg, _same_version(vg, newest, tenant_id))
        .where(vg.c.group_label == group)
    )
