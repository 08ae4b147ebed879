"""The read model over SQL: queries on tables shaped for the answers (no replay, no
recomputation), on one connection."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Select,
    Subquery,
    Table,
    and_,
    case,
    func,
    or_,
    select,
    true,
)

from service.adapters.database import storage_failures_as_unavailable
from service.adapters.operator_reads import OperatorReads
from service.adapters.sql import InList
from service.adapters.stores.challenges import challenge_from_row, entry_from_row
from service.adapters.stores.paths import attempt_from_row, session_from_row
from service.adapters.stores.tasks import facts_from_row, progress_of
from service.adapters.tables import (
    SCORE_COLUMNS,
    challenge_entries,
    challenge_groups,
    challenges,
    driver_months,
    path_learners,
    path_sessions,
    profile_version_groups,
    profile_versions,
    state_version_shards,
    state_versions,
    step_attempts,
    step_corrections,
    task_pauses,
    tasks,
    user_groups,
    users,
)
from service.app.ports import (
    ReadModel,
    StateVersion,
)
from service.app.shards import shard_range
from service.app.state_versions import shard_key
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


class SqlReadModel(OperatorReads):
    def __init__(self, connection: Connection) -> None:
        self._c = connection
        self._row_by_row = connection.dialect.name == "postgresql"
        """Look rows up one outer row at a time with LATERAL subqueries (`_looked_up`)."""

    def profiles(
        self, tenant_id: str, group: str | None, as_of: datetime | None = None
    ) -> list[Profile]:
        """A group's profiles start from its members and are looked up by key; without a
        group, every profile of the tenant (a frozen month too: every user with a profile has
        a version that places them, docs/rules.md#arrival-time-and-freezes)."""
        u = users
        names = (u.c.firstname, u.c.lastname, u.c.pseudo)
        if not group:
            query = select(u.c.user_id, *names).where(u.c.tenant_id == tenant_id)
        else:
            members = self._members(tenant_id, group, as_of)
            key = (u.c.tenant_id == tenant_id) & (u.c.user_id == members.c.user_id)
            joined, found = _looked_up(self._row_by_row, members, u, key, names, outer=False)
            query = select(members.c.user_id, *found).select_from(joined)
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
        cost follows the group's size, not the tenant's."""
        name = SCORE_COLUMNS[kind]
        m = driver_months
        columns = (m.c.trips, m.c.km, m.c[f"{name}_weighted"], m.c[f"{name}_weight"])
        of_month = (m.c.tenant_id == tenant_id) & (m.c.year == month.year)
        of_month &= m.c.month == month.number
        if group:
            members = self._members(tenant_id, group, as_of)
            key = of_month & (m.c.user_id == members.c.user_id)
            joined, found = _looked_up(self._row_by_row, members, m, key, columns)
            query = select(members.c.user_id, *found).select_from(joined)
        else:
            query = select(m.c.user_id, *columns).where(of_month)
        # Exact figures come as the driver gives them (text on SQLite, Decimal on PostgreSQL).
        return {
            user: Tally(trips, Decimal(km), Decimal(weighted), Decimal(weight))
            for user, trips, km, weighted, weight in _plain_rows(self._c, query)
            if trips  # no month, or one whose trips were all deleted: it never happened
        }

    def month_changes(
        self, tenant_id: str, month: Month, kind: ScoreKind, since: Mapping[int, int]
    ) -> dict[str, Tally | None]:
        if not since:
            return {}
        name = SCORE_COLUMNS[kind]
        m = driver_months
        columns = (m.c.trips, m.c.km, m.c[f"{name}_weighted"], m.c[f"{name}_weight"])
        ranges = [shard_range(shard, version) for shard, version in sorted(since.items())]
        query = select(m.c.user_id, *columns).where(
            m.c.tenant_id == tenant_id,
            m.c.year == month.year,
            m.c.month == month.number,
            m.c.changed_in.is_not(None),
            or_(*(m.c.changed_in.between(low + 1, high - 1) for low, high in ranges)),
        )
        return {
            user: Tally(trips, Decimal(km), Decimal(weighted), Decimal(weight)) if trips else None
            for user, trips, km, weighted, weight in _plain_rows(self._c, query)
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
        """The entries start the query; each one's profile (and membership) is looked up by
        key."""
        e, u, g = challenge_entries, users, user_groups
        entries: FromClause = e
        if group and as_of is not None:
            entries = self._members_only(entries, e.c.user_id, tenant_id, group, as_of)
        elif group:
            key = (g.c.tenant_id == tenant_id) & (g.c.group_label == group)
            entries, _ = _looked_up(
                self._row_by_row,
                entries,
                g,
                key & (g.c.user_id == e.c.user_id),
                (g.c.user_id,),
                outer=False,
            )
        key = (u.c.tenant_id == tenant_id) & (u.c.user_id == e.c.user_id)
        joined, names = _looked_up(
            self._row_by_row, entries, u, key, (u.c.firstname, u.c.lastname, u.c.pseudo)
        )
        query = (
            select(e, *names)
            .select_from(joined)
            .where(
                e.c.tenant_id == tenant_id,
                e.c.challenge_id == challenge_id,
                e.c.arrived_at < arrived_before,
            )
        )
        return [
            (
                entry_from_row(row),
                Profile(row.user_id, row.firstname or "", row.lastname or "", row.pseudo or ""),
            )
            for row in self._c.execute(query)
        ]

    def challenges_ended(self, by: datetime) -> list[tuple[str, str, datetime]]:
        return _challenges_ended(self._c, by)

    def path_session(self, tenant_id: str, session_id: str) -> PathSessionPublished | None:
        row = self._c.execute(
            select(path_sessions).where(
                path_sessions.c.tenant_id == tenant_id, path_sessions.c.session_id == session_id
            )
        ).first()
        return None if row is None else session_from_row(row)

    def resolve_user(self, tenant_id: str, email_or_id: str) -> str | None:
        """By id, else by email (the first such user by id), else by enrolment: each a look-up
        by an index of its own."""
        return _resolved_user(self._c, tenant_id, email_or_id)

    def learner_state(self, tenant_id: str, session_id: str, user_id: str) -> LearnerState | None:
        return _learner_state(self._c, tenant_id, session_id, user_id)

    def _members(self, tenant_id: str, group: str, as_of: datetime | None) -> Subquery:
        """The users a group's ranking lists (`user_id`): today's members of `group`, or its
        members in a window frozen at `as_of`."""
        if as_of is None:
            g = user_groups
            listed = select(g.c.user_id).where(g.c.tenant_id == tenant_id, g.c.group_label == group)
            return listed.subquery()
        if not self._row_by_row:
            return _members_as_of(tenant_id, as_of, group).subquery()
        vg = profile_version_groups
        ever = select(vg.c.user_id).where(vg.c.tenant_id == tenant_id, vg.c.group_label == group)
        ever_listed = ever.distinct().subquery()
        members = self._members_only(ever_listed, ever_listed.c.user_id, tenant_id, group, as_of)
        return select(ever_listed.c.user_id).select_from(members).subquery()

    def _members_only(
        self,
        rows: FromClause,
        user_id: ColumnElement[str],
        tenant_id: str,
        group: str,
        as_of: datetime,
    ) -> FromClause:
        """`rows` of the users who were members of `group` in a window frozen at `as_of`: the
        version that places each one (`_placing_order`) lists the group; looked up user by
        user on PostgreSQL, joined to `_members_as_of` on SQLite."""
        if not self._row_by_row:
            members = _members_as_of(tenant_id, as_of, group).subquery()
            return rows.join(members, members.c.user_id == user_id)
        v, vg = profile_versions, profile_version_groups
        placing = (
            select(v.c.version_at, v.c.version_event)
            .where(v.c.tenant_id == tenant_id, v.c.user_id == user_id)
            .order_by(*_placing_order(as_of))
            .limit(1)
            .lateral()
        )
        lists_group = (
            select(vg.c.group_label)
            .where(
                vg.c.tenant_id == tenant_id,
                vg.c.user_id == user_id,
                vg.c.version_at == placing.c.version_at,
                vg.c.version_event == placing.c.version_event,
                vg.c.group_label == group,
            )
            .limit(1)
            .lateral()
        )
        return rows.join(placing, true()).join(lists_group, true())

    def state_versions(self, keys: Iterable[str] | None = None) -> dict[str, StateVersion]:
        return read_state_versions(self._c, keys)


def read_state_versions(
    connection: Connection, keys: Iterable[str] | None
) -> dict[str, StateVersion]:
    """Each version as its own row and its shards' make it, and each shard on its own
    (`service.app.state_versions.shard_key`)."""
    v, s = state_versions, state_version_shards
    own = select(v.c.key, v.c.version, v.c.as_of)
    shards = select(s.c.key, s.c.shard, s.c.version, s.c.as_of)
    if keys is not None:
        keys = list(keys)
        own, shards = own.where(InList(v.c.key, keys)), shards.where(InList(s.c.key, keys))
    found = {key: StateVersion(number, as_of) for key, number, as_of in connection.execute(own)}
    for key, shard, number, as_of in connection.execute(shards):
        was = found.get(key, NEVER_MOVED)
        latest = max((t for t in (was.as_of, as_of) if t is not None), default=None)
        found[key] = StateVersion(was.number + number, latest)
        found[shard_key(key, shard)] = StateVersion(number, as_of)
    return found


NEVER_MOVED = StateVersion(0, None)


def _looked_up(
    row_by_row: bool,
    rows: FromClause,
    table: Table,
    key: ColumnElement[bool],
    columns: Sequence[Column[Any]],
    *,
    outer: bool = True,
) -> tuple[FromClause, list[ColumnElement[Any]]]:
    """`rows` joined to the row of `table` that `key` finds for each of them (left out when
    none is found, unless `outer`), and that row's `columns`.

    The row is looked up for one row of `rows` at a time, by an index, whatever the
    planner's statistics say: on PostgreSQL as a LATERAL subquery, which its LIMIT 1 keeps
    from being folded into an ordinary join. Planned as an ordinary join on a database
    that was never analyzed (a rebuild, docs/operations.md#the-planners-statistics),
    a 10,000-member group was joined row by row against the whole month's rows. SQLite
    never puts a left join's right side in the outer loop, so a plain join is looked up
    that way already."""
    if row_by_row:
        found = select(*columns).where(key).limit(1).lateral()
        joined = rows.join(found, true(), isouter=outer)
        return joined, [found.c[column.name] for column in columns]
    return rows.join(table, key, isouter=outer), list(columns)


def _plain_rows(connection: Connection, query: Select[Any]) -> Sequence[Any]:
    """The rows of a query of plain columns (strings, integers, exact figures) as the driver
    gives them: for the thousands of rows of a big ranking, SQLAlchemy's row objects cost more
    than the query."""
    result = connection.execute(query)
    rows: Sequence[Any] = result.cursor.fetchall()
    result.close()
    return rows


def _placing_order(as_of: datetime) -> tuple[ColumnElement[Any], ...]:
    """A user's versions in the order that places them in a window frozen at `as_of`
    (`service.domain.membership.version_at_freeze`): the versions that arrived before the
    freeze come first, newest first; then the others by arrival, the newest first among those
    that arrived together. The first one places the user."""
    v = profile_versions
    arrived_before = v.c.arrived_at < as_of
    return (
        case((arrived_before, 0), else_=1),
        case((arrived_before, None), else_=v.c.arrived_at),
        v.c.version_at.desc(),
        v.c.version_event.desc(),
    )


def _versions_at_freeze(tenant_id: str, as_of: datetime, among: Select[Any]) -> Select[Any]:
    """The version that places each of the users `among` selects in a window frozen at
    `as_of` (`_placing_order`)."""
    v = profile_versions
    ranked = (
        select(
            v.c.user_id,
            v.c.version_at,
            v.c.version_event,
            func.row_number()
            .over(partition_by=v.c.user_id, order_by=_placing_order(as_of))
            .label("placing"),
        )
        .where(v.c.tenant_id == tenant_id, v.c.user_id.in_(among))
        .subquery()
    )
    return select(ranked.c.user_id, ranked.c.version_at, ranked.c.version_event).where(
        ranked.c.placing == 1
    )


def _same_version(groups: Any, placing: Any, tenant_id: str) -> ColumnElement[bool]:
    return and_(
        groups.c.tenant_id == tenant_id,
        groups.c.user_id == placing.c.user_id,
        groups.c.version_at == placing.c.version_at,
        groups.c.version_event == placing.c.version_event,
    )


def _members_as_of(tenant_id: str, as_of: datetime, group: str) -> Select[Any]:
    """The group's members in a window frozen at `as_of`: the users whose placing version
    lists it. The versions are looked for only among the users some version of whom ever
    listed the group, so the cost follows the group's size, not the tenant's."""
    vg = profile_version_groups
    ever_listed = select(vg.c.user_id).where(vg.c.tenant_id == tenant_id, vg.c.group_label == group)
    placing = _versions_at_freeze(tenant_id, as_of, ever_listed).subquery()
    return (
        select(placing.c.user_id)
        .join(vg, _same_version(vg, placing, tenant_id))
        .where(vg.c.group_label == group)
    )


def _challenges_ended(connection: Connection, by: datetime) -> list[tuple[str, str, datetime]]:
    c = challenges
    query = (
        select(c.c.tenant_id, c.c.challenge_id, c.c.end_at)
        .where(c.c.end_at <= by)
        .order_by(c.c.tenant_id, c.c.challenge_id)
    )
    return [(tenant, challenge, end) for tenant, challenge, end in connection.execute(query)]


def _resolved_user(connection: Connection, tenant_id: str, email_or_id: str) -> str | None:
    of_tenant = users.c.tenant_id == tenant_id
    by_id = select(users.c.user_id).where(of_tenant, users.c.user_id == email_or_id)
    by_email = (
        select(users.c.user_id)
        .where(of_tenant, users.c.email_lower == email_or_id.lower())
        .order_by(users.c.user_id)
        .limit(1)
    )
    for query in (by_id, by_email):
        by_profile = connection.execute(query).first()
        if by_profile is not None:
            return str(by_profile.user_id)
    by_enrollment = connection.execute(
        select(path_learners.c.user_id)
        .where(path_learners.c.tenant_id == tenant_id, path_learners.c.user_id == email_or_id)
        .limit(1)
    ).first()
    return None if by_enrollment is None else str(by_enrollment.user_id)


def _learner_state(
    connection: Connection, tenant_id: str, session_id: str, user_id: str
) -> LearnerState | None:
    enrolment = connection.execute(
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

    attempts = tuple(attempt_from_row(r) for r in connection.execute(mine(step_attempts)))
    corrections = tuple(
        Correction(r.step_id, r.attempt_id, r.score, r.corrected_at)
        for r in connection.execute(mine(step_corrections))
    )
    return LearnerState(enrolment.enrolled_at, enrolment.unenrolled_at, attempts, corrections)
